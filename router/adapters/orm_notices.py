"""Tables for notices, pay-by-link and dunning (issue 7), on the shared ``Base`` from ``orm.py``.

Contact details are PHI and live only in ``notice_contacts``; the other rows carry ids, kinds and amounts.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from router.adapters.orm import Base, utcnow


class NoticeContactRow(Base):
    """How a guarantor account wants to be reached, and what it opted out of."""

    __tablename__ = "notice_contacts"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")  # E.164
    email_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    sms_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    preferred: Mapped[str] = mapped_column(String(8), default="both")  # email, sms, both
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DunningStateRow(Base):
    """An account's current dunning cycle (``router.domain.dunning.DunningState``)."""

    __tablename__ = "dunning_states"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    cycle_start: Mapped[date] = mapped_column(Date)
    next_step: Mapped[int] = mapped_column(Integer, default=0)
    last_step_on: Mapped[date | None] = mapped_column(Date)
    suspended_on: Mapped[date | None] = mapped_column(Date)
    last_run_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PayLinkRow(Base):
    """The opaque id a signed pay-by-link token carries, and the account it pays."""

    __tablename__ = "pay_links"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    cycle: Mapped[int] = mapped_column(Integer)
    step_no: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # the balance the notice showed
    issued_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NoticeRow(Base):
    """One notice on one channel; ``idempotency_key`` = account id, cycle, step and channel."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_status_attempts", "status", "attempts"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    cycle: Mapped[int] = mapped_column(Integer)
    step_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # statement, reminder, final_notice
    channel: Mapped[str] = mapped_column(String(8))  # email, sms, none
    status: Mapped[str] = mapped_column(String(12))  # pending, sending, sent, failed, suppressed
    reason: Mapped[str] = mapped_column(String(64), default="")  # opted_out, no_contact, error type; no PHI
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    due_on: Mapped[date] = mapped_column(Date, index=True)
    link_id: Mapped[str | None] = mapped_column(ForeignKey("pay_links.id"))
    provider_ref: Mapped[str] = mapped_column(String(120), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when a runner took it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CollectionPlacementRow(Base):
    """A hand-off to the collections agency; ``export_batch`` is set once it went out in an export file."""

    __tablename__ = "collection_placements"
    __table_args__ = (Index("uq_collection_placements_account_cycle", "account_id", "cycle", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    cycle: Mapped[int] = mapped_column(Integer)
    placed_on: Mapped[date] = mapped_column(Date, index=True)
    cycle_start: Mapped[date] = mapped_column(Date)
    balance_cents: Mapped[int] = mapped_column(BigInteger)
    notices_sent: Mapped[int] = mapped_column(Integer, default=0)
    export_batch: Mapped[str | None] = mapped_column(String(40), index=True)
    exported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
