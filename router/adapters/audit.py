"""The operator audit trail (adapter layer): append and read only, never update or delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from router.adapters.orm import AuditRow, utcnow
from router.domain.errors import StoreUnavailable


@dataclass(frozen=True)
class AuditRecord:
    """Who did what, when, from where, to which object, with what outcome; ``detail`` carries no PHI.

    ``message_id`` is the object's id (a message id for dead letters, an account number, a path) and ``queue``
    the parking queue for dead-letter actions, empty otherwise.
    """

    actor: str
    action: str
    message_id: str
    queue: str
    detail: str = ""
    at: datetime = field(default_factory=utcnow)
    object_type: str = ""
    source: str = ""
    outcome: str = "ok"


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def append(self, record: AuditRecord) -> None:
        """Commit one record; raises ``StoreUnavailable`` so the caller can abandon the action it audits."""
        try:
            with self.sessions.begin() as session:
                session.add(AuditRow(at=record.at, actor=record.actor, action=record.action,
                                     message_id=record.message_id, queue=record.queue, detail=record.detail,
                                     object_type=record.object_type, source=record.source,
                                     outcome=record.outcome))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"audit log: {type(exc).__name__}") from exc

    def for_message(self, message_id: str) -> list[AuditRecord]:
        with self.sessions() as session:
            rows = session.scalars(select(AuditRow).where(AuditRow.message_id == message_id).order_by(AuditRow.id))
            return [_record(r) for r in rows]

    def search(self, *, actor: str | None = None, action: str | None = None, object_id: str | None = None,
               object_type: str | None = None, outcome: str | None = None, since: datetime | None = None,
               until: datetime | None = None, limit: int = 100, offset: int = 0) -> list[tuple[int, AuditRecord]]:
        """Newest first, each with its row id; every filter is an exact match (``action`` also by prefix ``x.*``)."""
        query = select(AuditRow)
        if actor is not None:
            query = query.where(AuditRow.actor == actor)
        if action is not None:
            query = query.where(AuditRow.action.startswith(action[:-1]) if action.endswith("*")
                                else AuditRow.action == action)
        if object_id is not None:
            query = query.where(AuditRow.message_id == object_id)
        if object_type is not None:
            query = query.where(AuditRow.object_type == object_type)
        if outcome is not None:
            query = query.where(AuditRow.outcome == outcome)
        if since is not None:
            query = query.where(AuditRow.at >= since)
        if until is not None:
            query = query.where(AuditRow.at < until)
        query = query.order_by(AuditRow.id.desc()).limit(limit).offset(offset)
        try:
            with self.sessions() as session:
                return [(r.id, _record(r)) for r in session.scalars(query)]
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"audit log: {type(exc).__name__}") from exc


def _record(r: AuditRow) -> AuditRecord:
    at = r.at if r.at.tzinfo is not None else r.at.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return AuditRecord(r.actor, r.action, r.message_id, r.queue, r.detail, at, r.object_type, r.source, r.outcome)
