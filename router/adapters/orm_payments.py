"""Tables for patient payments, gateway customers, cards on file, consents and plans (issue 7, adapter layer).

Rows on the shared ``Base`` from ``orm.py``. PCI: a card is kept as the gateway's ids, brand, last4 and
expiry only; no column holds a card number, and free text is masked by the PAN guard before it lands here.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from router.adapters.orm import Base, utcnow


class PatientPaymentRow(Base):
    """One patient payment as received; its id is the receipt number. The money itself is in the ledger."""

    __tablename__ = "patient_payments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    applied_cents: Mapped[int] = mapped_column(BigInteger)
    received_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(80), default="")
    check_number: Mapped[str] = mapped_column(String(40), default="")
    bank: Mapped[str] = mapped_column(String(120), default="")
    gateway_payment_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    wallet: Mapped[str] = mapped_column(String(20), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default="posted")  # posted, refunded, partially_refunded
    disputed: Mapped[str] = mapped_column(String(40), default="")  # the gateway's dispute status, if any
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PaymentRefundRow(Base):
    """Each refund of a payment; ``refund_ref`` dedupes a refund reported both by the API call and a webhook."""

    __tablename__ = "payment_refunds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("patient_payments.id"), index=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    refund_ref: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    refunded_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GatewayCustomerRow(Base):
    """The gateway customer of an account's guarantor; the gateway knows it only by the opaque ``hub_ref``."""

    __tablename__ = "payment_customers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    customer_ref: Mapped[str] = mapped_column(String(255), unique=True)
    hub_ref: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PaymentConsentRow(Base):
    __tablename__ = "payment_consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(20))
    text_version: Mapped[str] = mapped_column(String(40))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(200))


class CardOnFileRow(Base):
    __tablename__ = "payment_methods"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    customer_ref: Mapped[str] = mapped_column(String(255))
    payment_method_ref: Mapped[str] = mapped_column(String(255), unique=True)
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    wallet: Mapped[str] = mapped_column(String(20), default="")
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("payment_consents.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PaymentPlanRow(Base):
    __tablename__ = "payment_plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_ref: Mapped[str] = mapped_column(String(64), unique=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    installments: Mapped[int] = mapped_column(Integer)
    frequency: Mapped[str] = mapped_column(String(10))
    first_due: Mapped[date] = mapped_column(Date)
    payment_method_id: Mapped[int] = mapped_column(ForeignKey("payment_methods.id"))
    consent_id: Mapped[int] = mapped_column(ForeignKey("payment_consents.id"))
    status: Mapped[str] = mapped_column(String(12), default="active", index=True)  # active, completed, default
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PlanInstallmentRow(Base):
    """One installment. The scheduler claims it by an atomic status change (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL) and charges it under the key ``rcmhub:plan:{plan_ref}:{seq}:{attempt}``."""

    __tablename__ = "plan_installments"
    __table_args__ = (Index("uq_plan_installments_plan_seq", "plan_id", "seq", unique=True),
                      Index("ix_plan_installments_status_next", "status", "next_attempt_on"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plans.id"))
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    # scheduled, charging, processing (ACH in flight), paid, retry, failed
    status: Mapped[str] = mapped_column(String(12), default="scheduled")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_on: Mapped[date] = mapped_column(Date)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payment_ref: Mapped[str] = mapped_column(String(255), default="")
    last_decline: Mapped[str] = mapped_column(String(60), default="")


class GatewayEventRow(Base):
    """Every verified gateway webhook, by the gateway's event id: what came, and what the hub did with it."""

    __tablename__ = "gateway_events"
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))  # posted, duplicate, ignored, failed
    detail: Mapped[str] = mapped_column(Text, default="")  # error type and location; never payload text
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
