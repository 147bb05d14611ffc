"""The worker roles (connectors): router (commands → unit of work), intake (raw → commands) and their runner.

``run_workers`` starts one consumer thread per role, each with its own connection, and stops them
gracefully on SIGTERM/SIGINT: stop consuming, finish and settle in-flight deliveries, close.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pika
from pika.spec import BasicProperties

from connectors.fhir_intake import receive_fhir, reply_of
from connectors.hl7_batch import Hl7Batch
from connectors.hl7_batch import Inbound as Hl7Inbound
from connectors.intake import Intake, Status
from connectors.rabbitmq.consumer import WorkConsumer
from connectors.rabbitmq.publisher import STORED_ID, translated
from connectors.rabbitmq.topology import Topology
from connectors.rabbitmq.verdicts import Reply
from mappings.detect import Format, detect_format
from mappings.fhir.wire import MEDIA_TYPE as FHIR_MEDIA_TYPE
from mappings.hl7v2.er7 import MEDIA_TYPE as HL7_V2
from mappings.hl7v2.er7 import is_single_message as is_single_hl7
from router import codec
from router.bus import InProcessBus, MessageBus
from router.domain.commands import Command
from router.domain.errors import DecodeError, MappingError, PermanentError

log = logging.getLogger(__name__)
ROLES = ("intake", "router", "outbound")  # outbound: the outbox relay and EMR deliveries (api/deliveries.py)


class CommandConsumer(WorkConsumer):
    """Router role: canonical commands from the work exchange, in batches of up to ``batch_size``.

    A batch is one transaction (``InProcessBus.handle_many``, group commit; set-based for a batch of charges):
    a command that breaks a rule is parked alone, a transient failure retries the whole batch. A subclass
    that overrides ``dispatch``, or a bus without ``handle_many``, is handled one command per unit of work.
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


@dataclass
class Inbound:
    """A raw payload from the inbound queue; ``reply`` is filled in by dispatch for ``reply_to`` senders."""

    body: bytes
    stored_id: int | None
    wants_reply: bool = False
    reply: Reply | None = None


class IntakeConsumer(WorkConsumer):
    """Intake role: raw payloads (HL7 v2, FHIR, X12) decoded and posted in this process, in batches.

    Why here and not through the router queue: the worker has the database anyway (it keeps and marks the
    messages), so posting in-process saves a second broker hop per message; the effect is the router's own
    (the same ``InProcessBus``; per-account order holds through its account locks). Single HL7 v2 messages,
    the bulk of the traffic, go through ``Hl7Batch`` (one group commit per batch); FHIR, X12 and HL7 files
    of several messages go one payload at a time through ``Intake``. A sender's ``reply_to`` gets the HL7
    ACK, the FHIR OperationOutcome or response Bundle, or the X12 999.
    """

    role = "intake"

    def __init__(self, url: str, topology: Topology, intake: Intake, bus: InProcessBus, **kwargs: Any) -> None:
        super().__init__(url, topology, **kwargs)
        self.intake = intake
        self.hl7 = Hl7Batch(bus, intake.store) if intake.store is not None else None

    def translate(self, body: bytes, properties: BasicProperties) -> Inbound:
        stored = (properties.headers or {}).get(STORED_ID)
        return Inbound(body, stored if isinstance(stored, int) else None, bool(properties.reply_to))

    def dispatch(self, message: Inbound) -> None:
        [error] = self.dispatch_many([message])
        if error is not None:
            raise error

    def dispatch_many(self, messages: Sequence[Inbound]) -> list[PermanentError | None]:
        single = [n for n, m in enumerate(messages) if self.hl7 is not None and is_single_hl7(m.body)]
        errors: list[PermanentError | None] = [None] * len(messages)
        if self.hl7 is not None and single:
            fresh = [n for n in single if messages[n].stored_id is None]
            for n, row_id in zip(fresh, self.hl7.keep([Hl7Inbound(messages[n].body) for n in fresh]), strict=True):
                messages[n].stored_id = row_id  # kept once: an attempt after a transient error reuses the row
            received = self.hl7.receive([Hl7Inbound(messages[n].body, messages[n].stored_id,
                                                    wants_ack=messages[n].wants_reply) for n in single])
            for n, got in zip(single, received, strict=True):
                errors[n] = got.error
                messages[n].reply = Reply(got.ack, HL7_V2) if got.ack is not None else None
        for n, message in enumerate(messages):
            if n not in single:
                errors[n] = self._one_payload(message)
        return errors

    def reply_of(self, message: Inbound) -> Reply | None:
        return message.reply

    def retry_headers(self, message: Inbound) -> dict[str, Any]:
        return {STORED_ID: message.stored_id} if message.stored_id is not None else {}

    def _one_payload(self, message: Inbound) -> PermanentError | None:
        if detect_format(message.body) is Format.FHIR:
            receipt = receive_fhir(self.intake.bus, message.body)
            _, body = reply_of(receipt)
            message.reply = Reply(json.dumps(body).encode(), FHIR_MEDIA_TYPE)
            failed = receipt.error or next((e.error for e in receipt.entries if e.error is not None), None)
            return failed
        report = self.intake.ingest(message.body, "amqp")
        if report.ack is not None:
            message.reply = Reply(report.ack.encode(), "application/edi-x12")
        rejected = [r for r in report.results if r.status is Status.REJECTED]
        if rejected:  # the whole payload is parked; replaying it re-sends the good ones as duplicates
            return MappingError(f"{len(rejected)} message(s) rejected", location=rejected[0].location)
        return None


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
