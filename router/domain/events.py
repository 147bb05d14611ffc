"""Events: past-tense facts the router emits after a commit (kept in the outbox)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Event:
    source_id: str


@dataclass(frozen=True)
class ChargesPosted(Event):
    account: str
    claim_key: str
    total: Decimal
    lines: int


@dataclass(frozen=True)
class PatientPaymentPosted(Event):
    account: str
    amount: Decimal
    method: str = ""
    received_on: date | None = None
    applied: Decimal = Decimal("0.00")  # allocated to open patient items
    unapplied: Decimal = Decimal("0.00")  # left on the account as a credit
    receipt: int | None = None  # receipt number (patient_payments.id)
    gateway_payment_ref: str = ""


@dataclass(frozen=True)
class EntryReversed(Event):
    account: str
    idempotency_key: str
    amount: Decimal


@dataclass(frozen=True)
class PatientRegistered(Event):
    account: str
    coverages: int


@dataclass(frozen=True)
class AppointmentRecorded(Event):
    account: str
    appointment_id: str
    status: str


@dataclass(frozen=True)
class RemittancePosted(Event):
    trace_number: str
    payment: Decimal
    posted: Decimal  # claim payments that reached the ledger
    held: Decimal  # cash held in exceptions
    plb: Decimal  # PLB cash effect
    exceptions: int
    quarantined: bool = False


# Payment events (issue 7) live in their own module; imported here so the codec registers them.
from router.domain.payment_events import *  # noqa: E402, F403
