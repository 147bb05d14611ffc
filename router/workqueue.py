"""Read side of the billing workbench: the exception work queue (filters, sort, pages), one item's detail,
and an account's full picture (balances by responsibility and payer, claims with their adjudication history,
payments, plans, notices, ledger). Plain column selects; money leaves as ``Decimal``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from router.adapters.orm import (
    AccountRow,
    ChargeLineRow,
    ClaimRow,
    CoverageRow,
    ExceptionRow,
    LedgerRow,
    PatientRow,
    RemitClaimRow,
    RemittanceRow,
)
from router.adapters.orm_notices import NoticeRow
from router.adapters.orm_payments import PaymentPlanRow
from router.adapters.orm_workbench import ExceptionActionRow, ExceptionNoteRow, WriteOffApprovalRow
from router.domain.money import from_cents, to_cents

SORTS: dict[str, tuple[Any, ...]] = {
    "oldest": (ExceptionRow.created_at.asc(), ExceptionRow.id.asc()),
    "newest": (ExceptionRow.created_at.desc(), ExceptionRow.id.desc()),
    "amount_desc": (ExceptionRow.amount_cents.desc(), ExceptionRow.id.asc()),
    "amount_asc": (ExceptionRow.amount_cents.asc(), ExceptionRow.id.asc()),
    "type": (ExceptionRow.type.asc(), ExceptionRow.id.asc()),
    "payer": (ExceptionRow.payer.asc(), ExceptionRow.id.asc()),
}
STATUSES = ("open", "pending_approval", "resolved", "all")


@dataclass(frozen=True)
class QueueFilter:
    status: str = "open"
    types: tuple[str, ...] = ()
    payer: str = ""
    min_age_days: int | None = None
    max_age_days: int | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    assignee: str = ""  # a user name, "unassigned", or "" for anyone
    search: str = ""  # claim key or account number, exact
    sort: str = "oldest"
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class QueuePage:
    items: list[dict[str, Any]]
    page: int
    per_page: int
    has_next: bool
    filters: QueueFilter = field(default_factory=QueueFilter)


_S = TypeVar("_S", bound="Select[*tuple[Any, ...]]")


def _where(query: _S, f: QueueFilter, now: datetime) -> _S:
    if f.status != "all":
        query = query.where(ExceptionRow.status == f.status)
    if f.types:
        query = query.where(ExceptionRow.type.in_(f.types))
    if f.payer:
        query = query.where(ExceptionRow.payer == f.payer)
    if f.min_age_days is not None:  # at least N days old: created on or before now - N days
        query = query.where(ExceptionRow.created_at <= now - timedelta(days=f.min_age_days))
    if f.max_age_days is not None:
        query = query.where(ExceptionRow.created_at > now - timedelta(days=f.max_age_days + 1))
    if f.min_amount is not None:
        query = query.where(ExceptionRow.amount_cents >= to_cents(f.min_amount))
    if f.max_amount is not None:
        query = query.where(ExceptionRow.amount_cents <= to_cents(f.max_amount))
    if f.assignee == "unassigned":
        query = query.where(ExceptionRow.assignee.is_(None))
    elif f.assignee:
        query = query.where(ExceptionRow.assignee == f.assignee)
    if f.search:
        query = query.where(or_(ExceptionRow.claim_key == f.search, ExceptionRow.account == f.search))
    return query


def work_queue(session: Session, f: QueueFilter, now: datetime | None = None) -> QueuePage:
    """One page of the queue; ``per_page + 1`` rows are read to know whether another page follows."""
    now = now or datetime.now(UTC)
    x = ExceptionRow
    query = (select(x.id, x.type, x.status, x.payer, x.claim_key, x.account, x.amount_cents, x.held, x.reason,
                    x.assignee, x.version, x.created_at, x.candidates)
             .order_by(*SORTS.get(f.sort, SORTS["oldest"]))
             .limit(f.per_page + 1).offset((max(f.page, 1) - 1) * f.per_page))
    rows = session.execute(_where(query, f, now)).all()
    items = []
    for r in rows[:f.per_page]:
        created = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)
        candidates = json.loads(r.candidates) if r.candidates and r.candidates != "[]" else []
        items.append({"id": r.id, "type": r.type, "status": r.status, "payer": r.payer, "claim": r.claim_key or None,
                      "account": r.account, "amount": from_cents(r.amount_cents), "held": r.held,
                      "reason": r.reason, "assignee": r.assignee, "version": r.version,
                      "created_at": created, "age_days": (now - created).days,
                      "best_candidate": candidates[0] if candidates else None})
    return QueuePage(items, f.page, f.per_page, len(rows) > f.per_page, f)


def queue_payers(session: Session) -> list[tuple[str, str]]:
    """(payer id, name) for the payer filter: from the remittances (far fewer rows than the exceptions)."""
    rows = session.execute(select(RemittanceRow.payer_id, func.max(RemittanceRow.payer_name))
                           .group_by(RemittanceRow.payer_id).order_by(RemittanceRow.payer_id).limit(200)).all()
    return [(p, n or p) for p, n in rows]


def exception_detail(session: Session, exception_id: int) -> dict[str, Any] | None:
    """The item, its remittance and remittance claim (raw segments), candidates, claim ledger and history."""
    row = session.get(ExceptionRow, exception_id)
    if row is None:
        return None
    remittance = session.get(RemittanceRow, row.remittance_id) if row.remittance_id else None
    remit_claim = session.get(RemitClaimRow, row.remit_claim_id) if row.remit_claim_id else None
    claim_id = remit_claim.claim_id if remit_claim and remit_claim.claim_id else None
    if claim_id is None and row.claim_key:
        claim_id = session.scalar(select(ClaimRow.id).where(ClaimRow.key == row.claim_key))
    account = row.account
    if claim_id is not None and account is None:
        account = session.scalar(select(AccountRow.number).join(ClaimRow, ClaimRow.account_id == AccountRow.id)
                                 .where(ClaimRow.id == claim_id))
    notes = session.execute(select(ExceptionNoteRow.author, ExceptionNoteRow.body, ExceptionNoteRow.created_at)
                            .where(ExceptionNoteRow.exception_id == row.id).order_by(ExceptionNoteRow.id)).all()
    a = ExceptionActionRow
    history = session.execute(select(a.action, a.actor, a.amount_cents, a.detail, a.at)
                              .where(ExceptionActionRow.exception_id == row.id).order_by(ExceptionActionRow.id)).all()
    approvals = session.scalars(select(WriteOffApprovalRow).where(WriteOffApprovalRow.exception_id == row.id)
                                .order_by(WriteOffApprovalRow.id)).all()
    return {
        "id": row.id, "type": row.type, "status": row.status, "version": row.version, "payer": row.payer,
        "claim": row.claim_key or None, "account": account, "amount": from_cents(row.amount_cents), "held": row.held,
        "reason": row.reason, "assignee": row.assignee, "created_at": row.created_at, "resolved_at": row.resolved_at,
        "resolution": row.resolution, "candidates": json.loads(row.candidates or "[]"),
        "remittance": None if remittance is None else {
            "id": remittance.id, "payer_name": remittance.payer_name, "payer_id": remittance.payer_id,
            "trace_number": remittance.trace_number, "payment_date": remittance.payment_date,
            "payment_amount": from_cents(remittance.payment_cents)},
        "remit_claim": None if remit_claim is None else {
            "pcn": remit_claim.pcn, "status": remit_claim.status, "charge": from_cents(remit_claim.charge_cents),
            "paid": from_cents(remit_claim.paid_cents), "payer_claim_number": remit_claim.payer_claim_number,
            "outcome": remit_claim.outcome, "raw": remit_claim.raw},
        "claim_ledger": claim_ledger(session, claim_id) if claim_id is not None else [],
        "matched_claim": session.scalar(select(ClaimRow.key).where(ClaimRow.id == claim_id)) if claim_id else None,
        "notes": [{"author": a, "body": b, "at": t} for a, b, t in notes],
        "history": [{"action": n, "actor": u, "amount": from_cents(c), "detail": d, "at": t}
                    for n, u, c, d, t in history],
        "approvals": [{"id": a.id, "amount": from_cents(a.amount_cents), "responsibility": a.responsibility,
                       "reason": a.reason, "requested_by": a.requested_by, "requested_at": a.requested_at,
                       "status": a.status, "decided_by": a.decided_by, "decided_at": a.decided_at}
                      for a in approvals],
    }


_LEDGER_VIEW = (LedgerRow.id, LedgerRow.kind, LedgerRow.responsibility, LedgerRow.amount_cents,
                LedgerRow.effective_date, LedgerRow.posted_at, LedgerRow.payer, LedgerRow.coverage_seq,
                LedgerRow.trace_number,
                LedgerRow.group_code, LedgerRow.reason_code, LedgerRow.line_no, LedgerRow.idempotency_key,
                LedgerRow.reverses, LedgerRow.memo)


def _entry(r: Any, claim: str | None = None) -> dict[str, Any]:
    return {"kind": r.kind, "responsibility": r.responsibility, "amount": from_cents(r.amount_cents),
            "effective_date": r.effective_date, "posted_at": r.posted_at, "payer": r.payer,
            "coverage_seq": r.coverage_seq, "trace_number": r.trace_number,
            "adjustment": f"{r.group_code}-{r.reason_code}" if r.group_code else None, "line": r.line_no,
            "key": r.idempotency_key, "reverses": r.reverses, "memo": r.memo, "claim": claim}


def claim_ledger(session: Session, claim_id: int) -> list[dict[str, Any]]:
    rows = session.execute(select(*_LEDGER_VIEW).where(LedgerRow.claim_id == claim_id).order_by(LedgerRow.id)).all()
    return [_entry(r) for r in rows]


def account_detail(session: Session, number: str, ledger_limit: int = 500) -> dict[str, Any] | None:
    account = session.scalar(select(AccountRow).where(AccountRow.number == number))
    if account is None:
        return None
    aid = account.id
    by = session.execute(
        select(LedgerRow.responsibility, LedgerRow.payer, func.sum(LedgerRow.amount_cents))
        .where(LedgerRow.account_id == aid).group_by(LedgerRow.responsibility, LedgerRow.payer)
    ).all()
    insurance = sum((c for r, _, c in by if r == "insurance"), 0)
    patient = sum((c for r, _, c in by if r == "patient"), 0)
    patients = session.execute(select(PatientRow.mrn, PatientRow.family, PatientRow.given, PatientRow.birth_date)
                               .where(PatientRow.account_id == aid)).all()
    coverages = session.execute(select(CoverageRow.sequence, CoverageRow.payer_id, CoverageRow.payer_name,
                                       CoverageRow.member_id, CoverageRow.plan)
                                .where(CoverageRow.account_id == aid).order_by(CoverageRow.sequence)).all()
    claims = _claims(session, aid)
    ledger = session.execute(select(*_LEDGER_VIEW, ClaimRow.key)
                             .outerjoin(ClaimRow, ClaimRow.id == LedgerRow.claim_id).where(LedgerRow.account_id == aid)
                             .order_by(LedgerRow.id.desc()).limit(ledger_limit)).all()
    payments = [e for e in (_entry(r, r.key) for r in ledger)
                if e["kind"] in ("patient_payment", "insurance_payment", "refund")]
    plans = session.execute(select(PaymentPlanRow.plan_ref, PaymentPlanRow.total_cents, PaymentPlanRow.installments,
                                   PaymentPlanRow.frequency, PaymentPlanRow.first_due, PaymentPlanRow.status)
                            .where(PaymentPlanRow.account_id == aid).order_by(PaymentPlanRow.id)).all()
    notices = session.execute(select(NoticeRow.kind, NoticeRow.channel, NoticeRow.status, NoticeRow.amount_cents,
                                     NoticeRow.due_on, NoticeRow.sent_at)
                              .where(NoticeRow.account_id == aid).order_by(NoticeRow.id.desc()).limit(50)).all()
    return {
        "account": number, "guarantor": account.guarantor,
        "balances": {"insurance": from_cents(insurance), "patient": from_cents(patient),
                     "total": from_cents(insurance + patient)},
        "by_payer": [{"responsibility": r, "payer": p or None, "balance": from_cents(c)}
                     for r, p, c in sorted(by, key=lambda t: (t[0], t[1] or "")) if c],
        "patients": [{"mrn": m, "family": f, "given": g, "birth_date": b} for m, f, g, b in patients],
        "coverages": [{"sequence": s, "payer_id": p, "payer_name": n, "member_id": m, "plan": pl}
                      for s, p, n, m, pl in coverages],
        "claims": claims,
        "payments": payments,
        "plans": [{"plan": p, "total": from_cents(t), "installments": i, "frequency": f, "first_due": d, "status": s}
                  for p, t, i, f, d, s in plans],
        "notices": [{"kind": k, "channel": c, "status": s, "amount": from_cents(a), "due_on": d, "sent_at": t}
                    for k, c, s, a, d, t in notices],
        "ledger": [_entry(r, r.key) for r in ledger],
    }


def _claims(session: Session, account_id: int) -> list[dict[str, Any]]:
    heads = session.execute(
        select(ClaimRow.id, ClaimRow.key, func.min(ChargeLineRow.service_date), func.coalesce(func.sum(
            ChargeLineRow.amount_cents), 0))
        .outerjoin(ChargeLineRow, ChargeLineRow.claim_id == ClaimRow.id)
        .where(ClaimRow.account_id == account_id).group_by(ClaimRow.id, ClaimRow.key).order_by(ClaimRow.id)).all()
    ids = [h[0] for h in heads]
    balances = {(cid, resp): cents for cid, resp, cents in session.execute(
        select(LedgerRow.claim_id, LedgerRow.responsibility, func.sum(LedgerRow.amount_cents))
        .where(LedgerRow.claim_id.in_(ids)).group_by(LedgerRow.claim_id, LedgerRow.responsibility))} if ids else {}
    history: dict[int, list[dict[str, Any]]] = {}
    if ids:
        for cid, pcn, status, charge, paid, icn, outcome, trace, payer, received in session.execute(
                select(RemitClaimRow.claim_id, RemitClaimRow.pcn, RemitClaimRow.status, RemitClaimRow.charge_cents,
                       RemitClaimRow.paid_cents, RemitClaimRow.payer_claim_number, RemitClaimRow.outcome,
                       RemittanceRow.trace_number, RemittanceRow.payer_name, RemittanceRow.received_at)
                .join(RemittanceRow, RemittanceRow.id == RemitClaimRow.remittance_id)
                .where(RemitClaimRow.claim_id.in_(ids)).order_by(RemitClaimRow.id)):
            history.setdefault(cid or 0, []).append({
                "pcn": pcn, "status": status, "charge": from_cents(charge), "paid": from_cents(paid),
                "payer_claim_number": icn, "outcome": outcome, "trace_number": trace, "payer": payer,
                "received_at": received})
    open_x = dict(session.execute(
        select(ExceptionRow.claim_key, func.count()).where(and_(ExceptionRow.status != "resolved",
                                                                ExceptionRow.claim_key.in_([h[1] for h in heads])))
        .group_by(ExceptionRow.claim_key)).all()) if heads else {}
    return [{"key": key, "service_date": dos, "charge": from_cents(int(total)),
             "insurance_balance": from_cents(int(balances.get((cid, "insurance"), 0))),
             "patient_balance": from_cents(int(balances.get((cid, "patient"), 0))),
             "adjudications": history.get(cid, []), "open_exceptions": int(open_x.get(key, 0))}
            for cid, key, dos, total in heads]


def status_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(ExceptionRow.status, func.count()).group_by(ExceptionRow.status)).all()
    return {s: int(n) for s, n in rows}


def held_claim_raw(session: Session, exception_id: int) -> str | None:
    """The raw 835 segments of the remittance claim an exception holds (for matching it by hand)."""
    return session.scalar(select(RemitClaimRow.raw).join(ExceptionRow, ExceptionRow.remit_claim_id == RemitClaimRow.id)
                          .where(ExceptionRow.id == exception_id))


def pending_approvals(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Write-offs waiting for a supervisor, oldest first."""
    w = WriteOffApprovalRow
    rows = session.execute(select(w.id, w.exception_id, w.amount_cents, w.reason, w.requested_by, w.requested_at,
                                  ExceptionRow.claim_key, ExceptionRow.account, ExceptionRow.version)
                           .join(ExceptionRow, ExceptionRow.id == w.exception_id)
                           .where(w.status == "pending").order_by(w.id).limit(limit)).all()
    return [{"id": r.id, "exception_id": r.exception_id, "amount": from_cents(r.amount_cents), "reason": r.reason,
             "requested_by": r.requested_by, "requested_at": r.requested_at, "claim": r.claim_key,
             "account": r.account, "version": r.version} for r in rows]
