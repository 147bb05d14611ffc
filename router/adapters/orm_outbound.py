"""Tables for outbound deliveries (issue 6): one row per message to one EMR destination.

Rows on the shared ``Base`` from ``orm.py``. The payload is rendered once, when the outbox relay plans the
delivery, so every retry sends the same bytes (same MSH-10, same FT1-2, same FHIR identifiers).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from router.adapters.orm import Base, utcnow


class DeliveryRow(Base):
    """A message for one destination; ``status``: pending, delivered or dead (dead-lettered with a reason)."""

    __tablename__ = "outbound_deliveries"
    __table_args__ = (Index("ix_outbound_deliveries_destination_status", "destination", "status", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    dedupe: Mapped[str] = mapped_column(String(64), unique=True)  # sha256(destination, format, item key)
    outbox_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), ForeignKey("outbox.id"),
                                           index=True)
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    destination: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))  # hl7v2-dft, fhir-paymentreconciliation, ...
    summary: Mapped[str] = mapped_column(String(200), default="")  # no PHI: message type and counts
    method: Mapped[str] = mapped_column(String(8), default="")  # FHIR: POST or PUT
    path: Mapped[str] = mapped_column(String(255), default="")  # FHIR: resource type or conditional URL
    condition: Mapped[str] = mapped_column(String(255), default="")  # FHIR If-None-Exist query
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
