"""Outbound mappings (pure): ledger results -> DFT^P03/P11 and FHIR resources, read back independently."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import hl7
import pytest
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit

from mappings.fhir.outbound import FhirOptions, dumps_exact, fhir_requests
from mappings.fhir.wire import InvalidResource
from mappings.hl7v2.dft_out import DEFAULT_TYPES, DftOptions, dft_messages
from mappings.hl7v2.er7 import parse
from router.domain.ledger import Balances, EntryKind, Responsibility
from router.domain.results import (
    AccountResult,
    ClaimResult,
    PostedEntry,
    RemittanceResult,
    Result,
    transaction_id,
)

NOW = datetime(2024, 4, 13, 9, 30, tzinfo=UTC)
D = Decimal
INS, PAT = Responsibility.INSURANCE, Responsibility.PATIENT


def _entry(key: str, kind: EntryKind, amount: str, responsibility: Responsibility = INS, **kw: object) -> PostedEntry:
    base: dict[str, object] = {"claim": "V1", "charge_line": 1, "charge_key": "hl7:F:M1:charge:1", "procedure": "99214",
                               "line_charge": D("200.00"), "effective_date": date(2024, 4, 12), "payer": "ACME",
                               "trace_number": "EFT1"}
    return PostedEntry(key, kind, responsibility, D(amount), **{**base, **kw})  # type: ignore[arg-type]


ENTRIES = (
    _entry("835:1:l1:pay", EntryKind.INSURANCE_PAYMENT, "-110.00"),
    _entry("835:1:l1:cas1", EntryKind.CONTRACTUAL_ADJUSTMENT, "-40.00", group_code="CO", reason_code="45"),
    _entry("835:1:l1:cas2:from", EntryKind.TRANSFER_TO_PATIENT, "-50.00", group_code="PR", reason_code="1"),
    _entry("835:1:l1:cas2:to", EntryKind.TRANSFER_TO_PATIENT, "50.00", PAT, group_code="PR", reason_code="1"),
    _entry("835:1:c:pay", EntryKind.INSURANCE_PAYMENT, "0.00", charge_line=None, charge_key=None, procedure="",
           line_charge=None),
    _entry("hl7:F:M1:charge:9", EntryKind.CHARGE, "5.00"),  # the EMR's own: never echoed
)
ACCOUNT = AccountResult("A1", "MRN1", ENTRIES, Balances(D("200.00"), D("0.00"), D("50.00")))
CLAIM = ClaimResult(1, "V1", "1", D("200.00"), D("110.00"), "ICN1", "posted", "V1", "A1", ENTRIES)
HELD = ClaimResult(2, "V2", "1", D("80.00"), D("30.00"), "ICN2", "held", "V2", "A1", ())
REMIT = RemittanceResult("835:ACME:EFT1:140.00", "ACME", "ACME PLAN", "1234567890", "CLINIC", "EFT1", D("140.00"),
                         "ACH", date(2024, 4, 12), "partial", (CLAIM, HELD), (), (ACCOUNT,))
RESULT = Result("RemittancePosted", REMIT.source_id, "1234567890", (ACCOUNT,), REMIT)


def test_dft_has_one_ft1_per_posted_entry_summing_to_the_ledger_and_read_back_by_python_hl7() -> None:
    [message] = dft_messages(RESULT, DftOptions(), NOW)
    parsed = hl7.parse(message.text)
    assert str(parsed.segment("MSH")(9)) == "DFT^P03^DFT_P03" and str(parsed.segment("PID")(18)) == "A1"
    ft1s = parsed.segments("FT1")
    assert len(ft1s) == 5  # the charge is not echoed back
    assert sum(D(str(s(11)).split("&")[0]) for s in ft1s) == sum(e.amount for e in ENTRIES[:5])
    assert [str(s(6)) for s in ft1s] == ["PY", "AJ", "AJ", "AJ", "PY"]
    assert [str(s(14)) for s in ft1s] == ["ACME", "ACME", "ACME", "", "ACME"]  # patient leg: no insurance plan
    assert str(ft1s[1](7)).startswith("CO-45^") and str(ft1s[2](7)).startswith("PR-1^")
    assert str(ft1s[0](2)) == transaction_id("835:1:l1:pay") and str(ft1s[0](31)) == transaction_id("hl7:F:M1:charge:1")
    assert all(str(s(30)) == "EFT1" for s in ft1s)
    assert str(parsed.segment("PV1")(46)) == "50.00" and str(parsed.segment("PV1")(47)) == "200.00"
    assert parse(message.text).control_id == message.control_id  # the hub's own reader agrees


def test_dft_ids_are_stable_and_the_trigger_and_codes_configurable() -> None:
    first, again = dft_messages(RESULT, DftOptions(), NOW)[0], dft_messages(RESULT, DftOptions(), NOW)[0]
    assert first.control_id == again.control_id and first.text == again.text
    types = {**DEFAULT_TYPES, EntryKind.TRANSFER_TO_PATIENT: "TR"}
    [p11] = dft_messages(RESULT, DftOptions(trigger="P11", types=types, balances=False), NOW)
    parsed = hl7.parse(p11.text)
    assert str(parsed.segment("MSH")(9)) == "DFT^P11^DFT_P11" and p11.control_id != first.control_id
    assert [str(s(6)) for s in parsed.segments("FT1")][2:4] == ["TR", "TR"]
    assert len(parsed.segment("PV1")) <= 46  # no balances asked for


def test_a_reversal_links_the_entry_it_reverses() -> None:
    reversal = _entry("835:2:rev:835:1:l1:pay", EntryKind.REVERSAL, "110.00", reverses="835:1:l1:pay",
                      reversed_kind=EntryKind.INSURANCE_PAYMENT)
    result = Result("EntryReversed", "rev1", "", (AccountResult("A1", "", (reversal,), Balances()),))
    ft1 = hl7.parse(dft_messages(result, DftOptions(), NOW)[0].text).segment("FT1")
    assert str(ft1(6)) == "PY" and str(ft1(11)) == "110.00&USD" and str(ft1(31)) == transaction_id("835:1:l1:pay")


def test_fhir_requests_tie_out_and_use_conditional_create() -> None:
    requests = fhir_requests(RESULT, FhirOptions(), NOW)
    assert [(r.resource_type, r.method) for r in requests] == [
        ("ClaimResponse", "POST"), ("PaymentReconciliation", "POST"), ("Account", "PUT")]
    response, reconciliation, account = (json.loads(r.body) for r in requests)
    assert requests[0].condition == f"identifier={response['identifier'][0]['system']}|" \
                                    f"{response['identifier'][0]['value']}"
    item = {a["category"]["coding"][0]["code"]: a["amount"]["value"] for a in response["item"][0]["adjudication"]}
    assert item == {"submitted": 200, "benefit": 110, "CO": 40, "deductible": 50}
    assert sum(d["amount"]["value"] for d in reconciliation["detail"]) == reconciliation["paymentAmount"]["value"]
    assert reconciliation["detail"][0]["response"]["identifier"] == response["identifier"][0]
    assert '"value":140.00' in requests[1].body  # exact decimals, never via float
    assert account["extension"][0]["extension"][1]["valueMoney"]["value"] == 50


def test_explanation_of_benefit_is_configurable_and_valid() -> None:
    [eob, *_] = fhir_requests(RESULT, FhirOptions(claim_resource="ExplanationOfBenefit"), NOW)
    resource = ExplanationOfBenefit.model_validate_json(eob.body)
    assert resource.item[0].productOrService.coding[0].code == "99214"
    assert {t.category.coding[0].code: t.amount.value for t in resource.total} == {"submitted": 200, "benefit": 110}


def test_an_invalid_resource_is_refused_before_sending_naming_the_element() -> None:
    bad = RemittanceResult(**{**REMIT.__dict__, "trace_number": ""})  # an identifier needs a value
    with pytest.raises(InvalidResource) as caught:
        fhir_requests(Result("RemittancePosted", "s", "", (ACCOUNT,), bad), FhirOptions(), NOW)
    assert "payment.identifier.value" in str(caught.value.location) or "paymentIdentifier" in str(
        caught.value.location)


def test_dumps_exact_writes_decimals_as_they_are() -> None:
    assert dumps_exact({"a": [D("0.10"), {"b": D("-12345678.91")}], "c": "x"}) == \
        '{"a":[0.10,{"b":-12345678.91}],"c":"x"}'


REMARKED = RemittanceResult(**{**REMIT.__dict__, "source_id": "835", "claims": (
    ClaimResult(1, "V1", "1", D("200.00"), D("110.00"), "ICN1", "posted", "V1", "A1", ENTRIES,
                remarks=("MA01",), line_remarks=((1, ("N130", "M15")),)), HELD)})
REMARKED_RESULT = Result("RemittancePosted", "835", "1234567890", (ACCOUNT,), REMARKED)


def test_remark_codes_follow_the_ft1_they_explain_as_nte_with_their_description() -> None:
    [message] = dft_messages(REMARKED_RESULT, DftOptions(), NOW)
    names = [s[:3] for s in message.text.strip("\r").split("\r")]
    # The line's RARCs after the line's first FT1 (its payment); the claim's MA01 after the claim's first FT1.
    assert names == ["MSH", "EVN", "PID", "PV1", "FT1", "NTE", "NTE", "NTE", "FT1", "FT1", "FT1", "FT1"]
    notes = [(str(s(1)), str(s(2)), str(s(3)), str(s(4))) for s in hl7.parse(message.text).segments("NTE")]
    assert notes == [("1", "O", "MA01 Alert: if you do not agree with what we approved, you may appeal",
                      "RE^Remark^HL70364"),
                     ("2", "O", "N130 Consult plan benefit documents", "RE^Remark^HL70364"),
                     ("3", "O", "M15 Separately billed services/tests have been bundled", "RE^Remark^HL70364")]
    assert parse(message.text).one("FT1").get(2) == transaction_id("835:1:l1:pay")


def test_remark_codes_become_process_notes_linked_from_their_item() -> None:
    requests = fhir_requests(REMARKED_RESULT, FhirOptions(), NOW)
    response = json.loads(requests[0].body)
    assert [(n["number"], n["text"].split(":")[0]) for n in response["processNote"]] == [
        (1, "MA01"), (2, "N130"), (3, "M15")]
    assert response["item"][0]["noteNumber"] == [2, 3]  # charge line 1: the line's remarks, not the claim's
    [eob, *_] = fhir_requests(REMARKED_RESULT, FhirOptions(claim_resource="ExplanationOfBenefit"), NOW)
    resource = ExplanationOfBenefit.model_validate_json(eob.body)
    assert [n.number for n in resource.processNote] == [1, 2, 3] and resource.item[0].noteNumber == [2, 3]
