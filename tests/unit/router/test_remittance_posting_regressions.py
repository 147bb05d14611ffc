"""Router posting bugs found by the scenario generator, each pinned by the smallest remittance that shows it."""

from __future__ import annotations

from decimal import Decimal

from hl7_factory import Dft, Ft1
from sqlalchemy import text
from x12_factory import Cas, ClaimSpec, LineSpec, RemittanceSpec, render_835

from api.bootstrap import Hub
from connectors.intake import Status
from router.queries import account_view

D = Decimal


def _bill(hub: Hub, uid: str, lines: list[Ft1]) -> str:
    account = f"R{uid}"
    message = Dft(f"R{uid}", account, visit=f"P{uid}", payer="ACME", lines=lines).er7()
    assert hub.intake.receive_hl7(message).status is Status.ACCEPTED
    return account


def _ingest(hub: Hub, spec: RemittanceSpec) -> None:
    report = hub.intake.ingest(render_835([spec]).encode(), f"{spec.trace_number}.835")
    assert [r.status for r in report.results] == [Status.ACCEPTED]


def _payments_and_balances(hub: Hub, account: str) -> tuple[Decimal, Decimal, Decimal]:
    with hub.sessions() as s:
        view = account_view(s, account)
    assert view is not None
    paid = sum((e.amount for e in view.entries if e.kind == "insurance_payment"
                or (e.kind == "reversal" and e.key.endswith(":pay"))), D("0.00"))
    return -paid, view.balances.insurance, view.balances.patient


def _exception_types(hub: Hub, uid: str) -> list[str]:
    with hub.sessions() as s:
        return list(s.scalars(text("SELECT type FROM exceptions WHERE claim_key = :k ORDER BY id"), {"k": f"P{uid}"}))


def _sequestered(uid: str) -> ClaimSpec:
    """Two lines paying 80 + 50, less a claim-level CO-253 of 1.30: CLP04 is 128.70."""
    return ClaimSpec(f"P{uid}", (
        LineSpec("99213", D("100"), (Cas("CO", "45", D("15")), Cas("PR", "2", D("5")))),
        LineSpec("93000", D("60"), (Cas("CO", "45", D("10")),)),
    ), claim_adjustments=(Cas("CO", "253", D("1.30")),), payer_claim_number=f"I{uid}")


def test_a_claim_level_adjustment_on_a_claim_with_lines_reduces_the_posted_payment_to_clp04(
        hub: Hub, uid: str) -> None:
    account = _bill(hub, uid, [Ft1("100.00", code="99213"), Ft1("60.00", code="93000")])
    claim = _sequestered(uid)
    assert claim.paid == D("128.70")
    _ingest(hub, RemittanceSpec((claim,), trace_number=f"T{uid}"))
    # The ledger's insurance payments equal the cash (CLP04), and the fully adjudicated claim leaves no
    # insurance balance: 160 charged = 128.70 paid + 25 CO-45 + 1.30 CO-253 + 5 PR.
    assert _payments_and_balances(hub, account) == (D("128.70"), D("0.00"), D("5.00"))
    assert _exception_types(hub, uid) == []  # no false credit balance


def test_the_reversal_of_a_claim_with_a_claim_level_adjustment_reverses_it_exactly(hub: Hub, uid: str) -> None:
    account = _bill(hub, uid, [Ft1("100.00", code="99213"), Ft1("60.00", code="93000")])
    original = _sequestered(uid)
    _ingest(hub, RemittanceSpec((original,), trace_number=f"T{uid}A"))
    _ingest(hub, RemittanceSpec((original.reversal(),), trace_number=f"T{uid}B"))
    assert _payments_and_balances(hub, account) == (D("0.00"), D("160.00"), D("0.00"))
    assert _exception_types(hub, uid) == []


def test_two_lines_with_the_same_code_match_by_charge_when_the_payer_lists_them_in_another_order(
        hub: Hub, uid: str) -> None:
    account = _bill(hub, uid, [Ft1("100.00", code="99213"), Ft1("50.00", code="99213")])
    claim = ClaimSpec(f"P{uid}", (
        LineSpec("99213", D("50"), (Cas("CO", "45", D("10")),)),
        LineSpec("99213", D("100"), (Cas("CO", "45", D("20")), Cas("PR", "3", D("15")))),
    ), payer_claim_number=f"I{uid}")
    _ingest(hub, RemittanceSpec((claim,), trace_number=f"T{uid}"))
    assert _exception_types(hub, uid) == []  # was: charge_mismatch "payer charge 50.00 ≠ billed 100.00"
    assert _payments_and_balances(hub, account) == (D("105.00"), D("0.00"), D("15.00"))
