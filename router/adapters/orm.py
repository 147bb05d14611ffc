"""SQLAlchemy 2.x typed rows for the hub's tables (adapter layer).

Money is stored as integer cents (``*_cents``): SQLite would keep ``Numeric`` as a float. Domain
dataclasses are translated to and from these rows in ``repository.py`` only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AccountRow(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    guarantor: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PatientRow(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mrn: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    family: Mapped[str] = mapped_column(String(120), default="")
    given: Mapped[str] = mapped_column(String(120), default="")
    birth_date: Mapped[date | None] = mapped_column(Date)


class CoverageRow(Base):
    __tablename__ = "coverages"
    __table_args__ = (Index("uq_coverages_account_sequence", "account_id", "sequence", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    payer_id: Mapped[str] = mapped_column(String(64))
    payer_name: Mapped[str] = mapped_column(String(200), default="")
    member_id: Mapped[str] = mapped_column(String(80), default="")
    group_number: Mapped[str] = mapped_column(String(80), default="")
    plan: Mapped[str] = mapped_column(String(120), default="")


class ClaimRow(Base):
    __tablename__ = "claims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ClaimKeyRow(Base):
    """Every patient control number a claim was ever sent under (CLP01 matching)."""

    __tablename__ = "claim_keys"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    normalized: Mapped[str] = mapped_column(String(64), index=True, default="", server_default="")


class ChargeLineRow(Base):
    __tablename__ = "charge_lines"
    __table_args__ = (Index("uq_charge_lines_claim_line", "claim_id", "line_no", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    service_date: Mapped[date] = mapped_column(Date)
    code: Mapped[str] = mapped_column(String(20))
    modifiers: Mapped[str] = mapped_column(String(40), default="")  # ":"-joined
    units: Mapped[str] = mapped_column(String(16), default="1")  # decimal text, exact
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    line_control: Mapped[str | None] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(String(200), default="")
    diagnoses: Mapped[str] = mapped_column(String(200), default="")
    performer: Mapped[str] = mapped_column(String(120), default="")
    entry_key: Mapped[str] = mapped_column(String(255), unique=True)


class LedgerRow(Base):
    """One append-only ledger entry; never updated, never deleted."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), index=True)
    line_no: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    responsibility: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    source_id: Mapped[str] = mapped_column(String(255), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    reverses: Mapped[str | None] = mapped_column(String(255), unique=True)
    reversed_kind: Mapped[str | None] = mapped_column(String(32))
    effective_date: Mapped[date | None] = mapped_column(Date)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    payer: Mapped[str | None] = mapped_column(String(64))
    coverage_seq: Mapped[int | None] = mapped_column(Integer)
    trace_number: Mapped[str | None] = mapped_column(String(80))
    payer_claim_number: Mapped[str | None] = mapped_column(String(80))
    group_code: Mapped[str | None] = mapped_column(String(4))
    reason_code: Mapped[str | None] = mapped_column(String(8))
    memo: Mapped[str | None] = mapped_column(Text)


class InboxRow(Base):
    """Commands already handled, by source id: the first line of idempotency."""

    __tablename__ = "inbox"
    source_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    command: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutboxRow(Base):
    """Events written in the same transaction as the ledger rows; relayed after commit."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(255), index=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class AppointmentRow(Base):
    """Scheduled visits (SIU), kept per account as the hook for pre-visit estimates."""

    __tablename__ = "appointments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(80), unique=True)  # SCH-1/SCH-2 filler/placer id
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default="booked")
    reason: Mapped[str] = mapped_column(String(200), default="")
    provider: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MessageRow(Base):
    """The message store: every inbound message kept raw, for tracing and replay (PHI: access-controlled)."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_sender_control", "sender", "control_id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    channel: Mapped[str] = mapped_column(String(16))  # mllp, http, amqp, file
    peer: Mapped[str] = mapped_column(String(200), default="")
    format: Mapped[str] = mapped_column(String(16))  # hl7v2, fhir, x12
    message_type: Mapped[str] = mapped_column(String(32), default="")
    sender: Mapped[str] = mapped_column(String(200), default="")  # MSH-4, ISA06, Bundle source
    control_id: Mapped[str] = mapped_column(String(200), default="", index=True)  # MSH-10, ISA13, Bundle.id
    digest: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the raw bytes
    status: Mapped[str] = mapped_column(String(16), default="received")
    error: Mapped[str | None] = mapped_column(Text)
    error_location: Mapped[str | None] = mapped_column(String(120))
    account: Mapped[str | None] = mapped_column(String(64), index=True)
    claim_key: Mapped[str | None] = mapped_column(String(64), index=True)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    raw: Mapped[bytes] = mapped_column(LargeBinary)


# The order messages arrived in: ``received_at``, then id. Not the id alone: the MLLP forwarder reserves ids
# ahead, a block at a time (``MessageStore.reserve_ids``), so the ids of different processes interleave.
MESSAGE_ARRIVAL = (MessageRow.received_at, MessageRow.id)
MESSAGE_NEWEST_FIRST = (MessageRow.received_at.desc(), MessageRow.id.desc())


class RemittanceRow(Base):
    """One payment advice (835 transaction set / FHIR remittance) and its cash conservation totals."""

    __tablename__ = "remittances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    control_number: Mapped[str] = mapped_column(String(40), default="")
    payer_id: Mapped[str] = mapped_column(String(80), default="")
    payer_name: Mapped[str] = mapped_column(String(200), default="")
    payee_id: Mapped[str] = mapped_column(String(80), default="")
    payee_name: Mapped[str] = mapped_column(String(200), default="")
    trace_number: Mapped[str] = mapped_column(String(80), index=True)
    payment_cents: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(8), default="")
    payment_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))  # posted, partial (some held), quarantined
    claim_count: Mapped[int] = mapped_column(Integer, default=0)
    posted_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # CLP04 cash posted to the ledger
    held_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # cash held in exceptions
    plb_cents: Mapped[int] = mapped_column(BigInteger, default=0)  # PLB cash effect (-sum PLB)
    problems: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class RemitClaimRow(Base):
    """Each CLP of a remittance, as matched and decided; payer claim numbers (CLP07) are looked up here."""

    __tablename__ = "remittance_claims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    remittance_id: Mapped[int] = mapped_column(ForeignKey("remittances.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    pcn: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(4))
    charge_cents: Mapped[int] = mapped_column(BigInteger)
    paid_cents: Mapped[int] = mapped_column(BigInteger)
    payer_claim_number: Mapped[str] = mapped_column(String(80), index=True, default="")
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # posted, reversed, held, informational
    raw: Mapped[str] = mapped_column(Text, default="")
    # RARCs for outbound messages: "N130 2:M80" = claim-level N130, M80 on remit line 2 (encode_remarks).
    remarks: Mapped[str] = mapped_column(Text, default="", server_default="")


class PracticeLedgerRow(Base):
    """Provider-level adjustments (PLB): practice money, never patient A/R; linked to a claim when known."""

    __tablename__ = "practice_ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    remittance_id: Mapped[int] = mapped_column(ForeignKey("remittances.id"), index=True)
    code: Mapped[str] = mapped_column(String(4))
    reference: Mapped[str] = mapped_column(String(80), default="")
    amount_cents: Mapped[int] = mapped_column(BigInteger)  # 835 sign: positive withheld, negative added
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExceptionRow(Base):
    """The work queue: what was not posted automatically, with candidates; ``version`` for optimistic locks."""

    __tablename__ = "exceptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True, default="open")
    remittance_id: Mapped[int | None] = mapped_column(ForeignKey("remittances.id"), index=True)
    remit_claim_id: Mapped[int | None] = mapped_column(ForeignKey("remittance_claims.id"))
    claim_key: Mapped[str] = mapped_column(String(64), default="", index=True)
    account: Mapped[str | None] = mapped_column(String(64), index=True)
    payer: Mapped[str] = mapped_column(String(80), default="")
    amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text)
    candidates: Mapped[str] = mapped_column(Text, default="[]")  # JSON
    assignee: Mapped[str | None] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)


class AuditRow(Base):
    """Operator actions (dead-letter replay, discard, body reads): append-only, enforced by triggers (0004)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(255), index=True)
    queue: Mapped[str] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text, default="")
    # Added by 0008 (issue 8): the general audit trail — every PHI view and action, from where, with what outcome.
    object_type: Mapped[str] = mapped_column(String(40), default="", server_default="")
    source: Mapped[str] = mapped_column(String(64), default="", server_default="")
    outcome: Mapped[str] = mapped_column(String(20), default="ok", server_default="ok")


# Tables of later features live in their own modules on the same metadata; importing them here makes
# ``Base.metadata`` complete for Alembic and for anyone who imports ``orm``.
from router.adapters import (  # noqa: E402
    orm_notices,  # noqa: F401
    orm_outbound,  # noqa: F401
    orm_payments,  # noqa: F401
    orm_security,  # noqa: F401
    orm_workbench,  # noqa: F401
)
