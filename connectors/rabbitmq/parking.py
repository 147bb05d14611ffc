"""Dead-letter (parking) queues browsed, replayed and discarded one message at a time (connectors).

pika has no "get by id": ``basic_get`` (manual ack) takes messages in turn on one channel until the wanted
``message_id`` is found; it is settled and every other one is handed back with one ``nack(requeue=True)``.
"""

# Limits of the basic_get approach (kept to avoid the management plugin as a dependency):
# - a scan holds the messages it has read unacked on one channel, so a concurrent scan (another operator)
#   does not see them until the first one hands them back; a crash hands them back too (channel closed);
# - every hand-back raises the message's x-delivery-count (parking queues have no delivery limit, so it
#   is only informative) and quorum queues return messages to the tail: a scan can reorder parking;
# - the queue applies a hand-back asynchronously: for a moment after one scan a second scan (or the queue's
#   message count) can miss those messages, so "no parked message" right after another command may need a retry;
# - the scan is linear and holds at most ``limit`` messages in memory per queue (bodies included).

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import BasicProperties

from connectors.rabbitmq.publisher import ATTEMPT, ORIGIN_QUEUE, PIKA_ERRORS, REASON, ConfirmedChannel, translated
from connectors.rabbitmq.topology import Topology, WorkQueue
from connectors.rabbitmq.verdicts import attempt_of, with_headers
from router.domain.errors import HubError


class NotParked(HubError):
    """No parked message with that id (or its original queue is not part of this topology)."""


@dataclass(frozen=True)
class Parked:
    """One dead-lettered message: metadata for operators, ``body`` only for ``show --body`` and replay."""

    parking: str
    origin: str
    message_id: str
    type: str
    reason: str
    attempts: int
    deliveries: int
    timestamp: datetime | None
    size: int
    body: bytes = field(repr=False, compare=False)
    properties: BasicProperties = field(repr=False, compare=False)

    def metadata(self) -> dict[str, Any]:
        return {"queue": self.parking, "origin": self.origin, "message_id": self.message_id, "type": self.type,
                "reason": self.reason, "attempts": self.attempts, "deliveries": self.deliveries,
                "timestamp": self.timestamp.isoformat() if self.timestamp else None, "size": self.size}


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def parked(parking: str, properties: BasicProperties, body: bytes) -> Parked:
    """Read the metadata our consumers write (reason, origin) or, for broker dead-letters, ``x-first-death-*``."""
    headers = properties.headers or {}
    # A message published without an id still needs a stable handle; a body hash reveals nothing.
    message_id = properties.message_id or f"sha256:{hashlib.sha256(body).hexdigest()[:16]}"
    origin = _text(headers.get(ORIGIN_QUEUE) or headers.get("x-first-death-queue")) or parking.removesuffix(".parking")
    reason = _text(headers.get(REASON) or headers.get("x-first-death-reason")) or "unknown"
    count = headers.get("x-delivery-count", 0)
    stamp = datetime.fromtimestamp(properties.timestamp, UTC) if properties.timestamp else None
    return Parked(parking, origin, message_id, properties.type or "", reason, attempt_of(properties),
                  count if isinstance(count, int) else 0, stamp, len(body), body, properties)


class DeadLetters:
    """The parking queues of one ``Topology``; every call opens and closes its own connection."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.parameters = pika.URLParameters(url)
        self.topology = topology
        self.work = {q.name: q for q in map(topology.queue, topology.roles)}

    def parking_queues(self, role: str | None = None) -> list[str]:
        return [q.parking for q in self.work.values() if role in (None, q.role)]

    def list(self, role: str | None = None, limit: int = 10_000) -> list[Parked]:
        """Every parked message's metadata (up to ``limit`` per queue); all stay parked."""
        found: list[Parked] = []
        with self._channel() as channel:
            for parking in self.parking_queues(role):
                with _held(channel) as held:
                    found += (m for m, _ in _scan(channel, parking, limit, held))
        return found

    def find(self, message_id: str, role: str | None = None, record: Callable[[Parked], None] | None = None
             ) -> Parked:
        """The first parked message with ``message_id`` (``record``ed when given, e.g. a body read); it stays."""
        def settle(_channel: BlockingChannel, message: Parked) -> bool:
            if record is not None:
                record(message)
            return False

        return self._take(message_id, role, settle)

    def replay(self, message_id: str, record: Callable[[Parked], None], role: str | None = None) -> Parked:
        """Republish to the original work queue (confirmed, attempt reset), ``record`` it, then remove it."""
        def settle(channel: BlockingChannel, message: Parked) -> bool:
            queue = self._origin(message)
            properties = with_headers(message.properties, {ATTEMPT: 0})
            for name in (REASON, ORIGIN_QUEUE):
                properties.headers.pop(name, None)
            ConfirmedChannel(channel.connection.channel()).publish(queue.exchange, queue.routing_key, message.body,
                                                                   properties)
            record(message)  # a failure here leaves the parked copy; the replayed one is dropped by the inbox
            return True

        return self._take(message_id, role, settle)

    def discard(self, message_id: str, record: Callable[[Parked], None], role: str | None = None) -> Parked:
        """``record`` the discard, then remove the message for good."""
        def settle(_channel: BlockingChannel, message: Parked) -> bool:
            record(message)
            return True

        return self._take(message_id, role, settle)

    def _origin(self, message: Parked) -> WorkQueue:
        if message.origin not in self.work:
            raise NotParked(f"original queue {message.origin!r} is not in topology {self.topology.prefix!r}")
        return self.work[message.origin]

    def _take(self, message_id: str, role: str | None,
              settle: Callable[[BlockingChannel, Parked], bool]) -> Parked:
        with self._channel() as channel:
            for parking in self.parking_queues(role):
                with _held(channel) as held:
                    for message, tag in _scan(channel, parking, None, held):
                        if message.message_id == message_id:
                            if settle(channel, message):
                                with translated(f"removing {message_id} from {parking}"):
                                    channel.basic_ack(tag)
                                held.remove(tag)
                            return message
        raise NotParked(f"no parked message {message_id!r} in {', '.join(self.parking_queues(role))}")

    @contextmanager
    def _channel(self) -> Iterator[BlockingChannel]:
        with translated("connecting to RabbitMQ"):
            connection = pika.BlockingConnection(self.parameters)
        try:
            with translated("opening a channel"):
                channel = connection.channel()
            yield channel
        finally:
            if connection.is_open:
                with suppress(*PIKA_ERRORS):  # unacked messages return to their queue either way
                    connection.close()


@contextmanager
def _held(channel: BlockingChannel) -> Iterator[list[int]]:
    """Hand back every message still held (``nack`` all, requeue) however the block ends."""
    held: list[int] = []
    try:
        yield held
    finally:
        if held and channel.is_open:
            with translated("requeueing browsed messages"):
                channel.basic_nack(0, multiple=True, requeue=True)


def _scan(channel: BlockingChannel, parking: str, limit: int | None, held: list[int]
          ) -> Iterator[tuple[Parked, int]]:
    # Held messages are not offered again, so the loop ends when the queue has nothing left to give.
    while limit is None or len(held) < limit:
        with translated(f"reading {parking}"):
            method, properties, body = channel.basic_get(parking, auto_ack=False)
        if method is None:
            return
        held.append(method.delivery_tag)
        yield parked(parking, properties, body), method.delivery_tag
