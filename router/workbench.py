"""Workbench handlers: billing staff's actions on reconciliation exceptions, as commands on the same bus.

Each handler takes the optimistic lock on the exception (``WorkbenchRepository.lock``: a stale version is
refused with ``StaleItem``), posts ledger entries through the same code as automatic posting (``post_claim``
for a matched held claim; ``LedgerEntry``/``transfer_legs`` for write-offs, transfers and refunds), writes the
item's history and an audit row in the same transaction, and returns events that the bus puts in the outbox.
The bus's inbox keys each command by its ``source_id`` (one per submitted form): a double submit posts once.
Roles are checked by the API (a supervisor decides write-offs); handlers enforce the rules that hold for
anyone: the four-eyes rule on approvals, amounts within the claim's balance, one resolution per item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from functools import partial
from typing import Any

from router.adapters.orm import ExceptionRow, RemitClaimRow, RemittanceRow, utcnow
from router.adapters.workbench import ClaimRef, WorkbenchRepository
from router.domain import events
from router.domain.errors import DomainViolation
from router.domain.exceptions import ExceptionType
from router.domain.ledger import EntryKind, LedgerEntry, Responsibility, transfer_legs
from router.domain.money import ZERO, fmt, from_cents, to_cents
from router.domain.posting import PostingPolicy, post_claim
from router.domain.remittance import RemitClaim, Remittance
from router.domain.workbench import (
    AcceptDenial,
    Action,
    AddNote,
    AssignException,
    DecideWriteOff,
    ExceptionActed,
    ExceptionCommand,
    HeldClaimPosted,
    MarkForFollowUp,
    MatchException,
    RefundCredit,
    TransferToPatient,
    WorkbenchPolicy,
    WriteOff,
)
from router.unit_of_work import UnitOfWork

OPEN, PENDING, RESOLVED = "open", "pending_approval", "resolved"


def _locked(cmd: ExceptionCommand, uow: UnitOfWork, *allowed: str) -> tuple[WorkbenchRepository, ExceptionRow]:
    repo = WorkbenchRepository(uow.session)
    row = repo.lock(cmd.exception_id, cmd.expected_version)
    if row.status not in allowed:
        raise DomainViolation(f"exception #{row.id} is {row.status}; this action needs it {' or '.join(allowed)}",
                              location=f"exception #{row.id}")
    return repo, row


def _claim(repo: WorkbenchRepository, row: ExceptionRow, uow: UnitOfWork) -> ClaimRef:
    claim = repo.claim_for(row)
    if claim is None:
        raise DomainViolation(f"exception #{row.id} concerns no known claim: match it to a claim first",
                              location=f"exception #{row.id}")
    uow.lock_accounts([claim.account])  # serialize with automatic posting on the same account
    return claim


def _resolve(row: ExceptionRow, resolution: str) -> None:
    _not_holding_cash(row)
    row.status, row.resolved_at, row.resolution = RESOLVED, utcnow(), resolution


def _not_holding_cash(row: ExceptionRow) -> None:
    """An item that still holds the payer's money (``held``, ``amount``) cannot be resolved by a write-off,
    transfer, refund or follow-up: nothing could post that money afterwards, and the remittance would stay
    'partial' for good. It is posted first (match, or accept the denial), which clears ``held``."""
    if row.held and row.amount_cents:
        raise DomainViolation(f"exception #{row.id} holds {fmt(from_cents(row.amount_cents))} of the payer's "
                              "payment: post it first (match it, or accept the denial), then settle the rest",
                              location=f"exception #{row.id}")


def _acted(cmd: ExceptionCommand, row: ExceptionRow, action: Action, amount: Decimal = ZERO,
           claim: ClaimRef | None = None) -> ExceptionActed:
    return ExceptionActed(cmd.source_id, row.id, action.value, cmd.actor, claim.account if claim else row.account,
                          claim.key if claim else (row.claim_key or None), amount, row.status)


def assign_exception(cmd: AssignException, uow: UnitOfWork) -> Sequence[events.Event]:
    repo, row = _locked(cmd, uow, OPEN, PENDING)
    row.assignee = cmd.assignee or None
    repo.record(row.id, cmd.source_id, Action.ASSIGN, cmd.actor, detail=f"assignee={cmd.assignee}",
                origin=cmd.origin)
    return [_acted(cmd, row, Action.ASSIGN)]


def match_exception(cmd: MatchException, uow: UnitOfWork, policy: PostingPolicy) -> Sequence[events.Event]:
    """Post a held, unmatched remittance claim to the claim staff chose, by the automatic posting rules."""
    repo, row = _locked(cmd, uow, OPEN)
    remit_claim, remittance = repo.remit_claim(row), repo.remittance(row)
    if row.type != ExceptionType.UNMATCHED_CLAIM or remit_claim is None or remittance is None:
        raise DomainViolation(f"exception #{row.id} ({row.type}) is not an unmatched remittance claim")
    if remit_claim.claim_id is not None:
        raise DomainViolation(f"remittance claim {remit_claim.pcn!r} is already matched")
    claim = repo.claim_by_key(cmd.claim_key)
    if claim is None:
        raise DomainViolation(f"no claim {cmd.claim_key!r}", location="claim_key")
    uow.lock_accounts([claim.account])
    return _post_held(cmd, cmd.remit_claim, uow, repo, row, remit_claim, remittance, claim, policy, Action.MATCH,
                      f"matched to claim {claim.key}")


def accept_denial(cmd: AcceptDenial, uow: UnitOfWork, policy: PostingPolicy) -> Sequence[events.Event]:
    """Post a held denial as adjudicated: staff will not appeal it. Before this the cash a partly paid denial
    held could never be released (a write-off left it held and the remittance 'partial' for good)."""
    repo, row = _locked(cmd, uow, OPEN)
    remit_claim, remittance = repo.remit_claim(row), repo.remittance(row)
    if row.type != ExceptionType.DENIAL or not row.held or remit_claim is None or remittance is None:
        raise DomainViolation(f"exception #{row.id} ({row.type}) is not a held denial")
    claim = _claim(repo, row, uow)
    return _post_held(cmd, cmd.remit_claim, uow, repo, row, remit_claim, remittance, claim, policy,
                      Action.ACCEPT_DENIAL, "denial accepted: posted as the payer adjudicated it", accept_denial=True)


def _post_held(cmd: ExceptionCommand, sent: RemitClaim, uow: UnitOfWork, repo: WorkbenchRepository,
               row: ExceptionRow, remit_claim: RemitClaimRow, remittance: RemittanceRow, claim: ClaimRef,
               policy: PostingPolicy, action: Action, resolution: str, *,
               accept_denial: bool = False) -> Sequence[events.Event]:
    """Post the remittance claim an exception holds to ``claim`` by the automatic posting rules, moving its
    cash from held to posted, and resolve the exception."""
    if sent.pcn != remit_claim.pcn or to_cents(sent.paid) != remit_claim.paid_cents:
        raise DomainViolation("the remittance claim sent is not the one held by this exception")
    remit = Remittance(remittance.payer_id, remittance.payer_name, remittance.payee_id, remittance.payee_name,
                       remittance.trace_number, from_cents(remittance.payment_cents), remittance.method,
                       remittance.payment_date, claims=(sent,), control_number=remittance.control_number)
    state = uow.remittances.states([claim.id])[claim.id]
    result = post_claim(remit, remit_claim.seq, sent, state, cmd.source_id, policy, accept_denial=accept_denial)
    if result.outcome == "held":
        reason = result.exceptions[0].reason if result.exceptions else "it would be held again"
        raise DomainViolation(f"claim {claim.key} cannot take this payment: {reason}", location="claim_key")
    uow.ledger.append(result.entries)
    if result.exceptions:  # e.g. an overpayment: a credit balance to refund
        uow.remittances.add_exceptions(cmd.source_id, remittance.id, remittance.payer_id,
                                       [(d, remit_claim.id) for d in result.exceptions])
    # Cash moves from held to posted: posted + held + PLB = BPR02 still holds for the remittance.
    remittance.posted_cents += to_cents(result.posted)
    remittance.held_cents -= remit_claim.paid_cents
    remittance.status = "partial" if remittance.held_cents else "posted"
    remit_claim.claim_id, remit_claim.outcome = claim.id, result.outcome
    row.account, row.held = claim.account, False
    _resolve(row, resolution)
    repo.record(row.id, cmd.source_id, action, cmd.actor, result.posted, detail=f"claim={claim.key}",
                origin=cmd.origin)
    return [_acted(cmd, row, action, result.posted, claim),
            HeldClaimPosted(cmd.source_id, row.id, claim.account, claim.key, remittance.payer_id,
                            remittance.trace_number, result.posted, len(result.entries))]


def _within(amount: Decimal, balance: Decimal, what: str, responsibility: Responsibility) -> None:
    if amount > balance:
        raise DomainViolation(f"{what} {fmt(amount)} exceeds the claim's {responsibility} balance {fmt(balance)}",
                              location="amount")


def write_off(cmd: WriteOff, uow: UnitOfWork, policy: WorkbenchPolicy) -> Sequence[events.Event]:
    repo, row = _locked(cmd, uow, OPEN)
    _not_holding_cash(row)  # now, not only at _resolve: a write-off over the threshold waits for approval
    claim = _claim(repo, row, uow)
    _within(cmd.amount, repo.claim_balance(claim.id, cmd.responsibility), "write-off", cmd.responsibility)
    if cmd.amount > policy.write_off_threshold:
        repo.add_approval(row.id, cmd.source_id, cmd.amount, cmd.responsibility, cmd.reason, cmd.actor)
        row.status = PENDING
        repo.record(row.id, cmd.source_id, Action.WRITE_OFF_REQUESTED, cmd.actor, cmd.amount,
                    detail=f"over the {fmt(policy.write_off_threshold)} threshold", origin=cmd.origin)
        return [_acted(cmd, row, Action.WRITE_OFF_REQUESTED, cmd.amount, claim)]
    _post_write_off(uow, claim, cmd.amount, cmd.responsibility, cmd.reason, cmd.source_id)
    _resolve(row, f"written off {fmt(cmd.amount)}: {cmd.reason}")
    repo.record(row.id, cmd.source_id, Action.WRITE_OFF, cmd.actor, cmd.amount, origin=cmd.origin)
    return [_acted(cmd, row, Action.WRITE_OFF, cmd.amount, claim)]


def decide_write_off(cmd: DecideWriteOff, uow: UnitOfWork) -> Sequence[events.Event]:
    repo, row = _locked(cmd, uow, PENDING)
    approval = repo.approval(cmd.approval_id)
    if approval is None or approval.exception_id != row.id or approval.status != "pending":
        raise DomainViolation(f"no pending write-off #{cmd.approval_id} on exception #{row.id}")
    if approval.requested_by == cmd.actor:
        raise DomainViolation("a write-off needs a second person: you requested this one")
    claim = _claim(repo, row, uow)
    amount, responsibility = from_cents(approval.amount_cents), Responsibility(approval.responsibility)
    if not cmd.approve:
        repo.decide(approval, "rejected", cmd.actor, cmd.comment)
        row.status = OPEN
        repo.record(row.id, cmd.source_id, Action.WRITE_OFF_REJECTED, cmd.actor, amount, origin=cmd.origin)
        return [_acted(cmd, row, Action.WRITE_OFF_REJECTED, amount, claim)]
    _within(amount, repo.claim_balance(claim.id, responsibility), "write-off", responsibility)
    _post_write_off(uow, claim, amount, responsibility, approval.reason, cmd.source_id)
    repo.decide(approval, "approved", cmd.actor, cmd.comment)
    _resolve(row, f"written off {fmt(amount)} (approved by {cmd.actor}): {approval.reason}")
    repo.record(row.id, cmd.source_id, Action.WRITE_OFF_APPROVED, cmd.actor, amount, origin=cmd.origin)
    return [_acted(cmd, row, Action.WRITE_OFF_APPROVED, amount, claim)]


def _post_write_off(uow: UnitOfWork, claim: ClaimRef, amount: Decimal, responsibility: Responsibility,
                    reason: str, source_id: str) -> None:
    uow.ledger.append([LedgerEntry(claim.account, EntryKind.WRITE_OFF, responsibility, -amount,
                                   f"{source_id}:write_off", source_id, claim=claim.key,
                                   effective_date=date.today(), memo=reason)])


def transfer_to_patient(cmd: TransferToPatient, uow: UnitOfWork) -> Sequence[events.Event]:
    repo, row = _locked(cmd, uow, OPEN)
    claim = _claim(repo, row, uow)
    _within(cmd.amount, repo.claim_balance(claim.id, Responsibility.INSURANCE), "transfer", Responsibility.INSURANCE)
    uow.ledger.append(transfer_legs(LedgerEntry(
        claim.account, EntryKind.TRANSFER_TO_PATIENT, Responsibility.PATIENT, cmd.amount, f"{cmd.source_id}:transfer",
        cmd.source_id, claim=claim.key, effective_date=date.today(), memo=cmd.reason or "transferred by staff")))
    _resolve(row, f"{fmt(cmd.amount)} transferred to patient responsibility")
    repo.record(row.id, cmd.source_id, Action.TRANSFER_TO_PATIENT, cmd.actor, cmd.amount, origin=cmd.origin)
    return [_acted(cmd, row, Action.TRANSFER_TO_PATIENT, cmd.amount, claim)]


def mark_for_follow_up(cmd: MarkForFollowUp, uow: UnitOfWork) -> Sequence[events.Event]:
    repo, row = _locked(cmd, uow, OPEN)
    claim = repo.claim_for(row)
    _resolve(row, f"{cmd.action}: {cmd.reason}".rstrip(": "))
    repo.record(row.id, cmd.source_id, cmd.action, cmd.actor, origin=cmd.origin)
    return [_acted(cmd, row, cmd.action, ZERO, claim)]


def refund_credit(cmd: RefundCredit, uow: UnitOfWork) -> Sequence[events.Event]:
    repo, row = _locked(cmd, uow, OPEN)
    claim = _claim(repo, row, uow)
    credit = -repo.claim_balance(claim.id, cmd.responsibility)
    if credit <= 0:
        raise DomainViolation(f"claim {claim.key} has no {cmd.responsibility} credit balance to refund")
    _within(cmd.amount, credit, "refund", cmd.responsibility)
    uow.ledger.append([LedgerEntry(claim.account, EntryKind.REFUND, cmd.responsibility, cmd.amount,
                                   f"{cmd.source_id}:refund", cmd.source_id, claim=claim.key,
                                   effective_date=date.today(), memo=cmd.reason or "credit balance refund")])
    _resolve(row, f"refunded {fmt(cmd.amount)} to the {'payer' if cmd.responsibility == 'insurance' else 'patient'}")
    repo.record(row.id, cmd.source_id, Action.REFUND, cmd.actor, cmd.amount, origin=cmd.origin)
    return [_acted(cmd, row, Action.REFUND, cmd.amount, claim)]


def add_note(cmd: AddNote, uow: UnitOfWork) -> Sequence[events.Event]:
    """Notes never conflict: no version check, the item's version is left alone."""
    repo = WorkbenchRepository(uow.session)
    row = repo.get(cmd.exception_id)
    repo.add_note(row.id, cmd.source_id, cmd.actor, cmd.body)
    repo.record(row.id, cmd.source_id, Action.NOTE, cmd.actor, origin=cmd.origin)
    return [_acted(cmd, row, Action.NOTE)]


Handler = Callable[[Any, UnitOfWork], Sequence[events.Event]]


def workbench_handlers(posting: PostingPolicy | None = None,
                       policy: WorkbenchPolicy | None = None) -> dict[type, Handler]:
    """The workbench's part of the command -> handler mapping (merged into the bus's by the composition root)."""
    wb = policy or WorkbenchPolicy()
    return {
        AssignException: assign_exception,
        MatchException: partial(match_exception, policy=posting or PostingPolicy()),
        AcceptDenial: partial(accept_denial, policy=posting or PostingPolicy()),
        WriteOff: partial(write_off, policy=wb),
        DecideWriteOff: decide_write_off,
        TransferToPatient: transfer_to_patient,
        MarkForFollowUp: mark_for_follow_up,
        RefundCredit: refund_credit,
        AddNote: add_note,
    }
