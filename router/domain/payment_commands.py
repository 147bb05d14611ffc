"""Commands of patient payments (issue 7): refunds, card on file and consent, plans and their charges.

``PostPatientPayment`` itself lives in ``commands.py``. Gateway references are opaque ids (``cus_``,
``pm_``, ``pi_``); no command carries a card number (the PAN guard rejects one in any text field).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from router.domain.commands import Command

__all__ = [
    "CreatePaymentPlan",
    "LinkGatewayCustomer",
    "RecordConsent",
    "RecordDispute",
    "RecordInstallmentCharge",
    "RefundPatientPayment",
    "RevokeConsent",
    "SaveCardOnFile",
]


@dataclass(frozen=True)
class RefundPatientPayment(Command):
    """Give back all (``amount`` None) or part of the payment posted under ``payment_source_id``."""

    account: str
    payment_source_id: str
    amount: Decimal | None
    refunded_on: date
    reason: str = ""
    refund_ref: str = ""  # the gateway's refund id when the money went back through it


@dataclass(frozen=True)
class RecordDispute(Command):
    """The gateway reports a chargeback on a payment: flagged, reported; the ledger moves only if it is lost."""

    account: str
    payment_ref: str
    amount: Decimal
    status: str  # the gateway's dispute status (needs_response, lost, won, ...)
    on: date


@dataclass(frozen=True)
class LinkGatewayCustomer(Command):
    """The gateway customer created for an account's guarantor, known to the gateway only by ``hub_ref``."""

    account: str
    customer_ref: str
    hub_ref: str


@dataclass(frozen=True)
class RecordConsent(Command):
    """Who agreed, when, through which channel, to what scope, under which version of the text."""

    account: str
    granted_by: str
    granted_at: datetime
    channel: str  # in_person, phone, portal, paper
    scope: str  # card_on_file, plan_autopay
    text_version: str


@dataclass(frozen=True)
class RevokeConsent(Command):
    """Withdraw a consent; the cards and autopay it covered stop being used."""

    account: str
    consent_id: int
    revoked_by: str
    revoked_at: datetime


@dataclass(frozen=True)
class SaveCardOnFile(Command):
    """A payment method the patient saved on the gateway's hosted page (only ids, brand, last4, expiry)."""

    account: str
    customer_ref: str
    payment_method_ref: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    wallet: str = ""


@dataclass(frozen=True)
class CreatePaymentPlan(Command):
    account: str
    plan_ref: str  # opaque id, also the gateway metadata that links a charge back to the plan
    total: Decimal
    installments: int
    frequency: str  # weekly, biweekly, monthly
    first_due: date
    payment_method_ref: str  # a card on file with a live plan_autopay consent


@dataclass(frozen=True)
class RecordInstallmentCharge(Command):
    """The outcome of one autopay attempt (``source_id`` = ``plan:{plan_ref}:{seq}:{attempt}``)."""

    account: str
    plan_ref: str
    seq: int
    attempt: int
    status: str  # succeeded, processing, declined, authentication_required
    payment_ref: str
    amount: Decimal
    on: date
    decline_code: str = ""
    retry_days: tuple[int, ...] = (3, 7)
    method: str = "card"  # as the gateway reported the payment (ach, wallet, credit_card, ...)
