"""Delivery rows (connectors over router/adapters): planned by the relay, settled by the engine, listed by IT.

Each status change is its own short transaction, so a crash loses at most the attempt in flight (which
is then retried: FT1-2, MSH-10 and FHIR identifiers are stable, so the EMR never books it twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from connectors.outbound.plan import Planned
from router.adapters.orm import utcnow
from router.adapters.orm_outbound import DeliveryRow

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True)
class Job:
    """What a transport needs to send one delivery (loaded once per delivery)."""

    id: int
    destination: str
    format: str
    trace_id: str
    method: str
    path: str
    condition: str
    payload: str
    attempts: int
    status: str
    created_at: datetime


def add_planned(session: Session, outbox_id: int, trace_id: str, event_type: str,
                planned: Sequence[Planned]) -> list[tuple[int, str]]:
    """Insert the planned rows not there yet (a re-relay after a crash finds them); every (id, destination)."""
    if not planned:
        return []
    existing: dict[str, int] = {dedupe: row_id for dedupe, row_id in session.execute(
        select(DeliveryRow.dedupe, DeliveryRow.id).where(DeliveryRow.outbox_id == outbox_id))}
    rows = [DeliveryRow(dedupe=p.dedupe, outbox_id=outbox_id, trace_id=trace_id, event_type=event_type,
                        destination=p.destination, format=p.format, summary=p.summary[:200], method=p.method,
                        path=p.path, condition=p.condition, payload=p.payload, status=PENDING, attempts=0)
            for p in planned if p.dedupe not in existing]
    session.add_all(rows)
    session.flush()
    ids = {**existing, **{r.dedupe: r.id for r in rows}}
    return [(ids[p.dedupe], p.destination) for p in planned]


class DeliveryStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def load(self, delivery_id: int) -> Job | None:
        with self.sessions() as s:
            r = s.get(DeliveryRow, delivery_id)
            if r is None:
                return None
            return Job(r.id, r.destination, r.format, r.trace_id, r.method, r.path, r.condition, r.payload,
                       r.attempts, r.status, r.created_at)

    def load_many(self, ids: Sequence[int]) -> list[Job]:
        """Jobs of ``ids`` still pending, in id order (one query for a batch of the embedded loop)."""
        with self.sessions() as s:
            return [Job(r.id, r.destination, r.format, r.trace_id, r.method, r.path, r.condition, r.payload,
                        r.attempts, r.status, r.created_at)
                    for r in s.scalars(select(DeliveryRow).where(DeliveryRow.id.in_(list(ids)), DeliveryRow.status
                                                                 == PENDING).order_by(DeliveryRow.id))]

    def next_pending(self, destination: str, after: int, limit: int = 100) -> list[int]:
        with self.sessions() as s:
            return list(s.scalars(select(DeliveryRow.id).where(
                DeliveryRow.destination == destination, DeliveryRow.status == PENDING, DeliveryRow.id > after)
                .order_by(DeliveryRow.id).limit(limit)))

    def attempted(self, delivery_id: int, error: str) -> None:
        self._set(delivery_id, attempts=DeliveryRow.attempts + 1, last_error=error[:500])

    def delivered(self, *delivery_ids: int) -> None:
        """Mark delivered (several in one statement: the embedded loop groups its status writes)."""
        if not delivery_ids:
            return
        now = utcnow()
        with self.sessions() as s, s.begin():
            s.execute(update(DeliveryRow).where(DeliveryRow.id.in_(delivery_ids)).values(
                updated_at=now, attempts=DeliveryRow.attempts + 1, status=DELIVERED, delivered_at=now))

    def dead(self, delivery_id: int, reason: str, *, attempted: bool = True) -> None:
        changes: dict[str, object] = {"status": DEAD, "last_error": reason[:500]}
        if attempted:
            changes["attempts"] = DeliveryRow.attempts + 1
        self._set(delivery_id, **changes)

    def replay(self, delivery_id: int) -> str | None:
        """A dead (or pending) delivery back to pending with its attempts reset; returns its destination."""
        with self.sessions() as s, s.begin():
            row = s.get(DeliveryRow, delivery_id)
            if row is None or row.status == DELIVERED:
                return None
            row.status, row.attempts, row.updated_at = PENDING, 0, utcnow()
            return row.destination

    def _set(self, delivery_id: int, **changes: object) -> None:
        with self.sessions() as s, s.begin():
            s.execute(update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(updated_at=utcnow(), **changes))


def deliveries_list(session: Session, *, status: str | None = None, destination: str | None = None,
                    trace: str | None = None, limit: int = 500) -> list[dict[str, object]]:
    """``rcmhub deliveries list --json``: newest first, no payloads (they carry PHI)."""
    query = select(DeliveryRow).order_by(DeliveryRow.id.desc()).limit(limit)
    if status:
        query = query.where(DeliveryRow.status == status)
    if destination:
        query = query.where(DeliveryRow.destination == destination)
    if trace:
        query = query.where(DeliveryRow.trace_id == trace)
    return [{"id": r.id, "destination": r.destination, "format": r.format, "event": r.event_type,
             "status": r.status, "attempts": r.attempts, "last_error": r.last_error, "trace": r.trace_id,
             "summary": r.summary, "created_at": r.created_at.isoformat(),
             "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None}
            for r in session.scalars(query)]
