"""FHIR remittances over REST on a real database: an EOB posts the same ledger effect as the equivalent
835 claim, a resend posts once, an unbalanced EOB is quarantined, a ClaimResponse posts at claim level."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from auth_support import system_client
from fastapi.testclient import TestClient
from fhir_remit_factory import Eob, RemitItem, adj, numbers
from hl7_factory import Dft, Ft1
from sqlalchemy import text
from x12_factory import Cas, ClaimSpec, LineSpec, RemittanceSpec, render_835

from api.bootstrap import Hub
from connectors.intake import Status
from router.queries import account_view

D = Decimal
FHIR_JSON = {"content-type": "application/fhir+json"}


@pytest.fixture
def client(hub: Hub) -> TestClient:
    return system_client(hub, "emr-system", "billing")


def _charges(hub: Hub, account: str, visit: str, control: str) -> None:
    lines = [Ft1("200.00", code="99214"), Ft1("100.00", code="93000")]
    assert hub.intake.receive_hl7(Dft(control, account, visit=visit, payer="ACME",
                                      lines=lines).er7()).status is Status.ACCEPTED


def _eob(visit: str, uid: str, benefit: str = "110.00", payment: str = "150.00") -> Eob:
    """The domain primer's claim A (§1.10) as an EOB: 200 - 40 - 30 - 20 = 110 and 100 - 50 - 10 = 40."""
    return Eob(visit, [
        RemitItem("99214", [adj("submitted", "200.00"), adj("eligible", "160.00"), adj("deductible", "30.00"),
                            adj("coinsurance", "20.00"), adj("benefit", benefit)]),
        RemitItem("93000", [adj("submitted", "100.00"), adj("eligible", "50.00"), adj("copay", "10.00"),
                            adj("benefit", "40.00")])], identifier=f"E{uid}", trace=f"U{uid}", payment=payment)


def _entries(hub: Hub, account: str) -> list[tuple[str, str, str]]:
    with hub.sessions() as s:
        view = account_view(s, account)
    assert view is not None
    return sorted((e.kind, e.responsibility, f"{e.amount:.2f}") for e in view.entries if e.kind != "charge")


def _post(client: TestClient, resource: str, body: str) -> Any:
    return client.post(f"/fhir/{resource}", content=body, headers=FHIR_JSON)


def test_an_eob_posts_the_same_ledger_effect_as_the_equivalent_835_claim(hub: Hub, client: TestClient,
                                                                         uid: str) -> None:
    _charges(hub, f"X{uid}", f"VX{uid}", f"X{uid}")
    _charges(hub, f"F{uid}", f"VF{uid}", f"F{uid}")
    claim = ClaimSpec(f"VX{uid}", lines=(
        LineSpec("99214", D("200"), (Cas("CO", "45", D("40")), Cas("PR", "1", D("30")), Cas("PR", "2", D("20")))),
        LineSpec("93000", D("100"), (Cas("CO", "45", D("50")), Cas("PR", "3", D("10"))))), payer_claim_number=f"I{uid}")
    report = hub.intake.ingest(render_835([RemittanceSpec(claims=(claim,), trace_number=f"T{uid}")]).encode(), "a.835")
    assert [r.status for r in report.results] == [Status.ACCEPTED]
    response = _post(client, "ExplanationOfBenefit", _eob(f"VF{uid}", uid).json())
    assert response.status_code == 201, response.text
    x12, fhir = _entries(hub, f"X{uid}"), _entries(hub, f"F{uid}")
    assert x12 == fhir and len(fhir) == 10
    with hub.sessions() as s:
        balances = [account_view(s, a).balances for a in (f"X{uid}", f"F{uid}")]  # type: ignore[union-attr]
    assert [(b.insurance, b.patient) for b in balances] == [(D("0.00"), D("60.00"))] * 2


def test_the_same_eob_sent_again_alone_or_in_a_bundle_posts_once(hub: Hub, client: TestClient, uid: str) -> None:
    _charges(hub, f"F{uid}", f"VF{uid}", f"F{uid}")
    payload = _eob(f"VF{uid}", uid).json()
    first, again = _post(client, "ExplanationOfBenefit", payload), _post(client, "ExplanationOfBenefit", payload)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["issue"][0]["code"] == "duplicate"
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": json.loads(payload)}]}
    result = _post(client, "Bundle", json.dumps(bundle)).json()
    assert result["entry"][0]["response"]["status"] == "200 OK"
    assert len(_entries(hub, f"F{uid}")) == 10
    with hub.sessions() as s:
        count = s.execute(text("SELECT COUNT(*) FROM remittances WHERE trace_number = :t"), {"t": f"U{uid}"}).scalar()
    assert count == 1


def test_an_eob_whose_numbers_do_not_balance_is_quarantined_and_posts_nothing(hub: Hub, client: TestClient,
                                                                             uid: str) -> None:
    _charges(hub, f"F{uid}", f"VF{uid}", f"F{uid}")
    response = _post(client, "ExplanationOfBenefit", _eob(f"VF{uid}", uid, benefit="100.00", payment="140.00").json())
    assert response.status_code == 201
    assert "quarantined" in response.json()["issue"][0]["diagnostics"]
    assert "ExplanationOfBenefit.item[0]" in response.json()["issue"][0]["diagnostics"]
    assert _entries(hub, f"F{uid}") == []
    with hub.sessions() as s:
        rows = s.execute(text("SELECT e.type, e.amount_cents, r.status FROM exceptions e JOIN remittances r "
                              "ON e.remittance_id = r.id WHERE r.trace_number = :t"), {"t": f"U{uid}"}).all()
    assert [tuple(r) for r in rows] == [("unbalanced_remittance", 14000, "quarantined")]


def test_a_claim_response_without_its_claim_posts_at_claim_level(hub: Hub, client: TestClient, uid: str) -> None:
    assert hub.intake.receive_hl7(Dft(f"C{uid}", f"C{uid}", visit=f"VC{uid}", payer="ACME",
                                      lines=[Ft1("50.00", code="99213")]).er7()).status is Status.ACCEPTED
    response = {"resourceType": "ClaimResponse", "id": f"R{uid}", "identifier": [{"value": f"R{uid}"}],
                "status": "active", "type": {"coding": [{"code": "professional"}]}, "use": "claim",
                "patient": {"reference": "Patient/p"}, "created": "2024-04-15", "outcome": "complete",
                "insurer": {"identifier": {"value": "99999"}}, "request": {"identifier": {"value": f"VC{uid}"}},
                "item": [{"itemSequence": 1, "adjudication": [adj("submitted", "50.00"), adj("eligible", "45.00"),
                                                              adj("copay", "5.00"), adj("benefit", "40.00")]}],
                "payment": {"type": {"coding": [{"code": "complete"}]}, "date": "2024-04-16",
                            "amount": {"value": "40.00", "currency": "USD"}, "identifier": {"value": f"K{uid}"}}}
    answer = _post(client, "ClaimResponse", numbers(json.dumps(response)))
    assert answer.status_code == 201, answer.text
    assert _entries(hub, f"C{uid}") == sorted([
        ("insurance_payment", "insurance", "-40.00"), ("contractual_adjustment", "insurance", "-5.00"),
        ("transfer_to_patient", "insurance", "-5.00"), ("transfer_to_patient", "patient", "5.00")])
