"""The first vertical slice: DFT^P03 -> intake -> bus -> ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from conftest import SAMPLES
from hl7_factory import Dft, Ft1

from api.bootstrap import Hub
from connectors.intake import Status
from router.queries import account_view


def test_sample_dft_posts_its_charges_under_the_visit_number(hub: Hub, uid: str) -> None:
    raw = (SAMPLES / "hl7v2/microsoft-fhir-converter/DFT-P03-01.hl7").read_bytes()
    # The database persists across runs: give the sample's account and control id this run's identity.
    raw = (raw.replace(b"4000776", f"S{uid}".encode()).replace(b"MSG00001", f"M{uid}".encode())
           .replace(b"40007716", f"V{uid}".encode()))
    report = hub.intake.ingest(raw, "DFT-P03-01.hl7")
    assert report.results[0].status is Status.ACCEPTED
    with hub.sessions() as s:
        view = account_view(s, f"S{uid}")
    assert view is not None
    charges = [e for e in view.entries if e.kind == "charge"]
    assert [(e.amount, e.claim) for e in charges] == [(Decimal("100.00"), f"V{uid}"), (Decimal("120.00"), f"V{uid}")]


def test_the_same_message_twice_posts_once(hub: Hub, uid: str) -> None:
    msg = Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="BCBS",
              lines=[Ft1("125.50"), Ft1("74.50", code="93000", modifiers=("26", "59"))]).er7()
    first = hub.intake.receive_hl7(msg)
    second = hub.intake.receive_hl7(msg)
    assert (first.status, second.status) == (Status.ACCEPTED, Status.DUPLICATE)
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None
    assert len(view.entries) == 2
    assert view.balances.charges == Decimal("200.00") == view.balances.insurance
    assert view.balances.patient == Decimal("0.00")


def test_same_control_id_with_different_content_is_rejected_not_posted(hub: Hub, uid: str) -> None:
    hub.intake.receive_hl7(Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("10.00")]).er7())
    changed = hub.intake.receive_hl7(Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("99.00")]).er7())
    assert changed.status is Status.REJECTED
    assert "different content" in (changed.reason or "")
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None and view.balances.charges == Decimal("10.00")


def test_self_pay_account_owes_its_charges_as_patient(hub: Hub, uid: str) -> None:
    hub.intake.receive_hl7(Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", lines=[Ft1("80.00")]).er7())
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None
    assert (view.balances.charges, view.balances.insurance, view.balances.patient) == (
        Decimal("80.00"), Decimal("0.00"), Decimal("80.00"))


def test_emr_payments_and_credits_post_to_the_right_bucket(hub: Hub, uid: str) -> None:
    msg = Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="AETNA", lines=[
        Ft1("200.00"), Ft1("20.00", kind="CD"), Ft1("100.00", kind="PY", insurance_plan="PLAN1"),
        Ft1("15.00", kind="PY"), Ft1("5.00", kind="AJ", insurance_plan="PLAN1")]).er7()
    assert hub.intake.receive_hl7(msg).status is Status.ACCEPTED
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None
    assert view.balances.charges == Decimal("180.00")  # net of the EMR credit
    assert view.balances.insurance == Decimal("75.00")  # 200 - 20 - 100 - 5
    assert view.balances.patient == Decimal("-15.00")  # a patient payment with nothing yet owed: a credit


def test_claim_key_falls_back_to_account_and_service_date_without_pv1_19(hub: Hub, uid: str) -> None:
    hub.intake.receive_hl7(Dft(f"C{uid}", f"A{uid}", payer="P", lines=[Ft1("10.00")]).er7())
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None and view.entries[0].claim == f"A{uid}:20240301"


@pytest.mark.parametrize("mutate, location, reason", [
    (lambda m: "this is not HL7 at all", "MSH", "must start with MSH"),
    (lambda m: re.sub(r"(PID(\|[^|\r]*){17})\|[^|\r]*", r"\1|", m), "PID[3]-18",
     "patient account number (PID-18) missing"),
    (lambda m: m.replace("|12.00&USD|", "|12,OO&USD|"), "FT1[5]-11", "'12,OO' is not a number"),
    (lambda m: m.replace("|12.00&USD|", "|12.005&USD|"), "FT1[5]-11", "12.005 has more than two decimals"),
    (lambda m: m.replace("|CG|", "|ZZ|", 1), "FT1[5]-6", "transaction type 'ZZ' is not supported"),
    (lambda m: m.replace("|20240301|", "|2024031|", 1), "FT1[5]-4", "is not a date"),
])
def test_bad_input_is_rejected_with_segment_and_field_and_nothing_posts(hub: Hub, uid: str, mutate, location: str,
                                                                       reason: str) -> None:
    good = Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("12.00")]).er7()
    result = hub.intake.receive_hl7(mutate(good))
    assert result.status is Status.REJECTED
    assert result.location == location
    assert reason in (result.reason or "")
    with hub.sessions() as s:
        assert account_view(s, f"A{uid}") is None


def test_a_later_message_adds_lines_to_the_same_claim(hub: Hub, uid: str) -> None:
    hub.intake.receive_hl7(Dft(f"C1{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("10.00")]).er7())
    hub.intake.receive_hl7(Dft(f"C2{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("15.00")]).er7())
    with hub.uow_factory() as uow:
        claim = uow.claims.get(f"V{uid}")
    assert claim is not None
    assert [(line.line_no, line.amount) for line in claim.lines] == [(1, Decimal("10.00")), (2, Decimal("15.00"))]
    assert claim.total_charge == Decimal("25.00")


def test_a_claim_key_already_billed_for_another_account_is_rejected(hub: Hub, uid: str) -> None:
    hub.intake.receive_hl7(Dft(f"C1{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("10.00")]).er7())
    other = hub.intake.receive_hl7(Dft(f"C2{uid}", f"B{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("5.00")]).er7())
    assert other.status is Status.REJECTED
    assert "belongs to another account" in (other.reason or "")
    with hub.sessions() as s:
        assert account_view(s, f"B{uid}") is None
