"""Workbench commands and events (domain layer): what billing staff do to a reconciliation exception.

Every command names the exception and the ``version`` the user saw (optimistic locking: a stale version is
refused, so two people cannot resolve one item twice) and carries its ``source_id`` (one per submitted form,
so a double submit posts once). Amounts are ``Decimal``; the handlers are in ``router/workbench.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from router.domain.commands import Command
from router.domain.errors import DomainViolation
from router.domain.events import Event
from router.domain.ledger import Responsibility
from router.domain.money import money
from router.domain.remittance import RemitClaim


class StaleItem(DomainViolation):
    """The exception changed since the user loaded it (another user acted first): reload and decide again."""


class Action(StrEnum):
    ASSIGN = "assign"
    MATCH = "match"
    ACCEPT_DENIAL = "accept_denial"
    WRITE_OFF = "write_off"
    WRITE_OFF_REQUESTED = "write_off_requested"
    WRITE_OFF_APPROVED = "write_off_approved"
    WRITE_OFF_REJECTED = "write_off_rejected"
    TRANSFER_TO_PATIENT = "transfer_to_patient"
    APPEAL = "appeal"
    REBILL = "rebill"
    REFUND = "refund"
    NOTE = "note"


@dataclass(frozen=True)
class WorkbenchPolicy:
    """Configurable: a write-off above ``write_off_threshold`` waits for a billing supervisor's approval."""

    write_off_threshold: Decimal = Decimal("500.00")


@dataclass(frozen=True)
class ExceptionCommand(Command):
    exception_id: int
    expected_version: int
    actor: str
    origin: str = field(default="", kw_only=True)  # where the request came from (client address), for the audit trail


@dataclass(frozen=True)
class AssignException(ExceptionCommand):
    """Claim an item (``assignee`` = the actor) or hand it to someone else."""

    assignee: str


@dataclass(frozen=True)
class MatchException(ExceptionCommand):
    """Post a held remittance claim against the claim staff chose (the same posting rules as automatic)."""

    claim_key: str
    remit_claim: RemitClaim


@dataclass(frozen=True)
class AcceptDenial(ExceptionCommand):
    """Post a held denial as the payer adjudicated it (its payment, CO adjustments, PR to the patient): staff
    decided not to appeal. The cash it held moves to posted."""

    remit_claim: RemitClaim


@dataclass(frozen=True)
class WriteOff(ExceptionCommand):
    """Write off ``amount`` of the claim's balance in ``responsibility``; above the threshold it needs approval."""

    amount: Decimal
    reason: str
    responsibility: Responsibility = Responsibility.INSURANCE

    def __post_init__(self) -> None:
        _positive(self.amount, "write-off amount")
        if not self.reason.strip():
            raise DomainViolation("a write-off needs a reason")


@dataclass(frozen=True)
class DecideWriteOff(ExceptionCommand):
    """A billing supervisor approves (posts) or rejects a pending write-off."""

    approval_id: int
    approve: bool
    comment: str = ""


@dataclass(frozen=True)
class TransferToPatient(ExceptionCommand):
    amount: Decimal
    reason: str = ""

    def __post_init__(self) -> None:
        _positive(self.amount, "transfer amount")


@dataclass(frozen=True)
class MarkForFollowUp(ExceptionCommand):
    """Send the claim to appeal or to rebill; nothing posts, the EMR/billing system is told."""

    action: Action
    reason: str = ""

    def __post_init__(self) -> None:
        if self.action not in (Action.APPEAL, Action.REBILL):
            raise DomainViolation(f"follow-up must be appeal or rebill, not {self.action}")


@dataclass(frozen=True)
class RefundCredit(ExceptionCommand):
    """Refund (part of) a credit balance to the payer or the patient."""

    amount: Decimal
    responsibility: Responsibility = Responsibility.INSURANCE
    reason: str = ""

    def __post_init__(self) -> None:
        _positive(self.amount, "refund amount")


@dataclass(frozen=True)
class AddNote(ExceptionCommand):
    body: str

    def __post_init__(self) -> None:
        if not self.body.strip():
            raise DomainViolation("a note cannot be empty")


def _positive(amount: Decimal, what: str) -> None:
    if not isinstance(amount, Decimal) or money(amount) <= 0:
        raise DomainViolation(f"{what} must be a positive amount, got {amount}")


# -- events ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExceptionActed(Event):
    """Something a user did to an exception (relayed to EMRs and billing systems by the outbox)."""

    exception_id: int
    action: str
    actor: str
    account: str | None
    claim_key: str | None
    amount: Decimal
    status: str


@dataclass(frozen=True)
class HeldClaimPosted(Event):
    """A held remittance claim was posted by staff (matched, or a denial accepted): the outbound results of a
    payment."""

    exception_id: int
    account: str
    claim_key: str
    payer: str
    trace_number: str
    paid: Decimal
    entries: int
