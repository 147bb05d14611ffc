"""The worker roles (connectors): router (commands → unit of work), intake (raw → commands) and their runner.

``run_workers`` starts one consumer thread per role, each with its own connection, and stops them
gracefully on SIGTERM/SIGINT: stop consuming, finish and settle in-flight deliveries, close.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

import pika
from pika.spec import BasicProperties

from connectors.intake import Intake, Status
from connectors.rabbitmq.consumer import WorkConsumer
from connectors.rabbitmq.publisher import translated
from connectors.rabbitmq.topology import Topology
from router import codec
from router.bus import InProcessBus, MessageBus
from router.domain.commands import Command
from router.domain.errors import DecodeError, MappingError, PermanentError

log = logging.getLogger(__name__)
ROLES = ("intake", "router", "outbound")  # outbound: the outbox relay and EMR deliveries (api/deliveries.py)


class CommandConsumer(WorkConsumer):
    """Router role: canonical commands from the work exchange, in batches of up to ``batch_size`` (default 1).

    A batch is one transaction (``InProcessBus.handle_many``, group commit); a command that breaks a rule
    is parked alone, a transient failure retries the whole batch. A subclass that overrides ``dispatch``,
    or a bus without ``handle_many``, is handled one command per unit of work. On the 2-core benchmark box
    (50 accounts) batches were ~10% slower than single commands: every batch locks most accounts, so the
    threads serialize, and the commit was not the bottleneck (statement round trips are) -- hence 1.
    """

    role = "router"

    def __init__(self, url: str, topology: Topology, bus: MessageBus, *, batch_size: int = 1,
                 **kwargs: Any) -> None:
        batches = isinstance(bus, InProcessBus) and type(self).dispatch is CommandConsumer.dispatch
        super().__init__(url, topology, batch_size=batch_size if batches else 1, **kwargs)
        self.bus = bus

    def translate(self, body: bytes, properties: BasicProperties) -> Command:
        message = codec.decode(body)
        if not isinstance(message, Command):
            raise DecodeError(f"{type(message).__name__} is an event, not a command", location="type")
        return message

    def dispatch(self, message: Command) -> None:
        self.bus.handle(message)

    def dispatch_many(self, messages: Sequence[Command]) -> list[PermanentError | None]:
        assert isinstance(self.bus, InProcessBus)
        return [r if isinstance(r, PermanentError) else None for r in self.bus.handle_many(messages)]


class IntakeConsumer(WorkConsumer):
    """Intake role: raw payloads (HL7 v2, FHIR, X12) decoded into commands published to the router."""

    role = "intake"

    def __init__(self, url: str, topology: Topology, intake: Intake, **kwargs: Any) -> None:
        super().__init__(url, topology, **kwargs)
        self.intake = intake

    def translate(self, body: bytes, properties: BasicProperties) -> bytes:
        return body

    def dispatch(self, message: bytes) -> None:
        report = self.intake.ingest(message, "amqp")
        rejected = [r for r in report.results if r.status is Status.REJECTED]
        if rejected:  # the whole payload is parked; replaying it re-sends the good ones as duplicates
            raise MappingError(f"{len(rejected)} message(s) rejected", location=rejected[0].location)


def declare(url: str, topology: Topology) -> None:
    """Declare the topology (idempotent; a no-op where definitions.json was loaded)."""
    with translated("declaring the topology"), pika.BlockingConnection(pika.URLParameters(url)) as connection:
        topology.declare(connection.channel())


def run_workers(consumers: Sequence[WorkConsumer], *, install_signals: bool = True) -> None:
    """Run each consumer on its own thread until SIGTERM/SIGINT (or every consumer has returned)."""
    def stop(signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %d: stopping %d consumer(s) gracefully", signum, len(consumers))
        for consumer in consumers:
            consumer.stop()

    if install_signals:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    threads = [threading.Thread(target=c.run, name=f"rcmhub-{c.role}-io", daemon=True) for c in consumers]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)  # short joins keep the main thread responsive to signals
