"""Payment records (adapter layer): receipts, refunds, gateway customers, consents, cards on file, plans.

The money of a payment is in the ledger; these rows hold what the ledger does not (method, check number,
gateway ids, consent, plan state). ``claim_due`` is the scheduler's claim: an atomic status change per
installment in its own short transaction, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so concurrent runners
never even wait on each other's rows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from router.adapters.orm import AccountRow
from router.adapters.orm_payments import (
    CardOnFileRow,
    GatewayCustomerRow,
    PatientPaymentRow,
    PaymentConsentRow,
    PaymentPlanRow,
    PaymentRefundRow,
    PlanInstallmentRow,
)
from router.adapters.repository import AccountRepository
from router.domain.money import from_cents, to_cents


class PaymentRepository:
    def __init__(self, session: Session, accounts: AccountRepository) -> None:
        self.session = session
        self.accounts = accounts

    # -- payments and refunds --------------------------------------------------------------------
    def add_payment(self, **fields: object) -> int:
        account = str(fields.pop("account"))
        for money_field in ("amount", "applied"):
            value = fields.pop(money_field)
            assert isinstance(value, Decimal)
            fields[f"{money_field}_cents"] = to_cents(value)
        row = PatientPaymentRow(account_id=self.accounts.id_for(account), **fields)
        self.session.add(row)
        self.session.flush()
        return row.id

    def payment(self, source_id: str) -> PatientPaymentRow | None:
        return self.session.scalar(select(PatientPaymentRow).where(PatientPaymentRow.source_id == source_id))

    def payment_by_ref(self, gateway_payment_ref: str) -> PatientPaymentRow | None:
        return self.session.scalar(select(PatientPaymentRow).where(
            PatientPaymentRow.gateway_payment_ref == gateway_payment_ref))

    def refund_seen(self, refund_ref: str) -> bool:
        return self.session.scalar(select(PaymentRefundRow.id).where(PaymentRefundRow.refund_ref == refund_ref)) \
            is not None

    def add_refund(self, payment: PatientPaymentRow, *, source_id: str, refund_ref: str, amount: Decimal,
                   on: date, reason: str) -> None:
        self.session.add(PaymentRefundRow(payment_id=payment.id, source_id=source_id, refund_ref=refund_ref or None,
                                          amount_cents=to_cents(amount), refunded_on=on, reason=reason))
        payment.refunded_cents += to_cents(amount)
        payment.status = "refunded" if payment.refunded_cents == payment.amount_cents else "partially_refunded"

    # -- gateway customers, consents, cards ------------------------------------------------------
    def link_customer(self, account: str, customer_ref: str, hub_ref: str) -> None:
        account_id = self.accounts.id_for(account)
        if self.session.scalar(select(GatewayCustomerRow.id).where(GatewayCustomerRow.account_id == account_id)):
            return
        self.session.add(GatewayCustomerRow(account_id=account_id, customer_ref=customer_ref, hub_ref=hub_ref))

    def customer_of(self, account: str) -> str | None:
        return self.session.scalar(select(GatewayCustomerRow.customer_ref).join(AccountRow).where(
            AccountRow.number == account))

    def add_consent(self, account: str, source_id: str, **fields: object) -> int:
        row = PaymentConsentRow(account_id=self.accounts.id_for(account), source_id=source_id, **fields)
        self.session.add(row)
        self.session.flush()
        return row.id

    def consent(self, consent_id: int) -> PaymentConsentRow | None:
        return self.session.get(PaymentConsentRow, consent_id)

    def live_consent(self, account: str, scope: str) -> int | None:
        return self.session.scalar(select(PaymentConsentRow.id).join(AccountRow).where(
            AccountRow.number == account, PaymentConsentRow.scope == scope,
            PaymentConsentRow.revoked_at.is_(None)).order_by(PaymentConsentRow.id.desc()).limit(1))

    def revoke_consent(self, row: PaymentConsentRow, by: str, at: datetime) -> None:
        row.revoked_at, row.revoked_by = at, by
        self.session.execute(update(CardOnFileRow).where(CardOnFileRow.consent_id == row.id).values(active=False))

    def save_card(self, account: str, **fields: object) -> bool:
        if self.card(str(fields["payment_method_ref"])) is not None:
            return False
        self.session.add(CardOnFileRow(account_id=self.accounts.id_for(account), **fields))
        return True

    def card(self, payment_method_ref: str) -> CardOnFileRow | None:
        return self.session.scalar(select(CardOnFileRow).where(CardOnFileRow.payment_method_ref == payment_method_ref))

    # -- plans -----------------------------------------------------------------------------------
    def add_plan(self, account: str, schedule: list[tuple[int, date, Decimal]], **fields: object) -> None:
        plan = PaymentPlanRow(account_id=self.accounts.id_for(account), **fields)
        self.session.add(plan)
        self.session.flush()
        self.session.add_all(PlanInstallmentRow(plan_id=plan.id, seq=seq, due_date=due, next_attempt_on=due,
                                                amount_cents=to_cents(amount), attempts=0, status="scheduled",
                                                payment_ref="", last_decline="")
                             for seq, due, amount in schedule)

    def plan(self, plan_ref: str) -> PaymentPlanRow | None:
        return self.session.scalar(select(PaymentPlanRow).where(PaymentPlanRow.plan_ref == plan_ref))

    def installment(self, plan_id: int, seq: int) -> PlanInstallmentRow | None:
        return self.session.scalar(select(PlanInstallmentRow).where(
            PlanInstallmentRow.plan_id == plan_id, PlanInstallmentRow.seq == seq).with_for_update())

    def unpaid_installments(self, plan_id: int) -> int:
        return len(self.session.scalars(select(PlanInstallmentRow.id).where(
            PlanInstallmentRow.plan_id == plan_id, PlanInstallmentRow.status != "paid")).all())


@dataclass(frozen=True)
class DueCharge:
    """An installment this runner has claimed: charge it under ``idempotency_key``, then record the result."""

    installment_id: int
    account: str
    plan_ref: str
    seq: int
    attempt: int
    amount: Decimal
    customer_ref: str
    payment_method_ref: str

    @property
    def idempotency_key(self) -> str:
        return f"rcmhub:plan:{self.plan_ref}:{self.seq}:{self.attempt}"


def claim_due(sessions: sessionmaker[Session], *, today: date, now: datetime, stale_after: timedelta,
              limit: int = 100, accounts: Collection[str] | None = None) -> list[DueCharge]:
    """Claim installments due by ``today`` (and claims older than ``stale_after``, whose runner died).

    Exactly-once: each row moves to ``charging`` by an UPDATE conditioned on the status and attempt count
    it was read with, so of two runners only one wins it; the loser's UPDATE matches no row. A stale claim
    is taken over with the SAME attempt number, hence the same gateway idempotency key: if the dead runner's
    charge went through, the gateway replays its result instead of charging again. ``accounts`` narrows the
    run to some accounts (``run-due --account``).
    """
    inst, plan, card, consent = PlanInstallmentRow, PaymentPlanRow, CardOnFileRow, PaymentConsentRow
    query = (
        select(inst.id, inst.status, inst.attempts, inst.seq, inst.amount_cents, plan.plan_ref, AccountRow.number,
               card.customer_ref, card.payment_method_ref)
        .join(plan, plan.id == inst.plan_id).join(AccountRow, AccountRow.id == plan.account_id)
        .join(card, card.id == plan.payment_method_id).join(consent, consent.id == plan.consent_id)
        .where(or_(and_(inst.status.in_(("scheduled", "retry")), inst.next_attempt_on <= today),
                   and_(inst.status == "charging", inst.claimed_at < now - stale_after)),
               plan.status == "active", card.active.is_(True), consent.revoked_at.is_(None))
        .order_by(inst.next_attempt_on, inst.id).limit(limit)
    )
    if accounts is not None:
        query = query.where(AccountRow.number.in_(list(accounts)))
    claimed: list[DueCharge] = []
    with sessions.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(of=inst, skip_locked=True)
        for r in session.execute(query).all():
            attempt = r.attempts if r.status == "charging" else r.attempts + 1
            won = session.execute(update(inst).where(
                inst.id == r.id, inst.status == r.status, inst.attempts == r.attempts,
                or_(inst.status != "charging", inst.claimed_at < now - stale_after),  # a stale claim: once
            ).values(status="charging", attempts=attempt, claimed_at=now))
            if cast(CursorResult[Any], won).rowcount == 1:
                claimed.append(DueCharge(r.id, r.number, r.plan_ref, r.seq, attempt, from_cents(r.amount_cents),
                                         r.customer_ref, r.payment_method_ref))
    return claimed
