"""Billing staff set where an account's notices go and what it opted out of; the dunning run obeys it."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from auth_support import staff_client, system_client

from api.bootstrap import Hub
from connectors.notify.links import LinkSigner
from connectors.notify.runner import DunningRunner
from router.adapters.audit import AuditLog
from router.domain.commands import PostCharges
from router.domain.dunning import DunningPolicy
from router.domain.model import ChargeLine


class Outbox:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, to: str, *args: object) -> str:
        self.sent.append(to)
        return f"ref{len(self.sent)}"


def test_staff_set_contact_preferences_and_the_run_respects_the_opt_out(hub: Hub, uid: str) -> None:
    account = f"K{uid}"
    hub.bus.handle(PostCharges(f"k:{uid}", account, f"V{uid}", None, (ChargeLine(1, date(2026, 1, 2), "99213",
                                                                                 Decimal("30.00")),)))
    client = staff_client(hub, "billing")
    assert client.get(f"/api/v1/accounts/{account}/contact").status_code == 404
    body = {"email": "kim@example.test", "phone": "+15550002222", "preferred": "both", "sms_opt_out": True}
    saved = client.put(f"/api/v1/accounts/{account}/contact", json=body)
    assert saved.status_code == 200, saved.text
    assert client.get(f"/api/v1/accounts/{account}/contact").json() == {**body, "email_opt_out": False}
    bad = client.put(f"/api/v1/accounts/{account}/contact", json={"phone": "555-0100", "preferred": "fax"})
    assert bad.status_code == 422 and {e["loc"][-1] for e in bad.json()["detail"]} == {"phone", "preferred"}
    assert client.put(f"/api/v1/accounts/X{uid}/contact", json=body).status_code == 404  # no such account

    email, sms = Outbox(), Outbox()
    DunningRunner(hub.sessions, DunningPolicy.parse(), LinkSigner("c" * 40, 86400), email=email,
                  sms=sms).run_due(date(2026, 2, 1), accounts_like=account)
    assert (email.sent, sms.sent) == (["kim@example.test"], [])
    notices = client.get(f"/api/v1/accounts/{account}/notices").json()
    assert [(n["kind"], n["channel"], n["status"]) for n in notices] == [("statement", "email", "sent")]
    assert "kim@example.test" not in str(notices)

    actions = [r.action for _, r in AuditLog(hub.sessions).search(object_id=account)]
    assert {"contact.view", "contact.update", "notices.view"} <= set(actions)
    emr = system_client(hub, "emr-system")  # a system token without a billing role sees nothing
    assert emr.get(f"/api/v1/accounts/{account}/contact").status_code == 403
