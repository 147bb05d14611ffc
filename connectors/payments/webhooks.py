"""Gateway webhooks -> bus commands (connectors): verify, log the event, translate, dispatch once.

Replay safety: each event's command carries ``source_id = stripe:{event id}`` (the inbox keeps it once),
and a gateway payment posts once per payment id whichever report comes first (webhook or autopay result).
An event that cannot be posted (unknown customer, refund of an unknown payment) is kept in
``gateway_events`` with status ``failed`` and the reason, answered 200 so the gateway stops resending it,
and listed for staff (``GET /payments/gateway-events?status=failed``). Transient failures answer 503:
the gateway retries later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from connectors.payments.gateway import GatewayEvent, GatewayEventType, PaymentGateway
from router.adapters.orm_payments import GatewayEventRow
from router.bus import MessageBus
from router.domain import commands
from router.domain import payment_commands as pc
from router.domain.errors import MappingError, PermanentError
from router.domain.payments import Channel
from router.payments_queries import account_for_customer, account_for_plan, payment_for_ref

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    status: str  # posted, duplicate, ignored, failed
    detail: str = ""


class WebhookProcessor:
    def __init__(self, gateway: PaymentGateway, sessions: sessionmaker[Session], bus: MessageBus) -> None:
        self.gateway = gateway
        self.sessions = sessions
        self.bus = bus

    def handle(self, payload: bytes, signature: str) -> WebhookResult:
        """Verify (``WebhookRejected`` on a bad signature) and process one delivery."""
        event = self.gateway.parse_webhook(payload, signature)
        refused: PermanentError | None = None
        with self.sessions() as session:  # closed before anything is written (SQLite: one writer at a time)
            seen = session.get(GatewayEventRow, event.id)
            if seen is not None and seen.status != "failed":
                return WebhookResult(event.id, "duplicate")
            try:
                built = self.commands_for(session, event)
            except PermanentError as exc:
                built, refused = [], exc
        if refused is not None:
            return self._record(event, "failed", _why(refused))
        if not built:
            return self._record(event, "ignored")
        try:
            outcomes = [self.bus.handle(command) for command in built]
        except PermanentError as exc:
            # The reason names a rule and a field, never payload text (the hub's errors are built that way).
            return self._record(event, "failed", _why(exc))
        # No event from any command: the same money or refund was already recorded by another path.
        status = "posted" if any(o.events for o in outcomes) else "duplicate"
        return self._record(event, status)

    def _record(self, event: GatewayEvent, status: str, detail: str = "") -> WebhookResult:
        with self.sessions.begin() as session:
            row = session.get(GatewayEventRow, event.id)
            if row is None:
                session.add(GatewayEventRow(event_id=event.id, type=event.type.value, status=status, detail=detail))
            else:
                row.status, row.detail = status, detail
        log.info("gateway event %s type=%s status=%s", event.id, event.type.value, status)
        return WebhookResult(event.id, status, detail)

    def commands_for(self, session: Session, event: GatewayEvent) -> list[commands.Command]:
        sid, on = f"stripe:{event.id}", event.created.date()
        plan_ref = event.metadata.get("plan", "")
        if event.type in (GatewayEventType.PAYMENT_SUCCEEDED, GatewayEventType.PAYMENT_FAILED) and plan_ref:
            account = _need(account_for_plan(session, plan_ref), "metadata.plan", "plan unknown to the hub")
            succeeded = event.type is GatewayEventType.PAYMENT_SUCCEEDED
            return [pc.RecordInstallmentCharge(
                sid, account, plan_ref, int(event.metadata.get("seq", "0")), int(event.metadata.get("attempt", "0")),
                "succeeded" if succeeded else "declined", event.payment_ref, event.amount, on,
                decline_code="" if succeeded else event.decline_code, method=event.method or "card")]
        if event.type is GatewayEventType.PAYMENT_SUCCEEDED:
            account = _need(account_for_customer(session, event.customer_ref), "data.object.customer",
                            "gateway customer is not linked to an account")
            return [commands.PostPatientPayment(sid, account, event.amount, event.method, on,
                                                channel=Channel.ONLINE.value, gateway_payment_ref=event.payment_ref,
                                                wallet=event.wallet)]
        if event.type in (GatewayEventType.REFUNDED, GatewayEventType.DISPUTED):
            found = _need(payment_for_ref(session, event.payment_ref), "data.object.payment_intent",
                          "payment unknown to the hub")
            if event.type is GatewayEventType.REFUNDED:
                return [pc.RefundPatientPayment(sid, found[1], found[0], event.amount, on, "refunded at the gateway",
                                                refund_ref=event.metadata.get("refund", ""))]
            return [pc.RecordDispute(sid, found[1], event.payment_ref, event.amount,
                                     event.metadata.get("dispute_status", ""), on)]
        if event.type is GatewayEventType.SETUP_SUCCEEDED:
            account = _need(account_for_customer(session, event.customer_ref), "data.object.customer",
                            "gateway customer is not linked to an account")
            card = self.gateway.card_details(event.payment_method_ref)
            return [pc.SaveCardOnFile(sid, account, event.customer_ref, card.payment_method_ref, card.brand,
                                      card.last4, card.exp_month, card.exp_year, card.wallet)]
        return []  # payment failures outside plans, completed checkouts: the charge events carry the money


T = TypeVar("T")


def _why(exc: PermanentError) -> str:
    return f"{type(exc).__name__}: {exc.reason} at {exc.location or '-'}"


def _need(value: T | None, location: str, reason: str) -> T:
    if value is None:
        raise MappingError(reason, location=location)
    return value

