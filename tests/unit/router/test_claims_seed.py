"""The benchmark's bulk seed writes what the DFT^P03 charge path writes, so the fixture cannot drift."""

from __future__ import annotations

from decimal import Decimal

import claims_seed
from hl7_factory import Dft, Ft1

from api.bootstrap import Hub
from router.domain.model import Claim


def _read(hub: Hub, key: str) -> tuple[Claim | None, list[object], list[tuple[str, str, Decimal, int | None]]]:
    with hub.uow_factory() as uow:
        claim = uow.claims.get(key)
        assert claim is not None
        coverages = [(c.sequence, c.payer_id) for c in uow.accounts.coverages(claim.account)]
        entries = [(e.kind.value, e.responsibility.value, e.amount, e.charge_line)
                   for e in uow.ledger.for_account(claim.account)]
    return claim, coverages, entries


def test_a_bulk_seeded_claim_reads_back_like_one_posted_through_the_bus(hub: Hub, uid: str) -> None:
    lines = [Ft1("120.50", code="99213"), Ft1("80.00", code="93000", modifiers=("25",))]
    dft = Dft(f"S{uid}", f"A{uid}1", visit=f"V{uid}1", payer="ACME", lines=lines)
    assert hub.intake.receive_hl7(dft.er7()).status.value == "accepted"
    seeded = claims_seed.SeedClaim(f"V{uid}2", f"A{uid}2", [("99213", (), 12050), ("93000", ("25",), 8000)])
    claims_seed.seed(hub.engine, [seeded])
    (bus_claim, bus_cov, bus_entries), (bulk_claim, bulk_cov, bulk_entries) = (
        _read(hub, f"V{uid}1"), _read(hub, f"V{uid}2"))
    assert bus_claim is not None and bulk_claim is not None
    assert [(ln.line_no, ln.code, ln.modifiers, ln.amount, ln.units, ln.service_date, ln.line_control)
            for ln in bus_claim.lines] == [
           (ln.line_no, ln.code, ln.modifiers, ln.amount, ln.units, ln.service_date, ln.line_control)
            for ln in bulk_claim.lines]
    assert bus_cov == bulk_cov and bus_entries == bulk_entries
