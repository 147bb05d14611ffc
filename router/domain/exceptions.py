"""Reconciliation exceptions: what the hub would not post automatically, with why and what it found.

An exception holds the cash it concerns (``held``) until staff decide; cash is conserved per
remittance as posted + held + PLB effect = BPR02.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from router.domain.money import ZERO


class ExceptionType(StrEnum):
    UNMATCHED_CLAIM = "unmatched_claim"
    UNMATCHED_LINE = "unmatched_line"
    CHARGE_MISMATCH = "charge_mismatch"
    UNBALANCED_REMITTANCE = "unbalanced_remittance"
    DUPLICATE = "duplicate"
    REVERSAL_WITHOUT_ORIGINAL = "reversal_without_original"
    SECONDARY_BEFORE_PRIMARY = "secondary_before_primary"
    UNLINKED_PLB = "unlinked_plb"
    DENIAL = "denial"
    CREDIT_BALANCE = "credit_balance"
    NOT_OUR_CLAIM = "not_our_claim"
    UNKNOWN_STATUS = "unknown_status"


@dataclass(frozen=True)
class Candidate:
    """A claim the matcher considered, with its score (0-100) and the evidence behind it."""

    claim: str
    account: str
    score: int
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ExceptionDraft:
    type: ExceptionType
    reason: str
    amount: Decimal = ZERO  # the amount concerned (held cash, credit balance, PLB amount)
    held: bool = False  # True when the cash is held here instead of posted
    claim_key: str = ""  # CLP01 as the payer sent it
    account: str | None = None
    candidates: tuple[Candidate, ...] = ()
    claim_index: int | None = None  # the claim's position in its remittance
