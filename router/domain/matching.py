"""Claim matching rules (pure): normalised patient control numbers and scored fuzzy candidates.

Order of evidence (issue #4): CLP01 against every key the claim was sent under; normalised CLP01 with
the patient's name; payer claim numbers (CLP07, REF*F8) seen before; then a scored candidate list that
never posts by itself below the confidence threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from router.domain.exceptions import Candidate
from router.domain.remittance import RemitClaim


def normalize_pcn(pcn: str) -> str:
    """Payers drop punctuation, change case and pad with zeros: compare on what survives."""
    return "".join(ch for ch in pcn.upper() if ch.isalnum()).lstrip("0")


@dataclass(frozen=True)
class ClaimFacts:
    """What a stored claim offers for fuzzy comparison."""

    key: str
    account: str
    family: str
    given: str
    member_ids: tuple[str, ...]
    service_dates: tuple[date, ...]
    total_charge: Decimal


def same_name(a: str, b: str) -> bool:
    return bool(a) and a.strip().upper() == b.strip().upper()


def score(claim: RemitClaim, facts: ClaimFacts) -> Candidate:
    """Weights: member id 40, last name 20, first name 10, date of service 15, total charge 15."""
    points = 0
    reasons: list[str] = []
    if claim.member_id and claim.member_id in facts.member_ids:
        points += 40
        reasons.append("member id matches")
    if same_name(claim.patient_last, facts.family):
        points += 20
        reasons.append("last name matches")
    if same_name(claim.patient_first, facts.given):
        points += 10
        reasons.append("first name matches")
    if claim.service_date and claim.service_date in facts.service_dates:
        points += 15
        reasons.append("date of service matches")
    if claim.charge == facts.total_charge:
        points += 15
        reasons.append("total charge matches")
    return Candidate(facts.key, facts.account, points, tuple(reasons))


def rank(claim: RemitClaim, facts: list[ClaimFacts]) -> list[Candidate]:
    return sorted((score(claim, f) for f in facts), key=lambda c: (-c.score, c.claim))
