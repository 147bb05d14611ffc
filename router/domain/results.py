"""Reconciled results as delivered back to EMRs (domain layer, pure): what the ledger holds for one event.

Outbound mappings (HL7 DFT, FHIR) render these, and only these: a result is read back from the stored
ledger entries, remittance claims and practice-ledger rows after the commit, never re-parsed from the 835.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from router.domain.ledger import Balances, EntryKind, Responsibility
from router.domain.money import ZERO


def trace_id(source_id: str) -> str:
    """The id that follows one inbound message through posting to every delivery (logged without PHI).

    A hash of the command's source id: source ids embed account or claim numbers, so they are never logged.
    It equals the ``correlation_id`` RabbitMQ publishing puts on the command (``publisher.source_hash``).
    """
    return hashlib.sha256(source_id.encode()).hexdigest()[:16]


def transaction_id(idempotency_key: str) -> str:
    """A stable, short id for one ledger entry (FT1-2, FHIR identifiers): the EMR dedupes on it."""
    return "RH" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:18].upper()


@dataclass(frozen=True)
class PostedEntry:
    """One ledger entry; ``amount`` is its signed effect on its responsibility's balance."""

    key: str  # ledger idempotency key
    kind: EntryKind
    responsibility: Responsibility
    amount: Decimal
    claim: str | None = None
    charge_line: int | None = None
    charge_key: str | None = None  # idempotency key of the charge entry of that line (link to the original)
    procedure: str = ""  # CPT/HCPCS of that charge line
    line_charge: Decimal | None = None  # billed amount of that line
    effective_date: date | None = None
    reverses: str | None = None  # ledger key of the entry a reversal cancels
    reversed_kind: EntryKind | None = None
    payer: str | None = None
    coverage_seq: int | None = None
    trace_number: str | None = None  # TRN02
    payer_claim_number: str | None = None  # CLP07
    group_code: str | None = None  # CAS01
    reason_code: str | None = None  # CARC
    memo: str | None = None

    @property
    def effective_kind(self) -> EntryKind:
        return self.reversed_kind if self.kind is EntryKind.REVERSAL and self.reversed_kind else self.kind

    @property
    def transaction_id(self) -> str:
        return transaction_id(self.key)


@dataclass(frozen=True)
class AccountResult:
    """The entries one event posted to one account, and the account's balances right after them."""

    account: str
    mrn: str
    entries: tuple[PostedEntry, ...]
    balances: Balances

    @property
    def total(self) -> Decimal:
        return sum((e.amount for e in self.entries), ZERO)


@dataclass(frozen=True)
class ClaimResult:
    """One remittance claim (CLP) as matched and decided; ``entries`` is what reached the ledger."""

    seq: int
    pcn: str  # CLP01
    status: str  # CLP02
    charge: Decimal  # CLP03
    paid: Decimal  # CLP04
    payer_claim_number: str  # CLP07
    outcome: str  # posted, reversed, held, informational
    claim_key: str | None  # the practice's claim it matched
    account: str | None
    entries: tuple[PostedEntry, ...] = ()
    remarks: tuple[str, ...] = ()  # claim-level RARCs (MIA/MOA)
    line_remarks: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (remit line number, its LQ*HE RARCs)


@dataclass(frozen=True)
class PlbResult:
    code: str
    reference: str
    amount: Decimal  # 835 sign: positive withheld, negative added
    claim_key: str | None


@dataclass(frozen=True)
class RemittanceResult:
    source_id: str
    payer_id: str
    payer_name: str
    payee_id: str
    payee_name: str
    trace_number: str  # TRN02
    payment_amount: Decimal  # BPR02
    payment_method: str
    payment_date: date | None
    status: str
    claims: tuple[ClaimResult, ...]
    plb: tuple[PlbResult, ...]
    accounts: tuple[AccountResult, ...]

    def remarks_of(self, claim: ClaimResult) -> list[tuple[PostedEntry | None, tuple[str, ...]]]:
        """The claim's RARCs, each group with the ledger entry it explains: a remit line's with the first entry
        posted for that line (``{source}:{seq}:l{n}:``, which names its charge line), the claim's with None.
        A line that posted nothing (held, informational) keeps its remarks at claim level."""
        groups: list[tuple[PostedEntry | None, tuple[str, ...]]] = [(None, claim.remarks)] if claim.remarks else []
        for number, codes in claim.line_remarks:
            prefix = f"{self.source_id}:{claim.seq}:l{number}:"
            groups.append((next((e for e in claim.entries if e.key.startswith(prefix)), None), codes))
        return groups


@dataclass(frozen=True)
class Result:
    """Everything an event changed that an EMR may want: per account, and the remittance when there is one."""

    event_type: str
    source_id: str
    facility: str  # payee id (N1*PE) of a remittance; '' when unknown
    accounts: tuple[AccountResult, ...]
    remittance: RemittanceResult | None = None

    @property
    def trace(self) -> str:
        return trace_id(self.source_id)
