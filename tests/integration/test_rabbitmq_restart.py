"""Broker restart mid-run, on a private RabbitMQ node (``private_services.py``): ``rabbitmqctl stop_app``/``start_app``
and a SIGKILL of the broker's Erlang VM followed by a restart on the same data, while a publisher publishes
and a worker consumes.

Every confirmed message reaches the ledger once; the publisher and the consumer reconnect by themselves.
The shared broker is never touched.
"""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal

import pika
import pytest
from private_services import PrivateRabbitMQ
from rabbitmq_support import depth, running, test_topology, wait_for
from sqlalchemy import func, select

from api.bootstrap import Hub
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.consumer import Action
from connectors.rabbitmq.publisher import Publisher
from connectors.rabbitmq.workers import CommandConsumer
from router.adapters.orm import InboxRow, LedgerRow
from router.domain.commands import PostCharges
from router.domain.errors import BrokerUnavailable
from router.domain.model import ChargeLine
from router.queries import account_view

pytestmark = pytest.mark.integration
MESSAGES, ACCOUNTS, OUTAGE_SECONDS = 900, 20, 3.0


class Publishing(threading.Thread):
    """Publishes every command, retrying each until the broker confirms it (what a connector does)."""

    def __init__(self, bus: RabbitBus, commands: list[PostCharges]) -> None:
        super().__init__(daemon=True)
        self.bus, self.commands = bus, commands
        self.confirmed = 0
        self.failures = 0

    def run(self) -> None:
        for command in self.commands:
            while True:
                try:
                    self.bus.handle(command)
                    break
                except BrokerUnavailable:
                    self.failures += 1
                    time.sleep(0.2)
            self.confirmed += 1
            time.sleep(0.004)  # spread the run so the outage lands mid-stream


def charge(uid: str, n: int) -> PostCharges:
    account = f"BR{uid}{n % ACCOUNTS:02d}"
    return PostCharges(f"hl7:CLINIC:{uid}-{n}", account, f"V{account}", None,
                       (ChargeLine(1, date(2024, 3, 1), "99213", Decimal(f"{1 + n % 7}.{n % 100:02d}")),))


def processed(hub: Hub, uid: str) -> int:
    with hub.sessions() as session:
        return session.scalar(select(func.count()).select_from(InboxRow)
                              .where(InboxRow.source_id.like(f"hl7:CLINIC:{uid}-%"))) or 0


def outage(broker: PrivateRabbitMQ, kind: str) -> None:
    if kind == "stop_app":
        broker.stop_app()
        try:
            time.sleep(OUTAGE_SECONDS)
        finally:
            broker.start_app()
    else:
        broker.kill9()  # no clean shutdown: what reached the disk (confirmed messages) is all there is
        time.sleep(OUTAGE_SECONDS / 3)
        broker.start()


@pytest.mark.parametrize("kind", ["stop_app", "kill -9"])
def test_a_broker_restart_mid_run_loses_no_confirmed_message_and_clients_recover(
        private_rabbitmq: PrivateRabbitMQ, private_hub: Hub, uid: str, kind: str) -> None:
    broker, hub, url = private_rabbitmq, private_hub, private_rabbitmq.url
    topology = test_topology()
    commands = [charge(uid, n) for n in range(MESSAGES)]
    expected: dict[str, Decimal] = {}
    for c in commands:
        expected[c.account] = expected.get(c.account, Decimal(0)) + sum(line.amount for line in c.charges)
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        topology.declare(connection.channel())
    if kind == "kill -9":
        broker.checkpoint()  # the new quorum queues' names must be on disk before a SIGKILL (see checkpoint)
    try:
        assert hub.local_bus is not None
        bus = RabbitBus(Publisher(url), topology)
        consumer = CommandConsumer(url, topology, hub.local_bus, concurrency=4)
        with running(consumer):
            publishing = Publishing(bus, commands)
            publishing.start()
            wait_for(lambda: publishing.confirmed >= MESSAGES // 3 and consumer.settled[Action.ACK] > 0,
                     what="a third published and some posted")
            before = processed(hub, uid)
            outage(broker, kind)
            publishing.join(120)
            assert not publishing.is_alive(), "the publisher did not recover"
            wait_for(lambda: processed(hub, uid) == MESSAGES, timeout=120, what="every confirmed message posted")
            assert consumer.consuming.is_set(), "the consumer reconnected by itself"
        bus.close()
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            channel = connection.channel()  # connections opened before the restart died with it
            assert depth(channel, topology.queue("router").name) == 0
            assert depth(channel, topology.queue("router").parking) == 0
    finally:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            topology.delete(connection.channel())
    assert publishing.failures > 0, "the outage should have interrupted publishing"
    assert before < MESSAGES, "the restart should have landed mid-run"
    with hub.sessions() as session:
        for account, total in expected.items():
            view = account_view(session, account)
            assert view is not None and Decimal(str(view.as_json()["total_balance"])) == total, account
        legs = session.execute(select(LedgerRow.source_id, LedgerRow.idempotency_key).where(
            LedgerRow.source_id.like(f"hl7:CLINIC:{uid}-%"))).all()
    # Self-pay charges post three legs each (charge, and the transfer out of and into the patient's side).
    assert len({source for source, _ in legs}) == MESSAGES and len(legs) == 3 * MESSAGES
    assert len({key for _, key in legs}) == len(legs)  # zero duplicate legs
    print(f"\nbroker {kind}: {MESSAGES} messages, {publishing.failures} publish retries, "
          f"{consumer.redeliveries} redeliveries, {before} posted before the outage")
