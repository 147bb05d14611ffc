"""Random balanced remittances built from random billed claims always post without an exception and
conserve cash to the cent (hypothesis, real database, both backends)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from hl7_factory import Dft, Ft1
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from x12_factory import Cas, ClaimSpec, LineSpec, PlbSpec, RemittanceSpec, render_835

from api.bootstrap import Hub
from connectors.intake import Status
from router.queries import account_balances

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Line:
    code: str
    charge: int  # cents
    co_pct: int
    pr_pct: int
    pr_reason: str
    modifiers: tuple[str, ...]

    def spec(self) -> LineSpec:
        charge = Decimal(self.charge) / 100
        co = (charge * self.co_pct / 100).quantize(CENT)
        pr = min(charge - co, (charge * self.pr_pct / 100).quantize(CENT))
        adjs = ((Cas("CO", "45", co),) if co else ()) + ((Cas("PR", self.pr_reason, pr),) if pr else ())
        return LineSpec(self.code, charge, adjs, modifiers=self.modifiers)


lines = st.builds(Line, code=st.sampled_from(["99213", "99214", "93000", "80053"]),
                  charge=st.integers(100, 250_000), co_pct=st.integers(0, 60), pr_pct=st.integers(0, 60),
                  pr_reason=st.sampled_from(["1", "2", "3"]), modifiers=st.sampled_from([(), ("25",)]))
claims = st.tuples(
    st.lists(lines, min_size=1, max_size=4),
    st.randoms(use_true_random=False),  # the order the payer lists the lines in
    st.integers(0, 300),  # claim-level CO-253 in cents (capped at what the lines paid)
    st.one_of(st.none(), st.integers(1, 2_000)),  # AMT*I interest in cents
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(claims, min_size=1, max_size=4), st.booleans())
def test_a_random_balanced_remittance_for_billed_claims_posts_without_exception_and_conserves_cash(
        hub: Hub, drawn: list[tuple[list[Line], object, int, int | None]], recoup: bool) -> None:
    run = uuid.uuid4().hex[:10].upper()
    specs: list[ClaimSpec] = []
    patient: dict[str, Decimal] = {}
    for n, (billed, rng, sequestration, interest) in enumerate(drawn):
        account, pcn = f"H{run}{n}", f"P{run}{n}"
        message = Dft(f"H{run}{n}", account, visit=pcn, payer="ACME",
                      lines=[Ft1(Decimal(b.charge) / 100, code=b.code, modifiers=b.modifiers) for b in billed])
        assert hub.intake.receive_hl7(message.er7()).status is Status.ACCEPTED
        answered = [b.spec() for b in billed]
        rng.shuffle(answered)  # type: ignore[attr-defined]
        claim = ClaimSpec(pcn, tuple(answered), payer_claim_number=f"I{run}{n}",
                          interest=Decimal(interest) / 100 if interest else None)
        cut = min(Decimal(sequestration) / 100, claim.paid)
        if cut:
            claim = ClaimSpec(pcn, claim.lines, (Cas("CO", "253", cut),), "1", claim.payer_claim_number,
                              claim.interest)
        specs.append(claim)
        patient[account] = claim.patient_responsibility
    plbs = [PlbSpec("L6", c.payer_claim_number, -c.interest) for c in specs if c.interest]
    if recoup:
        plbs.append(PlbSpec("WO", specs[0].payer_claim_number, Decimal("12.34")))
    remit = RemittanceSpec(tuple(specs), tuple(plbs), trace_number=f"T{run}")

    report = hub.intake.ingest(render_835([remit]).encode(), f"{run}.835")

    assert [(r.status, r.reason) for r in report.results] == [(Status.ACCEPTED, None)]
    with hub.sessions() as s:
        rid, payment, posted, held, plb, status = s.execute(text(
            "SELECT id, payment_cents, posted_cents, held_cents, plb_cents, status FROM remittances "
            "WHERE trace_number = :t"), {"t": f"T{run}"}).one()
        found = s.execute(text("SELECT type, reason FROM exceptions WHERE remittance_id = :r"), {"r": rid}).all()
        buckets = {a: account_balances(s, a) for a in patient}
    assert found == []
    assert status == "posted"
    assert payment == round(remit.payment * 100)
    assert (posted, held, plb) == (round(sum((c.paid for c in specs), ZERO) * 100), 0,
                                   -round(sum((p.amount for p in plbs), ZERO) * 100))
    assert posted + held + plb == payment
    # every billed line was adjudicated in full: nothing is left with the payer, the patient owes the PR
    assert {a: (b.insurance, b.patient) for a, b in buckets.items() if b} == {
        a: (ZERO, pr) for a, pr in patient.items()}
