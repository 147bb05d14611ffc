"""Helpers for the RabbitMQ integration tests: an isolated topology per test, consumers on threads, polling."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from connectors.rabbitmq.consumer import WorkConsumer
from connectors.rabbitmq.topology import RetryTier, Topology

FAST_TIERS = (RetryTier("a", 200), RetryTier("b", 400), RetryTier("c", 600))


def test_topology(**kwargs: Any) -> Topology:
    return Topology(prefix=f"rcmhub-test-{uuid.uuid4().hex[:8]}", **kwargs)


test_topology.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test


@contextmanager
def declared(url: str, topology: Topology) -> Iterator[BlockingChannel]:
    """Declare ``topology``, yield a channel on it, delete everything afterwards."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    topology.declare(channel)
    try:
        yield channel
    finally:
        if not channel.is_open:
            channel = connection.channel()
        topology.delete(channel)
        connection.close()


@contextmanager
def running(consumer: WorkConsumer) -> Iterator[WorkConsumer]:
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert consumer.consuming.wait(10), "consumer did not start"
    try:
        yield consumer
    finally:
        consumer.stop()
        thread.join(30)
        assert not thread.is_alive(), "consumer did not stop"


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def depth(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def drain(channel: BlockingChannel, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    found = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return found
        found.append((properties, body))
