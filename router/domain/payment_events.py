"""Events of patient payments (issue 7); ``PatientPaymentPosted`` itself lives in ``events.py``.

Each goes back to the EMR through the outbound engine (FT1 PY rows / FHIR PaymentReconciliation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from router.domain.events import Event

__all__ = [
    "CardOnFileSaved",
    "ConsentChanged",
    "PatientPaymentDisputed",
    "PatientPaymentRefunded",
    "PaymentPlanChanged",
    "PaymentPlanCreated",
    "PlanInstallmentFailed",
    "PlanInstallmentPaid",
]


@dataclass(frozen=True)
class PatientPaymentRefunded(Event):
    account: str
    payment_source_id: str
    amount: Decimal
    refunded_on: date
    method: str
    refund_ref: str = ""


@dataclass(frozen=True)
class PatientPaymentDisputed(Event):
    account: str
    payment_source_id: str
    amount: Decimal
    status: str


@dataclass(frozen=True)
class CardOnFileSaved(Event):
    account: str
    brand: str
    last4: str


@dataclass(frozen=True)
class ConsentChanged(Event):
    account: str
    consent_id: int
    scope: str
    granted: bool  # False: revoked


@dataclass(frozen=True)
class PaymentPlanCreated(Event):
    account: str
    plan_ref: str
    total: Decimal
    installments: int
    first_due: date


@dataclass(frozen=True)
class PlanInstallmentPaid(Event):
    account: str
    plan_ref: str
    seq: int
    amount: Decimal
    payment_source_id: str


@dataclass(frozen=True)
class PlanInstallmentFailed(Event):
    """A declined autopay attempt: the notice to send (``next_attempt_on`` None: no retry left)."""

    account: str
    plan_ref: str
    seq: int
    attempt: int
    reason: str  # the gateway's decline code, never free text
    next_attempt_on: date | None


@dataclass(frozen=True)
class PaymentPlanChanged(Event):
    account: str
    plan_ref: str
    status: str  # completed, default, cancelled
