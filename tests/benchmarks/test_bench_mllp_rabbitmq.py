"""MLLP store-and-forward on RabbitMQ + PostgreSQL (issue #3): DFT^P03 messages/s stored, confirmed and ACKed
over 8 and over 64 connections (closed loop: each sender waits for its ACK), beside a bare pika
publish-with-confirm loop (BlockingChannel, one message at a time, same body size) and the bare MLLP echo
server, all in the same run; and ACK latency p50/p99 at a paced 500 msg/s
(open loop: each message is due at its scheduled time over a few connections, and its latency counts from
then) beside the echo server at the same pace. The load comes from a separate process so that it does not
share the hub's GIL. Targets (quiet 2-core machine): >= 2,000 msg/s and p99 <= 20 ms at 500 msg/s.

Size with RCMHUB_BENCH_MLLP_MESSAGES (each throughput run, default 8,000), RCMHUB_BENCH_MLLP_CONNECTIONS (the
throughput runs' concurrent senders, default "8,64") and RCMHUB_BENCH_MLLP_SECONDS (paced run, default 10).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import statistics
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import pytest
from hl7_samples import sample
from mllp_support import echo_server
from rabbitmq_support import declared, depth, test_topology
from services import amqp_url, postgres_url

from api.bootstrap import build, mllp_forwarder
from api.settings import Settings
from connectors.hl7_listener import Hl7Listener
from connectors.mllp import encode_frame
from connectors.rabbitmq.topology import Topology

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(1200)]

CONNECTIONS = [int(c) for c in os.environ.get("RCMHUB_BENCH_MLLP_CONNECTIONS", "8,64").split(",")]
MESSAGES = int(os.environ.get("RCMHUB_BENCH_MLLP_MESSAGES", "8000"))
PACE, PACED_CONNECTIONS = 500.0, 8
PACED_SECONDS = float(os.environ.get("RCMHUB_BENCH_MLLP_SECONDS", "10"))
PIKA_MESSAGES = 2000


def dft(run: str, n: int) -> bytes:
    return sample("DFT-P03-01.hl7", control_id=f"B{run}-{n}", account=f"BA{run}-{n % 50}", mrn=f"BM{run}-{n % 50}",
                  visit=f"BV{run}-{n}")


def load(port: int, run: str, count: int, connections: int, rate: float | None) -> tuple[list[float], float, int]:
    """In the load process: ``count`` DFT^P03 over ``connections`` MLLP connections; closed loop (each connection
    sends its next message once answered) or, with ``rate``, open loop at ``rate`` msg/s in total. Returns the
    latencies (s), the wall time and how many answers were not AA."""
    frames = [encode_frame(dft(run, n)) for n in range(count)]
    return asyncio.run(_load(port, frames, connections, rate))


async def _load(port: int, frames: list[bytes], connections: int, rate: float | None
                ) -> tuple[list[float], float, int]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    refused = 0

    async def connection(mine: list[tuple[float, bytes]]) -> None:
        nonlocal refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        due: deque[float] = deque()

        async def answers() -> None:
            nonlocal refused
            buffer = b""
            for _ in mine:
                while b"\x1c\r" not in buffer:
                    chunk = await reader.read(65536)
                    assert chunk, "the server closed the connection"
                    buffer += chunk
                reply, buffer = buffer.split(b"\x1c\r", 1)
                latencies.append(loop.time() - due.popleft())
                refused += b"MSA|AA|" not in reply
                if rate is None:
                    answered.set()

        answered = asyncio.Event()
        reading = asyncio.create_task(answers())
        for at, frame in mine:
            if rate is None:
                answered.clear()
            else:
                await asyncio.sleep(max(0.0, at - loop.time()))
            due.append(at if rate is not None else loop.time())
            writer.write(frame)
            if rate is None:
                await answered.wait()
        await reading
        writer.close()

    start = loop.time() + 0.1
    step = 1 / rate if rate else 0.0
    plan = [(start + n * step, frame) for n, frame in enumerate(frames)]
    await asyncio.sleep(max(0.0, start - loop.time()))
    began = loop.time()
    await asyncio.gather(*(connection(plan[k::connections]) for k in range(connections)))
    return latencies, loop.time() - began, refused


def in_load_process(*args: object) -> tuple[list[float], float, int]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(load, args)


def row(name: str, latencies: list[float], wall: float) -> str:
    cuts = statistics.quantiles(latencies, n=100)
    return (f"  {name:<44} {len(latencies) / wall:8,.0f} msg/s   p50 {cuts[49] * 1000:7.2f} ms"
            f"   p99 {cuts[98] * 1000:7.2f} ms")


def pika_confirmed_rate(url: str, body_size: int) -> float:
    """The bare baseline: BlockingChannel with confirms, one persistent message at a time, to a quorum queue."""
    name = f"bench-pika-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    channel.confirm_delivery()
    body, props = b"x" * body_size, pika.BasicProperties(delivery_mode=2)
    try:
        start = time.perf_counter()
        for _ in range(PIKA_MESSAGES):
            channel.basic_publish("", name, body, props, mandatory=True)
        return PIKA_MESSAGES / (time.perf_counter() - start)
    finally:
        channel.queue_delete(name)
        connection.close()


@contextmanager
def forwarding_listener(tmp_path: Path, topology: Topology) -> Iterator[int]:
    """The MLLP listener as ``rcmhub serve`` runs it on RabbitMQ."""
    hub = build(Settings(database_url=postgres_url(), data_dir=tmp_path, amqp_url=amqp_url(),
                         amqp_prefix=topology.prefix), in_process=True)
    gc.collect()
    gc.freeze()  # as ``rcmhub serve`` does once started: full collections skip the start-up heap (here pytest's)
    listener = Hl7Listener(hub.intake, forwarder=mllp_forwarder(hub)).run_in_thread()
    try:
        yield listener.port
    finally:
        listener.stop(grace=10)
        hub.close()


def test_mllp_store_and_forward_of_dft_p03_beside_bare_pika_confirms_and_the_echo_server(tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    topology = test_topology()
    body_size = len(dft(run, 0))
    paced = int(PACE * PACED_SECONDS)
    with declared(amqp_url(), topology) as channel, forwarding_listener(tmp_path, topology) as port, \
            echo_server() as echo_port:
        in_load_process(port, f"W{run}", 200, CONNECTIONS[0], None)  # warm-up: connections, plans, pools
        bare = pika_confirmed_rate(amqp_url(), body_size)
        closed = [(in_load_process(echo_port, f"E{c}{run}", MESSAGES, c, None),
                   in_load_process(port, f"T{c}{run}", MESSAGES, c, None)) for c in CONNECTIONS]
        echo_paced = in_load_process(echo_port, f"EP{run}", paced, PACED_CONNECTIONS, PACE)
        hub_paced = in_load_process(port, f"P{run}", paced, PACED_CONNECTIONS, PACE)
        queued = depth(channel, topology.queue("intake").name)

    print(f"\nMLLP store-and-forward, DFT^P03 ({body_size} bytes), PostgreSQL + RabbitMQ quorum queue, confirms on; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  {'bare pika BlockingChannel, confirm each':<44} {bare:8,.0f} msg/s")
    for connections, (echo, hub) in zip(CONNECTIONS, closed, strict=True):
        print(f"a) throughput, {connections} connections, {MESSAGES:,} messages each run")
        print(row("bare MLLP echo server", *echo[:2]))
        print(row("store + confirm + ACK (forwarder)", *hub[:2]))
        rate, echo_rate = len(hub[0]) / hub[1], len(echo[0]) / echo[1]
        print(f"  ratios: forwarder/bare pika {rate / bare:.1f}x, echo/forwarder {echo_rate / rate:.1f}x")
    print(f"b) ACK latency at {PACE:.0f} msg/s open loop, {PACED_CONNECTIONS} connections, {paced:,} messages")
    print(row("bare MLLP echo server", *echo_paced[:2]))
    print(row("store + confirm + ACK (forwarder)", *hub_paced[:2]))
    assert [hub[2] for _, hub in closed] + [hub_paced[2]] == [0] * (len(CONNECTIONS) + 1), "every answer AA"
    assert queued == 200 + MESSAGES * len(CONNECTIONS) + paced, "every ACKed message is on the intake queue"
