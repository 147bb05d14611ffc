"""The operator audit trail (adapter layer): append and read only, never update or delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from router.adapters.orm import AuditRow, utcnow
from router.domain.errors import StoreUnavailable


@dataclass(frozen=True)
class AuditRecord:
    """Who did what, when, to which message in which queue; ``detail`` carries no PHI."""

    actor: str
    action: str
    message_id: str
    queue: str
    detail: str = ""
    at: datetime = field(default_factory=utcnow)


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def append(self, record: AuditRecord) -> None:
        """Commit one record; raises ``StoreUnavailable`` so the caller can abandon the action it audits."""
        try:
            with self.sessions.begin() as session:
                session.add(AuditRow(at=record.at, actor=record.actor, action=record.action,
                                     message_id=record.message_id, queue=record.queue, detail=record.detail))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"audit log: {type(exc).__name__}") from exc

    def for_message(self, message_id: str) -> list[AuditRecord]:
        with self.sessions() as session:
            rows = session.scalars(select(AuditRow).where(AuditRow.message_id == message_id).order_by(AuditRow.id))
            return [AuditRecord(r.actor, r.action, r.message_id, r.queue, r.detail, r.at) for r in rows]
