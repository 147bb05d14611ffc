"""The transactional outbox relay (connectors): outbox events -> planned deliveries, marked published after.

For each unpublished outbox row (oldest first, held ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so relays do
not plan the same rows at once) the relay reads the reconciled record behind the event, plans every
destination's messages (``plan.plan``) and stores them as delivery rows, and commits. With a broker it then
publishes one job per delivery to the outbound exchange (routing key ``deliver.{destination}``, one queue
each) with publisher confirms - after the commit, so a consumer always finds the row - and only after
every confirm marks the outbox rows published. A refused publish or a crash leaves them unpublished: the
next pass finds the delivery rows already there (same dedupe key) and publishes their jobs again; a job for
a delivery already settled is skipped by the worker, and the EMR dedupes on the stable ids if two copies
ever race.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connectors.outbound.config import Destinations
from connectors.outbound.plan import DELIVERABLE, plan
from connectors.outbound.store import add_planned
from router.adapters.orm import OutboxRow, utcnow
from router.domain.errors import HubError
from router.domain.results import trace_id

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[tuple[int, str]]], None]  # (delivery id, destination) jobs, confirmed on return


class OutboxRelay:
    def __init__(self, sessions: sessionmaker[Session], destinations: Destinations, *,
                 publish: Publish | None = None, batch: int = 25,
                 on_planned: Callable[[set[str]], None] | None = None, scope: Any = None) -> None:
        self.sessions = sessions
        self.destinations = destinations
        self.publish = publish
        self.batch = batch
        self.on_planned = on_planned  # wakes the destinations that got work (embedded engine)
        self.scope = scope  # an extra WHERE on outbox rows (the demo relays only its own run's events)
        # Rows whose result could not be planned: skipped by this relay, left unpublished (the backlog shows them;
        # a restart after the fix plans them again). Small batches keep SQLite's write lock short.
        self.failed: set[int] = set()

    def relay_once(self) -> int:
        """Relay up to ``batch`` outbox rows; returns how many were handled."""
        touched: set[str] = set()
        with self.sessions() as session, session.begin():
            query = select(OutboxRow).where(OutboxRow.published_at.is_(None)).order_by(OutboxRow.id).limit(self.batch)
            if self.failed:
                query = query.where(OutboxRow.id.notin_(sorted(self.failed)))
            if self.scope is not None:
                query = query.where(self.scope)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            if not rows:
                return 0
            now = utcnow()
            jobs: list[tuple[int, str]] = []
            for row in rows:
                jobs += self._plan(session, row, now)
            ids = [row.id for row in rows if row.id not in self.failed]
            if self.publish is None:  # embedded: the delivery threads read the rows; nothing to confirm
                for row in rows:
                    if row.id not in self.failed:
                        row.published_at = now
            touched = {destination for _, destination in jobs}
        if self.publish is not None:
            if jobs:
                self.publish(jobs)  # raises BrokerUnavailable: nothing is marked, the rows are relayed again
            with self.sessions() as session, session.begin():
                session.execute(update(OutboxRow).where(OutboxRow.id.in_(ids), OutboxRow.published_at.is_(None))
                                .values(published_at=now))
        if touched and self.on_planned is not None:
            self.on_planned(touched)
        return len(rows)

    def _plan(self, session: Session, row: OutboxRow, now: datetime) -> list[tuple[int, str]]:
        if row.event_type not in DELIVERABLE:
            return []
        trace = trace_id(row.source_id)
        try:
            with session.begin_nested():
                planned = plan(session, row.event_type, row.source_id, self.destinations, now)
                jobs = add_planned(session, row.id, trace, row.event_type, planned)
        except Exception as exc:
            # A result that cannot be rendered (fails FHIR validation, or a bug) must not block every later event:
            # the row stays unpublished and is skipped by this relay; the ledger holds the result. Class and
            # element path only in the log (an exception text may quote the payload).
            where = exc.location if isinstance(exc, HubError) else ""
            log.error("outbox %d %s trace=%s not deliverable: %s %s", row.id, row.event_type, trace,
                      type(exc).__name__, where or "")
            self.failed.add(row.id)
            return []
        if jobs:
            log.info("relayed outbox %d %s trace=%s deliveries=%d", row.id, row.event_type, trace, len(jobs))
        return jobs

    def run(self, stop: threading.Event, wake: threading.Event, idle_seconds: float = 0.5) -> None:
        """Relay until ``stop``; sleeps ``idle_seconds`` (or until ``wake``) when nothing is waiting."""
        while not stop.is_set():
            try:
                handled = self.relay_once()
            except (HubError, SQLAlchemyError) as exc:  # database or broker away: back off, rows stay unpublished
                log.warning("outbox relay: %s", type(exc).__name__)
                handled = 0
                stop.wait(1.0)
            if handled == 0:
                wake.wait(idle_seconds)
                wake.clear()
