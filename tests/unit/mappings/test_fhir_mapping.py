"""FHIR R4 -> commands, pure: samples, Claim and ChargeItem lines, exact money, element paths in errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import SAMPLES
from fhir_factory import ClaimBundle, Item

from mappings.fhir.inbound import decode
from mappings.fhir.wire import InvalidResource, load_json
from router.domain.commands import PostCharges, RegisterPatient
from router.domain.errors import DecodeError, MappingError, UnsupportedMessage
from router.domain.ledger import EntryKind

FHIR_SAMPLES = sorted((SAMPLES / "fhir").glob("*/*.json"))


def _claim(bundle: ClaimBundle) -> PostCharges:
    [command] = [c for e in decode(bundle.json()).entries for c in e.commands if isinstance(c, PostCharges)]
    return command


@pytest.mark.parametrize("path", FHIR_SAMPLES, ids=lambda p: p.name)
def test_every_sample_maps_to_commands_or_names_the_element_at_fault(path: Path) -> None:
    decoded = decode(path.read_bytes())
    for entry in decoded.entries:
        if entry.error is not None:
            assert entry.error.location and entry.error.reason
        else:
            assert entry.commands or entry.note  # never silently dropped


def test_payment_reconciliation_is_rejected_with_where_its_claims_belong() -> None:
    [entry] = decode((SAMPLES / "fhir/google-fhir-r4-examples/PaymentReconciliation-ER2500.json").read_bytes()).entries
    assert isinstance(entry.error, UnsupportedMessage) and "X12 835" in entry.error.reason


def test_converter_dft_bundle_posts_charge_items_under_the_encounter_visit_number() -> None:
    decoded = decode((SAMPLES / "fhir/microsoft-fhir-converter/DFT-P03-01-expected.json").read_bytes())
    charges = [c for e in decoded.entries for c in e.commands if isinstance(c, PostCharges)]
    assert [(c.account, c.claim_key, c.charges[0].code, c.charges[0].amount, c.charges[0].units) for c in charges] == [
        ("4000776", "40007716", "71045", Decimal("100.00"), Decimal(2)),
        ("4000776", "40007716", "626.2", Decimal("120.00"), Decimal(1))]
    first = decoded.dispatch_order()[0]
    assert isinstance(first.commands[0], RegisterPatient)  # registration before charges
    assert first.commands[0].coverages[0].payer_id == "Org-12345"


def test_claim_lines_read_net_unit_price_times_quantity_modifiers_and_diagnoses() -> None:
    cmd = _claim(ClaimBundle("A1", "V1", payer="BCBS", diagnoses=("J01.90", "R05"), items=[
        Item("125.50", modifiers=("26", "59"), diagnoses=(2, 1)), Item(unit_price="33.33", quantity="3")]))
    assert (cmd.account, cmd.claim_key, cmd.source_id) == ("A1", "V1", "fhir:Claim:V1")
    assert [(c.amount, c.units, c.modifiers, c.diagnoses) for c in cmd.charges] == [
        (Decimal("125.50"), Decimal(1), ("26", "59"), ("R05", "J01.90")), (Decimal("99.99"), Decimal(3), (), ())]
    assert [(c.sequence, c.payer_id, c.member_id, c.group_number, c.plan) for c in cmd.coverages] == [
        (1, "BCBS", "MEMBER1", "GRP1", "PLAN1")]


def test_json_numbers_are_read_as_exact_decimals_so_cents_add_up() -> None:
    assert load_json('{"resourceType": "X", "v": 0.1}')["v"] == Decimal("0.1")
    cmd = _claim(ClaimBundle("A1", "V1", items=[Item("0.1"), Item("0.2"), Item("987654321.45")]))
    assert sum(c.amount for c in cmd.charges) == Decimal("987654321.75")
    assert all(type(c.amount) is Decimal for c in cmd.charges)


def test_a_negative_net_is_a_credit_as_a_negative_dft_charge_is() -> None:
    cmd = _claim(ClaimBundle("A1", "V1", items=[Item("100.00"), Item("-20.00")]))
    assert [(t.kind, t.amount) for t in cmd.transactions] == [(EntryKind.CHARGE_CREDIT, Decimal("-20.00"))]


def test_self_pay_coverage_adds_no_policy() -> None:
    assert _claim(ClaimBundle("A1", "V1", items=[Item("10")])).coverages == ()


@pytest.mark.parametrize("mutate, path", [
    (lambda c: c["item"][0]["net"].update(value="12,OO"), "Claim.item[0].net.value"),
    (lambda c: c.pop("patient"), "Claim.patient"),
    (lambda c: c["item"][0].update(quantity={"value": "two"}), "Claim.item[0].quantity.value"),
    (lambda c: c["item"][0].update(servicedDate="2024-02-30"), "Claim.item[0].servicedDate"),
    (lambda c: c.update(status="unknown-status"), "Claim.status"),
    (lambda c: c["item"][0].pop("net"), "Claim.item[0].net"),
    (lambda c: c["item"][0]["net"].update(currency="EUR"), "Claim.item[0].net.currency"),
    (lambda c: c["item"][0].update(diagnosisSequence=[7]), "Claim.item[0].diagnosisSequence[0]"),
    (lambda c: c.pop("identifier"), "Claim.identifier"),
    (lambda c: c["item"][0]["net"].update(value=10.005), "Claim.item[0].net.value"),
], ids=["non-numeric money", "missing patient", "wrong type", "impossible date", "bad code", "no amount",
        "foreign currency", "unknown diagnosis", "no claim key", "sub-cent money"])
def test_an_invalid_claim_is_rejected_naming_the_element(mutate: object, path: str) -> None:
    bundle = ClaimBundle("A1", "V1", items=[Item("10.00")]).bundle()
    claim = bundle["entry"][0]["resource"]
    mutate(claim)  # type: ignore[operator]
    [entry] = [e for e in decode(json.dumps(bundle)).entries if e.resource_type == "Claim"]
    assert isinstance(entry.error, MappingError)
    paths = [p for p, _, _ in entry.error.issues] if isinstance(entry.error, InvalidResource) else [
        entry.error.location]
    assert path in paths


def test_references_resolve_by_urn_uuid_type_and_id_and_contained() -> None:
    claim = ClaimBundle("A9", "V9", items=[Item("5")]).claim(patient_ref="Patient/p1", coverage_ref="#cov")
    patient = ClaimBundle("A9").patient() | {"id": "p1"}
    claim["contained"] = [{"resourceType": "Coverage", "id": "cov", "status": "active",
                           "beneficiary": {"reference": "Patient/p1"},
                           "payor": [{"identifier": {"value": "AETNA"}, "display": "Aetna"}]}]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"fullUrl": "http://emr.example/fhir/Claim/c1", "resource": claim},
        {"fullUrl": "http://emr.example/fhir/Patient/p1", "resource": patient}]}
    cmd = _claim_from(bundle)
    assert (cmd.account, cmd.patient and cmd.patient.mrn) == ("A9", "MRNA9")
    assert [(c.payer_id, c.payer_name) for c in cmd.coverages] == [("AETNA", "Aetna")]


def _claim_from(bundle: dict[str, object]) -> PostCharges:
    return next(c for e in decode(json.dumps(bundle)).entries for c in e.commands if isinstance(c, PostCharges))


def test_a_claim_whose_patient_is_elsewhere_says_how_to_name_the_account() -> None:
    claim = ClaimBundle("A1", "V1", items=[Item("5")]).claim(patient_ref="Patient/nowhere")
    [entry] = decode(json.dumps(claim)).entries
    assert entry.error is not None and entry.error.location == "Claim.patient"
    claim["patient"] = {"identifier": {"type": {"coding": [{"code": "AN"}]}, "value": "A77"}}
    [entry] = decode(json.dumps(claim)).entries
    assert entry.commands and entry.commands[0].account == "A77"  # type: ignore[attr-defined]


def test_unparseable_json_is_a_decode_error_with_line_and_column() -> None:
    with pytest.raises(DecodeError) as err:
        decode(b'{"resourceType": "Claim",\n "item": [}')
    assert err.value.location == "line 2 column 11"
    with pytest.raises(DecodeError):
        decode(b'{"resourceType": "Claim", "x": NaN}')


def test_a_resend_decodes_to_the_same_source_ids() -> None:
    text = ClaimBundle("A1", "V1", payer="P", items=[Item("10")]).json()
    ids = [[c.source_id for c in e.commands] for e in decode(text).entries]
    assert ids == [[c.source_id for c in e.commands] for e in decode(text).entries]


@pytest.mark.parametrize("value, path", [
    ("1e400", "Claim.item[0].net.value"), ("99999999999999999999999999999.999", "Claim.item[0].net.value")])
def test_absurd_amounts_are_rejected_naming_the_element_not_crashing(value: str, path: str) -> None:
    text = ClaimBundle("A1", "V1", items=[Item("1")]).json().replace('"net": {"value": 1', f'"net": {{"value": {value}')
    [entry] = [e for e in decode(text).entries if e.resource_type == "Claim"]
    assert entry.error is not None and entry.error.location == path


def test_a_huge_quantity_is_rejected_before_it_multiplies() -> None:
    text = ClaimBundle("A1", "V1", items=[Item(unit_price="1")]).json().replace(
        '"quantity": {"value": 1}', '"quantity": {"value": 1e400}')
    [entry] = [e for e in decode(text).entries if e.resource_type == "Claim"]
    assert entry.error is not None and entry.error.location == "Claim.item[0].quantity.value"


def test_hostile_json_is_a_decode_error_never_an_exception_of_another_kind() -> None:
    for raw in (b"[" * 100_000, b"\xff\xfe{", b'{"resourceType": "Claim", "x": Infinity}', b""):
        with pytest.raises(DecodeError):
            decode(raw)
