"""ACK round-trip of MllpServer against a bare asyncio echo server measured in the same run."""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors.mllp import MllpClient, MllpServer, encode_frame

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(120)]

SAMPLE = Path(__file__).parents[1] / "samples/hl7v2/microsoft-fhir-converter/DFT-P03-01.hl7"
ROUNDS = 2000
WARMUP = 200


@contextmanager
def bare_echo_server() -> Iterator[int]:
    """The floor: an asyncio stream server that writes back whatever it reads, no framing."""
    loop = asyncio.new_event_loop()
    ready: list[int] = []
    started, stop = threading.Event(), threading.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        ready.append(server.sockets[0].getsockname()[1])
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield ready[0]
    finally:
        stop.set()
        thread.join(10)
        loop.close()


def raw_round_trip(port: int, frame: bytes) -> Callable[[], None]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def once() -> None:
        sock.sendall(frame)
        reply = b""
        while not reply.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            assert chunk
            reply += chunk

    return once


def measure(once: Callable[[], None], rounds: int = ROUNDS) -> list[float]:
    latencies = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        once()
        latencies.append(time.perf_counter() - t0)
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "msgs_per_s": len(latencies) / sum(latencies),
    }


def interleaved(contenders: dict[str, Callable[[], None]], blocks: int = 4) -> dict[str, dict[str, float]]:
    """Alternate blocks so that noise from a shared machine falls on every contender alike."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for once in contenders.values():
        measure(once, WARMUP)
    for _ in range(blocks):
        for name, once in contenders.items():
            samples[name] += measure(once, ROUNDS // blocks)
    return {name: summary(latencies) for name, latencies in samples.items()}


def test_mllp_server_ack_round_trip_stays_within_a_small_factor_of_a_bare_echo_server() -> None:
    payload = SAMPLE.read_bytes().replace(b"\n", b"\r")
    frame = encode_frame(payload)

    async def echo_handler(data: bytes, peer: str) -> bytes:
        return data

    handle = MllpServer(echo_handler).run_in_thread()
    try:
        with bare_echo_server() as port, MllpClient("127.0.0.1", handle.port) as client:
            rows = interleaved(
                {
                    "bare asyncio echo": raw_round_trip(port, frame),
                    "MllpServer": raw_round_trip(handle.port, frame),
                    "MllpServer+MllpClient": lambda: client.send(payload, timeout=10) and None,
                }
            )
    finally:
        handle.stop(grace=2)

    print(f"\nMLLP echo, {len(payload)}-byte payload, {ROUNDS} sequential round trips on one connection")
    for name, row in rows.items():
        print(f"  {name:<22} p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms  {row['msgs_per_s']:,.0f} msg/s")
    ratio = rows["bare asyncio echo"]["msgs_per_s"] / rows["MllpServer"]["msgs_per_s"]
    print(f"  throughput ratio bare/MllpServer = {ratio:.2f}x")
    assert ratio < 10, "MllpServer is an order of magnitude slower than a bare echo server"
