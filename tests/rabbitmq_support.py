"""Helpers for the RabbitMQ integration tests: an isolated topology per test, consumers on threads, polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import func, select

from api.bootstrap import Hub
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.consumer import WorkConsumer
from connectors.rabbitmq.topology import RetryTier, Topology
from router.adapters.orm import InboxRow, LedgerRow
from router.domain.commands import Command, PostCharges
from router.domain.errors import BrokerUnavailable
from router.domain.model import ChargeLine
from router.queries import account_view

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


def consumers(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.consumer_count)


def drain(channel: BlockingChannel, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    found = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return found
        found.append((properties, body))


class Publishing(threading.Thread):
    """Publishes every command, retrying each until the broker confirms it (what a connector does)."""

    def __init__(self, bus: RabbitBus, commands: Sequence[Command], pace: float = 0.004) -> None:
        super().__init__(daemon=True)
        self.bus, self.commands, self.pace = bus, commands, pace
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
            if self.pace:
                time.sleep(self.pace)  # spread the run so an outage lands mid-stream


def self_pay_charge(uid: str, n: int, accounts: int, tag: str = "BR") -> PostCharges:
    """Charge ``n`` of a run: one line on one of ``accounts`` self-pay accounts (three ledger legs each)."""
    account = f"{tag}{uid}{n % accounts:02d}"
    return PostCharges(f"hl7:CLINIC:{uid}-{n}", account, f"V{account}", None,
                       (ChargeLine(1, date(2024, 3, 1), "99213", Decimal(f"{1 + n % 7}.{n % 100:02d}")),))


def processed(hub: Hub, prefix: str) -> int:
    """How many commands whose source id starts with ``prefix`` the inbox recorded (i.e. committed)."""
    with hub.sessions() as session:
        return session.scalar(select(func.count()).select_from(InboxRow)
                              .where(InboxRow.source_id.like(f"{prefix}%"))) or 0


def expected_totals(commands: Sequence[PostCharges]) -> dict[str, Decimal]:
    found: dict[str, Decimal] = {}
    for c in commands:
        found[c.account] = found.get(c.account, Decimal(0)) + sum((line.amount for line in c.charges), Decimal(0))
    return found


def assert_ledger_exact(hub: Hub, expected: dict[str, Decimal], prefix: str, commands: int, legs: int) -> None:
    """Each account's balance to the cent; every command posted; no leg twice."""
    with hub.sessions() as session:
        for account, total in expected.items():
            view = account_view(session, account)
            assert view is not None and Decimal(str(view.as_json()["total_balance"])) == total, account
        found = session.execute(select(LedgerRow.source_id, LedgerRow.idempotency_key).where(
            LedgerRow.source_id.like(f"{prefix}%"))).all()
    assert len({source for source, _ in found}) == commands, "every command posted"
    assert len(found) == legs, "every leg posted once"
    assert len({key for _, key in found}) == len(found), "zero duplicate legs"


ROOT = Path(__file__).parents[1]


class Worker:
    """One ``rcmhub worker`` process (restartable), its output in ``logs/{name}-{incarnation}.log``."""

    def __init__(self, name: str, amqp: str, database: str, topology: Topology, logs: Path, *args: str,
                 log_level: str = "INFO") -> None:
        self.name, self.logs, self.args, self.incarnation = name, logs, args, 0
        self.env = {**os.environ, "RCMHUB_AMQP_URL": amqp, "RCMHUB_DATABASE_URL": database,
                    "RCMHUB_AMQP_PREFIX": topology.prefix, "RCMHUB_LOG_LEVEL": log_level, "RCMHUB_DATA_DIR": str(logs)}
        self.process = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        self.incarnation += 1
        with self.log_path().open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-c", "from api.cli import main; main()", "worker",
                                             *self.args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self.process

    def log_path(self, incarnation: int | None = None) -> Path:
        return self.logs / f"{self.name}-{incarnation or self.incarnation}.log"

    def log(self) -> str:
        return self.log_path().read_text(errors="replace")

    def busy(self) -> bool:
        """This incarnation has committed work (so a kill now lands mid-stream, not during start-up)."""
        return "handled " in self.log()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def ready(self) -> bool:
        """Started far enough to have its SIGTERM handler (a SIGTERM before that is not a graceful stop)."""
        return "rcmhub worker:" in self.log() or self.process.poll() is not None

    def stop(self) -> int:
        """SIGTERM (graceful shutdown) once it is up, and the exit code."""
        wait_for(self.ready, timeout=60, what=f"worker {self.name} to start")
        time.sleep(0.5)  # the banner is printed just before the handlers are installed
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def worker_logs(logs: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log")))


def raw_pika_rate(url: str, count: int, size: int = 1024) -> float:
    """The broker's floor for the benchmarks: ``count`` persistent messages of ``size`` bytes published to a
    quorum queue, then consumed with manual acks (prefetch 100); messages/s over both."""
    name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    body, props = b"x" * size, pika.BasicProperties(delivery_mode=2)
    try:
        start = time.perf_counter()
        for _ in range(count):
            channel.basic_publish("", name, body, props)
        channel.basic_qos(prefetch_count=100)
        for n, (method, _, _) in enumerate(channel.consume(name), start=1):
            channel.basic_ack(method.delivery_tag)
            if n == count:
                break
        channel.cancel()
        return count / (time.perf_counter() - start)
    finally:
        channel.queue_delete(name)
        connection.close()
