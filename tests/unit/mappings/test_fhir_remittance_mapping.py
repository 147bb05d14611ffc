"""ExplanationOfBenefit and ClaimResponse -> one-claim remittances, pure: the adjudication table, the three
balancing rules, the google samples, and what is refused with the element named."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from conftest import SAMPLES
from fhir_remit_factory import Eob, RemitItem, adj, numbers

from mappings.fhir.inbound import decode
from router.domain.commands import PostCharges, PostRemittance
from router.domain.errors import MappingError, UnsupportedMessage
from router.domain.remittance import Cas

D = Decimal
GOOGLE = SAMPLES / "fhir/google-fhir-r4-examples"


def _remit(payload: str | bytes) -> tuple[PostRemittance, str]:
    [entry] = [e for e in decode(payload).entries if e.resource_type in ("ExplanationOfBenefit", "ClaimResponse")]
    assert entry.error is None, entry.error
    [command] = entry.commands
    assert isinstance(command, PostRemittance)
    return command, entry.note


def _paid_line() -> RemitItem:
    """The domain primer's claim A line 1: 200 - CO-45 40 - PR-1 30 - PR-2 20 = 110."""
    return RemitItem("99214", [adj("submitted", "200.00"), adj("eligible", "160.00"), adj("deductible", "30.00"),
                               adj("coinsurance", "20.00"), adj("benefit", "110.00")])


def test_adjudication_categories_become_the_cas_of_the_table_and_the_line_balances() -> None:
    eob = Eob("V1", [_paid_line(), RemitItem("93000", [
        adj("submitted", "100.00"), adj("eligible", "50.00"), adj("copay", "10.00"), adj("eligpercent"),
        adj("benefit", "40.00")])], payment="150.00", totals={"submitted": "300.00", "benefit": "150.00"})
    command, note = _remit(eob.json())
    remit = command.remittance
    [claim] = remit.claims
    assert [(ln.code, ln.charge, ln.paid, ln.adjustments) for ln in claim.lines] == [
        ("99214", D("200.00"), D("110.00"), (Cas("CO", "45", D("40.00")), Cas("PR", "1", D("30.00")),
                                             Cas("PR", "2", D("20.00")))),
        ("93000", D("100.00"), D("40.00"), (Cas("CO", "45", D("50.00")), Cas("PR", "3", D("10.00"))))]
    assert (claim.pcn, claim.status, claim.charge, claim.paid, claim.patient_responsibility,
            claim.payer_claim_number) == ("V1", "1", D("300.00"), D("150.00"), D("60.00"), "EOB1")
    assert (remit.payer_id, remit.payer_name, remit.trace_number, remit.payment_amount, str(remit.payment_date)) == (
        "99999", "ACME HEALTH PLAN", "TRACE1", D("150.00"), "2024-04-15")
    assert remit.balanced and remit.problems == () and note == ""
    assert command.source_id == "fhir-remit:99999:TRACE1/EOB1:150.00"


def test_noncovered_with_a_carc_reason_and_a_reason_only_denial_become_co_adjustments() -> None:
    eob = Eob("V1", [
        RemitItem("99213", [adj("submitted", "100.00"), adj("eligible", "60.00"),
                            adj("noncovered", "25.00", carc="204"), adj("benefit", "60.00")]),
        RemitItem("97110", [adj("submitted", "80.00"), adj("denialreason", carc="50"), adj("benefit", "0.00")]),
        RemitItem("36415", [adj("submitted", "10.00"), adj("priorpayerpaid", "10.00")])])
    [claim] = _remit(eob.json())[0].remittance.claims
    assert [ln.adjustments for ln in claim.lines] == [
        (Cas("CO", "45", D("15.00")), Cas("CO", "204", D("25.00"))),  # CO-45 = 100 - 60 eligible - 25 noncovered
        (Cas("CO", "50", D("80.00")),),  # the CARC with no amount takes the unexplained remainder
        (Cas("OA", "23", D("10.00")),)]
    assert claim.paid == D("60.00")


def test_an_eob_that_does_not_balance_maps_flagged_with_every_failed_rule() -> None:
    eob = Eob("V1", [RemitItem("99213", [adj("submitted", "100.00"), adj("eligible", "80.00"),
                                         adj("discount", "5.00"), adj("benefit", "70.00")])], payment="75.00")
    command, note = _remit(eob.json())
    assert not command.remittance.balanced
    assert command.remittance.problems == (
        "ExplanationOfBenefit.item[0]: charge 100.00 - adjustments 20.00 ≠ paid 70.00 (10.00 unexplained)",
        "ExplanationOfBenefit: claim charge 100.00 - adjustments 20.00 ≠ paid 70.00",
        "ExplanationOfBenefit.payment.amount 75.00 ≠ paid 70.00 - payment adjustments 0.00")
    assert note.startswith("does not balance, so it is quarantined (an unbalanced_remittance exception)")


def test_a_payment_adjustment_is_a_provider_level_adjustment_that_the_payment_balances_with() -> None:
    eob = Eob("V1", [_paid_line()], payment="85.00", adjustment="-25.00")
    remit = _remit(eob.json())[0].remittance
    assert [(p.code, p.reference, p.amount) for p in remit.plb] == [("CS", "EOB1", D("25.00"))]
    assert remit.balanced and remit.payment_amount == D("85.00") and remit.claims[0].paid == D("110.00")


def test_without_a_payment_the_claim_paid_is_the_payment_and_the_eob_identifier_the_trace() -> None:
    command, _ = _remit(Eob("V1", [_paid_line()]).json())
    assert (command.remittance.trace_number, command.remittance.payment_amount) == ("EOB1", D("110.00"))
    assert command.source_id == "fhir-remit:99999:EOB1:110.00"


def test_google_eb3500_maps_but_is_flagged_unbalanced_naming_each_item_and_total() -> None:
    command, note = _remit((GOOGLE / "ExplanationOfBenefit-EB3500.json").read_bytes())
    remit = command.remittance
    assert (remit.claims[0].pcn, remit.payer_id, remit.balanced) == ("987654321", "Organization/3", False)
    # eligpercent 0.80 says 20% of 120.00 is not paid, but no category carries that 24.00: not inferred.
    assert remit.problems[:2] == (
        "ExplanationOfBenefit.item[0]: charge 135.57 - adjustments 15.57 ≠ paid 96.00 (24.00 unexplained)",
        "ExplanationOfBenefit.item[1]: charge 200.00 - adjustments 0.00 ≠ paid 180.00 (20.00 unexplained)")
    assert "ExplanationOfBenefit.total[0] (submitted) 135.57 ≠ 335.57 from the items" in remit.problems
    assert "quarantined" in note


def test_google_r3503_is_rejected_naming_the_item_whose_charge_is_unknown() -> None:
    [entry] = decode((GOOGLE / "ClaimResponse-R3503.json").read_bytes()).entries
    assert isinstance(entry.error, MappingError)
    assert entry.error.location == "ClaimResponse.item[0].adjudication"
    assert "no 'submitted' adjudication" in entry.error.reason


@pytest.mark.parametrize("sample, location, words", [
    ("ExplanationOfBenefit-EB3501.json", "ExplanationOfBenefit.outcome", "could not process the claim"),
    ("PaymentReconciliation-ER2500.json", "resourceType", "post each ClaimResponse"),
])
def test_what_posts_no_money_is_refused_naming_the_element(sample: str, location: str, words: str) -> None:
    [entry] = decode((GOOGLE / sample).read_bytes()).entries
    assert entry.error is not None and entry.error.location == location and words in entry.error.reason


@pytest.mark.parametrize("change, location", [
    ({"status": "cancelled"}, "ExplanationOfBenefit.status"),
    ({"outcome": "queued"}, "ExplanationOfBenefit.outcome"),
    ({"addItem": [{"productOrService": {"coding": [{"code": "x"}]}}]}, "ExplanationOfBenefit.addItem"),
    ({"item": [{"sequence": 1, "productOrService": {"coding": [{"code": "x"}]},
                "adjudication": [adj("benefit", "1.00")]}]}, "ExplanationOfBenefit.item[0].adjudication"),
    ({"item": [{"sequence": 1, "productOrService": {"coding": [{"code": "99214"}]},
                "adjudication": [adj("submitted", "200.005"), adj("benefit", "200.005")]}]},
     "ExplanationOfBenefit.item[0].adjudication[0].amount.value"),  # sub-cent: refused, not rounded
])
def test_an_eob_that_cannot_be_posted_is_refused_naming_the_element(change: dict[str, Any], location: str) -> None:
    resource = Eob("V1", [_paid_line()]).resource() | change
    [entry] = decode(numbers(json.dumps(resource))).entries
    assert isinstance(entry.error, MappingError | UnsupportedMessage) and entry.error.location == location


def _claim_response(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "ClaimResponse", "id": "CR1", "identifier": [{"value": "CR1"}], "status": "active",
            "type": {"coding": [{"code": "professional"}]}, "use": "claim", "patient": {"reference": "Patient/p"},
            "created": "2024-04-15", "insurer": {"identifier": {"value": "99999"}}, "outcome": "complete",
            "request": {"reference": "urn:uuid:claim-1", "identifier": {"value": "V9"}},
            "insurance": [{"sequence": 2, "focal": True, "coverage": {"reference": "Coverage/c"}}], "item": items,
            "payment": {"type": {"coding": [{"code": "complete"}]}, "date": "2024-04-16",
                        "amount": {"value": "40.00", "currency": "USD"}, "identifier": {"value": "CHK7"}}}


def test_a_claim_response_reads_codes_and_charges_from_its_claim_in_the_bundle() -> None:
    claim = {"resourceType": "Claim", "status": "active", "use": "claim", "created": "2024-03-01",
             "identifier": [{"value": "V9"}], "type": {"coding": [{"code": "professional"}]},
             "priority": {"coding": [{"code": "normal"}]}, "provider": {"display": "C"},
             "patient": {"identifier": {"type": {"coding": [{"code": "AN"}]}, "value": "A9"}},
             "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "x"}}],
             "item": [{"sequence": 1, "productOrService": {"coding": [{"code": "99213"}]}, "modifier": [
                 {"coding": [{"code": "25"}]}], "servicedDate": "2024-03-01", "net": {"value": "50.00",
                                                                                       "currency": "USD"}}]}
    response = _claim_response([{"itemSequence": 1, "adjudication": [adj("eligible", "45.00"),
                                                                      adj("copay", "5.00"), adj("benefit", "40.00")]}])
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"fullUrl": "urn:uuid:response-1", "resource": response}, {"fullUrl": "urn:uuid:claim-1", "resource": claim}]}
    decoded = decode(numbers(json.dumps(bundle)))
    assert [type(c).__name__ for e in decoded.dispatch_order() for c in e.commands] == ["PostCharges",
                                                                                          "PostRemittance"]
    command, _ = _remit(numbers(json.dumps(bundle)))
    [claim_out] = command.remittance.claims
    [line] = claim_out.lines
    assert (claim_out.pcn, claim_out.status, line.code, line.modifiers, line.charge, line.paid, line.adjustments) == (
        "V9", "2", "99213", ("25",), D("50.00"), D("40.00"), (Cas("CO", "45", D("5.00")), Cas("PR", "3", D("5.00"))))
    assert command.remittance.balanced and command.source_id == "fhir-remit:99999:CHK7/CR1:40.00"
    assert isinstance(decoded.entries[1].commands[0], PostCharges)


def test_a_claim_response_without_its_claim_posts_its_items_at_claim_level() -> None:
    response = _claim_response([{"itemSequence": 1, "adjudication": [
        adj("submitted", "50.00"), adj("eligible", "45.00"), adj("copay", "5.00"), adj("benefit", "40.00")]}])
    command, _ = _remit(numbers(json.dumps(response)))
    [claim] = command.remittance.claims
    assert (claim.pcn, claim.lines, claim.charge, claim.paid, claim.adjustments) == (
        "V9", (), D("50.00"), D("40.00"), (Cas("CO", "45", D("5.00")), Cas("PR", "3", D("5.00"))))
    assert command.remittance.balanced
