"""The payment gateway seam (connectors): what the hub asks of a card processor, and what it gets back.

The hub never sees a card number: cards are entered on the gateway's hosted page and the hub keeps only
opaque references (customer, payment method, payment intent ids). Metadata sent to the gateway carries
opaque hub ids only, never PHI. ``stripe_gateway.StripeGateway`` is the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from router.domain.errors import PermanentError, TransientError


class GatewayUnavailable(TransientError):
    """The gateway could not be reached or answered 5xx/429: retry with the SAME idempotency key."""


class GatewayRejected(PermanentError):
    """The gateway refused the request itself (bad parameters, unknown customer): retrying will not help."""


class WebhookRejected(PermanentError):
    """A webhook whose signature is missing, forged or outside the time tolerance."""


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PROCESSING = "processing"  # ACH: settles later, a webhook says how
    DECLINED = "declined"
    AUTHENTICATION_REQUIRED = "authentication_required"  # off-session charge needs the patient (3DS)


@dataclass(frozen=True)
class CheckoutSession:
    """A hosted gateway page the patient is sent to (pay-by-link, card-on-file set-up)."""

    id: str
    url: str


@dataclass(frozen=True)
class CardDetails:
    """What the hub may keep about a stored payment method (PCI: never the number)."""

    payment_method_ref: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    wallet: str = ""  # apple_pay, google_pay, "" for a plain card


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    payment_ref: str  # the gateway's payment id (PaymentIntent), "" when none was created
    amount: Decimal
    decline_code: str = ""  # the gateway's code (card_declined, insufficient_funds, ...), never free text


@dataclass(frozen=True)
class RefundResult:
    refund_ref: str
    payment_ref: str
    amount: Decimal
    status: str  # succeeded, pending, failed


class GatewayEventType(StrEnum):
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    SETUP_SUCCEEDED = "setup_succeeded"  # a card saved on the hosted page
    CHECKOUT_COMPLETED = "checkout_completed"
    IGNORED = "ignored"  # a type the hub does not act on (acknowledged, not posted)


@dataclass(frozen=True)
class GatewayEvent:
    """A verified webhook, reduced to what the hub acts on. ``id`` is the gateway's event id (replay key)."""

    id: str
    type: GatewayEventType
    created: datetime
    payment_ref: str = ""
    customer_ref: str = ""
    payment_method_ref: str = ""
    amount: Decimal = Decimal("0.00")
    method: str = ""  # card, wallet, ach
    wallet: str = ""
    decline_code: str = ""
    metadata: dict[str, str] = field(default_factory=dict)  # hub ids the hub itself sent


class PaymentGateway(Protocol):
    """Every write takes an ``idempotency_key``: a retry after a timeout must not charge twice."""

    def ensure_customer(self, *, guarantor_ref: str, idempotency_key: str) -> str:
        """The gateway customer id for an opaque guarantor ref (one customer per guarantor)."""
        ...

    def create_setup_session(self, *, customer_ref: str, success_url: str, cancel_url: str,
                             idempotency_key: str) -> CheckoutSession:
        """A hosted page that confirms a SetupIntent for off-session use (card on file)."""
        ...

    def create_checkout_session(self, *, customer_ref: str, amount: Decimal, description: str,
                                success_url: str, cancel_url: str, idempotency_key: str) -> CheckoutSession:
        """A hosted page that takes one payment of ``amount`` (pay-by-link, phone payments)."""
        ...

    def card_details(self, payment_method_ref: str) -> CardDetails:
        """Brand, last4 and expiry of a stored payment method."""
        ...

    def charge_off_session(self, *, customer_ref: str, payment_method_ref: str, amount: Decimal,
                           idempotency_key: str, metadata: dict[str, str]) -> ChargeResult:
        """Charge a stored method without the patient present (plan autopay); declines are results."""
        ...

    def refund(self, *, payment_ref: str, amount: Decimal, idempotency_key: str) -> RefundResult:
        ...

    def parse_webhook(self, payload: bytes, signature: str) -> GatewayEvent:
        """Verify the signature on the raw body (with a time tolerance) and decode; else ``WebhookRejected``."""
        ...
