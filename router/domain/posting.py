"""Posting one remittance claim to the ledger (pure): reversals, denials, COB order, line matching, CAS.

Rules (domain primer §1.6, §2): CO -> contractual adjustment; PR -> transfer to the patient, unless a
next payer is expected (another coverage on file, or the payer forwarded the claim: CLP02 19/20/21,
NM1*TT) - then it stays insurance A/R for that payer; OA/PI -> payer-side adjustment, except OA-23
(prior payer impact on secondary remits), which repeats what the primary already settled and is not
posted. Zero-paid lines or claims with denial-type CARCs, reversals without their original, secondary
before primary and charge mismatches are held as exceptions: nothing of that claim posts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from router.domain.codes import DENIAL_CARCS
from router.domain.exceptions import Candidate, ExceptionDraft, ExceptionType
from router.domain.ledger import EntryKind, LedgerEntry, Responsibility, reversal_of, transfer_legs
from router.domain.model import ChargeLine
from router.domain.money import ZERO, fmt
from router.domain.remittance import Cas, RemitClaim, RemitLine, Remittance

COVERAGE_LEVEL = {"1": 1, "19": 1, "2": 2, "20": 2, "3": 3, "21": 3}
FORWARDED = frozenset({"19", "20", "21"})
NO_MONEY = frozenset({"25"})  # predetermination: nothing to post


@dataclass(frozen=True)
class PostingPolicy:
    """Configurable choices (documented in README): how OA/PI post and which OA reasons are ignored."""

    oa_ignored_reasons: frozenset[str] = frozenset({"23"})
    oa_kind: EntryKind = EntryKind.PAYER_ADJUSTMENT
    pi_kind: EntryKind = EntryKind.PAYER_ADJUSTMENT
    match_threshold: int = 90


@dataclass
class ClaimState:
    """What the router knows about a matched claim; ``entries`` grows as a remittance posts to it."""

    key: str
    account: str
    lines: tuple[ChargeLine, ...]
    coverage_levels: tuple[int, ...]
    patient_family: str = ""
    entries: list[LedgerEntry] = field(default_factory=list)

    def reversed_keys(self) -> set[str]:
        return {e.reverses for e in self.entries if e.reverses}


@dataclass(frozen=True)
class ClaimPosting:
    entries: tuple[LedgerEntry, ...] = ()
    exceptions: tuple[ExceptionDraft, ...] = ()
    posted: Decimal = ZERO  # CLP04 cash that reached the ledger
    held: Decimal = ZERO  # CLP04 cash held in an exception
    outcome: str = "posted"


def hold(kind: ExceptionType, claim: RemitClaim, state: ClaimState | None, reason: str,
         index: int, candidates: tuple[Candidate, ...] = ()) -> ClaimPosting:
    draft = ExceptionDraft(kind, reason, claim.paid, held=True, claim_key=claim.pcn,
                           account=state.account if state else None, candidates=candidates, claim_index=index)
    return ClaimPosting(exceptions=(draft,), held=claim.paid, outcome="held")


def post_claim(remit: Remittance, index: int, claim: RemitClaim, state: ClaimState, key: str,
               policy: PostingPolicy, *, accept_denial: bool = False) -> ClaimPosting:
    """Decide the ledger effect of one remittance claim matched to ``state``. ``accept_denial``: staff
    decided not to contest a denial, so it posts as adjudicated (CO adjusts, PR goes to the patient)."""
    if claim.status == "22":
        return _reverse(claim, state, key, index)
    if claim.status == "4" and not accept_denial:
        return hold(ExceptionType.DENIAL, claim, state, "CLP02=4: payer did not recognise the patient or "
                    "subscriber; check registration and eligibility", index)
    if claim.status == "23":
        return hold(ExceptionType.NOT_OUR_CLAIM, claim, state, "CLP02=23: not this payer's claim; it was "
                    "forwarded - check coverage order", index)
    if claim.status in NO_MONEY:
        return ClaimPosting(outcome="informational") if claim.paid == 0 else hold(
            ExceptionType.UNKNOWN_STATUS, claim, state, "predetermination (CLP02=25) with a payment", index)
    level = COVERAGE_LEVEL.get(claim.status)
    if level is None:
        return hold(ExceptionType.UNKNOWN_STATUS, claim, state, f"claim status CLP02={claim.status} is not "
                    "a 5010 status the hub posts", index)
    denial = "" if accept_denial else _denial(claim)
    if denial:
        return hold(ExceptionType.DENIAL, claim, state, denial, index)
    if level > 1 and not any(e.coverage_seq is not None and e.coverage_seq < level
                             and e.kind is not EntryKind.REVERSAL for e in state.entries):
        return hold(ExceptionType.SECONDARY_BEFORE_PRIMARY, claim, state,
                    f"processed as payer #{level} but nothing from payer #{level - 1} is posted yet", index)
    lines, problem = _match_lines(claim, state, level)
    if problem:
        return hold(problem[0], claim, state, problem[1], index)
    next_payer = (claim.status in FORWARDED or bool(claim.crossover_payer)
                  or any(seq > level for seq in state.coverage_levels))
    base = LedgerEntry(state.account, EntryKind.INSURANCE_PAYMENT, Responsibility.INSURANCE, ZERO, key, key,
                       claim=state.key, effective_date=remit.payment_date, payer=remit.payer_id,
                       coverage_seq=level, trace_number=remit.trace_number,
                       payer_claim_number=claim.payer_claim_number or None)
    entries: list[LedgerEntry] = []
    for line, charge_line in lines:
        entries += _line_entries(base, f"{key}:l{line.number}", charge_line, line.paid, line.adjustments,
                                 next_payer, policy)
    # The payment is CLP04, not the sum of SVC03: claim-level CAS (e.g. CO-253 sequestration) reduce what
    # the lines paid, so the claim-level part of the payment is CLP04 - sum(SVC03) (= -claim CAS).
    claim_level_paid = claim.paid - sum((line.paid for line in claim.lines), ZERO)
    entries += _line_entries(base, f"{key}:c", None, claim_level_paid, claim.adjustments, next_payer, policy)
    exceptions: list[ExceptionDraft] = []
    balance = sum((e.amount for e in [*state.entries, *entries] if e.responsibility is Responsibility.INSURANCE),
                  ZERO)
    if balance < 0:
        exceptions.append(ExceptionDraft(ExceptionType.CREDIT_BALANCE, f"claim overpaid: insurance balance "
                                         f"{fmt(balance)} after this payment", -balance, claim_key=claim.pcn,
                                         account=state.account, claim_index=index))
    return ClaimPosting(entries=tuple(entries), exceptions=tuple(exceptions), posted=claim.paid)


def _line_entries(base: LedgerEntry, key: str, line: ChargeLine | None, paid: Decimal, adjustments: Sequence[Cas],
                  next_payer: bool, policy: PostingPolicy) -> list[LedgerEntry]:
    # Entries are built from one dict of the shared fields (``changed`` per intermediate step built and
    # validated ~40% more entries than are kept: ~250,000 for a 10,000-claim 835).
    common = {**base.__dict__, "charge_line": line.line_no if line else None}
    out: list[LedgerEntry] = []
    if paid:
        out.append(LedgerEntry(**{**common, "amount": -paid, "idempotency_key": f"{key}:pay"}))
    for i, cas in enumerate(adjustments, start=1):
        adj = {**common, "idempotency_key": f"{key}:cas{i}", "group_code": cas.group, "reason_code": cas.reason}
        if cas.group == "PR":
            if next_payer or not cas.amount:
                continue  # stays insurance A/R: the next payer is billed for it
            to_patient = cas.amount > 0
            out += transfer_legs(LedgerEntry(**{
                **adj, "amount": abs(cas.amount),
                "kind": EntryKind.TRANSFER_TO_PATIENT if to_patient else EntryKind.TRANSFER_TO_INSURANCE,
                "responsibility": Responsibility.PATIENT if to_patient else Responsibility.INSURANCE}))
            continue
        if cas.group == "OA" and cas.reason in policy.oa_ignored_reasons:
            continue
        kind = {"CO": EntryKind.CONTRACTUAL_ADJUSTMENT, "OA": policy.oa_kind, "PI": policy.pi_kind}.get(
            cas.group, EntryKind.PAYER_ADJUSTMENT)
        out.append(LedgerEntry(**{**adj, "kind": kind, "amount": -cas.amount}))
    return out


def _reverse(claim: RemitClaim, state: ClaimState, key: str, index: int) -> ClaimPosting:
    """CLP02=22 negates an earlier payment of CLP07: reverse every entry it posted, exactly."""
    done = state.reversed_keys()
    originals = [e for e in state.entries if e.payer_claim_number == claim.payer_claim_number
                 and e.kind is not EntryKind.REVERSAL and e.idempotency_key not in done]
    if not claim.payer_claim_number or not originals:
        return hold(ExceptionType.REVERSAL_WITHOUT_ORIGINAL, claim, state, f"reversal of payer claim "
                    f"{claim.payer_claim_number or '(none)'}: no posted original found", index)
    original_paid = -sum((e.amount for e in originals if e.kind is EntryKind.INSURANCE_PAYMENT), ZERO)
    if original_paid != -claim.paid:
        return hold(ExceptionType.REVERSAL_WITHOUT_ORIGINAL, claim, state, f"reversal of {fmt(-claim.paid)} "
                    f"does not match the original payment {fmt(original_paid)}", index)
    entries = tuple(reversal_of(e, idempotency_key=f"{key}:rev:{e.idempotency_key}", source_id=key,
                                memo=f"CLP02=22 reversal of {claim.payer_claim_number}") for e in originals)
    return ClaimPosting(entries=entries, posted=claim.paid, outcome="reversed")


def _denial(claim: RemitClaim) -> str:
    """A zero-paid claim or line whose adjustments carry a denial-type CARC (not PR)."""
    def denial_codes(adjustments: Sequence[Cas]) -> list[str]:
        return [f"{a.group}-{a.reason}" for a in adjustments if a.reason in DENIAL_CARCS and a.group != "PR"]

    if claim.paid == 0 and (codes := denial_codes(claim.all_adjustments())):
        return f"claim paid 0.00 with denial reason(s) {', '.join(codes)}"
    for line in claim.lines:
        if line.paid == 0 and (codes := denial_codes(line.adjustments)):
            return f"line {line.number} ({line.code}) paid 0.00 with denial reason(s) {', '.join(codes)}"
    return ""


def _match_lines(claim: RemitClaim, state: ClaimState, level: int,
                 ) -> tuple[list[tuple[RemitLine, ChargeLine | None]], tuple[ExceptionType, str] | None]:
    """Lines match by REF*6R, then SVC06, then code+modifiers, then code+charge; each billed line once."""
    if not claim.lines:
        total = sum((line.amount for line in state.lines), ZERO)
        if claim.charge != total and not claim.split:
            return [], (ExceptionType.CHARGE_MISMATCH, f"payer charge {fmt(claim.charge)} ≠ billed {fmt(total)}")
        return [], None
    reversed_keys = state.reversed_keys()
    paid_here = {e.charge_line for e in state.entries if e.kind is EntryKind.INSURANCE_PAYMENT
                 and e.coverage_seq == level and e.idempotency_key not in reversed_keys}
    free = [line for line in state.lines if line.line_no not in paid_here] or list(state.lines)
    matched: list[tuple[RemitLine, ChargeLine | None]] = []
    for rl in claim.lines:
        found = _find_line(rl, free)
        if found is None:
            return [], (ExceptionType.UNMATCHED_LINE, f"service line {rl.number} ({rl.code}"
                        f"{':' + ':'.join(rl.modifiers) if rl.modifiers else ''}, {fmt(rl.charge)}) matches no "
                        f"billed line of claim {state.key}")
        if found.amount != rl.charge:
            return [], (ExceptionType.CHARGE_MISMATCH, f"service line {rl.number} ({rl.code}): payer charge "
                        f"{fmt(rl.charge)} ≠ billed {fmt(found.amount)}")
        free.remove(found)
        matched.append((rl, found))
    return matched, None


def _find_line(rl: RemitLine, free: Sequence[ChargeLine]) -> ChargeLine | None:
    code, mods = (rl.original_code, rl.original_modifiers) if rl.original_code else (rl.code, rl.modifiers)
    for c in free:
        if rl.line_control and c.line_control == rl.line_control:
            return c
    # Several free lines can share code and modifiers (the same service billed twice at different
    # charges): take the one with the same charge first, so a payer listing them in another order matches.
    same = [c for c in free if c.code == code and c.modifiers == mods]
    if same:
        return next((c for c in same if c.amount == rl.charge), same[0])
    return next((c for c in free if c.code == code and c.amount == rl.charge), None)
