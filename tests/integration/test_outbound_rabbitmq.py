"""Production outbound: the relay publishes delivery jobs with confirms to one queue per destination and
``worker --role outbound`` consumers deliver them; a dead destination fills only its own queue."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence

import pika
import pytest
from outbound_peers import Hl7Peer
from rabbitmq_support import FAST_TIERS, declared, depth, drain, test_topology, wait_for
from services import amqp_url
from sqlalchemy import select
from test_outbound_deliveries import _destinations, _feed, _named, _relayed, _rows, _traces, mllp

from api.bootstrap import Hub
from connectors.outbound.amqp import delete_destinations, destination_queue, outbound_workers
from connectors.outbound.relay import OutboxRelay
from router.adapters.orm import OutboxRow
from router.domain.errors import BrokerUnavailable

pytestmark = pytest.mark.integration


def test_jobs_go_confirmed_to_per_destination_queues_and_a_dead_destination_holds_only_its_own(
        hub: Hub, uid: str) -> None:
    url = amqp_url()
    topology = test_topology(tiers=FAST_TIERS)
    peer = Hl7Peer().start()
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    down = {"name": "down", "formats": ["hl7v2-dft"], "retry": {"attempts": 50, "initial_seconds": 0.5,
                                                                  "budget_seconds": 60},
            "transport": {"mllp": {"host": "127.0.0.1", "port": blackhole.getsockname()[1], "timeout_seconds": 1}}}
    destinations = _destinations(uid, mllp("up", peer), down)
    names = [d.name for d in destinations.active]
    with declared(url, topology) as channel:
        workers = outbound_workers(url, topology, hub.sessions, destinations)
        threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
        try:
            for t in threads:
                t.start()
            _feed(hub, uid)

            def up_done() -> bool:
                if not _relayed(hub, uid):
                    return False
                rows = _named(_rows(hub, _traces(hub, uid)), "up", uid)
                return bool(rows) and all(r["status"] == "delivered" for r in rows)

            wait_for(up_done, timeout=30, what="deliveries to the healthy destination")
            up = _named(_rows(hub, _traces(hub, uid)), "up", uid)
            assert len(peer.booked) == len(up) and all(r["attempts"] == 1 for r in up)
            stuck = _named(_rows(hub, _traces(hub, uid)), "down", uid)
            assert stuck and all(r["status"] == "pending" for r in stuck)
            with hub.sessions() as session:  # marked published only after the broker confirmed every job
                assert all(p is not None for p in session.scalars(select(OutboxRow.published_at).where(
                    OutboxRow.source_id.contains(f"DEMO{uid}"))))
            healthy = destination_queue(topology, names[0]).name
            wait_for(lambda: depth(channel, healthy) == 0, timeout=10, what="the healthy queue to drain")
        finally:
            for w in workers:
                w.stop()
            for t in threads:
                t.join(30)
            delete_destinations(url, topology, names)
            peer.stop()
            blackhole.close()


def test_outbox_rows_stay_unpublished_until_the_broker_confirms(hub: Hub, uid: str) -> None:
    peer = Hl7Peer()
    peer.port = 9  # never contacted: only planning and publishing happen here
    destinations = _destinations(uid, mllp("emr", peer))
    published: list[Sequence[tuple[int, str]]] = []

    def refuse(jobs: Sequence[tuple[int, str]]) -> None:
        raise BrokerUnavailable("broker refused (nack)")

    _feed(hub, uid)
    with pytest.raises(BrokerUnavailable):
        while OutboxRelay(hub.sessions, destinations, publish=refuse).relay_once():
            pass
    with hub.sessions() as session:  # planned, but not published: the outbox rows wait for a confirm
        assert None in set(session.scalars(select(OutboxRow.published_at).where(
            OutboxRow.source_id.contains(f"DEMO{uid}"), OutboxRow.event_type == "RemittancePosted")))
    planned = sorted(int(str(r["id"])) for r in _rows(hub, _traces(hub, uid)))
    relay = OutboxRelay(hub.sessions, destinations, publish=published.append)
    while relay.relay_once():
        pass
    rows = _rows(hub, _traces(hub, uid))
    assert planned and sorted(int(str(r["id"])) for r in rows) == planned  # no second planning
    assert sorted(i for batch in published for i, _ in batch if i in {r["id"] for r in rows}) == \
        sorted(int(str(r["id"])) for r in rows)
    with hub.sessions() as session:
        assert all(p is not None for p in session.scalars(select(OutboxRow.published_at).where(
            OutboxRow.source_id.contains(f"DEMO{uid}"))))


def test_a_rabbitmq_destination_receives_the_rendered_messages_confirmed(hub: Hub, uid: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from test_outbound_deliveries import _settled

    from connectors.outbound.engine import OutboundEngine

    url = amqp_url()
    monkeypatch.setenv("RCMHUB_TEST_EMR_AMQP", url)
    exchange, queue = f"emr-test-{uid.lower()}", f"emr-test-{uid.lower()}.results"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(exchange, "direct")
    channel.queue_declare(queue, arguments={"x-queue-type": "quorum"}, durable=True)
    channel.queue_bind(queue, exchange, routing_key="results")
    try:
        spec = {"name": "bus", "formats": ["hl7v2-dft", "fhir"],
                "transport": {"amqp": {"url_env": "RCMHUB_TEST_EMR_AMQP", "exchange": exchange,
                                       "routing_key": "results"}}}
        engine = OutboundEngine(hub.sessions, _destinations(uid, spec), idle_seconds=0.05).start()
        try:
            _feed(hub, uid)
            rows = _settled(hub, uid)
        finally:
            engine.stop()
        assert rows and all(r["status"] == "delivered" for r in rows)
        got = drain(channel, queue)
        assert len(got) == len(rows)
        formats = sorted(str(p.headers["x-rcmhub-format"]) for p, _ in got)
        assert formats == sorted(str(r["format"]) for r in rows)
        assert all(body.startswith(b"MSH|") for p, body in got if p.headers["x-rcmhub-format"] == "hl7v2-dft")
        assert {p.correlation_id for p, _ in got} <= {r["trace"] for r in rows}
    finally:
        channel.queue_delete(queue)
        channel.exchange_delete(exchange)
        connection.close()


def test_worker_role_outbound_needs_destinations(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    url = amqp_url()
    topology = test_topology()
    monkeypatch.setenv("RCMHUB_DATABASE_URL", hub.settings.database_url)
    monkeypatch.setenv("RCMHUB_DATA_DIR", str(hub.settings.data_dir))
    monkeypatch.setenv("RCMHUB_AMQP_URL", url)
    monkeypatch.setenv("RCMHUB_AMQP_PREFIX", topology.prefix)
    monkeypatch.delenv("RCMHUB_DESTINATIONS", raising=False)
    try:
        result = CliRunner().invoke(app, ["worker", "--role", "outbound"])
    finally:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            topology.delete(connection.channel())
    assert result.exit_code == 2
    assert "--role outbound needs RCMHUB_DESTINATIONS" in " ".join(result.output.split())
