"""The fuzzy candidate list for a remittance claim that matches no patient control number (SQLite and
PostgreSQL): with more same-name claims than the list holds, the likeliest come first and the right one is
never left out at random."""

from __future__ import annotations

from decimal import Decimal

import claims_seed
from claims_seed import SERVICE_DATE, SeedClaim

from api.bootstrap import Hub
from router.adapters.remittances import RemittanceRepository
from router.domain.remittance import RemitClaim


def test_the_claim_sharing_member_id_and_service_date_leads_many_same_name_claims(hub: Hub, uid: str) -> None:
    family = f"FZ{uid}"
    target = SeedClaim(f"T{uid}", f"TA{uid}", [("99213", (), 10_000)])
    claims_seed.seed(hub.engine, [target], source=f"t{uid}", family=family, member_id=f"M{uid}")
    # Newer claims of patients with the same last name only: 120 of them, more than the list's 50.
    decoys = [SeedClaim(f"D{uid}-{n}", f"DA{uid}-{n}", [("99213", (), 10_000)]) for n in range(120)]
    claims_seed.seed(hub.engine, decoys, source=f"d{uid}", family=family, member_id=f"OTHER{uid}")

    remit = RemitClaim(pcn=f"UNKNOWN{uid}", status="1", charge=Decimal("100.00"), paid=Decimal("80.00"),
                       patient_last=family.lower(), member_id=f"M{uid}", service_date=SERVICE_DATE)
    with hub.sessions() as session:
        facts = RemittanceRepository(session).fuzzy_facts(remit)
    assert len(facts) == 50
    assert facts[0].key == target.key
    assert {f.key for f in facts[1:]} == {d.key for d in decoys[-49:]}  # then the newest same-name claims
