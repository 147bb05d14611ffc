"""Tables for workbench: exception actions (the item's history, assignments included), notes and write-off
approvals (issue 8, adapter layer). Rows on the shared ``Base`` from ``orm.py``; amounts in integer cents.

The work queue's indexes on ``exceptions`` are declared here too (they serve this feature's queries): the
open queue ordered by age, and per assignee.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from router.adapters.orm import Base, ExceptionRow, utcnow


class ExceptionActionRow(Base):
    """One thing a user did to an exception; append-only, read as the item's history."""

    __tablename__ = "exception_actions"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    exception_id: Mapped[int] = mapped_column(ForeignKey("exceptions.id"), index=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(120))
    amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExceptionNoteRow(Base):
    """A note staff wrote on an exception (PHI may be in it: shown only to billing roles, never logged)."""

    __tablename__ = "exception_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exception_id: Mapped[int] = mapped_column(ForeignKey("exceptions.id"), index=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    author: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WriteOffApprovalRow(Base):
    """A write-off above the threshold, waiting for (or decided by) a billing supervisor."""

    __tablename__ = "write_off_approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exception_id: Mapped[int] = mapped_column(ForeignKey("exceptions.id"), index=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    responsibility: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending, approved, rejected
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    comment: Mapped[str] = mapped_column(Text, default="")


# The work queue: open items oldest first (the default first page) and filtered by assignee.
Index("ix_exceptions_status_created_id", ExceptionRow.status, ExceptionRow.created_at, ExceptionRow.id)
Index("ix_exceptions_assignee_status", ExceptionRow.assignee, ExceptionRow.status)
