"""The delivery engine (connectors): one worker per destination, tenacity retries, dead letters with reasons.

``DestinationWorker.deliver`` sends one delivery within the destination's retry budget: exponential
backoff with full jitter (``initial_seconds`` doubling up to ``max_wait_seconds``), a server's
``Retry-After`` honoured in place of the backoff, at most ``attempts`` tries and ``budget_seconds`` per
delivery. Transient failures are retried; permanent ones (4xx, AR) and exhausted budgets end the delivery
``dead`` with the reason, listed by ``rcmhub deliveries list`` and replayable (``rcmhub deliveries replay``).
Embedded mode (``OutboundEngine``) runs the outbox relay and one thread per destination in-process, so a
destination that is down only ever holds its own queue; with RabbitMQ each destination has its own queue
and consumer (``amqp.py``), the same ``deliver`` doing the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    stop_when_event_set,
    wait_random_exponential,
)

from connectors.outbound.config import Destination, Destinations
from connectors.outbound.errors import RetryLater
from connectors.outbound.relay import OutboxRelay, Publish
from connectors.outbound.store import DEAD, DELIVERED, PENDING, DeliveryStore, Job
from connectors.outbound.transports import Transport, transport_for
from router.adapters.orm import OutboxRow
from router.adapters.orm_outbound import DeliveryRow
from router.domain.errors import HubError, PermanentError, TransientError

log = logging.getLogger(__name__)
MISSING = "missing"


def reason_of(exc: BaseException) -> str:
    """Class, location and reason of our own errors (their texts are written PHI-free); class only otherwise."""
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, HubError) else type(exc).__name__


class DestinationWorker:
    def __init__(self, destination: Destination, store: DeliveryStore, transport: Transport,
                 stop: threading.Event | None = None) -> None:
        self.destination = destination
        self.store = store
        self.transport = transport
        self.stop = stop or threading.Event()
        self.delivered = 0
        self.dead = 0

    def deliver(self, delivery_id: int) -> str:
        """Send one delivery to the end of its budget; returns its status (pending only when stopped)."""
        job = self.store.load(delivery_id)
        if job is None:
            return MISSING  # not committed yet (or another database): the caller retries later
        if job.status != PENDING:
            return job.status
        status = self._send(job)
        if status == DELIVERED:
            self.store.delivered(job.id)
        return status

    def deliver_batch(self, ids: Sequence[int], group: int = 50) -> None:
        """The embedded loop: jobs loaded in one query, ``delivered`` written for up to ``group`` at a time.

        Grouping the status writes (one commit per group, not per message) matters on PostgreSQL; a crash
        before a group is written re-sends those messages, which the EMR dedupes by MSH-10/FT1-2/identifier.
        """
        done: list[int] = []
        try:
            for job in self.store.load_many(ids):
                if self.stop.is_set():
                    break
                if self._send(job) == DELIVERED:
                    done.append(job.id)
                    if len(done) >= group:
                        self.store.delivered(*done)
                        done = []
        finally:
            self.store.delivered(*done)

    def _send(self, job: Job) -> str:
        budget = self.destination.retry
        remaining = budget.attempts - job.attempts
        if remaining <= 0:
            self.store.dead(job.id, "retry budget already used", attempted=False)
            return DEAD
        backoff = wait_random_exponential(multiplier=budget.initial_seconds, max=budget.max_wait_seconds)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RetryLater) and exc.retry_after is not None:
                return min(exc.retry_after, budget.max_wait_seconds)
            return float(backoff(state))

        def attempt() -> None:
            try:
                self.transport.send(job)
            except TransientError as exc:
                self.store.attempted(job.id, reason_of(exc))
                log.info("delivery %d to %s trace=%s failed (%s), will retry", job.id, job.destination, job.trace_id,
                         type(exc).__name__)
                raise

        retrying = Retrying(retry=retry_if_exception_type(TransientError), reraise=True, wait=wait,
                            stop=stop_after_attempt(remaining) | stop_after_delay(budget.budget_seconds)
                            | stop_when_event_set(self.stop),
                            sleep=self._sleep)
        try:
            retrying(attempt)
        except PermanentError as exc:
            self.store.dead(job.id, reason_of(exc))
            return self._dead(job.id, job.trace_id, type(exc).__name__)
        except TransientError as exc:
            if self.stop.is_set():
                return PENDING
            self.store.dead(job.id, f"retries exhausted: {reason_of(exc)}", attempted=False)
            return self._dead(job.id, job.trace_id, f"retries exhausted ({type(exc).__name__})")
        except Exception as exc:  # a bug, not the destination: dead-letter it instead of looping on it forever
            self.store.dead(job.id, f"unexpected {reason_of(exc)}")
            return self._dead(job.id, job.trace_id, f"unexpected {type(exc).__name__}")
        self.delivered += 1
        log.info("delivered %d to %s trace=%s", job.id, job.destination, job.trace_id)
        return DELIVERED

    def _dead(self, delivery_id: int, trace: str, why: str) -> str:
        self.dead += 1
        log.warning("delivery %d to %s trace=%s dead-lettered: %s", delivery_id, self.destination.name, trace, why)
        return DEAD

    def _sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def run(self, wake: threading.Event, idle_seconds: float = 0.5) -> None:
        """Embedded mode: deliver this destination's pending rows in order until ``stop``."""
        while not self.stop.is_set():
            try:
                ids = self.store.next_pending(self.destination.name, after=0)
                self.deliver_batch(ids)
            except Exception as exc:  # the database away, or a bug: keep the thread, the rows stay pending
                log.error("destination %s worker: %s", self.destination.name, type(exc).__name__)
                ids = []
                self.stop.wait(1.0)
            if not ids:
                wake.wait(idle_seconds)
                wake.clear()
        self.transport.close()


class OutboundEngine:
    """Embedded mode: the outbox relay and one delivery thread per destination, inside this process."""

    def __init__(self, sessions: sessionmaker[Session], destinations: Destinations, *,
                 transports: Mapping[str, Transport] | None = None, publish: Publish | None = None,
                 idle_seconds: float = 0.2, scope: Any = None) -> None:
        self.sessions = sessions
        self.destinations = destinations
        self.stop_event = threading.Event()
        self.idle_seconds = idle_seconds
        self.store = DeliveryStore(sessions)
        self.wakes = {d.name: threading.Event() for d in destinations.active}
        self.relay_wake = threading.Event()
        self.relay = OutboxRelay(sessions, destinations, publish=publish, on_planned=self._wake, scope=scope)
        made = transports or {}
        self.workers = {d.name: DestinationWorker(d, self.store, made.get(d.name) or transport_for(d),
                                                  self.stop_event) for d in destinations.active}
        self.threads: list[threading.Thread] = []

    def _wake(self, names: set[str]) -> None:
        for name in names:
            if name in self.wakes:
                self.wakes[name].set()

    def notify(self, *_: Any) -> None:
        """Something was committed to the outbox: relay now rather than at the next poll."""
        self.relay_wake.set()

    def start(self) -> OutboundEngine:
        self.threads = [threading.Thread(target=self.relay.run, args=(self.stop_event, self.relay_wake,
                                                                       self.idle_seconds),
                                         name="rcmhub-outbox-relay", daemon=True)]
        self.threads += [threading.Thread(target=w.run, args=(self.wakes[name], self.idle_seconds),
                                          name=f"rcmhub-deliver-{name}", daemon=True)
                         for name, w in self.workers.items()]
        for t in self.threads:
            t.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.relay_wake.set()
        for wake in self.wakes.values():
            wake.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(deadline - time.monotonic(), 0.1))

    def outstanding(self, where: Callable[[Any], Any] | None = None) -> tuple[int, int]:
        """(unrelayed outbox rows, pending deliveries to active destinations)."""
        with self.sessions() as s:
            waiting = select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None))
            if self.relay.failed:  # skipped by the relay: waiting for them would never end
                waiting = waiting.where(OutboxRow.id.notin_(sorted(self.relay.failed)))
            if self.relay.scope is not None:
                waiting = waiting.where(self.relay.scope)
            unrelayed = s.scalar(waiting)
            query = select(func.count()).select_from(DeliveryRow).where(
                DeliveryRow.status == PENDING, DeliveryRow.destination.in_(list(self.workers)))
            pending = s.scalar(where(query) if where else query)
        return int(unrelayed or 0), int(pending or 0)

    def wait_idle(self, timeout: float = 30.0, where: Callable[[Any], Any] | None = None) -> bool:
        """Block until everything committed so far is relayed and settled (delivered or dead)."""
        self.notify()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.outstanding(where) == (0, 0):
                return True
            time.sleep(0.05)
        return False
