"""Production outbound (connectors): per-destination RabbitMQ queues, the confirmed relay and their consumers.

Topology: the outbound exchange (``{prefix}.outbound``) routes ``deliver.{destination}`` to one quorum
queue per destination (``{prefix}.outbound.{destination}``, delivery limit, dead-lettered to its
``.parking`` queue), so a destination that is down only fills its own queue. Queues follow the configured
destinations and are declared by code at worker start (``declare_destinations``); the static part of the
topology stays in ``deploy/rabbitmq/definitions.json``. A job is ``{"delivery": id}``: the payload stays
in the database (it carries PHI), and the consumer runs the same ``DestinationWorker.deliver`` as embedded
mode. A delivery that ends dead is acked: its dead letter is the delivery row (reason, attempts), listed by
``rcmhub deliveries list --status dead`` and replayed with ``rcmhub deliveries replay ID``. Only a job that
cannot be read is parked (``{prefix}.outbound.{destination}.parking``, ``rcmhub dlq`` conventions).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

import pika
from pika.spec import BasicProperties
from sqlalchemy.orm import Session, sessionmaker

from connectors.outbound.config import Destinations
from connectors.outbound.engine import MISSING, DestinationWorker
from connectors.outbound.relay import OutboxRelay
from connectors.outbound.store import PENDING, DeliveryStore
from connectors.outbound.transports import transport_for
from connectors.rabbitmq.consumer import WorkConsumer
from connectors.rabbitmq.publisher import ATTEMPT, Publisher, translated
from connectors.rabbitmq.topology import Topology, WorkQueue
from router.domain.errors import DecodeError, DeliveryFailed


def destination_queue(topology: Topology, destination: str) -> WorkQueue:
    name = f"{topology.outbound}.{destination}"
    waits = tuple((t, f"{name}.retry.{t.name}") for t in topology.tiers)
    return WorkQueue("outbound", name, topology.outbound, f"deliver.{destination}", f"{name}.parking", waits)


def declare_destinations(url: str, topology: Topology, names: Sequence[str]) -> None:
    """Declare each destination's queue and parking queue (idempotent), after the static topology."""
    with translated("declaring destination queues"), pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        for x in (topology.outbound, topology.dead_letters, topology.retry):
            channel.exchange_declare(x, "direct", durable=True)
        for name in names:
            q = destination_queue(topology, name)
            channel.queue_declare(q.name, durable=True, arguments={
                "x-queue-type": "quorum", "x-delivery-limit": topology.delivery_limit,
                "x-dead-letter-exchange": topology.dead_letters, "x-dead-letter-routing-key": q.name,
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
            channel.queue_declare(q.parking, durable=True, arguments={"x-queue-type": "quorum"})
            channel.queue_bind(q.name, topology.outbound, routing_key=q.routing_key)
            channel.queue_bind(q.parking, topology.dead_letters, routing_key=q.name)
            for tier, wait in q.waits:  # expiry sends the job back through the outbound exchange
                channel.queue_declare(wait, durable=True, arguments={
                    "x-queue-type": "quorum", "x-message-ttl": tier.ttl_ms, "x-dead-letter-exchange": topology.outbound,
                    "x-dead-letter-routing-key": q.routing_key, "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish"})
                channel.queue_bind(wait, topology.retry, routing_key=wait)


def delete_destinations(url: str, topology: Topology, names: Sequence[str]) -> None:
    """Remove what ``declare_destinations`` created (tests use their own prefix and clean up)."""
    with translated("deleting destination queues"), pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        for name in names:
            q = destination_queue(topology, name)
            for queue in (q.name, q.parking, *(wait for _, wait in q.waits)):
                channel.queue_delete(queue)


def publish_jobs(publisher: Publisher, topology: Topology, jobs: Sequence[tuple[int, str]]) -> None:
    """One confirmed, persistent job per delivery; returns only after every confirm."""
    for delivery_id, destination in jobs:
        properties = pika.BasicProperties(
            message_id=f"delivery-{delivery_id}", type="Delivery", content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent, timestamp=int(time.time()), headers={ATTEMPT: 0})
        publisher.publish(topology.outbound, f"deliver.{destination}",
                          json.dumps({"delivery": delivery_id}).encode(), properties)


class OutboundConsumer(WorkConsumer):
    """Delivers the jobs of one destination's queue; several processes may consume it competitively."""

    role = "outbound"

    def __init__(self, url: str, topology: Topology, worker: DestinationWorker, **kwargs: Any) -> None:
        super().__init__(url, topology, **kwargs)
        self.queue = destination_queue(topology, worker.destination.name)
        self.worker = worker

    def translate(self, body: bytes, properties: BasicProperties) -> int:
        try:
            value = json.loads(body)["delivery"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError("not a delivery job", location="body") from exc
        if not isinstance(value, int):
            raise DecodeError("not a delivery job", location="delivery")
        return value

    def dispatch(self, message: int) -> None:
        # Delivered or dead (recorded on the row) both settle the job; interrupted by a stop, it goes to a retry tier.
        status = self.worker.deliver(message)
        if status == PENDING:
            raise DeliveryFailed("worker stopping before the delivery settled", location=self.queue.name)
        if status == MISSING:
            raise DeliveryFailed(f"no delivery {message} in the database (yet)", location=self.queue.name)

    def stop(self) -> None:
        self.worker.stop.set()  # a delivery waiting out a backoff stays pending and is redelivered
        super().stop()


class RelayRunner:
    """The outbox relay as a worker-role thread (same ``run``/``stop``/``consuming`` shape as consumers)."""

    role = "outbound-relay"

    def __init__(self, relay: OutboxRelay) -> None:
        self.relay = relay
        self.consuming = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()

    def run(self) -> None:
        self.consuming.set()
        try:
            self.relay.run(self._stop, self._wake)
        finally:
            self.consuming.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()


def outbound_workers(url: str, topology: Topology, sessions: sessionmaker[Session], destinations: Destinations,
                     *, prefetch: int | None = None) -> list[Any]:
    """The relay (publishing jobs with confirms) and one consumer per active destination."""
    names = [d.name for d in destinations.active]
    declare_destinations(url, topology, names)
    publisher = Publisher(url)
    relay = OutboxRelay(sessions, destinations, publish=lambda jobs: publish_jobs(publisher, topology, jobs))
    store = DeliveryStore(sessions)
    consumers: list[Any] = [RelayRunner(relay)]
    # One thread per destination consumer: transports hold one connection each, and order is kept per destination.
    # Scale with processes (competing consumers on the destination's queue).
    consumers += [OutboundConsumer(url, topology, DestinationWorker(d, store, transport_for(d)),
                                   concurrency=1, prefetch=prefetch or 4) for d in destinations.active]
    return consumers
