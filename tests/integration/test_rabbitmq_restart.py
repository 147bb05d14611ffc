"""Broker restart mid-run, on a private RabbitMQ node (``private_services.py``): ``rabbitmqctl stop_app``/``start_app``
and a SIGKILL of the broker's Erlang VM followed by a restart on the same data, while a publisher publishes
and a worker consumes.

Every confirmed message reaches the ledger once; the publisher and the consumer reconnect by themselves.
The shared broker is never touched.
"""

from __future__ import annotations

import time

import pika
import pytest
from private_services import PrivateRabbitMQ
from rabbitmq_support import (
    Publishing,
    assert_ledger_exact,
    depth,
    expected_totals,
    processed,
    running,
    self_pay_charge,
    test_topology,
    wait_for,
)

from api.bootstrap import Hub
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.consumer import Action
from connectors.rabbitmq.publisher import Publisher
from connectors.rabbitmq.workers import CommandConsumer

pytestmark = pytest.mark.integration
MESSAGES, ACCOUNTS, OUTAGE_SECONDS = 900, 20, 3.0


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
    prefix = f"hl7:CLINIC:{uid}-"
    topology = test_topology()
    commands = [self_pay_charge(uid, n, ACCOUNTS) for n in range(MESSAGES)]
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
            before = processed(hub, prefix)
            outage(broker, kind)
            publishing.join(120)
            assert not publishing.is_alive(), "the publisher did not recover"
            wait_for(lambda: processed(hub, prefix) == MESSAGES, timeout=120, what="every confirmed message posted")
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
    # Self-pay charges post three legs each (charge, and the transfer out of and into the patient's side).
    assert_ledger_exact(hub, expected_totals(commands), prefix, MESSAGES, 3 * MESSAGES)
    print(f"\nbroker {kind}: {MESSAGES} messages, {publishing.failures} publish retries, "
          f"{consumer.redeliveries} redeliveries, {before} posted before the outage")
