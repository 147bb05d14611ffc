"""Pay-by-link end to end: a statement emailed through a real SMTP server carries a signed link; the hub page
it opens creates a fresh gateway checkout session for the ledger's current balance; tampered and expired
tokens are refused."""

from __future__ import annotations

import base64
import json
import re
from datetime import date
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from notify_support import FakeCheckoutGateway, smtp_server

from api.app import create_app
from api.bootstrap import Hub
from api.notices import public_url
from connectors.notify.links import LinkSigner
from connectors.notify.runner import DunningRunner, NoticeBranding
from connectors.notify.smtp import SmtpSender
from router.adapters import notice_store as store
from router.domain.commands import PostCharges, PostPatientPayment
from router.domain.dunning import DunningPolicy
from router.domain.model import ChargeLine, Patient

TTL = 45 * 86400
SECRET = "k" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _self_pay(hub: Hub, account: str, amount: str) -> None:
    hub.bus.handle(PostCharges(f"seed:{account}", account, f"V{account}", Patient(f"M{account}", "Doe", "Jane"),
                               (ChargeLine(1, date(2026, 1, 2), "99213", Decimal(amount)),)))


def _emailed_link(hub: Hub, uid: str, clock: Clock) -> tuple[str, TestClient, FakeCheckoutGateway, LinkSigner]:
    account = f"P{uid}"
    _self_pay(hub, account, "180.00")
    with hub.sessions.begin() as s:
        store.set_contact(s, account, store.Contact(email=f"{uid.lower()}@example.test", preferred="email"))
    signer = LinkSigner(SECRET, TTL, clock=clock)
    with smtp_server() as (sink, port):
        runner = DunningRunner(hub.sessions, DunningPolicy.parse(), signer,
                               email=SmtpSender("127.0.0.1", port, "billing@clinic.test"),
                               branding=NoticeBranding("Clinic", public_url="http://hub.test"))
        report = runner.run_due(date(2026, 2, 1), accounts_like=f"P{uid}%")
    assert report.notices["sent"] == 1
    [msg] = sink.to(f"{uid.lower()}@example.test")
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "$180.00" in text
    token = re.search(r"http://hub\.test/pay/(\S+)", text).group(1)  # type: ignore[union-attr]
    app = create_app(hub)
    gateway = FakeCheckoutGateway()
    app.state.pay_link_signer, app.state.payment_gateway = signer, gateway
    return token, TestClient(app), gateway, signer


def test_the_emailed_link_opens_a_page_with_a_fresh_checkout_session_for_the_current_balance(
        hub: Hub, uid: str, clock: Clock) -> None:
    token, client, gateway, _ = _emailed_link(hub, uid, clock)
    first = client.get(f"/pay/{token}")
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store" and first.headers["referrer-policy"] == "no-referrer"
    second = client.get(f"/pay/{token}")
    assert [s["amount"] for s in gateway.sessions] == [Decimal("180.00"), Decimal("180.00")]
    one, two = gateway.sessions
    assert one["id"] != two["id"] and one["idempotency_key"] != two["idempotency_key"]
    assert one["customer_ref"] == two["customer_ref"]  # one gateway customer per guarantor, linked once
    assert f'href="https://checkout.example.test/c/pay/{two["id"]}"' in second.text and "$180.00" in second.text
    assert one["success_url"] == f"{public_url(hub.settings)}/pay/{token}/done"
    assert f"P{uid}" not in json.dumps([str(v) for s in gateway.sessions for v in s.values()])  # opaque ids only

    hub.bus.handle(PostPatientPayment(f"pay:{uid}:1", f"P{uid}", Decimal("50.00"), "cash", date(2026, 2, 3)))
    client.get(f"/pay/{token}")
    assert gateway.sessions[-1]["amount"] == Decimal("130.00")  # the ledger's balance now, not the notice's
    hub.bus.handle(PostPatientPayment(f"pay:{uid}:2", f"P{uid}", Decimal("130.00"), "cash", date(2026, 2, 4)))
    paid = client.get(f"/pay/{token}")
    assert paid.status_code == 200 and "Nothing is due" in paid.text and len(gateway.sessions) == 3


def test_a_tampered_token_is_refused(hub: Hub, uid: str, clock: Clock) -> None:
    token, client, gateway, _ = _emailed_link(hub, uid, clock)
    payload, stamp, signature = token.split(".")
    assert set(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))) == {"l"}
    other = LinkSigner("x" * 40, TTL, clock=clock)
    forged_payload = base64.urlsafe_b64encode(json.dumps({"l": "0" * 32}).encode()).decode().rstrip("=")
    flip = {"a": "b"}.get(signature[5], "a")
    tampered = [
        f"{payload}.{stamp}.{signature[:5]}{flip}{signature[6:]}",  # one signature character changed
        f"{forged_payload}.{stamp}.{signature}",  # another link id under the original signature
        other.token(LinkSigner(SECRET, TTL, clock=clock).link_id(token)),  # the right id signed with the wrong key
        f"{payload}.{stamp}",  # signature cut off
        "not-a-token",
    ]
    for bad in tampered:
        response = client.get(f"/pay/{bad}")
        assert response.status_code == 400, bad
        assert "not valid" in response.text
    assert gateway.sessions == []


def test_a_link_works_until_its_time_to_live_and_then_expires(hub: Hub, uid: str, clock: Clock) -> None:
    token, client, gateway, _ = _emailed_link(hub, uid, clock)
    clock.now += TTL - 5
    assert client.get(f"/pay/{token}").status_code == 200
    clock.now += 10
    expired = client.get(f"/pay/{token}")
    assert expired.status_code == 410 and "expired" in expired.text
    assert len(gateway.sessions) == 1


def test_a_genuine_token_for_an_unknown_link_or_a_gateway_outage_creates_no_session(
        hub: Hub, uid: str, clock: Clock) -> None:
    token, client, gateway, signer = _emailed_link(hub, uid, clock)
    assert client.get(f"/pay/{signer.token('f' * 32)}").status_code == 404
    gateway.down = True
    down = client.get(f"/pay/{token}")
    assert down.status_code == 503 and "try again" in down.text
    assert gateway.sessions == []
