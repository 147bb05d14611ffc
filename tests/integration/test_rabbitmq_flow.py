"""Commands through the real RabbitMQ into the PostgreSQL ledger: posting, poison messages, retries, shutdown."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pika
import pytest
from rabbitmq_support import FAST_TIERS, declared, depth, drain, running, test_topology, wait_for
from services import amqp_url

from api.bootstrap import Hub
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.consumer import Action
from connectors.rabbitmq.publisher import ATTEMPT, REASON, Publisher
from connectors.rabbitmq.topology import DEFINITIONS, Topology
from connectors.rabbitmq.workers import CommandConsumer
from router.domain.commands import Command, PostCharges, PostPatientPayment, ReverseEntry
from router.domain.errors import DeliveryFailed, StoreUnavailable
from router.domain.model import ChargeLine, Patient
from router.queries import account_view

pytestmark = pytest.mark.integration


@pytest.fixture
def url() -> str:
    return amqp_url()


def charge(uid: str, n: int, account: str, amount: str = "10.00") -> PostCharges:
    return PostCharges(f"hl7:CLINIC:{uid}-{n}", account, f"V{account}", Patient(f"MRN{account}", "DOE", "JANE"),
                       (ChargeLine(1, date(2024, 3, 1), "99213", Decimal(amount)),))


def balance(hub: Hub, account: str) -> str:
    with hub.sessions() as session:
        view = account_view(session, account)
    return str(view.as_json()["total_balance"]) if view else "none"


def test_published_commands_are_posted_once_and_carry_no_phi_in_headers(url: str, pg_hub: Hub, uid: str) -> None:
    topology = test_topology()
    account = f"ACC{uid}"
    with declared(url, topology) as channel:
        bus = RabbitBus(Publisher(url), topology)
        commands = [charge(uid, n, account, "12.34") for n in range(20)]
        for cmd in [*commands, commands[0]]:  # the resend is dropped by the inbox
            assert bus.handle(cmd).source_id == cmd.source_id
        method, props, _ = channel.basic_get(topology.queue("router").name, auto_ack=False)
        assert method is not None
        channel.basic_nack(method.delivery_tag, requeue=True)
        assert props.delivery_mode == 2 and props.content_type == "application/json" and props.timestamp
        assert props.type == "PostCharges" and props.message_id and props.correlation_id
        assert props.headers["x-rcmhub-control-id"] == f"{uid}-0" and props.headers[ATTEMPT] == 0
        assert not any(s in json.dumps(props.headers, default=str) for s in (account, "DOE", "JANE", "MRN"))
        with running(CommandConsumer(url, topology, pg_hub.local_bus, concurrency=4, batch_size=50)) as consumer:
            wait_for(lambda: consumer.settled[Action.ACK]
                     >= 21, what="21 acks")
        bus.close()
        assert balance(pg_hub, account) == "246.80"
        assert depth(channel, topology.queue("router").parking) == 0


POISON: list[tuple[str, bytes | Command]] = [
    ("not json", b"\x00\xffnot json"),
    ("unknown type", b'{"type":"DropTables","v":1,"body":{}}'),
    ("future version", b'{"type":"PostCharges","v":2,"body":{}}'),
    ("event on the command queue", b'{"type":"PatientRegistered","v":1,"body":{"source_id":"s","account":"a",'
                                   b'"coverages":1}}'),
    ("float money", b'{"type":"PostPatientPayment","v":1,"body":{"source_id":"s","account":"a","amount":1.5,'
                    b'"method":"cash","received_on":"2024-01-01"}}'),
    ("bad date", b'{"type":"PostPatientPayment","v":1,"body":{"source_id":"s","account":"a","amount":"1.50",'
                 b'"method":"cash","received_on":"2024-13-45"}}'),
    ("unknown field", b'{"type":"ReverseEntry","v":1,"body":{"source_id":"s","idempotency_key":"k","reason":"r",'
                      b'"ssn":"123-45-6789"}}'),
    ("truncated", b'{"type":"PostCharges","v":1,"body":{"source_id":"s"'),
]


@pytest.mark.parametrize("batch", [1, 50], ids=["one-per-transaction", "group-commit"])
def test_poison_messages_are_parked_at_once_with_a_reason_and_valid_ones_still_post(url: str, pg_hub: Hub,
                                                                                    uid: str, batch: int) -> None:
    topology = test_topology()
    account = f"POI{uid}"
    queue = topology.queue("router")
    semantic: list[Command] = [
        ReverseEntry(f"hl7:CLINIC:{uid}-rev", f"{account}:no-such-entry", "typo"),  # domain violation
        PostPatientPayment(f"hl7:CLINIC:{uid}-neg", account, Decimal("-5.00"), "cash", date(2024, 3, 2)),
        PostCharges(f"hl7:CLINIC:{uid}-0", account, "OTHER", None, ()),  # same source id, other content
    ]
    with declared(url, topology) as channel:
        publisher = Publisher(url)
        bus = RabbitBus(publisher, topology)
        for n in range(30):
            bus.handle(charge(uid, n, account))
            if n < len(POISON):
                props = pika.BasicProperties(message_id=f"poison-{n}", type="x", delivery_mode=2, headers={})
                publisher.publish(queue.exchange, queue.routing_key, POISON[n][1], props)  # type: ignore[arg-type]
            if 10 <= n < 10 + len(semantic):
                bus.handle(semantic[n - 10])
        with running(CommandConsumer(url, topology, pg_hub.local_bus, concurrency=3, batch_size=batch)):
            wait_for(lambda: depth(channel, queue.parking) == len(POISON) + len(semantic), what="all parked")
            wait_for(lambda: depth(channel, queue.name) == 0, what="work queue drained")
        parked = drain(channel, queue.parking)
        bus.close()
    assert balance(pg_hub, account) == "300.00"
    for props, _ in parked:
        assert props.headers[REASON], props.headers
        assert props.headers.get("x-delivery-count", 0) == 0  # parked on its first delivery
        assert not any(s in json.dumps(props.headers, default=str) for s in (account, "DOE", "JANE", "123-45"))
    reasons = [p.headers[REASON].split(" ")[0] for p, _ in parked]
    assert reasons.count("DecodeError") == len(POISON) and reasons.count("DomainViolation") == len(semantic)


def test_a_message_that_keeps_coming_back_is_dead_lettered_by_the_delivery_limit(url: str) -> None:
    topology = test_topology(delivery_limit=3)
    queue = topology.queue("router")
    with declared(url, topology) as channel:
        channel.basic_publish(queue.exchange, queue.routing_key, b"crash-me",
                              pika.BasicProperties(delivery_mode=2, message_id="crasher"))
        deliveries = 0
        deadline = time.monotonic() + 20
        while depth(channel, queue.parking) == 0 and time.monotonic() < deadline:
            method, _, _ = channel.basic_get(queue.name)
            if method is not None:  # a worker that dies mid-message: the delivery returns to the queue
                deliveries += 1
                channel.basic_nack(method.delivery_tag, requeue=True)
        ((props, body),) = drain(channel, queue.parking)
    assert body == b"crash-me" and deliveries <= topology.delivery_limit + 1
    assert props.headers["x-first-death-reason"] == "delivery_limit"


class Flaky(CommandConsumer):
    """Fails with a transient error the first ``failures`` times per message, then dispatches."""

    def __init__(self, *args: Any, failures: int, error: type[Exception] = DeliveryFailed, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures, self.error, self.seen = failures, error, dict[str, int]()
        self.lock = threading.Lock()

    def dispatch(self, message: Command) -> None:
        with self.lock:
            self.seen[message.source_id] = n = self.seen.get(message.source_id, 0) + 1
        if n <= self.failures:
            raise self.error("downstream not ready")
        super().dispatch(message)


@pytest.mark.parametrize("failures, parked", [(2, 0), (9, 1)], ids=["recovers-in-tier-2", "exhausts-tiers"])
def test_transient_errors_walk_the_retry_tiers_then_post_or_park(url: str, pg_hub: Hub, uid: str, failures: int,
                                                                 parked: int) -> None:
    topology = test_topology(tiers=FAST_TIERS)
    account = f"TR{uid}"
    queue = topology.queue("router")
    with declared(url, topology) as channel:
        bus = RabbitBus(Publisher(url), topology)
        bus.handle(charge(uid, 1, account, "55.55"))
        bus.close()
        with running(Flaky(url, topology, pg_hub.local_bus, failures=failures)) as consumer:
            wait_for(lambda: sum(consumer.settled.values()) == min(failures, 3) + 1, what="settled", timeout=15)
        found = drain(channel, queue.parking)
    assert len(found) == parked
    assert balance(pg_hub, account) == ("none" if parked else "55.55")
    if parked:
        assert found[0][0].headers[REASON] == "retries exhausted: DeliveryFailed"
        assert found[0][0].headers[ATTEMPT] == 3


def test_a_store_outage_holds_the_message_unacked_then_posts_it(url: str, pg_hub: Hub, uid: str) -> None:
    topology = test_topology(tiers=FAST_TIERS)
    account = f"SO{uid}"
    with declared(url, topology):
        bus = RabbitBus(Publisher(url), topology)
        bus.handle(charge(uid, 1, account, "7.00"))
        bus.close()
        with running(Flaky(url, topology, pg_hub.local_bus, failures=4, error=StoreUnavailable)) as consumer:
            wait_for(lambda: sum(consumer.settled.values()) == 1, what="settled")
        assert consumer.settled[Action.RETRY] == 0  # no retry
    assert balance(pg_hub, account) == "7.00"


def test_graceful_stop_finishes_and_acks_in_flight_work(url: str, pg_hub: Hub, uid: str) -> None:
    topology = test_topology()
    account = f"GS{uid}"

    class Slow(CommandConsumer):
        def dispatch(self, message: Command) -> None:
            time.sleep(0.5)
            super().dispatch(message)

    with declared(url, topology) as channel:
        bus = RabbitBus(Publisher(url), topology)
        for n in range(6):
            bus.handle(charge(uid, n, account))
        bus.close()
        consumer = Slow(url, topology, pg_hub.local_bus, concurrency=2, prefetch=2)
        with running(consumer):
            time.sleep(0.3)  # two deliveries are in flight when the stop comes
        assert consumer.settled[Action.ACK] >= 2
        done = consumer.settled[Action.ACK]
        wait_for(lambda: depth(channel, topology.queue("router").name) == 6 - done, what="the rest requeued")
    assert balance(pg_hub, account) == f"{10 * done}.00"


def test_committed_definitions_file_is_what_the_code_declares(url: str, tmp_path: Path) -> None:
    topology = test_topology()
    with declared(url, topology):
        out = subprocess.run(["rabbitmqctl", "-q", "export_definitions", "-", "--format", "json"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            pytest.skip(f"rabbitmqctl unavailable: {out.stderr[-200:]}")
        broker = json.loads(out.stdout)
    mine = topology.definitions()
    ours = {k: [x for x in broker[k] if x.get("name", x.get("destination", "")).startswith(topology.prefix)]
            for k in ("exchanges", "queues", "bindings")}
    for queue in ours["queues"]:
        assert queue.pop("type") == "quorum"  # the export repeats x-queue-type as "type"
    key = lambda x: json.dumps(x, sort_keys=True)  # noqa: E731
    for kind in ("exchanges", "queues", "bindings"):
        assert sorted(map(key, ours[kind])) == sorted(map(key, mine[kind])), kind
    # The committed file is the default topology rendered by the same code.
    assert json.loads(DEFINITIONS.read_text()) == Topology().definitions()
