"""Confirmed, mandatory, persistent publishing (connectors); pika errors become ``BrokerUnavailable``.

Headers carry only a hash of the source id and a control id (MSH-10, TRN02): source ids can embed
account or claim numbers, which are PHI and must not sit in broker metadata or logs.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pika
import pika.exceptions as pe
from pika.adapters.blocking_connection import BlockingChannel

from router import codec
from router.bus import digest
from router.domain.commands import Command
from router.domain.errors import BrokerUnavailable

ATTEMPT = "x-rcmhub-attempt"
CONTROL_ID = "x-rcmhub-control-id"
SOURCE_HASH = "x-rcmhub-source-hash"
REASON = "x-rcmhub-reason"
ORIGIN_QUEUE = "x-rcmhub-queue"
STORED_ID = "x-rcmhub-stored-id"  # the message store row of a raw payload already kept (MLLP store-and-forward)

# pika's failures, each translated at this boundary (a test checks every one has a mapping).
PIKA_ERRORS: tuple[type[Exception], ...] = (pe.AMQPError, ConnectionError, OSError)


def source_hash(source_id: str) -> str:
    return hashlib.sha256(source_id.encode()).hexdigest()[:16]


def control_id(source_id: str) -> str:
    """MSH-10 of ``hl7:{MSH-4}:{MSH-10}`` or TRN02 of ``835:{payer}:{TRN02}:{BPR02}``; else empty."""
    parts = source_id.split(":")
    if parts[0] == "hl7" and len(parts) == 3:
        return parts[2]
    if parts[0] == "835" and len(parts) == 4:
        return parts[2]
    return ""  # FHIR ids may be built from account numbers: only the hash goes out


def command_properties(command: Command, *, correlation_id: str | None = None, attempt: int = 0
                       ) -> pika.BasicProperties:
    headers = {SOURCE_HASH: source_hash(command.source_id), CONTROL_ID: control_id(command.source_id),
               ATTEMPT: attempt}
    return pika.BasicProperties(
        message_id=digest(command), correlation_id=correlation_id or headers[SOURCE_HASH],
        type=type(command).__name__, content_type="application/json", content_encoding="utf-8",
        delivery_mode=pika.DeliveryMode.Persistent, timestamp=int(time.time()), headers=headers)


def raw_properties(content_type: str, message_type: str, digest: str, control_id: str, stored_id: int
                   ) -> pika.BasicProperties:
    """A raw payload already kept in the message store, for the intake queue: ``type`` the message type
    (MSH-9), ``message_id`` the stored digest, headers the control id (MSH-10), attempt 0 and the store row
    (``STORED_ID``) the intake worker marks. No content_encoding: the charset is the payload's own (MSH-18)."""
    return pika.BasicProperties(
        content_type=content_type, type=message_type, message_id=digest, delivery_mode=pika.DeliveryMode.Persistent,
        timestamp=int(time.time()), headers={CONTROL_ID: control_id, ATTEMPT: 0, STORED_ID: stored_id})


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn any pika/socket failure inside the block into ``BrokerUnavailable``."""
    try:
        yield
    except PIKA_ERRORS as exc:
        raise BrokerUnavailable(f"{what}: {type(exc).__name__}") from exc


class ConfirmedChannel:
    """Publishes on one channel in confirm mode: returns (unroutable) and nacks are failures."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        with translated("enabling publisher confirms"):
            channel.confirm_delivery()

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Return only once the broker confirmed the message; otherwise raise ``BrokerUnavailable``."""
        try:
            self.channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except pe.UnroutableError as exc:
            raise BrokerUnavailable(f"unroutable: no queue bound for {exchange}/{routing_key}") from exc
        except pe.NackError as exc:
            raise BrokerUnavailable(f"broker refused {exchange}/{routing_key} (nack)") from exc
        except PIKA_ERRORS as exc:
            raise BrokerUnavailable(f"publish to {exchange}: {type(exc).__name__}") from exc


class Publisher:
    """A thread-safe publisher owning one lazily opened connection (reopened after a failure)."""

    def __init__(self, url: str, *, heartbeat: int = 30) -> None:
        self.parameters = pika.URLParameters(url)
        self.parameters.heartbeat = heartbeat
        self.parameters.blocked_connection_timeout = 30
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: ConfirmedChannel | None = None

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        with self._lock:
            try:
                self._open().publish(exchange, routing_key, body, properties)
            except BrokerUnavailable:
                self._reset()
                raise

    def publish_command(self, exchange: str, routing_key: str, command: Command, **kwargs: Any) -> None:
        self.publish(exchange, routing_key, codec.encode(command), command_properties(command, **kwargs))

    def _open(self) -> ConfirmedChannel:
        if self._channel is None or self._connection is None or not self._connection.is_open:
            self._reset()
            with translated("connecting to RabbitMQ"):
                self._connection = pika.BlockingConnection(self.parameters)
                self._channel = ConfirmedChannel(self._connection.channel())
        assert self._channel is not None
        return self._channel

    def _reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with suppress(*PIKA_ERRORS):  # already broken; the next publish opens a new connection
                connection.close()

    def close(self) -> None:
        with self._lock:
            self._reset()
