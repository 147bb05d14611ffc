"""The append-only ledger: entry kinds, responsibility buckets, reversals and derived balances.

Every entry's ``amount`` is its signed effect on the balance of its responsibility bucket
(charges and refunds raise a balance, payments and adjustments lower it). A balance is therefore
always the plain sum of entries; nothing is ever updated or deleted. A correction is a reversing
entry with the negated amount, the same bucket, and ``reverses`` pointing at the original.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from router.domain.errors import DomainViolation
from router.domain.money import ZERO, money


class Responsibility(StrEnum):
    INSURANCE = "insurance"
    PATIENT = "patient"


class EntryKind(StrEnum):
    CHARGE = "charge"
    CHARGE_CREDIT = "charge_credit"  # an EMR credit (FT1-6 CD) lowering a charge
    INSURANCE_PAYMENT = "insurance_payment"
    CONTRACTUAL_ADJUSTMENT = "contractual_adjustment"
    PAYER_ADJUSTMENT = "payer_adjustment"  # other payer-side adjustment (OA/PI per policy)
    TRANSFER_TO_PATIENT = "transfer_to_patient"  # one leg per bucket, see transfer_to_patient()
    TRANSFER_TO_INSURANCE = "transfer_to_insurance"
    PATIENT_PAYMENT = "patient_payment"
    PATIENT_ADJUSTMENT = "patient_adjustment"
    WRITE_OFF = "write_off"
    REFUND = "refund"
    REVERSAL = "reversal"


# Kinds whose sign is fixed; payer-side kinds take either sign (CO-144 incentives and recoupments
# raise a balance), and reversals carry the negation of whatever they reverse.
_SIGN: dict[EntryKind, int] = {
    EntryKind.CHARGE: 1,
    EntryKind.CHARGE_CREDIT: -1,
    EntryKind.PATIENT_PAYMENT: -1,
    EntryKind.REFUND: 1,
}

# Kinds that count toward the "charges" figure (net of their reversals).
CHARGE_KINDS = frozenset({EntryKind.CHARGE, EntryKind.CHARGE_CREDIT})


@dataclass(frozen=True)
class LedgerEntry:
    account: str
    kind: EntryKind
    responsibility: Responsibility
    amount: Decimal
    idempotency_key: str
    source_id: str
    claim: str | None = None
    charge_line: int | None = None  # line number on the claim
    effective_date: date | None = None
    reverses: str | None = None  # idempotency key of the entry this one reverses
    reversed_kind: EntryKind | None = None  # the original's kind, kept so aggregates net out
    payer: str | None = None
    coverage_seq: int | None = None
    trace_number: str | None = None  # TRN02 (check/EFT) of the remittance
    payer_claim_number: str | None = None  # CLP07
    group_code: str | None = None  # CAS01
    reason_code: str | None = None  # CARC
    memo: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.amount, float) or not isinstance(self.amount, Decimal):
            raise TypeError("ledger amounts are Decimal, never float")
        object.__setattr__(self, "amount", money(self.amount))
        sign = _SIGN.get(self.kind)
        if sign is not None and self.amount * sign < 0:
            raise DomainViolation(f"a {self.kind} entry cannot be {self.amount}")
        if self.kind is EntryKind.REVERSAL and self.reverses is None:
            raise DomainViolation("a reversal must name the entry it reverses")

    @property
    def effective_kind(self) -> EntryKind:
        """The kind this entry counts as in aggregates (a reversal counts as what it reverses)."""
        return self.reversed_kind if self.kind is EntryKind.REVERSAL and self.reversed_kind else self.kind


def changed(entry: LedgerEntry, **changes: Any) -> LedgerEntry:
    """``dataclasses.replace`` for a ledger entry (every field is an init field, so ``__dict__`` holds
    them all), validation included; ~3x faster: a 10,000-claim 835 builds ~250,000 entries this way."""
    return LedgerEntry(**{**entry.__dict__, **changes})


def reversal_of(original: LedgerEntry, *, idempotency_key: str, source_id: str,
                memo: str | None = None) -> LedgerEntry:
    """The entry that cancels ``original`` exactly: same bucket, claim and line, negated amount."""
    if original.kind is EntryKind.REVERSAL:
        raise DomainViolation("reverse the original entry, not its reversal")
    return changed(
        original,
        kind=EntryKind.REVERSAL,
        amount=-original.amount,
        idempotency_key=idempotency_key,
        source_id=source_id,
        reverses=original.idempotency_key,
        reversed_kind=original.kind,
        memo=memo,
    )


def transfer_legs(arriving: LedgerEntry) -> list[LedgerEntry]:
    """Split a transfer into its two legs: the amount leaves one bucket and arrives in the other.

    ``arriving`` is the leg in the receiving bucket (positive amount); the total never changes.
    """
    targets = {EntryKind.TRANSFER_TO_PATIENT: Responsibility.PATIENT,
               EntryKind.TRANSFER_TO_INSURANCE: Responsibility.INSURANCE}
    if targets.get(arriving.kind) is not arriving.responsibility or arriving.amount < 0:
        raise DomainViolation(f"not an arriving transfer leg: {arriving.kind} {arriving.responsibility}")
    source = Responsibility.INSURANCE if arriving.responsibility is Responsibility.PATIENT else Responsibility.PATIENT
    key = arriving.idempotency_key
    return [
        changed(arriving, responsibility=source, amount=-arriving.amount, idempotency_key=f"{key}:from"),
        changed(arriving, idempotency_key=f"{key}:to"),
    ]


@dataclass(frozen=True)
class Balances:
    charges: Decimal = ZERO
    insurance: Decimal = ZERO
    patient: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.insurance + self.patient


def balances(entries: Iterable[LedgerEntry]) -> Balances:
    """Derive balances from entries: the definition every query must agree with."""
    charges = insurance = patient = ZERO
    for e in entries:
        if e.effective_kind in CHARGE_KINDS:
            charges += e.amount
        if e.responsibility is Responsibility.INSURANCE:
            insurance += e.amount
        else:
            patient += e.amount
    return Balances(charges=charges, insurance=insurance, patient=patient)
