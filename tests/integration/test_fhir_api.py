"""FHIR R4 over REST through FastAPI's TestClient on a real database: samples, DFT equivalence, Bundles,
validation errors, resends, and a CapabilityStatement that matches the routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from auth_support import system_client
from conftest import SAMPLES
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir_factory import ClaimBundle, Item
from hl7_factory import Dft, Ft1

from api.bootstrap import Hub, build
from api.settings import Settings
from router.adapters.repository import AccountRepository, ClaimRepository
from router.queries import account_view

FHIR_JSON = {"content-type": "application/fhir+json"}
FHIR_SAMPLES = sorted((SAMPLES / "fhir").glob("*/*.json"))


@pytest.fixture
def client(hub: Hub) -> TestClient:
    return system_client(hub, "emr-system", "billing")


@pytest.fixture(scope="module")
def sample_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A private embedded hub: the samples' fixed account 4000776 must not touch the shared database,
    where the HL7 sample test owns that account."""
    data = tmp_path_factory.mktemp("fhir-samples")
    hub = build(Settings(database_url=f"sqlite:///{data / 'hub.db'}", data_dir=data, amqp_url=""))
    yield system_client(hub, "emr-system", "billing")
    hub.close()


def _post(client: TestClient, path: str, body: str | bytes, headers: dict[str, str] = FHIR_JSON) -> Any:
    return client.post(path, content=body, headers=headers)


def _ledger(hub: Hub, account: str) -> tuple[Any, list[tuple[str, str, Decimal, str | None]]]:
    with hub.sessions() as s:
        view = account_view(s, account)
    assert view is not None
    return view.balances, sorted((e.kind, e.responsibility, e.amount, e.claim) for e in view.entries)


@pytest.mark.parametrize("path", FHIR_SAMPLES, ids=lambda p: p.name)
def test_every_sample_is_accepted_or_rejected_with_an_operation_outcome(sample_client: TestClient,
                                                                         path: Path) -> None:
    resource_type = json.loads(path.read_bytes())["resourceType"]
    response = _post(sample_client, f"/fhir/{resource_type}", path.read_bytes())
    body = response.json()
    if resource_type == "Bundle":
        assert response.status_code == 200
        result = Bundle.model_validate(body)
        sent = json.loads(path.read_bytes())["entry"]
        assert result.type == "batch-response" and len(result.entry or []) == len(sent)
        assert all(e.response.status in ("200 OK", "201 Created") for e in result.entry or [])
    else:
        outcome = OperationOutcome.model_validate(body)
        issue = outcome.issue[0]
        if response.status_code >= 400:
            assert response.status_code == 422 and issue.severity == "error" and issue.expression
        else:
            assert response.status_code in (200, 201)
            assert (resource_type == "Encounter" and "posts nothing" in issue.diagnostics) or (
                resource_type == "ExplanationOfBenefit" and "quarantined" in issue.diagnostics)  # EB3500


def test_payment_reconciliation_is_rejected_with_a_pointer_to_the_835_intake(sample_client: TestClient) -> None:
    raw = (SAMPLES / "fhir/google-fhir-r4-examples/PaymentReconciliation-ER2500.json").read_bytes()
    response = _post(sample_client, "/fhir/PaymentReconciliation", raw)
    assert response.status_code == 422 and "X12 835" in response.json()["issue"][0]["diagnostics"]
    response = _post(sample_client, "/fhir/Claim", raw)  # sent to the wrong endpoint
    assert response.status_code == 422 and "X12 835" in response.json()["issue"][0]["diagnostics"]


def test_the_converter_dft_bundles_post_each_charge_item_once(sample_client: TestClient) -> None:
    for name in ("DFT-P03-01-expected.json", "DFT-P03-02-expected.json", "DFT-P11-01-expected.json"):
        _post(sample_client, "/fhir/Bundle", (SAMPLES / "fhir/microsoft-fhir-converter" / name).read_bytes())
    account = sample_client.get("/api/v1/accounts/4000776").json()
    assert sorted(e["amount"] for e in account["entries"]) == ["100.00", "120.00", "70.00"]
    assert {e["claim"] for e in account["entries"]} == {"40007716"}


@pytest.mark.parametrize("payer", ["BCBS", ""], ids=["insured", "self-pay"])
def test_a_fhir_claim_and_the_same_encounter_as_dft_p03_have_the_same_ledger_effect(
        hub: Hub, client: TestClient, uid: str, payer: str) -> None:
    lines = [("125.50", "99213", ("25",)), ("74.50", "93000", ("26", "59")), ("0.10", "36415", ())]
    hub.intake.receive_hl7(Dft(f"C{uid}", f"H{uid}", visit=f"V{uid}", payer=payer,
                               lines=[Ft1(a, code=c, modifiers=m) for a, c, m in lines]).er7())
    response = _post(client, "/fhir/Bundle", ClaimBundle(f"F{uid}", f"W{uid}", payer=payer, items=[
        Item(a, code=c, modifiers=m) for a, c, m in lines]).json())
    assert response.status_code == 200, response.text
    hl7_balances, hl7_entries = _ledger(hub, f"H{uid}")
    fhir_balances, fhir_entries = _ledger(hub, f"F{uid}")
    assert hl7_balances == fhir_balances
    assert [(k, r, a, (c or "")[1:]) for k, r, a, c in hl7_entries] == [
        (k, r, a, (c or "")[1:]) for k, r, a, c in fhir_entries]  # claim keys differ only by prefix V/W
    with hub.sessions() as s:
        accounts = AccountRepository(s)
        claims = ClaimRepository(s, accounts)
        hl7_claim, fhir_claim = claims.get(f"V{uid}"), claims.get(f"W{uid}")
        assert hl7_claim and fhir_claim
        assert [(x.code, x.amount, x.units, x.modifiers, x.service_date) for x in hl7_claim.lines] == [
            (x.code, x.amount, x.units, x.modifiers, x.service_date) for x in fhir_claim.lines]
        assert [(c.payer_id, c.member_id, c.group_number, c.plan) for c in accounts.coverages(f"H{uid}")] == [
            (c.payer_id, c.member_id, c.group_number, c.plan) for c in accounts.coverages(f"F{uid}")]


def test_a_transaction_resolves_urn_uuid_references_and_answers_per_entry(client: TestClient, uid: str) -> None:
    response = _post(client, "/fhir/Bundle", ClaimBundle(f"A{uid}", f"V{uid}", payer="AETNA",
                                                         items=[Item("10.00")]).json())
    result = Bundle.model_validate(response.json())
    assert result.type == "transaction-response"
    assert [e.response.status for e in result.entry or []] == ["201 Created", "200 OK", "200 OK", "201 Created"]
    account = client.get(f"/api/v1/accounts/A{uid}").json()
    assert (account["insurance_balance"], account["patient_balance"]) == ("10.00", "0.00")


def test_a_resend_posts_once_and_answers_200_with_an_informational_outcome(client: TestClient, uid: str) -> None:
    payload = ClaimBundle(f"A{uid}", f"V{uid}", items=[Item("10.00")]).json()
    _post(client, "/fhir/Bundle", payload)
    again = Bundle.model_validate(_post(client, "/fhir/Bundle", payload).json())
    assert {e.response.status for e in again.entry or []} == {"200 OK"}
    claim = json.loads(payload)["entry"][0]["resource"]
    claim["identifier"] = [{"value": f"X{uid}"}]
    claim["patient"] = {"identifier": {"type": {"coding": [{"code": "AN"}]}, "value": f"A{uid}"}}
    first, second = (_post(client, "/fhir/Claim", json.dumps(claim)) for _ in range(2))
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["issue"][0]["code"] == "duplicate"
    assert client.get(f"/api/v1/accounts/A{uid}").json()["charges"] == "20.00"


def test_a_changed_claim_under_a_posted_claim_key_is_a_conflict_not_a_second_posting(
        client: TestClient, uid: str) -> None:
    _post(client, "/fhir/Bundle", ClaimBundle(f"A{uid}", f"V{uid}", items=[Item("10.00")]).json())
    changed = _post(client, "/fhir/Bundle", ClaimBundle(f"A{uid}", f"V{uid}", items=[Item("99.00")]).json())
    assert changed.status_code == 422
    assert changed.json()["issue"][0]["code"] == "conflict"
    assert client.get(f"/api/v1/accounts/A{uid}").json()["charges"] == "10.00"


def test_a_transaction_with_one_invalid_entry_posts_nothing(client: TestClient, uid: str) -> None:
    bundle = ClaimBundle(f"A{uid}", f"V{uid}", items=[Item("10.00")]).bundle()
    bundle["entry"][0]["resource"]["item"][0]["net"]["value"] = "ten"
    response = _post(client, "/fhir/Bundle", json.dumps(bundle))
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.item[0].net.value"]
    assert client.get(f"/api/v1/accounts/A{uid}").status_code == 404


def test_a_batch_posts_the_good_entries_and_rejects_the_bad_one(client: TestClient, uid: str) -> None:
    bundle = ClaimBundle(f"A{uid}", f"V{uid}", items=[Item("10.00")], kind="batch").bundle()
    bundle["entry"][0]["resource"]["item"][0]["net"]["value"] = "ten"
    result = _post(client, "/fhir/Bundle", json.dumps(bundle)).json()
    assert result["type"] == "batch-response"
    assert result["entry"][0]["response"]["status"] == "422 Unprocessable Entity"
    assert result["entry"][0]["response"]["outcome"]["issue"][0]["expression"] == ["Claim.item[0].net.value"]
    assert result["entry"][-1]["response"]["status"] == "201 Created"  # the Patient registered


@pytest.mark.parametrize("body, status, expression", [
    (b'{"resourceType": "Claim", ', 400, "line 1 column 27"),
    (b'[1, 2]', 422, "resourceType"),
    (b'{"resourceType": "Claim", "status": "active"}', 422, "Claim.patient"),
    (b'{"resourceType": "Patient", "birthDate": 1980}', 422, "Patient.birthDate"),
], ids=["not json", "not a resource", "missing required", "wrong type"])
def test_invalid_input_gets_an_operation_outcome_naming_the_element(
        client: TestClient, body: bytes, status: int, expression: str) -> None:
    resource = "Patient" if b"Patient" in body else "Claim"
    response = _post(client, f"/fhir/{resource}", body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/fhir+json")
    issues = OperationOutcome.model_validate(response.json()).issue
    assert any(expression in (i.expression or []) for i in issues) and issues[0].severity == "error"


def test_plain_json_is_accepted_and_other_content_types_get_415(client: TestClient) -> None:
    enc = (SAMPLES / "fhir/google-fhir-r4-examples/Encounter-example.json").read_bytes()
    assert _post(client, "/fhir/Encounter", enc, {"content-type": "application/json; charset=utf-8"}).status_code == 200
    assert _post(client, "/fhir/Encounter", enc, {"content-type": "text/plain"}).status_code == 415


def test_metadata_lists_exactly_the_interactions_the_routes_serve(client: TestClient) -> None:
    statement = CapabilityStatement.model_validate(client.get("/fhir/metadata").json())
    assert statement.fhirVersion == "4.0.1" and "json" in statement.format
    declared = {(r.type, i.code) for r in statement.rest[0].resource or [] for i in r.interaction or []}
    paths = {p: set(ops) for p, ops in client.get("/openapi.json").json()["paths"].items() if p.startswith("/fhir/")}
    served = {(p.removeprefix("/fhir/"), "create") for p, ops in paths.items() if "post" in ops and "{" not in p}
    assert declared == served
    assert [p for p, ops in paths.items() if "get" in ops] == ["/fhir/metadata"]  # no read or search claimed
    assert {i.code for i in statement.rest[0].interaction or []} == {"transaction", "batch"}


def test_every_fhir_route_declares_its_status_codes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, ops in schema["paths"].items():
        if path.startswith("/fhir/"):
            for op in ops.values():
                assert {"200", "422"} <= set(op["responses"]) or path == "/fhir/metadata"


def test_ingesting_a_fhir_file_reports_each_bundle_entry_like_any_message(hub: Hub, uid: str) -> None:
    raw = ClaimBundle(f"A{uid}", f"V{uid}", payer="P", items=[Item("12.34")], kind="batch").json().encode()
    first, again = hub.intake.ingest(raw, "claim.json"), hub.intake.ingest(raw, "claim.json")
    assert first.as_json() | {"errors": []} == {"file": "claim.json", "format": "fhir", "messages": 4, "accepted": 4,
                                                "rejected": 0, "duplicates": 0, "errors": []}
    assert again.as_json()["duplicates"] == 2  # the Claim and the registration; context entries are just accepted
    bad = hub.intake.ingest(b'{"resourceType": "Claim", "status": "active"}', "bad.json")
    assert bad.as_json()["errors"][0]["location"] == "Claim.insurance"  # type: ignore[index]
