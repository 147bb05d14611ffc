"""Read side: account balances and ledgers computed in SQL from the append-only entries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from router.adapters.orm import AccountRow, ClaimRow, ExceptionRow, LedgerRow, RemittanceRow
from router.domain.ledger import CHARGE_KINDS, Balances, EntryKind, Responsibility
from router.domain.money import fmt, from_cents


@dataclass(frozen=True)
class EntryView:
    kind: str
    responsibility: str
    amount: Decimal
    claim: str | None
    source: str
    key: str
    reverses: str | None


@dataclass(frozen=True)
class AccountView:
    account: str
    balances: Balances
    entries: tuple[EntryView, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "account": self.account,
            "charges": fmt(self.balances.charges),
            "insurance_balance": fmt(self.balances.insurance),
            "patient_balance": fmt(self.balances.patient),
            "total_balance": fmt(self.balances.total),
            "entries": [{"kind": e.kind, "responsibility": e.responsibility, "amount": fmt(e.amount),
                         "claim": e.claim, "source": e.source, "key": e.key, "reverses": e.reverses}
                        for e in self.entries],
        }


def account_balances(session: Session, account: str) -> Balances | None:
    """Balances by SQL aggregation; must always equal ``ledger.balances`` over the same entries."""
    effective_kind = func.coalesce(LedgerRow.reversed_kind, LedgerRow.kind)
    charge_kinds = [k.value for k in CHARGE_KINDS]
    row = session.execute(
        select(
            func.count(AccountRow.id.distinct()),
            func.coalesce(func.sum(case((effective_kind.in_(charge_kinds), LedgerRow.amount_cents), else_=0)), 0),
            func.coalesce(func.sum(case((LedgerRow.responsibility == Responsibility.INSURANCE.value,
                                         LedgerRow.amount_cents), else_=0)), 0),
            func.coalesce(func.sum(case((LedgerRow.responsibility == Responsibility.PATIENT.value,
                                         LedgerRow.amount_cents), else_=0)), 0),
        ).select_from(AccountRow).outerjoin(LedgerRow, LedgerRow.account_id == AccountRow.id)
        .where(AccountRow.number == account)
    ).one()
    if row[0] == 0:
        return None
    return Balances(charges=from_cents(int(row[1])), insurance=from_cents(int(row[2])),
                    patient=from_cents(int(row[3])))


def account_view(session: Session, account: str) -> AccountView | None:
    found = account_balances(session, account)
    if found is None:
        return None
    claim = aliased(ClaimRow)
    rows = session.execute(
        select(LedgerRow.kind, LedgerRow.responsibility, LedgerRow.amount_cents, claim.key, LedgerRow.source_id,
               LedgerRow.idempotency_key, LedgerRow.reverses)
        .join(AccountRow, AccountRow.id == LedgerRow.account_id)
        .outerjoin(claim, claim.id == LedgerRow.claim_id)
        .where(AccountRow.number == account).order_by(LedgerRow.id)
    ).all()
    entries = tuple(EntryView(kind=EntryKind(r[0]).value, responsibility=r[1], amount=from_cents(r[2]), claim=r[3],
                              source=r[4], key=r[5], reverses=r[6]) for r in rows)
    return AccountView(account, found, entries)


def exceptions_list(session: Session, status: str | None = "open", limit: int = 500, *, claim: str | None = None,
                    account: str | None = None) -> list[dict[str, object]]:
    """The exception queue as ``rcmhub exceptions list --json`` prints it, oldest first."""
    query = select(ExceptionRow).order_by(ExceptionRow.id).limit(limit)
    if status:
        query = query.where(ExceptionRow.status == status)
    if claim:
        query = query.where(ExceptionRow.claim_key == claim)
    if account:
        query = query.where(ExceptionRow.account == account)
    return [{"id": r.id, "type": r.type, "claim": r.claim_key or None, "account": r.account,
             "amount": fmt(from_cents(r.amount_cents)), "reason": r.reason, "status": r.status,
             "held": r.held, "payer": r.payer, "candidates": json.loads(r.candidates)}
            for r in session.scalars(query)]


def remittances_list(session: Session, limit: int = 500) -> list[dict[str, object]]:
    """Each remittance with its cash conservation: posted + held + PLB effect = payment (BPR02)."""
    rows = session.scalars(select(RemittanceRow).order_by(RemittanceRow.id.desc()).limit(limit))
    return [{"id": r.id, "payer": r.payer_name, "payer_id": r.payer_id, "trace_number": r.trace_number,
             "payment_amount": fmt(from_cents(r.payment_cents)), "posted": fmt(from_cents(r.posted_cents)),
             "held": fmt(from_cents(r.held_cents)), "plb": fmt(from_cents(r.plb_cents)),
             "conserved": r.posted_cents + r.held_cents + r.plb_cents == r.payment_cents,
             "status": r.status, "claims": r.claim_count, "received_at": r.received_at.isoformat()}
            for r in rows]
