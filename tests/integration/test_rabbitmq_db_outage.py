"""Database outage: the private PostgreSQL (``private_services.py``) is stopped for 20 s while charges flow
through the private RabbitMQ node into a router consumer.

During the outage the deliveries wait unacknowledged (the consumer holds them with backoff instead of
retrying or parking them) and the publisher keeps filling the queue; after the restart processing resumes by
itself, and the ledger is exact: every message posted once, every balance to the cent.
"""

from __future__ import annotations

import time

import pytest
from private_services import PrivatePostgres, PrivateRabbitMQ
from rabbitmq_support import (
    Publishing,
    assert_ledger_exact,
    declared,
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
MESSAGES, ACCOUNTS, OUTAGE_SECONDS = 1500, 30, 20.0


def unacked(broker: PrivateRabbitMQ, name: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of one queue, as the broker counts them."""
    for line in broker.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged").splitlines():
        fields = line.split("\t")
        if fields[0] == name:
            return int(fields[1]), int(fields[2])
    raise AssertionError(f"queue {name} not listed")


def test_postgres_stopped_for_20_seconds_holds_messages_unacked_then_posts_them_exactly(
        private_postgres: PrivatePostgres, private_rabbitmq: PrivateRabbitMQ, private_hub: Hub, uid: str) -> None:
    url, hub, prefix = private_rabbitmq.url, private_hub, f"hl7:CLINIC:{uid}-"
    assert hub.local_bus is not None
    topology = test_topology()
    queue = topology.queue("router")
    commands = [self_pay_charge(uid, n, ACCOUNTS, tag="DO") for n in range(MESSAGES)]
    with declared(url, topology) as channel:
        bus = RabbitBus(Publisher(url), topology)
        consumer = CommandConsumer(url, topology, hub.local_bus, concurrency=4, hold_seconds=120)
        with running(consumer):
            publishing = Publishing(bus, commands, pace=0.008)
            publishing.start()
            wait_for(lambda: processed(hub, prefix) >= MESSAGES // 5, timeout=60, what="a fifth posted")
            private_postgres.stop("fast")  # aborts the sessions in flight, as a crash or failover does
            try:
                time.sleep(2)  # a commit racing the stop settles either way
                during = dict(consumer.settled)
                published = publishing.confirmed
                time.sleep(OUTAGE_SECONDS - 2)
                assert consumer.settled == during, "nothing is settled while the database is down"
                assert publishing.confirmed > published, "publishing goes on during the outage"
                waiting, held = unacked(private_rabbitmq, queue.name)
                assert waiting > 0, "messages wait in the queue"
                assert held == consumer.prefetch, "the consumer holds its deliveries unacknowledged"
            finally:
                private_postgres.start()
            publishing.join(60)
            assert not publishing.is_alive()
            wait_for(lambda: processed(hub, prefix) == MESSAGES, timeout=90, what="every message posted")
            wait_for(lambda: depth(channel, queue.name) == 0, what="the work queue drained")
        bus.close()
        assert depth(channel, queue.parking) == 0
        for wait in queue.waits:
            assert depth(channel, wait[1]) == 0
    assert consumer.settled[Action.RETRY] == 0 and consumer.settled[Action.PARK] == 0, "held, not retried or parked"
    assert consumer.settled[Action.ACK] == MESSAGES
    assert_ledger_exact(hub, expected_totals(commands), prefix, MESSAGES, 3 * MESSAGES)
    print(f"\ndatabase outage: {MESSAGES} messages, {OUTAGE_SECONDS:.0f} s outage, {waiting} waiting in the queue "
          f"and {held} held unacked at its end, {during[Action.ACK]} acked before it")

