"""Gateway flows against the local fake Stripe (tests/fake_stripe.py), through the API, the webhook and the
autopay scheduler, on SQLite and PostgreSQL: card on file, plan autopay, decline, authentication required,
webhook replay, forged and stale signatures, a charge retried after a timeout, refunds."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from auth_support import staff_client
from fake_stripe import WEBHOOK_SECRET, FakeStripe, sign
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.bootstrap import Hub
from api.security import AUDITOR, BILLING, SUPERVISOR
from connectors.payments.autopay import AutopayScheduler, RunReport
from connectors.payments.gateway import ChargeStatus, GatewayUnavailable
from connectors.payments.stripe_gateway import StripeGateway
from router.adapters.orm import AccountRow, LedgerRow, OutboxRow
from router.adapters.orm_payments import PatientPaymentRow
from router.domain.commands import PostCharges
from router.domain.ledger import EntryKind
from router.domain.model import ChargeLine
from router.payments_queries import plan_is_current
from router.queries import account_balances

D = Decimal
WEBHOOK = "/api/v1/payments/webhooks/stripe"


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as running:
        yield running


def gateway_for(fake: FakeStripe, timeout: float = 10.0) -> StripeGateway:
    return StripeGateway("sk_test_fake", webhook_secret=WEBHOOK_SECRET, api_base=fake.url, timeout=timeout)


@pytest.fixture(scope="module")
def staff(session_hub: Hub) -> TestClient:
    """One logged-in staff client per backend (a login hashes a password with argon2: ~1-2 s)."""
    return staff_client(session_hub, BILLING, SUPERVISOR)


@pytest.fixture
def client(staff: TestClient, fake: FakeStripe) -> TestClient:
    staff.app.state.payment_gateway = gateway_for(fake)  # type: ignore[attr-defined]
    return staff


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def deliver(client: TestClient, fake: FakeStripe) -> list[dict[str, object]]:
    """Send every webhook the fake has queued, as Stripe would; returns the hub's answers."""
    answers = []
    for payload, signature in fake.take_events():
        response = client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": signature,
                                                                  "Content-Type": "application/json"})
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def self_pay(hub: Hub, account: str, amount: str, day: date = date(2024, 3, 1)) -> None:
    hub.bus.handle(PostCharges(f"visit:{account}:{day}", account, f"C-{account}-{day}", None,
                               (ChargeLine(1, day, "99214", D(amount)),)))


def patient_balance(hub: Hub, account: str) -> Decimal:
    with hub.sessions() as s:
        found = account_balances(s, account)
    assert found is not None
    return found.patient


def ledger_sources(hub: Hub, account: str, kind: EntryKind) -> list[str]:
    with hub.uow_factory() as uow:
        return sorted({e.source_id for e in uow.ledger.for_account(account) if e.kind is kind})


def card_on_file(client: TestClient, fake: FakeStripe, account: str, behaviour: str = "ok") -> str:
    for scope in ("card_on_file", "plan_autopay"):
        r = client.post(f"/api/v1/payments/accounts/{account}/consents", headers=key(), json={
            "granted_by": "guarantor (self)", "channel": "in_person", "scope": scope, "text_version": "2026-01"})
        assert r.status_code == 201, r.text
    r = client.post(f"/api/v1/payments/accounts/{account}/card-setup", headers=key(),
                    json={"success_url": "https://clinic.example/ok", "cancel_url": "https://clinic.example/no"})
    assert r.status_code == 200, r.text
    session_id = r.json()["id"]
    assert r.json()["url"].endswith(session_id) and fake.sessions[session_id]["mode"] == "setup"
    pm = fake.complete_setup(session_id, behaviour)  # the patient types the card on the gateway's page
    assert {a["status"] for a in deliver(client, fake)} == {"posted", "ignored"}
    return pm


def scheduler(hub: Hub, fake: FakeStripe, day: date, accounts: list[str], **kw: object) -> AutopayScheduler:
    assert hub.local_bus is not None
    return AutopayScheduler(hub.sessions, hub.local_bus, kw.pop("gateway", None) or gateway_for(fake),  # type: ignore[arg-type]
                            today=lambda: day, accounts=accounts, **kw)  # type: ignore[arg-type]


def plan(client: TestClient, account: str, pm: str, total: str, count: int, first_due: date) -> dict[str, object]:
    r = client.post("/api/v1/payments/plans", headers=key(), json={
        "account": account, "total": total, "installments": count, "frequency": "monthly",
        "first_due": first_due.isoformat(), "payment_method": pm})
    assert r.status_code == 201, r.text
    return dict(r.json())


def outbox_types(hub: Hub, account: str) -> list[str]:
    with hub.sessions() as s:
        rows = s.execute(select(OutboxRow.event_type, OutboxRow.payload).order_by(OutboxRow.id)).all()
    return [t for t, p in rows if json.loads(p).get("account") == account]


def test_card_on_file_keeps_only_gateway_ids_brand_last4_and_expiry(client: TestClient, fake: FakeStripe,
                                                                    uid: str) -> None:
    account = f"GC{uid}"
    pm = card_on_file(client, fake, account, "apple_pay")
    cards = client.get(f"/api/v1/payments/accounts/{account}/cards").json()
    assert cards == [{"payment_method": pm, "brand": "mastercard", "last4": "4444", "exp": "12/2030",
                      "wallet": "apple_pay", "active": True, "consent": cards[0]["consent"]}]
    customer = fake.sessions[next(iter(fake.sessions))]["customer"]
    assert set(fake.customers[customer]["metadata"]) == {"hub_ref"}  # opaque id only: no name, no account
    assert account not in json.dumps(fake.customers[customer])
    # Revoking the consent stops the card being used.
    consent = next(c for c in client.get(f"/api/v1/payments/accounts/{account}/consents").json()
                   if c["scope"] == "card_on_file")
    r = client.post(f"/api/v1/payments/accounts/{account}/consents/{consent['id']}/revoke", headers=key(),
                    json={"revoked_by": "guarantor by phone"})
    assert r.status_code == 200 and next(c for c in r.json() if c["id"] == consent["id"])["revoked_at"]
    assert client.get(f"/api/v1/payments/accounts/{account}/cards").json()[0]["active"] is False


def test_plan_autopay_charges_each_installment_once_and_completes(client: TestClient, hub: Hub, fake: FakeStripe,
                                                                   uid: str) -> None:
    account = f"PA{uid}"
    self_pay(hub, account, "300.00")
    pm = card_on_file(client, fake, account)
    made = plan(client, account, pm, "300.00", 3, date(2024, 5, 1))
    assert [i["amount"] for i in made["installments"]] == ["100.00"] * 3  # type: ignore[index]
    with hub.sessions() as s:
        assert plan_is_current(s, account)
    first = scheduler(hub, fake, date(2024, 5, 1), [account]).run_due()
    assert (first.claimed, first.succeeded) == (1, 1)
    assert scheduler(hub, fake, date(2024, 5, 1), [account]).run_due().claimed == 0  # run twice: nothing more
    answers = deliver(client, fake)  # the gateway's own charge.succeeded for the same PaymentIntent
    assert [a["status"] for a in answers] == ["duplicate"]
    assert patient_balance(hub, account) == D("200.00")  # the money posted once
    rest = scheduler(hub, fake, date(2024, 7, 1), [account]).run_due()
    assert (rest.claimed, rest.succeeded) == (2, 2)
    deliver(client, fake)
    assert patient_balance(hub, account) == D("0.00")
    assert len(fake.intents) == 3 and set(fake.charges_by_key.values()) == {1}
    view = client.get(f"/api/v1/payments/plans/{made['plan']}").json()
    assert view["status"] == "completed" and {i["status"] for i in view["installments"]} == {"paid"}
    events = outbox_types(hub, account)
    assert events.count("PlanInstallmentPaid") == 3 and events.count("PatientPaymentPosted") == 3
    assert "PaymentPlanChanged" in events and "PaymentPlanCreated" in events and "CardOnFileSaved" in events


@pytest.mark.parametrize(("behaviour", "reason"), [("declined", "insufficient_funds"),
                                                   ("auth_required", "authentication_required")])
def test_a_declined_or_authentication_required_charge_retries_then_defaults(
        client: TestClient, hub: Hub, fake: FakeStripe, uid: str, behaviour: str, reason: str) -> None:
    account = f"DC{uid}"
    self_pay(hub, account, "90.00")
    pm = card_on_file(client, fake, account, behaviour)
    made = plan(client, account, pm, "90.00", 3, date(2024, 5, 1))
    day = date(2024, 5, 1)
    outcomes: list[RunReport] = []
    for offset in (0, 3, 10):  # retry_days (3, 7): the first try, then 3 days later, then 7 days after that
        outcomes.append(scheduler(hub, fake, day + timedelta(days=offset), [account]).run_due())
        with hub.sessions() as s:
            assert not plan_is_current(s, account)
    assert [(o.claimed, o.failed) for o in outcomes] == [(1, 1), (1, 1), (1, 1)]
    assert scheduler(hub, fake, day + timedelta(days=60), [account]).run_due().claimed == 0  # in default
    view = client.get(f"/api/v1/payments/plans/{made['plan']}").json()
    assert view["status"] == "default"
    assert (view["installments"][0]["status"], view["installments"][0]["attempts"]) == ("failed", 3)
    assert view["installments"][0]["decline"] == reason
    deliver(client, fake)  # charge.failed webhooks for attempts already recorded change nothing
    assert patient_balance(hub, account) == D("90.00")
    assert sorted(fake.charges_by_key.values()) == [1, 1, 1]  # three attempts, three keys, one charge each
    assert outbox_types(hub, account).count("PlanInstallmentFailed") == 3


def test_an_online_payment_webhook_replayed_posts_once(client: TestClient, hub: Hub, fake: FakeStripe,
                                                       uid: str) -> None:
    account = f"WR{uid}"
    self_pay(hub, account, "80.00")
    r = client.post(f"/api/v1/payments/accounts/{account}/checkout", headers=key(), json={
        "amount": "80.00", "success_url": "https://clinic.example/ok", "cancel_url": "https://clinic.example/no"})
    assert r.status_code == 200, r.text
    fake.complete_checkout(r.json()["id"], "debit")
    events = fake.take_events()
    for payload, signature in events + events:  # every event delivered twice
        r = client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": signature})
        assert r.status_code == 200
    assert patient_balance(hub, account) == D("0.00")
    assert len(ledger_sources(hub, account, EntryKind.PATIENT_PAYMENT)) == 1
    with hub.sessions() as s:
        method = s.scalar(select(LedgerRow.memo).where(LedgerRow.kind == EntryKind.PATIENT_PAYMENT.value,
                                                       LedgerRow.source_id.like("stripe:%"),
                                                       LedgerRow.memo.like("debit_card %")).limit(1))
    assert method is not None


def test_forged_and_stale_signatures_are_rejected_and_nothing_posts(client: TestClient, hub: Hub, fake: FakeStripe,
                                                                    uid: str) -> None:
    account = f"FS{uid}"
    self_pay(hub, account, "50.00")
    r = client.post(f"/api/v1/payments/accounts/{account}/checkout", headers=key(), json={
        "amount": "50.00", "success_url": "https://c.example/ok", "cancel_url": "https://c.example/no"})
    fake.complete_checkout(r.json()["id"])
    charge = next(p for p, _ in fake.take_events() if b'"charge.succeeded"' in p)
    tampered = charge.replace(b'"amount": 5000', b'"amount": 500000')
    for payload, header in [(charge, sign(charge, "whsec_someone_else")),
                            (charge, sign(charge, timestamp=int(time.time()) - 3600)),  # stale: beyond 300 s
                            (tampered, sign(charge)),  # signature of another body
                            (charge, "t=abc,v1=zz"), (charge, "")]:
        r = client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": header})
        assert r.status_code == 400, (header, r.text)
        assert r.json()["location"] == "Stripe-Signature"
    assert patient_balance(hub, account) == D("50.00")
    ok = client.post(WEBHOOK, content=charge, headers={"Stripe-Signature": sign(charge)})
    assert ok.status_code == 200 and patient_balance(hub, account) == D("0.00")


def test_a_charge_retried_after_a_timeout_charges_once(client: TestClient, hub: Hub, fake: FakeStripe,
                                                       uid: str) -> None:
    account = f"TO{uid}"
    self_pay(hub, account, "40.00")
    pm = card_on_file(client, fake, account)
    customer = fake.payment_methods[pm]["customer"]
    gateway = gateway_for(fake, timeout=0.3)
    # The gateway alone: the first answer is lost (the charge was made), the retry with the key replays it.
    fake.delay["/v1/payment_intents"] = 1.0
    with pytest.raises(GatewayUnavailable):
        gateway.charge_off_session(customer_ref=customer, payment_method_ref=pm, amount=D("1.00"),
                                   idempotency_key=f"t:{uid}", metadata={})
    again = gateway.charge_off_session(customer_ref=customer, payment_method_ref=pm, amount=D("1.00"),
                                       idempotency_key=f"t:{uid}", metadata={})
    assert again.status is ChargeStatus.SUCCEEDED and fake.charges_by_key[f"t:{uid}"] == 1
    assert [i["id"] for i in fake.intents.values() if i["customer"] == customer] == [again.payment_ref]
    fake.take_events()
    # The scheduler: its tenacity retry reuses the installment's key; one charge, one posting.
    plan(client, account, pm, "40.00", 1, date(2024, 5, 1))
    fake.delay["/v1/payment_intents"] = 1.0
    report = scheduler(hub, fake, date(2024, 5, 1), [account], gateway=gateway).run_due()
    assert (report.claimed, report.succeeded) == (1, 1)
    plan_keys = [k for k in fake.charges_by_key if k.startswith("rcmhub:plan:")]
    assert len(plan_keys) == 1 and fake.charges_by_key[plan_keys[0]] == 1
    assert len([r for r in fake.requests if r[2] == plan_keys[0]]) == 2  # sent twice, charged once
    deliver(client, fake)
    assert patient_balance(hub, account) == D("0.00")
    assert len(ledger_sources(hub, account, EntryKind.PATIENT_PAYMENT)) == 1


def test_a_refund_through_the_api_reverses_once_although_the_gateway_reports_it_too(
        client: TestClient, hub: Hub, fake: FakeStripe, uid: str) -> None:
    account = f"RA{uid}"
    self_pay(hub, account, "70.00")
    r = client.post(f"/api/v1/payments/accounts/{account}/checkout", headers=key(), json={
        "amount": "70.00", "success_url": "https://c.example/ok", "cancel_url": "https://c.example/no"})
    fake.complete_checkout(r.json()["id"])
    deliver(client, fake)
    with hub.sessions() as s:
        number = s.scalar(select(PatientPaymentRow.id).join(AccountRow).where(AccountRow.number == account))
    r = client.post(f"/api/v1/payments/receipts/{number}/refund", headers=key(), json={"amount": "30.00",
                                                                                       "reason": "overcharged"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["refunded"]) == ("partially_refunded", "30.00")
    assert [a["status"] for a in deliver(client, fake)] == ["duplicate"]  # refund.created: already recorded
    assert patient_balance(hub, account) == D("30.00")
    fake.refund_in_dashboard(str(r.json()["gateway_payment_ref"]), 4000)  # the rest, refunded in Stripe itself
    assert [a["status"] for a in deliver(client, fake)] == ["posted"]
    assert patient_balance(hub, account) == D("70.00")


def test_front_desk_payment_through_the_api_is_idempotent_and_role_checked(client: TestClient, hub: Hub,
                                                                           uid: str) -> None:
    account = f"FD{uid}"
    self_pay(hub, account, "25.00")
    headers = key()
    body = {"account": account, "amount": "25.00", "method": "check", "check_number": "3301", "bank": "Credit Union",
            "note": "left card 4242 4242 4242 4242 on the counter"}
    first = client.post("/api/v1/payments", headers=headers, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["note"] == "left card **** **** **** 4242 on the counter"
    again = client.post("/api/v1/payments", headers=headers, json=body)
    assert again.status_code == 200 and again.json()["receipt"] == first.json()["receipt"]
    assert patient_balance(hub, account) == D("0.00")
    assert client.post("/api/v1/payments", headers=key(), json={**body, "check_number": ""}).json()["location"] \
        == "check_number"
    auditor = staff_client(hub, AUDITOR)
    assert auditor.post("/api/v1/payments", headers=key(), json=body).status_code == 403
    assert auditor.get(f"/api/v1/payments/receipts/{first.json()['receipt']}").status_code == 200
    assert TestClient(client.app).post("/api/v1/payments", headers=key(), json=body).status_code == 401


def test_a_webhook_for_an_unknown_customer_is_kept_and_listed(client: TestClient, fake: FakeStripe, uid: str) -> None:
    payload, signature = fake.emit("charge.succeeded", {
        "id": f"ch_{uid}", "object": "charge", "amount": 1000, "customer": f"cus_unknown_{uid}",
        "payment_intent": f"pi_{uid}", "payment_method_details": {"type": "card"}, "metadata": {}})
    fake.take_events()
    r = client.post(WEBHOOK, content=payload, headers={"Stripe-Signature": signature})
    assert r.status_code == 200 and r.json()["status"] == "failed"
    assert "data.object.customer" in r.json()["detail"]
    failed = client.get("/api/v1/payments/gateway-events", params={"status": "failed"}).json()
    assert r.json()["event"] in {e["event"] for e in failed}


def test_the_front_desk_page_posts_a_payment_once_and_shows_the_receipt(hub: Hub, uid: str) -> None:
    account = f"UI{uid}"
    self_pay(hub, account, "40.00")
    page = staff_client(hub, BILLING)
    form = page.get(f"/ui/payments/new?account={account}")
    assert form.status_code == 200 and 'name="form_id"' in form.text
    form_id = form.text.split('name="form_id" value="', 1)[1].split('"', 1)[0]
    fields = {"csrf_token": page.headers["X-CSRF-Token"], "form_id": form_id, "account": account, "amount": "15.50",
              "method": "check", "check_number": "2201", "bank": "Credit Union", "reference": "", "note": ""}
    first = page.post("/ui/payments", data=fields, follow_redirects=False)
    assert first.status_code == 303, first.text
    twice = page.post("/ui/payments", data=fields, follow_redirects=False)  # a double submit
    assert twice.headers["location"] == first.headers["location"]
    shown = page.get(first.headers["location"])
    assert shown.status_code == 200 and ">15.50<" in shown.text and "2201" in shown.text
    assert patient_balance(hub, account) == D("24.50")
    bad = page.post("/ui/payments", data={**fields, "form_id": uuid.uuid4().hex, "check_number": ""})
    assert bad.status_code == 422 and "check_number" in bad.text
    anonymous = TestClient(page.app).get("/ui/payments/new", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


@pytest.mark.parametrize("settles", [True, False], ids=["settles", "returned"])
def test_an_ach_installment_waits_for_the_gateway_to_settle_it(client: TestClient, hub: Hub, fake: FakeStripe,
                                                               uid: str, settles: bool) -> None:
    account = f"AH{uid}"
    self_pay(hub, account, "50.00")
    pm = card_on_file(client, fake, account, "ach")
    made = plan(client, account, pm, "50.00", 1, date(2024, 5, 1))
    first = scheduler(hub, fake, date(2024, 5, 1), [account]).run_due()
    assert (first.claimed, first.pending, first.succeeded) == (1, 1, 0)
    assert scheduler(hub, fake, date(2024, 5, 2), [account]).run_due().claimed == 0  # in flight: not re-charged
    assert patient_balance(hub, account) == D("50.00")
    fake.settle_ach(next(iter(fake.intents)), succeed=settles)
    deliver(client, fake)
    installment = client.get(f"/api/v1/payments/plans/{made['plan']}").json()["installments"][0]
    if settles:
        assert installment["status"] == "paid" and patient_balance(hub, account) == D("0.00")
        with hub.sessions() as s:
            assert s.scalar(select(PatientPaymentRow.method).join(AccountRow).where(AccountRow.number == account)) \
                == "ach"
    else:
        assert installment["status"] == "retry" and patient_balance(hub, account) == D("50.00")
    assert len(fake.intents) == 1


def test_plan_is_current_until_an_installment_is_declined_or_left_unpaid_past_due(
        client: TestClient, hub: Hub, fake: FakeStripe, uid: str) -> None:
    account = f"CU{uid}"
    self_pay(hub, account, "60.00")
    plan(client, account, card_on_file(client, fake, account), "60.00", 2, date(2024, 5, 1))
    with hub.sessions() as s:
        assert plan_is_current(s, account, date(2024, 5, 1))
        assert not plan_is_current(s, account, date(2024, 5, 2))  # due yesterday, not charged
        assert not plan_is_current(s, f"none-{uid}")
    scheduler(hub, fake, date(2024, 5, 2), [account]).run_due()
    with hub.sessions() as s:
        assert plan_is_current(s, account, date(2024, 5, 2))
