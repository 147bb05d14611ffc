"""Broker restart: ``rabbitmqctl stop_app``/``start_app`` while a publisher publishes and a worker consumes.

Every confirmed message reaches the ledger once; the publisher and the consumer reconnect by themselves.
The outage is a few seconds, but it drops every connection on the broker: set RCMHUB_SKIP_BROKER_RESTART=1
to skip this test when others share the broker.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pika
import pytest
from rabbitmq_support import depth, running, test_topology, wait_for
from services import amqp_url, postgres_url
from sqlalchemy import func, select

from api.bootstrap import Hub, build
from api.settings import Settings
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.consumer import Action
from connectors.rabbitmq.publisher import Publisher
from connectors.rabbitmq.workers import CommandConsumer
from router.adapters.orm import InboxRow, LedgerRow
from router.domain.commands import PostCharges
from router.domain.errors import BrokerUnavailable
from router.domain.model import ChargeLine
from router.queries import account_view

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(bool(os.environ.get("RCMHUB_SKIP_BROKER_RESTART")),
                                 reason="RCMHUB_SKIP_BROKER_RESTART is set (the broker is shared)")]
MESSAGES, ACCOUNTS, OUTAGE_SECONDS = 900, 20, 3.0


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = build(Settings(database_url=postgres_url(), data_dir=tmp_path_factory.mktemp("data"), amqp_url=""))
    yield hub
    hub.close()


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


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


def test_a_broker_restart_mid_run_loses_no_confirmed_message_and_clients_recover(pg_hub: Hub, uid: str) -> None:
    url = amqp_url()
    try:
        rabbitmqctl("status")
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"rabbitmqctl unavailable: {exc}")
    topology = test_topology()
    commands = [charge(uid, n) for n in range(MESSAGES)]
    expected: dict[str, Decimal] = {}
    for c in commands:
        expected[c.account] = expected.get(c.account, Decimal(0)) + sum(line.amount for line in c.charges)
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        topology.declare(connection.channel())
    try:
        assert pg_hub.local_bus is not None
        bus = RabbitBus(Publisher(url), topology)
        consumer = CommandConsumer(url, topology, pg_hub.local_bus, concurrency=4)
        with running(consumer):
            publishing = Publishing(bus, commands)
            publishing.start()
            wait_for(lambda: publishing.confirmed >= MESSAGES // 3 and consumer.settled[Action.ACK] > 0,
                     what="a third published and some posted")
            before = processed(pg_hub, uid)
            try:
                rabbitmqctl("stop_app")
                time.sleep(OUTAGE_SECONDS)
            finally:
                rabbitmqctl("start_app")  # always: other tests share this broker
            publishing.join(120)
            assert not publishing.is_alive(), "the publisher did not recover"
            wait_for(lambda: processed(pg_hub, uid) == MESSAGES, timeout=120, what="every confirmed message posted")
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
    with pg_hub.sessions() as session:
        for account, total in expected.items():
            view = account_view(session, account)
            assert view is not None and Decimal(str(view.as_json()["total_balance"])) == total, account
        legs = session.execute(select(LedgerRow.source_id, LedgerRow.idempotency_key).where(
            LedgerRow.source_id.like(f"hl7:CLINIC:{uid}-%"))).all()
    # Self-pay charges post three legs each (charge, and the transfer out of and into the patient's side).
    assert len({source for source, _ in legs}) == MESSAGES and len(legs) == 3 * MESSAGES
    assert len({key for _, key in legs}) == len(legs)  # zero duplicate legs
    print(f"\nbroker restart: {MESSAGES} messages, {publishing.failures} publish retries, "
          f"{consumer.redeliveries} redeliveries, {before} posted before the outage")
