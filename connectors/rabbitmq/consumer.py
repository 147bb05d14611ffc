"""Work-queue consumers (connectors): translate → dispatch on worker threads → settle on the I/O thread.

A delivery is acked only after ``dispatch`` returned, i.e. after the unit of work committed. Store
outages hold the message (no ack) with backoff; other ``TransientError``s go to the next retry tier,
``PermanentError``s and exhausted retries to the parking queue with an ``x-rcmhub-reason`` header.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
)

from connectors.rabbitmq.publisher import (
    ATTEMPT,
    ORIGIN_QUEUE,
    PIKA_ERRORS,
    REASON,
    ConfirmedChannel,
    translated,
)
from connectors.rabbitmq.topology import Topology
from router.domain.errors import (
    BrokerUnavailable,
    ConcurrencyConflict,
    HubError,
    PermanentError,
    StoreUnavailable,
    TransientError,
)

log = logging.getLogger(__name__)


class Action(Enum):
    ACK = "ack"
    RETRY = "retry"
    PARK = "park"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""


def reason_of(exc: BaseException) -> str:
    """Error class and location only: reason texts may quote field values, which can be PHI."""
    where = exc.location if isinstance(exc, HubError) and exc.location else ""
    return f"{type(exc).__name__} at {where}" if where else type(exc).__name__


class WorkConsumer:
    """One role's work queue; subclasses provide the ``translate`` and ``dispatch`` hooks."""

    role = ""

    def __init__(self, url: str, topology: Topology, *, concurrency: int = 1, prefetch: int | None = None,
                 heartbeat: int = 30, hold_seconds: float = 60.0, shutdown_seconds: float = 30.0) -> None:
        self.parameters = pika.URLParameters(url)
        self.parameters.heartbeat = heartbeat
        self.topology = topology
        self.queue = topology.queue(self.role)
        self.concurrency = concurrency
        self.prefetch = prefetch or concurrency * 2
        self.hold_seconds = hold_seconds  # how long a store outage holds a message before a retry tier
        self.shutdown_seconds = shutdown_seconds
        self.consuming = threading.Event()
        self.redeliveries = 0
        self.settled: dict[Action, int] = dict.fromkeys(Action, 0)
        self._stop = threading.Event()
        self._inflight = 0  # deliveries of the current connection not yet settled
        self._generation = 0  # which connection ``_inflight`` counts
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"rcmhub-{self.role}")

    # hooks -----------------------------------------------------------------------------------------
    def translate(self, body: bytes, properties: BasicProperties) -> Any:
        raise NotImplementedError

    def dispatch(self, message: Any) -> None:
        raise NotImplementedError

    # lifecycle -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop consuming, let in-flight work finish and settle, then close (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> None:
        """Consume until ``stop()``; reconnects with exponential backoff when the broker goes away."""
        retrying = Retrying(retry=retry_if_exception_type(BrokerUnavailable), reraise=True,
                            wait=wait_exponential(multiplier=0.2, max=10), stop=stop_when_event_set(self._stop),
                            before_sleep=self._log_reconnect)
        try:
            retrying(self._consume_once)
        except BrokerUnavailable:
            if not self._stop.is_set():
                raise
        finally:
            self._pool.shutdown(wait=True)

    def _log_reconnect(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s consumer reconnecting after %s (attempt %d)", self.role, exc, state.attempt_number)

    def _consume_once(self) -> None:
        with translated("connecting to RabbitMQ"):
            connection = pika.BlockingConnection(self.parameters)
        with self._lock:
            # A lost connection's deliveries were requeued by the broker and its pending settle callbacks
            # will never run: counting them would hold every later graceful shutdown for shutdown_seconds.
            self._generation += 1
            self._inflight = 0
            generation = self._generation
        try:
            with translated(f"consuming {self.queue.name}"):
                channel = connection.channel()
                channel.basic_qos(prefetch_count=self.prefetch)
                publisher = ConfirmedChannel(connection.channel())
                tag = channel.basic_consume(self.queue.name, partial(self._on_message, connection, publisher,
                                                                     generation))
                self.consuming.set()
                while not self._stop.is_set():
                    connection.process_data_events(time_limit=0.25)
                channel.basic_cancel(tag)
                self._drain(connection)
        finally:
            self.consuming.clear()
            if connection.is_open:
                with suppress(*PIKA_ERRORS):  # unacked deliveries return to the queue either way
                    connection.close()

    def _drain(self, connection: pika.BlockingConnection) -> None:
        """Graceful shutdown: keep the I/O loop turning until in-flight deliveries are settled."""
        deadline = time.monotonic() + self.shutdown_seconds
        while self._inflight and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.05)

    # the I/O thread hands work to the pool ---------------------------------------------------------
    def _on_message(self, connection: pika.BlockingConnection, publisher: ConfirmedChannel, generation: int,
                    channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties,
                    body: bytes) -> None:
        if method.redelivered:
            self.redeliveries += 1
            count = (properties.headers or {}).get("x-delivery-count")
            log.info("redelivery on %s message_id=%s delivery_count=%s", self.queue.name, properties.message_id,
                     count)
        with self._lock:
            self._inflight += 1
        self._pool.submit(self._work, connection, publisher, generation, channel, method.delivery_tag, properties,
                          body)

    def _work(self, connection: pika.BlockingConnection, publisher: ConfirmedChannel, generation: int,
              channel: BlockingChannel, tag: int, properties: BasicProperties, body: bytes) -> None:
        verdict = self.process(body, properties)
        try:
            connection.add_callback_threadsafe(partial(self._settle, publisher, generation, channel, tag, properties,
                                                       body, verdict))
        except PIKA_ERRORS:
            self._done(generation)  # connection gone: the broker redelivers, the inbox drops the repeat

    def process(self, body: bytes, properties: BasicProperties) -> Verdict:
        """Run the hooks and decide what happens to the delivery (no broker calls here)."""
        try:
            message = self.translate(body, properties)
            self._dispatch_holding(message)
            return Verdict(Action.ACK)
        except PermanentError as exc:
            return Verdict(Action.PARK, reason_of(exc))
        except TransientError as exc:
            if attempt_of(properties) < len(self.queue.waits):
                return Verdict(Action.RETRY, reason_of(exc))
            return Verdict(Action.PARK, f"retries exhausted: {reason_of(exc)}")
        except Exception as exc:
            # A bug, not the message's fault or not only: park it for replay instead of crash-looping.
            log.error("unexpected %s on %s", type(exc).__name__, self.queue.name)
            return Verdict(Action.PARK, f"unexpected {reason_of(exc)}")

    def _dispatch_holding(self, message: Any) -> None:
        # A database outage holds the delivery unacked (no loss, no reordering through retry queues).
        for attempt in Retrying(retry=retry_if_exception_type((StoreUnavailable, ConcurrencyConflict)),
                                wait=wait_exponential(multiplier=0.1, max=5), reraise=True,
                                stop=stop_after_delay(self.hold_seconds) | stop_when_event_set(self._stop)):
            with attempt:
                self.dispatch(message)

    # settling runs on the I/O thread ---------------------------------------------------------------
    def _settle(self, publisher: ConfirmedChannel, generation: int, channel: BlockingChannel, tag: int,
                properties: BasicProperties, body: bytes, verdict: Verdict) -> None:
        try:
            if verdict.action is Action.RETRY:
                attempt = attempt_of(properties)
                _, wait_queue = self.queue.waits[attempt]
                publisher.publish(self.topology.retry, wait_queue, body,
                                  with_headers(properties, {ATTEMPT: attempt + 1, REASON: verdict.reason}))
            elif verdict.action is Action.PARK:
                publisher.publish(self.topology.dead_letters, self.queue.name, body,
                                  with_headers(properties, {REASON: verdict.reason, ORIGIN_QUEUE: self.queue.name}))
                log.warning("parked message_id=%s from %s: %s", properties.message_id, self.queue.name,
                            verdict.reason)
            channel.basic_ack(tag)
            self.settled[verdict.action] += 1
        except BrokerUnavailable:
            # Not parked or queued for retry: hand it back; the delivery limit bounds the loop.
            with translated("requeue"):
                channel.basic_nack(tag, requeue=True)
        finally:
            self._done(generation)

    def _done(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._inflight -= 1


def attempt_of(properties: BasicProperties) -> int:
    value = (properties.headers or {}).get(ATTEMPT, 0)
    return value if isinstance(value, int) else 0


def with_headers(properties: BasicProperties, extra: dict[str, Any]) -> BasicProperties:
    """A copy of ``properties`` (message id, type, timestamp kept) with broker bookkeeping dropped."""
    headers = {k: v for k, v in (properties.headers or {}).items() if not k.startswith(("x-death", "x-first-death",
                                                                                          "x-last-death"))}
    headers.pop("x-delivery-count", None)
    copy = BasicProperties(**{k: getattr(properties, k) for k in _PROPERTY_NAMES})
    copy.headers = {**headers, **extra}
    copy.delivery_mode = pika.DeliveryMode.Persistent.value
    return copy


_PROPERTY_NAMES = ("content_type", "content_encoding", "priority", "correlation_id", "reply_to", "message_id",
                   "timestamp", "type", "app_id")
