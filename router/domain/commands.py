"""Commands: imperative requests to change the ledger, each carrying its wire-derived ``source_id``.

``source_id`` is the idempotency key built from the wire, e.g. ``hl7:{MSH-4}:{MSH-10}`` or
``835:{ISA06}:{ISA13}:{ST02}:{CLP01}:{n}``; the inbox keeps each one once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from router.domain.ledger import EntryKind, Responsibility
from router.domain.model import ChargeLine, Coverage, Patient
from router.domain.remittance import Remittance


@dataclass(frozen=True)
class Command:
    source_id: str

    def fingerprint_content(self) -> object:
        """What the inbox fingerprints to tell a redelivery from new content under the same source id."""
        return self


@dataclass(frozen=True)
class EmrTransaction:
    """A non-charge financial transaction the EMR sent (FT1-6 payment, adjustment, credit)."""

    line_no: int
    kind: EntryKind
    responsibility: Responsibility
    amount: Decimal  # signed effect on the bucket, as in the ledger
    transaction_date: date
    code: str = ""


@dataclass(frozen=True)
class PostCharges(Command):
    """Post an encounter's charge lines (and any EMR payments/credits) under a claim key."""

    account: str
    claim_key: str
    patient: Patient | None
    charges: tuple[ChargeLine, ...]
    transactions: tuple[EmrTransaction, ...] = ()
    coverages: tuple[Coverage, ...] = ()


@dataclass(frozen=True)
class PostPatientPayment(Command):
    account: str
    amount: Decimal
    method: str  # router.domain.payments.PaymentMethod: cash, check, card, credit_card, debit_card, wallet, ach
    received_on: date
    reference: str = ""  # check number or gateway payment id; never a card number
    check_number: str = ""
    bank: str = ""
    channel: str = "front_desk"  # router.domain.payments.Channel
    gateway_payment_ref: str = ""  # the gateway's payment id: one posting per id, whichever path reports it
    wallet: str = ""  # apple_pay, google_pay
    note: str = ""  # free text; card numbers in it are masked before storage


@dataclass(frozen=True)
class ReverseEntry(Command):
    """Cancel one ledger entry exactly (the correction for a mistaken posting)."""

    idempotency_key: str
    reason: str


@dataclass(frozen=True)
class RegisterPatient(Command):
    """Create or update a patient, the guarantor account and its coverages (ADT, BAR, FHIR).

    Coverages are upserted by sequence; with ``replace_coverages`` the account's coverage list becomes
    exactly ``coverages`` (an A08 that drops a policy removes it). Nothing is ever duplicated.
    """

    account: str
    patient: Patient
    guarantor: str = ""
    coverages: tuple[Coverage, ...] = ()
    replace_coverages: bool = False


@dataclass(frozen=True)
class RecordAppointment(Command):
    """Keep a scheduled visit for an account (SIU^S12/S14/S15/S26, FHIR Appointment)."""

    appointment_id: str
    account: str
    patient: Patient | None
    start: datetime | None
    status: str  # booked, rescheduled, cancelled, noshow
    duration_minutes: int | None = None
    reason: str = ""
    provider: str = ""


@dataclass(frozen=True)
class PostRemittance(Command):
    """Reconcile one payer remittance (835 transaction set, FHIR remittance) with claims and post it.

    ``source_id`` identifies the payment, not the file: ``835:{payer}:{TRN02}:{BPR02}``, so the same
    remittance delivered again under another file name or envelope posts once.
    """

    remittance: Remittance

    def fingerprint_content(self) -> object:
        """An 835 claim is fingerprinted by its raw segments (everything posted derives from them): a fifth
        of the JSON of the parsed claims, ~0.4 s less for a 10,000-claim 835. A claim without raw text
        (FHIR) is fingerprinted whole."""
        r = self.remittance
        return (replace(r, claims=()), tuple(c.raw or c for c in r.claims))


# Payment commands (issue 7) live in their own module; imported here so the codec registers them.
from router.domain.payment_commands import *  # noqa: E402, F403
