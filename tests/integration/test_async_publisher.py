"""The asyncio publisher on the real RabbitMQ: a batch returns once confirmed; a nack, an unroutable message, a
closed channel, a lost connection or a refused connection raise ``BrokerUnavailable``, and it reconnects by itself
on a later call (after a backoff when connecting failed)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator

import pika
import pytest
from rabbitmq_support import declared, depth, drain, test_topology, wait_for
from services import amqp_url

from connectors.rabbitmq.async_publisher import AsyncPublisher, Publication
from connectors.rabbitmq.topology import Topology
from router.domain.errors import BrokerUnavailable

pytestmark = pytest.mark.timeout(60)

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    topology = test_topology()
    with declared(amqp_url(), topology):
        yield topology


def to_intake(topology: Topology, body: bytes, routing_key: str | None = None) -> Publication:
    queue = topology.queue("intake")
    return Publication(queue.exchange, routing_key or queue.routing_key, body, PERSISTENT)


def run(*steps: object) -> None:
    async def main() -> None:
        for step in steps:
            await step  # type: ignore[misc]

    asyncio.run(main())


def test_a_batch_returns_once_every_message_is_confirmed_in_order_on_the_queue(topology: Topology) -> None:
    publisher = AsyncPublisher(amqp_url())
    bodies = [f"m{n}".encode() for n in range(300)]

    async def main() -> int:
        # Two batches in flight on one channel, as the forwarder has them.
        await asyncio.gather(publisher.publish_many([to_intake(topology, b) for b in bodies[:150]]),
                             publisher.publish_many([to_intake(topology, b) for b in bodies[150:]]))
        with pika.BlockingConnection(pika.URLParameters(amqp_url())) as connection:
            found = depth(connection.channel(), topology.queue("intake").name)
        await publisher.close()
        return found

    assert asyncio.run(main()) == 300  # confirmed means enqueued: no waiting needed
    with pika.BlockingConnection(pika.URLParameters(amqp_url())) as connection:
        got = drain(connection.channel(), topology.queue("intake").name)
    assert [body for _, body in got] == bodies and {p.delivery_mode for p, _ in got} == {2}


def test_an_unroutable_message_is_broker_unavailable_and_the_channel_carries_on(topology: Topology) -> None:
    publisher = AsyncPublisher(amqp_url())

    async def main() -> None:
        with pytest.raises(BrokerUnavailable, match="unroutable"):
            await publisher.publish_many([to_intake(topology, b"x", routing_key="nowhere")])
        await publisher.publish_many([to_intake(topology, b"routed")])
        await publisher.close()

    asyncio.run(main())
    with pika.BlockingConnection(pika.URLParameters(amqp_url())) as connection:
        assert [b for _, b in drain(connection.channel(), topology.queue("intake").name)] == [b"routed"]


def test_a_nack_is_broker_unavailable() -> None:
    name = f"rcmhub-test-full-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    channel = connection.channel()
    # A queue that refuses publishes once it holds one message: the broker nacks the rest (a classic queue:
    # a quorum queue applies the limit with some lag).
    channel.queue_declare(name, durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    publisher = AsyncPublisher(amqp_url())
    try:
        async def main() -> None:
            await publisher.publish_many([Publication("", name, b"fits", PERSISTENT)])
            with pytest.raises(BrokerUnavailable, match="nack"):
                await publisher.publish_many([Publication("", name, b"full", PERSISTENT)] * 3)
            await publisher.close()

        asyncio.run(main())
    finally:
        channel.queue_delete(name)
        connection.close()


def test_a_channel_the_broker_closed_fails_the_call_and_the_next_call_reconnects(topology: Topology) -> None:
    publisher = AsyncPublisher(amqp_url())

    async def main() -> None:
        with pytest.raises(BrokerUnavailable, match="channel closed"):
            await publisher.publish_many([Publication("no-such-exchange", "x", b"x", PERSISTENT)])
        await publisher.publish_many([to_intake(topology, b"after")])
        await publisher.close()

    asyncio.run(main())
    with pika.BlockingConnection(pika.URLParameters(amqp_url())) as connection:
        assert [b for _, b in drain(connection.channel(), topology.queue("intake").name)] == [b"after"]


def test_a_connection_the_broker_dropped_is_replaced_on_the_next_call(topology: Topology) -> None:
    name = f"rcmhub-test-{uuid.uuid4().hex[:8]}"
    publisher = AsyncPublisher(amqp_url())
    publisher.parameters.client_properties = {"connection_name": name}

    def close_it() -> None:
        listed = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                                capture_output=True, text=True, timeout=60)
        if listed.returncode != 0:
            pytest.skip(f"rabbitmqctl unavailable: {listed.stderr[-200:]}")
        pid = next(line.split("\t")[0] for line in listed.stdout.splitlines() if name in line)
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "closed by a test"],
                       capture_output=True, timeout=60, check=True)

    async def main() -> None:
        await publisher.publish_many([to_intake(topology, b"before")])
        await asyncio.to_thread(close_it)
        await asyncio.to_thread(wait_for, lambda: publisher._channel is None, 10, "the close to arrive")
        await publisher.publish_many([to_intake(topology, b"after")])
        await publisher.close()

    asyncio.run(main())
    with pika.BlockingConnection(pika.URLParameters(amqp_url())) as connection:
        assert [b for _, b in drain(connection.channel(), topology.queue("intake").name)] == [b"before", b"after"]


def test_a_refused_connection_fails_fast_and_is_retried_only_after_a_backoff(topology: Topology) -> None:
    publisher = AsyncPublisher("amqp://guest:guest@127.0.0.1:9/%2F", max_backoff=0.3)

    async def main() -> None:
        with pytest.raises(BrokerUnavailable, match="connecting to RabbitMQ"):
            await publisher.publish_many([to_intake(topology, b"x")])
        with pytest.raises(BrokerUnavailable, match="next attempt in"):  # no new attempt yet
            await publisher.publish_many([to_intake(topology, b"x")])
        await asyncio.sleep(0.35)
        with pytest.raises(BrokerUnavailable, match="connecting to RabbitMQ"):  # tried again
            await publisher.publish_many([to_intake(topology, b"x")])

    asyncio.run(main())
