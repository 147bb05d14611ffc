"""``rcmhub dlq`` on the real RabbitMQ (a topology per test) + PostgreSQL audit log: list, show, replay, discard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from rabbitmq_support import declared, depth, running, test_topology, wait_for
from services import amqp_url, postgres_url
from typer.testing import CliRunner, Result

from api.bootstrap import Hub
from api.cli import app
from connectors.rabbitmq.consumer import Action
from connectors.rabbitmq.publisher import ATTEMPT, ORIGIN_QUEUE, REASON, command_properties
from connectors.rabbitmq.topology import Topology
from connectors.rabbitmq.workers import CommandConsumer
from router import codec
from router.adapters.audit import AuditLog
from router.domain.commands import PostCharges
from router.domain.model import ChargeLine, Patient
from router.queries import account_view

pytestmark = pytest.mark.integration
PHI = ("DOE", "JANE")


@pytest.fixture
def topology() -> Iterator[Topology]:
    topology = test_topology()
    with declared(amqp_url(), topology):
        yield topology


@pytest.fixture
def channel(topology: Topology) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    channel = connection.channel()
    channel.confirm_delivery()
    yield channel
    connection.close()


def rcmhub(topology: Topology, tmp_path: Path, *args: str) -> Result:
    env = {"RCMHUB_AMQP_URL": amqp_url(), "RCMHUB_AMQP_PREFIX": topology.prefix,
           "RCMHUB_DATABASE_URL": postgres_url(), "RCMHUB_DATA_DIR": str(tmp_path)}
    return CliRunner().invoke(app, list(args), env=env)


def command(uid: str, account: str, n: int = 1) -> PostCharges:
    return PostCharges(f"hl7:CLINIC:{uid}-dlq{n}", account, f"V{account}", Patient(f"MRN{account}", "DOE", "JANE"),
                       (ChargeLine(1, date(2024, 3, 1), "99213", Decimal("42.10")),))


def park(channel: BlockingChannel, topology: Topology, role: str, body: bytes, properties: pika.BasicProperties,
         reason: str = "DecodeError at CLP04") -> None:
    """What a consumer does when it parks a message: to the dead-letter exchange, reason and origin in headers."""
    queue = topology.queue(role)
    properties.headers = {**(properties.headers or {}), REASON: reason, ORIGIN_QUEUE: queue.name}
    channel.basic_publish(topology.dead_letters, queue.name, body, properties, mandatory=True)


def parked_set(channel: BlockingChannel, topology: Topology, uid: str) -> list[str]:
    """Ids in the router parking queue, e.g. to show nothing was lost by a scan."""
    cmds = [command(uid, f"D{uid}", n) for n in range(3)]
    for cmd in cmds:
        park(channel, topology, "router", codec.encode(cmd), command_properties(cmd, attempt=3))
    return [command_properties(c).message_id for c in cmds]


def settled(channel: BlockingChannel, expected: dict[str, int]) -> None:
    """Queue depths reach ``expected``: a quorum queue counts returned messages again a moment after the nack."""
    wait_for(lambda: {q: depth(channel, q) for q in expected} == expected, timeout=10, what=f"depths {expected}")


def test_list_shows_metadata_of_every_parked_message_never_a_body_and_keeps_them_all(
        topology: Topology, channel: BlockingChannel, tmp_path: Path, uid: str) -> None:
    ids = parked_set(channel, topology, uid)
    park(channel, topology, "intake", b"MSH|^~\\&|bad", pika.BasicProperties(delivery_mode=2, type="hl7"),
         reason="MappingError at PID-18")
    result = rcmhub(topology, tmp_path, "dlq", "list", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [m["message_id"] for m in listed if m["queue"] == topology.queue("router").parking] == ids
    (raw,) = [m for m in listed if m["queue"] == topology.queue("intake").parking]
    assert raw["message_id"].startswith("sha256:") and raw["reason"] == "MappingError at PID-18"
    first = next(m for m in listed if m["queue"] == topology.queue("router").parking)
    assert set(first) == {"queue", "origin", "message_id", "type", "reason", "attempts", "deliveries", "timestamp",
                          "size"}
    assert first["type"] == "PostCharges" and first["attempts"] == 3 and first["origin"] == topology.queue(
        "router").name and first["timestamp"] and first["size"] > 100
    assert not any(s in result.stdout for s in (*PHI, "MSH|")), "list never prints bodies"
    assert rcmhub(topology, tmp_path, "dlq", "list").exit_code == 0  # the table form
    settled(channel, {topology.queue("router").parking: 3, topology.queue("intake").parking: 1})  # none lost


def test_a_message_parked_by_the_delivery_limit_is_listed_with_the_broker_reason(
        channel: BlockingChannel, tmp_path: Path) -> None:
    topology = test_topology(delivery_limit=1)
    queue = topology.queue("router")
    with declared(amqp_url(), topology):
        channel.basic_publish(queue.exchange, queue.routing_key, b"crash-me",
                              pika.BasicProperties(delivery_mode=2, message_id="crasher"))
        while depth(channel, queue.parking) == 0:
            method, _, _ = channel.basic_get(queue.name)
            if method is not None:
                channel.basic_nack(method.delivery_tag, requeue=True)
        result = rcmhub(topology, tmp_path, "dlq", "list", "--json", "--role", "router")
    (found,) = json.loads(result.stdout)
    assert found["message_id"] == "crasher" and found["reason"] == "delivery_limit" and found["origin"] == queue.name


def test_show_prints_the_body_only_with_body_behind_a_phi_warning_and_audits_that_read(
        topology: Topology, channel: BlockingChannel, tmp_path: Path, uid: str, pg_hub: Hub) -> None:
    ids = parked_set(channel, topology, uid)
    plain = rcmhub(topology, tmp_path, "dlq", "show", ids[1], "--json")
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["message_id"] == ids[1] and "body" not in plain.stdout
    assert not any(s in plain.output for s in PHI)
    assert AuditLog(pg_hub.sessions).for_message(ids[1]) == []  # metadata reads are not audited
    full = rcmhub(topology, tmp_path, "dlq", "show", ids[1], "--body", "--json", "--actor", f"ops-{uid}")
    assert full.exit_code == 0, full.output
    assert "may contain PHI" in full.stderr
    assert codec.decode(json.loads(full.stdout)["body"].encode()) == command(uid, f"D{uid}", 1)
    (audit,) = AuditLog(pg_hub.sessions).for_message(ids[1])
    assert (audit.actor, audit.action, audit.queue) == (f"ops-{uid}", "dlq.show_body", topology.queue("router").parking)
    settled(channel, {topology.queue("router").parking: 3})
    missing = rcmhub(topology, tmp_path, "dlq", "show", "no-such-id")
    assert missing.exit_code == 1 and "no parked message" in missing.stderr


def test_replay_returns_the_message_to_its_work_queue_with_attempts_reset_audits_it_and_it_posts(
        topology: Topology, channel: BlockingChannel, tmp_path: Path, uid: str, pg_hub: Hub) -> None:
    ids = parked_set(channel, topology, uid)
    queue = topology.queue("router")
    result = rcmhub(topology, tmp_path, "dlq", "replay", ids[1], "--actor", f"ops-{uid}")
    assert result.exit_code == 0, result.output
    settled(channel, {queue.parking: 2, queue.name: 1})
    listed = json.loads(rcmhub(topology, tmp_path, "dlq", "list", "--json").stdout)
    # The others are still parked (a quorum queue puts returned messages back at its tail: order may change).
    assert sorted(m["message_id"] for m in listed) == sorted([ids[0], ids[2]])
    method, props, _ = channel.basic_get(queue.name)
    assert method is not None and props.message_id == ids[1] and props.delivery_mode == 2
    assert props.headers[ATTEMPT] == 0 and REASON not in props.headers and ORIGIN_QUEUE not in props.headers
    channel.basic_nack(method.delivery_tag, requeue=True)
    assert pg_hub.local_bus is not None
    with running(CommandConsumer(amqp_url(), topology, pg_hub.local_bus)) as consumer:
        wait_for(lambda: consumer.settled[Action.ACK] == 1, what="the replayed message posted")
    with pg_hub.sessions() as session:
        view = account_view(session, f"D{uid}")
    assert view is not None and view.as_json()["total_balance"] == "42.10"
    (audit,) = AuditLog(pg_hub.sessions).for_message(ids[1])
    assert (audit.actor, audit.action, audit.queue) == (f"ops-{uid}", "dlq.replay", queue.parking)
    assert audit.at.tzinfo is not None and "origin=" in audit.detail and not any(s in audit.detail for s in PHI)


def test_discard_removes_only_that_message_and_audits_it_with_the_os_user_by_default(
        topology: Topology, channel: BlockingChannel, tmp_path: Path, uid: str, pg_hub: Hub) -> None:
    import getpass

    ids = parked_set(channel, topology, uid)
    result = rcmhub(topology, tmp_path, "dlq", "discard", ids[0])
    assert result.exit_code == 0, result.output
    settled(channel, {topology.queue("router").parking: 2, topology.queue("router").name: 0})
    (audit,) = AuditLog(pg_hub.sessions).for_message(ids[0])
    assert (audit.actor, audit.action) == (getpass.getuser(), "dlq.discard")
    again = rcmhub(topology, tmp_path, "dlq", "discard", ids[0])
    assert again.exit_code == 1 and len(AuditLog(pg_hub.sessions).for_message(ids[0])) == 1


def test_dlq_needs_an_amqp_url(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dlq", "list"], env={"RCMHUB_AMQP_URL": "", "RCMHUB_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2 and "RCMHUB_AMQP_URL" in result.stderr
