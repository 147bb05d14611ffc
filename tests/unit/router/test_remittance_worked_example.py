"""The domain primer's worked example (§1.10) posts exactly the entries it lists, on both databases."""

from __future__ import annotations

from decimal import Decimal

from conftest import SAMPLES
from hl7_factory import Dft, Ft1
from sqlalchemy import text
from x12_factory import Cas, ClaimSpec, Layout, RemittanceSpec, render_835

from api.bootstrap import Hub
from connectors.intake import Status
from router.queries import account_view

D = Decimal


def _setup(hub: Hub, uid: str) -> tuple[str, str, str]:
    a, b, c = f"A{uid}1", f"A{uid}2", f"A{uid}3"
    for n, (account, visit, lines) in enumerate([
        (a, f"P{uid}1001", [Ft1("200.00", code="99214"), Ft1("100.00", code="93000")]),
        (b, f"P{uid}0777", [Ft1("120.00", code="99213")]),
        (c, f"P{uid}1002", [Ft1("80.00", code="99212")]),
    ]):
        assert hub.intake.receive_hl7(Dft(f"W{uid}{n}", account, visit=visit, payer="ACME",
                                          lines=lines).er7()).status is Status.ACCEPTED
    earlier = RemittanceSpec(claims=(ClaimSpec(f"P{uid}0777", claim_adjustments=(Cas("CO", "45", D("40")),),
                                               charge_without_lines=D("120"), payer_claim_number=f"I{uid}555"),),
                             trace_number=f"T{uid}OLD")
    report = hub.intake.ingest(render_835([earlier], Layout()).encode(), "earlier.835")
    assert [r.status for r in report.results] == [Status.ACCEPTED]
    return a, b, c


def _example(uid: str) -> bytes:
    raw = (SAMPLES / "x12_835/worked-example.835").read_text()
    return raw.replace("PCN", f"P{uid}").replace("ICN", f"I{uid}").replace("EFT0001234", f"T{uid}").encode()


def _entries(hub: Hub, account: str) -> list[tuple[str, str, str]]:
    with hub.sessions() as s:
        view = account_view(s, account)
    assert view is not None
    return [(e.kind, e.responsibility, f"{e.amount:.2f}") for e in view.entries if e.kind != "charge"]


def test_worked_example_posts_exactly_the_listed_entries_and_conserves_cash(hub: Hub, uid: str) -> None:
    a, b, c = _setup(hub, uid)
    report = hub.intake.ingest(_example(uid), "worked-example.835")
    assert [r.status for r in report.results] == [Status.ACCEPTED]
    assert report.ack and "AK9*A*1*1*1" in report.ack

    # Claim A, per line: payments 110/40, CO-45 40/50, PR 30+20 and 10 transferred; the patient owes 60.
    assert _entries(hub, a) == [
        ("insurance_payment", "insurance", "-110.00"), ("contractual_adjustment", "insurance", "-40.00"),
        ("transfer_to_patient", "insurance", "-30.00"), ("transfer_to_patient", "patient", "30.00"),
        ("transfer_to_patient", "insurance", "-20.00"), ("transfer_to_patient", "patient", "20.00"),
        ("insurance_payment", "insurance", "-40.00"), ("contractual_adjustment", "insurance", "-50.00"),
        ("transfer_to_patient", "insurance", "-10.00"), ("transfer_to_patient", "patient", "10.00")]
    # Claims B and C: the old payment and write-off reversed exactly, then 90 paid and 30 written off.
    assert _entries(hub, b) == [
        ("insurance_payment", "insurance", "-80.00"), ("contractual_adjustment", "insurance", "-40.00"),
        ("reversal", "insurance", "80.00"), ("reversal", "insurance", "40.00"),
        ("insurance_payment", "insurance", "-90.00"), ("contractual_adjustment", "insurance", "-30.00")]
    # Claim D: $0 paid is not a denial: 30 written off, 50 to the patient.
    assert _entries(hub, c) == [
        ("contractual_adjustment", "insurance", "-30.00"),
        ("transfer_to_patient", "insurance", "-50.00"), ("transfer_to_patient", "patient", "50.00")]
    with hub.sessions() as s:
        balances = {acc: account_view(s, acc).balances for acc in (a, b, c)}  # type: ignore[union-attr]
        remit = s.execute(text("SELECT id, payment_cents, posted_cents, held_cents, plb_cents, status FROM remittances "
                               "WHERE trace_number = :t"), {"t": f"T{uid}"}).one()
        plb = s.execute(text("SELECT code, reference, amount_cents, claim_id IS NOT NULL FROM practice_ledger "
                             "WHERE remittance_id = :r ORDER BY id"), {"r": remit[0]}).all()
        exceptions = s.execute(text("SELECT type, claim_key, amount_cents FROM exceptions WHERE remittance_id = :r"),
                               {"r": remit[0]}).all()
    assert {k: (v.insurance, v.patient) for k, v in balances.items()} == {
        a: (D("0.00"), D("60.00")), b: (D("0.00"), D("0.00")), c: (D("0.00"), D("50.00"))}
    # Cash: 160.00 of claim payments posted, nothing held, PLB effect -22.50: BPR02 137.50 exactly.
    assert tuple(remit[1:]) == (13750, 16000, 0, -2250, "posted")
    assert remit[2] + remit[3] + remit[4] == remit[1]
    # PLB is practice money: L6 interest linked to claim A via ICN987; WO for an unknown ICN opens a case.
    assert [tuple(p) for p in plb] == [("L6", f"I{uid}987", -250, True), ("WO", f"I{uid}444", 2500, False)]
    assert [tuple(x) for x in exceptions] == [("unlinked_plb", f"I{uid}444", 2500)]


def test_the_same_835_again_even_in_a_new_envelope_posts_once_and_reports_a_duplicate(hub: Hub, uid: str) -> None:
    a, _, _ = _setup(hub, uid)
    first = hub.intake.ingest(_example(uid), "one.835")
    again = hub.intake.ingest(_example(uid).replace(b"000000101", b"000000202"), "renamed.835")
    assert [r.status for r in first.results] == [Status.ACCEPTED]
    assert [r.status for r in again.results] == [Status.DUPLICATE]
    assert len(_entries(hub, a)) == 10
