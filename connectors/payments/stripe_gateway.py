"""Stripe implementation of ``PaymentGateway`` over the official ``stripe`` SDK (connectors layer).

The API base is configurable (``RCMHUB_STRIPE_API_BASE``) so tests talk to a local fake. Stripe errors are
translated here, at the edge: card declines and ``authentication_required`` become ``ChargeResult``s (a
result the plan logic acts on, not an error); network failures, 429 and 5xx become ``GatewayUnavailable``
(retry with the same idempotency key); anything else ``GatewayRejected``. Webhooks are verified with
``stripe.Webhook.construct_event`` on the raw body, with a time tolerance.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe

from connectors.payments.gateway import (
    CardDetails,
    ChargeResult,
    ChargeStatus,
    CheckoutSession,
    GatewayEvent,
    GatewayEventType,
    GatewayRejected,
    GatewayUnavailable,
    RefundResult,
    WebhookRejected,
)
from router.domain.money import from_cents, to_cents

log = logging.getLogger(__name__)

CURRENCY = "usd"

_EVENT_TYPES = {
    "charge.succeeded": GatewayEventType.PAYMENT_SUCCEEDED,
    "charge.failed": GatewayEventType.PAYMENT_FAILED,
    "refund.created": GatewayEventType.REFUNDED,
    "charge.dispute.created": GatewayEventType.DISPUTED,
    "charge.dispute.closed": GatewayEventType.DISPUTED,
    "setup_intent.succeeded": GatewayEventType.SETUP_SUCCEEDED,
    "checkout.session.completed": GatewayEventType.CHECKOUT_COMPLETED,
}


class StripeGateway:
    def __init__(self, api_key: str, *, webhook_secret: str, api_base: str = "", tolerance: int = 300,
                 timeout: float = 30.0) -> None:
        if not api_key:
            raise GatewayRejected("no Stripe API key configured (RCMHUB_STRIPE_API_KEY)")
        # The SDK's own retries stay off: the hub retries with tenacity and the same idempotency key, so a
        # retry is visible in the code that decides on it.
        self.client = stripe.StripeClient(api_key, base_addresses={"api": api_base} if api_base else None,
                                          http_client=stripe.RequestsClient(timeout=timeout),
                                          max_network_retries=0)
        self.webhook_secret = webhook_secret
        self.tolerance = tolerance

    def ensure_customer(self, *, guarantor_ref: str, idempotency_key: str) -> str:
        customer = self._call(self.client.v1.customers.create, {"metadata": {"hub_ref": guarantor_ref}},
                              idempotency_key)
        return str(customer.id)

    def create_setup_session(self, *, customer_ref: str, success_url: str, cancel_url: str,
                             idempotency_key: str) -> CheckoutSession:
        session = self._call(self.client.v1.checkout.sessions.create, {
            "mode": "setup", "customer": customer_ref, "currency": CURRENCY, "success_url": success_url,
            "cancel_url": cancel_url, "setup_intent_data": {"metadata": {"purpose": "card_on_file"}},
        }, idempotency_key)
        return CheckoutSession(id=str(session.id), url=str(session.url))

    def create_checkout_session(self, *, customer_ref: str, amount: Decimal, description: str,
                                success_url: str, cancel_url: str, idempotency_key: str) -> CheckoutSession:
        session = self._call(self.client.v1.checkout.sessions.create, {
            "mode": "payment", "customer": customer_ref, "success_url": success_url, "cancel_url": cancel_url,
            "line_items": [{"quantity": 1, "price_data": {
                "currency": CURRENCY, "unit_amount": to_cents(amount), "product_data": {"name": description}}}],
        }, idempotency_key)
        return CheckoutSession(id=str(session.id), url=str(session.url))

    def card_details(self, payment_method_ref: str) -> CardDetails:
        pm = self._call(self.client.v1.payment_methods.retrieve, None, None, payment_method_ref).to_dict()
        if pm.get("type") == "us_bank_account":  # ACH debit: the bank account's last4, no expiry
            bank = pm.get("us_bank_account") or {}
            return CardDetails(payment_method_ref=str(pm["id"]), brand="ach", last4=str(bank.get("last4", "")),
                               exp_month=0, exp_year=0)
        card = pm.get("card") or {}
        wallet = (card.get("wallet") or {}).get("type") or ""
        return CardDetails(payment_method_ref=str(pm["id"]), brand=str(card.get("brand", "")),
                           last4=str(card.get("last4", "")), exp_month=int(card.get("exp_month", 0)),
                           exp_year=int(card.get("exp_year", 0)), wallet=str(wallet))

    def charge_off_session(self, *, customer_ref: str, payment_method_ref: str, amount: Decimal,
                           idempotency_key: str, metadata: dict[str, str]) -> ChargeResult:
        params = {"amount": to_cents(amount), "currency": CURRENCY, "customer": customer_ref,
                  "payment_method": payment_method_ref, "off_session": True, "confirm": True, "metadata": metadata}
        try:
            intent = self._call(self.client.v1.payment_intents.create, params, idempotency_key)
        except _Declined as declined:
            return declined.result
        status = {"succeeded": ChargeStatus.SUCCEEDED, "processing": ChargeStatus.PROCESSING,
                  "requires_action": ChargeStatus.AUTHENTICATION_REQUIRED}.get(intent.status, ChargeStatus.DECLINED)
        return ChargeResult(status, str(intent.id), from_cents(int(intent.amount)))

    def refund(self, *, payment_ref: str, amount: Decimal, idempotency_key: str) -> RefundResult:
        refund = self._call(self.client.v1.refunds.create, {"payment_intent": payment_ref, "amount": to_cents(amount)},
                            idempotency_key)
        return RefundResult(str(refund.id), payment_ref, from_cents(int(refund.amount)), str(refund.status))

    def parse_webhook(self, payload: bytes, signature: str) -> GatewayEvent:
        try:
            event = stripe.Webhook.construct_event(payload, signature, self.webhook_secret, tolerance=self.tolerance)
        except stripe.SignatureVerificationError as exc:
            raise WebhookRejected("signature missing, forged or outside the time tolerance",
                                  location="Stripe-Signature") from exc
        except ValueError as exc:  # the signature was right but the body is not JSON
            raise WebhookRejected("webhook body is not JSON") from exc
        return _decode_event(event)

    def _call(self, method: Any, params: dict[str, Any] | None, idempotency_key: str | None, *args: Any) -> Any:
        options: dict[str, Any] = {"idempotency_key": idempotency_key} if idempotency_key else {}
        try:
            if params is None:
                return method(*args, options=options)
            return method(params=params, options=options)
        except stripe.CardError as exc:
            error = exc.error
            intent = getattr(error, "payment_intent", None) if error else None
            code = str((error.decline_code or error.code) if error else exc.code or "card_declined")
            status = ChargeStatus.AUTHENTICATION_REQUIRED if code == "authentication_required" or (
                error and error.code == "authentication_required") else ChargeStatus.DECLINED
            amount = from_cents(int(intent["amount"])) if intent else Decimal("0.00")
            raise _Declined(ChargeResult(status, str(intent["id"]) if intent else "", amount, code)) from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            log.warning("stripe unavailable: %s", type(exc).__name__)
            raise GatewayUnavailable(f"payment gateway unreachable: {type(exc).__name__}") from exc
        except stripe.APIError as exc:
            log.warning("stripe server error http=%s", exc.http_status)
            raise GatewayUnavailable(f"payment gateway error {exc.http_status}") from exc
        except stripe.StripeError as exc:
            # The SDK message names the parameter, never card data (the hub sends none); keep the code only.
            raise GatewayRejected(f"payment gateway refused the request: {type(exc).__name__} {exc.code or ''}"
                                  .strip()) from exc


class _Declined(Exception):
    def __init__(self, result: ChargeResult) -> None:
        super().__init__(result.decline_code)
        self.result = result


def _decode_event(event: Any) -> GatewayEvent:
    kind = _EVENT_TYPES.get(str(event.type), GatewayEventType.IGNORED)
    obj = event.data.object.to_dict()  # SDK objects are not dicts; a plain dict reads missing keys as None
    created = datetime.fromtimestamp(int(event.created), UTC)
    base: dict[str, Any] = {"id": str(event.id), "type": kind, "created": created}
    if kind is GatewayEventType.IGNORED:
        return GatewayEvent(**base)
    metadata = {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}
    if kind in (GatewayEventType.PAYMENT_SUCCEEDED, GatewayEventType.PAYMENT_FAILED):
        details = obj.get("payment_method_details") or {}
        card = details.get("card") or {}
        wallet = str((card.get("wallet") or {}).get("type") or "")
        method = ("ach" if details.get("type") in ("us_bank_account", "ach_debit") else
                  "wallet" if wallet else {"credit": "credit_card", "debit": "debit_card"}.get(str(card.get("funding")),
                                                                                            "card"))
        return GatewayEvent(**base, payment_ref=str(obj.get("payment_intent") or obj.get("id")),
                            customer_ref=str(obj.get("customer") or ""),
                            payment_method_ref=str(obj.get("payment_method") or ""),
                            amount=from_cents(int(obj.get("amount") or 0)), method=method, wallet=wallet,
                            decline_code=str(obj.get("failure_code") or ""), metadata=metadata)
    if kind is GatewayEventType.REFUNDED:
        return GatewayEvent(**base, payment_ref=str(obj.get("payment_intent") or ""),
                            amount=from_cents(int(obj.get("amount") or 0)),
                            metadata={**metadata, "refund": str(obj["id"])})
    if kind is GatewayEventType.DISPUTED:
        return GatewayEvent(**base, payment_ref=str(obj.get("payment_intent") or ""),
                            amount=from_cents(int(obj.get("amount") or 0)),
                            metadata={**metadata, "dispute_status": str(obj.get("status") or "")})
    if kind is GatewayEventType.SETUP_SUCCEEDED:
        return GatewayEvent(**base, customer_ref=str(obj.get("customer") or ""),
                            payment_method_ref=str(obj.get("payment_method") or ""), metadata=metadata)
    return GatewayEvent(**base, customer_ref=str(obj.get("customer") or ""), metadata=metadata)
