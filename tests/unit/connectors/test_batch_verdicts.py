"""The router consumer's batch path without a broker: one verdict per delivery, from one group commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import pika
from pika.spec import BasicProperties

from api.bootstrap import Hub
from connectors.rabbitmq.topology import Topology
from connectors.rabbitmq.verdicts import Action
from connectors.rabbitmq.workers import CommandConsumer
from router import codec
from router.bus import InProcessBus
from router.domain.commands import Command, PostCharges, PostPatientPayment
from router.domain.errors import StoreUnavailable
from router.domain.model import ChargeLine


def delivery(command: Command) -> tuple[bytes, BasicProperties]:
    return codec.encode(command), pika.BasicProperties(headers={})


def charge(uid: str, n: int) -> PostCharges:
    return PostCharges(f"bv:{uid}-{n}", f"A{uid}", f"V{uid}", None,
                       (ChargeLine(1, date(2024, 3, 1), "99213", Decimal("10.00")),))


def test_a_batch_gets_one_verdict_per_delivery(hub: Hub, uid: str) -> None:
    assert hub.local_bus is not None
    consumer = CommandConsumer("amqp://localhost", Topology(f"t{uid}"), hub.local_bus, batch_size=50)
    assert consumer.batch_size == 50
    bad = PostPatientPayment(f"bv:{uid}-neg", f"A{uid}", Decimal("-1.00"), "cash", date(2024, 3, 2))
    batch = [delivery(charge(uid, 0)), (b"\x00not json", pika.BasicProperties(headers={})), delivery(bad),
             delivery(charge(uid, 1)), delivery(charge(uid, 0))]
    verdicts = consumer.process_many(batch)
    assert [v.action for v in verdicts] == [Action.ACK, Action.PARK, Action.PARK, Action.ACK, Action.ACK]
    assert verdicts[1].reason.startswith("DecodeError") and verdicts[2].reason == "DomainViolation"


class Down(InProcessBus):
    def handle_many(self, commands: Sequence[Command]) -> list[object]:  # type: ignore[override]
        raise StoreUnavailable("database unavailable: OperationalError")


def test_a_batch_that_cannot_commit_is_retried_whole(hub: Hub, uid: str) -> None:
    consumer = CommandConsumer("amqp://localhost", Topology(f"t{uid}"), Down(hub.uow_factory, {}), hold_seconds=0.2,
                               batch_size=50)
    verdicts = consumer.process_many([delivery(charge(uid, n)) for n in range(3)])
    assert [v.action for v in verdicts] == [Action.RETRY] * 3


def test_a_consumer_that_overrides_dispatch_keeps_one_command_per_unit_of_work(hub: Hub) -> None:
    class Custom(CommandConsumer):
        def dispatch(self, message: Command) -> None:
            super().dispatch(message)

    assert hub.local_bus is not None
    assert Custom("amqp://localhost", Topology("t"), hub.local_bus, batch_size=50).batch_size == 1
