"""The workbench over HTTP: roles, JSON twins of the pages, filters and pages of the queue, 409 on a stale
version, idempotent submissions, audited PHI views, CSV of every table."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from auth_support import staff_client
from fresh_db import fresh_database
from sqlalchemy import text
from workbench_support import balances, denied_case, overpaid_case, partly_denied_case, unmatched_case

from api.bootstrap import Hub, build
from api.settings import Settings


def test_only_billing_roles_reach_the_workbench(hub: Hub) -> None:
    for role in ("it-ops", "auditor", "emr-system"):
        client = staff_client(hub, role) if role != "emr-system" else None
        if client is None:
            continue
        assert client.get("/api/v1/workqueue").status_code == 403
        assert client.get("/api/v1/ar/aging").status_code == 403
        assert client.get("/ui/workqueue", follow_redirects=False).status_code == 403
    supervisor_only = staff_client(hub, "billing")
    assert supervisor_only.post("/api/v1/workqueue/1/approvals/1", json={"version": 1, "approve": True}).status_code \
        == 403
    from fastapi.testclient import TestClient

    from api.app import create_app
    anonymous = TestClient(create_app(hub))
    assert anonymous.get("/api/v1/workqueue").status_code == 401
    page = anonymous.get("/ui/workqueue", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Fui%2Fworkqueue")


def test_the_queue_filters_sorts_and_pages_and_its_json_matches_the_page(hub: Hub, uid: str) -> None:
    held = unmatched_case(hub, uid)
    denied = [denied_case(hub, uid, suffix=f"D{n}") for n in range(3)]
    client = staff_client(hub, "billing")
    mine = f"A{uid}"
    both = client.get("/api/v1/workqueue", params={"q": f"X{uid}"}).json()["items"]
    assert [i["id"] for i in both] == [held.exception_id]
    by_account = client.get("/api/v1/workqueue", params={"q": mine, "type": "denial", "sort": "newest"}).json()
    assert [i["id"] for i in by_account["items"]] == [d.exception_id for d in reversed(denied)]
    assert {i["type"] for i in by_account["items"]} == {"denial"}
    paged = client.get("/api/v1/workqueue", params={"q": mine, "per_page": 2}).json()
    assert (len(paged["items"]), paged["has_next"]) == (2, True)
    rest = client.get("/api/v1/workqueue", params={"q": mine, "per_page": 2, "page": 2}).json()
    assert (len(rest["items"]), rest["has_next"]) == (1, False)
    assert client.get("/api/v1/workqueue", params={"q": mine, "min_amount": "0.01"}).json()["items"] == []
    # Claim one: the "unassigned" and "me" filters see it move.
    me = client.get("/api/v1/auth/me").json()["username"]
    first = denied[0]
    assert client.post(f"/api/v1/workqueue/{first.exception_id}/assign", json={"version": first.version}).status_code \
        == 200
    assigned = client.get("/api/v1/workqueue", params={"q": mine, "assignee": me}).json()["items"]
    assert [i["id"] for i in assigned] == [first.exception_id]
    unassigned = client.get("/api/v1/workqueue", params={"q": mine, "assignee": "unassigned"}).json()["items"]
    assert first.exception_id not in [i["id"] for i in unassigned]
    html = client.get("/ui/workqueue", params={"q": mine}).text
    for item in client.get("/api/v1/workqueue", params={"q": mine}).json()["items"]:
        assert f'aria-label="Open exception {item["id"]}"' in html


def test_a_stale_version_is_409_and_a_resubmitted_form_posts_once(hub: Hub, uid: str) -> None:
    case = denied_case(hub, uid)
    client = staff_client(hub, "billing")
    other = staff_client(hub, "billing")
    form_id = uuid.uuid4().hex
    body = {"version": case.version, "amount": "40.00", "reason": "courtesy", "form_id": form_id}
    first = client.post(f"/api/v1/workqueue/{case.exception_id}/transfer", json=body)
    again = client.post(f"/api/v1/workqueue/{case.exception_id}/transfer", json=body)
    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    late = other.post(f"/api/v1/workqueue/{case.exception_id}/write-off",
                      json={"version": case.version, "amount": "10.00", "reason": "small balance"})
    assert late.status_code == 409
    assert "changed since you opened it" in late.json()["detail"]
    assert balances(hub, case.account) == (Decimal("110.00"), Decimal("40.00"))
    too_much = staff_client(hub, "billing").post(f"/api/v1/workqueue/{case.exception_id}/refund",
                                                 json={"version": case.version + 1, "amount": "5.00"})
    assert too_much.status_code == 422


def test_viewing_an_item_or_an_account_is_audited(hub: Hub, uid: str) -> None:
    case = unmatched_case(hub, uid)
    client = staff_client(hub, "billing")
    me = client.get("/api/v1/auth/me").json()["username"]
    detail = client.get(f"/api/v1/workqueue/{case.exception_id}").json()
    assert detail["candidates"][0]["claim"] == case.claim and detail["remit_claim"]["raw"].startswith("CLP*")
    assert client.get(f"/api/v1/workbench/accounts/{case.account}").json()["balances"]["insurance"] == "150.00"
    assert client.get(f"/ui/exceptions/{case.exception_id}").status_code == 200
    with hub.sessions() as s:
        seen = s.execute(text("SELECT action, message_id FROM audit_log WHERE actor = :a ORDER BY id"),
                         {"a": me}).all()
    assert [tuple(r) for r in seen if r[0].endswith(".view")] == [
        ("exception.view", str(case.exception_id)), ("account.view", case.account),
        ("exception.view", str(case.exception_id))]


@pytest.fixture(params=["sqlite", "postgresql"])
def own_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    """A database of its own: the A/R tables cover the whole database."""
    with fresh_database(request.param, tmp_path) as url:
        own = build(Settings(database_url=url, data_dir=tmp_path, amqp_url=""))
        try:
            yield own
        finally:
            own.close()


def test_every_ar_table_downloads_as_csv(own_hub: Hub, uid: str) -> None:
    hub = own_hub
    unmatched_case(hub, uid)
    denied_case(hub, uid)
    overpaid_case(hub, uid)  # PR moved to the patient: a patient row (and an insurance credit)
    client = staff_client(hub, "billing-supervisor")
    aging = client.get("/api/v1/ar/aging", params={"as_of": "2024-06-01"}).json()
    for table, rows in (("aging-by-payer", aging["by_payer"]), ("aging-by-patient", aging["by_patient"])):
        response = client.get(f"/api/v1/ar/{table}.csv", params={"as_of": "2024-06-01"})
        assert response.headers["content-type"].startswith("text/csv")
        parsed = list(csv.DictReader(io.StringIO(response.text)))
        assert parsed and [(r["key"], r["total"]) for r in parsed] == [(r["key"], r["total"]) for r in rows]
    kpis = list(csv.DictReader(io.StringIO(client.get("/api/v1/ar/kpis.csv").text)))
    assert kpis[0]["total_ar"] == client.get("/api/v1/ar/kpis").json()["total_ar"]
    cash = list(csv.DictReader(io.StringIO(client.get("/api/v1/ar/cash.csv").text)))
    assert len(cash) == 12
    queue = list(csv.DictReader(io.StringIO(client.get("/api/v1/ar/workqueue.csv", params={"q": f"X{uid}"}).text)))
    assert [r["claim"] for r in queue] == [f"X{uid}"]
    page = client.get("/ui/ar", params={"as_of": "2024-06-01"})
    assert page.status_code == 200 and page.text.count("<svg") == 2


def test_a_held_denial_is_accepted_from_its_page_and_the_write_off_refusal_says_why(hub: Hub, uid: str) -> None:
    case = partly_denied_case(hub, uid)
    client = staff_client(hub, "billing")
    page = client.get(f"/ui/exceptions/{case.exception_id}").text
    assert f'action="/ui/exceptions/{case.exception_id}/accept-denial"' in page and "Accept the denial" in page
    refused = client.post(f"/api/v1/workqueue/{case.exception_id}/write-off",
                          json={"version": case.version, "amount": "86.00", "reason": "denied"})
    assert refused.status_code == 422 and "post it first" in refused.json()["detail"]
    accepted = client.post(f"/api/v1/workqueue/{case.exception_id}/accept-denial", json={"version": case.version})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["events"]) == ("resolved", ["ExceptionActed", "HeldClaimPosted"])
    assert balances(hub, case.account) == (Decimal("0.00"), case.pr)
    assert "accept-denial" not in client.get(f"/ui/exceptions/{case.exception_id}").text
    assert staff_client(hub, "it-ops").post(f"/api/v1/workqueue/{case.exception_id}/accept-denial",
                                            json={"version": 2}).status_code == 403
