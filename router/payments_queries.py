"""Read side of patient payments: plan status (``plan_is_current``, read by dunning), receipts, cards, lookups.

``plan_is_current(session, account)`` is the question collections asks before dunning an account: True
while the account has an active plan none of whose installments has a failed charge outstanding.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from router.adapters.orm import AccountRow, ClaimRow, LedgerRow
from router.adapters.orm_payments import (
    CardOnFileRow,
    GatewayCustomerRow,
    GatewayEventRow,
    PatientPaymentRow,
    PaymentConsentRow,
    PaymentPlanRow,
    PlanInstallmentRow,
)
from router.domain.money import fmt, from_cents


def plan_is_current(session: Session, account: str, today: date | None = None) -> bool:
    """An active plan with no installment declined (in retry or failed) and, given ``today``, none still
    waiting to be charged after its due date (autopay did not run). A charge in flight (ACH) counts as paying."""
    plan, inst = PaymentPlanRow, PlanInstallmentRow
    late: ColumnElement[bool] = inst.status.in_(("retry", "failed"))
    if today is not None:
        late = or_(late, and_(inst.status == "scheduled", inst.due_date < today))
    behind = select(inst.id).where(inst.plan_id == plan.id, late)
    found = session.scalar(select(plan.id).join(AccountRow, AccountRow.id == plan.account_id).where(
        AccountRow.number == account, plan.status == "active", ~exists(behind)).limit(1))
    return found is not None


def account_for_customer(session: Session, customer_ref: str) -> str | None:
    return session.scalar(select(AccountRow.number).join(GatewayCustomerRow).where(
        GatewayCustomerRow.customer_ref == customer_ref))


def account_for_plan(session: Session, plan_ref: str) -> str | None:
    return session.scalar(select(AccountRow.number).join(PaymentPlanRow).where(PaymentPlanRow.plan_ref == plan_ref))


def payment_for_ref(session: Session, gateway_payment_ref: str) -> tuple[str, str] | None:
    """(payment source id, account) of a posted gateway payment."""
    row = session.execute(select(PatientPaymentRow.source_id, AccountRow.number).join(AccountRow).where(
        PatientPaymentRow.gateway_payment_ref == gateway_payment_ref)).first()
    return (row[0], row[1]) if row else None


def receipt(session: Session, number: int) -> dict[str, object] | None:
    """A payment receipt: what was paid, how, and where it went (applied per claim line, unapplied credit)."""
    p = session.get(PatientPaymentRow, number)
    if p is None:
        return None
    account = session.scalar(select(AccountRow.number).where(AccountRow.id == p.account_id))
    rows = session.execute(select(LedgerRow.amount_cents, LedgerRow.line_no, LedgerRow.claim_id, LedgerRow.kind)
                           .where(LedgerRow.source_id == p.source_id).order_by(LedgerRow.id)).all()
    keys = dict(session.execute(select(ClaimRow.id, ClaimRow.key).where(
        ClaimRow.id.in_([r[2] for r in rows if r[2] is not None]))).all())
    return {
        "receipt": p.id, "account": account, "amount": fmt(from_cents(p.amount_cents)), "method": p.method,
        "channel": p.channel, "received_on": p.received_on.isoformat(), "check_number": p.check_number or None,
        "bank": p.bank or None, "reference": p.reference or None, "gateway_payment_ref": p.gateway_payment_ref,
        "wallet": p.wallet or None, "note": p.note or None, "status": p.status,
        "refunded": fmt(from_cents(p.refunded_cents)), "disputed": p.disputed or None,
        "applied": [{"claim": keys[r[2]], "line": r[1], "amount": fmt(-from_cents(r[0]))}
                    for r in rows if r[2] is not None and r[3] == "patient_payment"],
        "unapplied": fmt(-from_cents(sum(r[0] for r in rows if r[2] is None and r[3] == "patient_payment"))),
        "source_id": p.source_id,
    }


def cards_on_file(session: Session, account: str) -> list[dict[str, object]]:
    rows = session.scalars(select(CardOnFileRow).join(AccountRow).where(AccountRow.number == account)
                           .order_by(CardOnFileRow.id))
    return [{"payment_method": r.payment_method_ref, "brand": r.brand, "last4": r.last4,
             "exp": f"{r.exp_month:02d}/{r.exp_year}", "wallet": r.wallet or None, "active": r.active,
             "consent": r.consent_id} for r in rows]


def consents(session: Session, account: str) -> list[dict[str, object]]:
    rows = session.scalars(select(PaymentConsentRow).join(AccountRow).where(AccountRow.number == account)
                           .order_by(PaymentConsentRow.id))
    return [{"id": r.id, "scope": r.scope, "granted_by": r.granted_by, "granted_at": r.granted_at.isoformat(),
             "channel": r.channel, "text_version": r.text_version,
             "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]


def plan_view(session: Session, plan_ref: str) -> dict[str, object] | None:
    plan = session.scalar(select(PaymentPlanRow).where(PaymentPlanRow.plan_ref == plan_ref))
    if plan is None:
        return None
    account = session.scalar(select(AccountRow.number).where(AccountRow.id == plan.account_id))
    installments = session.scalars(select(PlanInstallmentRow).where(PlanInstallmentRow.plan_id == plan.id)
                                   .order_by(PlanInstallmentRow.seq))
    return {"plan": plan.plan_ref, "account": account, "status": plan.status,
            "total": fmt(from_cents(plan.total_cents)), "frequency": plan.frequency,
            "current": plan_is_current(session, str(account)),
            "installments": [{"seq": i.seq, "due": i.due_date.isoformat(), "amount": fmt(from_cents(i.amount_cents)),
                              "status": i.status, "attempts": i.attempts,
                              "next_attempt_on": i.next_attempt_on.isoformat(), "decline": i.last_decline or None}
                             for i in installments]}


def gateway_events(session: Session, status: str | None = None, limit: int = 200) -> list[dict[str, object]]:
    query = select(GatewayEventRow).order_by(GatewayEventRow.received_at.desc()).limit(limit)
    if status:
        query = query.where(GatewayEventRow.status == status)
    return [{"event": r.event_id, "type": r.type, "status": r.status, "detail": r.detail,
             "received_at": r.received_at.isoformat()} for r in session.scalars(query)]
