"""HL7 v2 intake over MLLP on the embedded default (SQLite, in-process bus): DFT^P03 messages/s and ACK
latency p50/p99 beside a bare MLLP echo server in the same run; and the er7 + DFT mapping per message
beside hl7apy ``parse_message`` and python-hl7 ``hl7.parse`` on the same message."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hl7
import pytest
from hl7_samples import sample
from hl7apy.parser import parse_message
from mllp_support import echo_server

from api.bootstrap import build
from api.settings import Settings
from connectors.hl7_listener import Hl7Listener
from connectors.mllp import MllpClient
from mappings.hl7v2 import er7
from mappings.hl7v2.dft import decode_dft

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(600)]

SEQUENTIAL = 600
CONCURRENT_CLIENTS, PER_CLIENT = 4, 200


def dft(n: int, run: str) -> bytes:
    return sample("DFT-P03-01.hl7", control_id=f"B{run}-{n}", account=f"BA{run}-{n % 50}", mrn=f"BM{run}-{n % 50}",
                  visit=f"BV{run}-{n}")


def summary(latencies: list[float], wall: float | None = None) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000,
            "msgs_per_s": len(latencies) / (wall if wall is not None else sum(latencies))}


def timed(send: Callable[[bytes], bytes], payloads: list[bytes]) -> list[float]:
    out = []
    for payload in payloads:
        t0 = time.perf_counter()
        reply = send(payload)
        out.append(time.perf_counter() - t0)
        assert b"MSA|AA|" in reply, reply[:200]
    return out


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """Mean seconds per call over at least ``seconds`` (and at least 3 calls)."""
    fn()
    calls, t0 = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - t0) / calls


def test_mllp_intake_of_dft_p03_on_sqlite_beside_a_bare_echo_server(tmp_path: Path) -> None:
    hub = build(Settings(database_url=f"sqlite:///{tmp_path / 'bench.db'}", data_dir=tmp_path, amqp_url=""))
    listener = Hl7Listener(hub.intake).run_in_thread()
    run = str(time.time_ns())[-8:]
    try:
        with echo_server() as echo_port, MllpClient("127.0.0.1", echo_port) as echo, \
                MllpClient("127.0.0.1", listener.port) as client:
            payloads = [dft(n, run) for n in range(SEQUENTIAL)]
            timed(echo.send, payloads[:100])  # warm-up
            baseline = summary(timed(echo.send, payloads))
            intake = summary(timed(client.send, payloads))

            def one_client(k: int) -> list[float]:
                with MllpClient("127.0.0.1", listener.port) as c:
                    return timed(c.send, [dft(10_000 + k * PER_CLIENT + n, run) for n in range(PER_CLIENT)])

            t0 = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
                lists = list(pool.map(one_client, range(CONCURRENT_CLIENTS)))
            concurrent = summary([x for xs in lists for x in xs], time.perf_counter() - t0)
    finally:
        listener.stop(grace=5)
        hub.close()

    print(f"\nHL7 MLLP intake, DFT^P03 ({len(payloads[0])} bytes), SQLite WAL synchronous=FULL, in-process bus")
    for name, row in (("bare MLLP echo (1 conn)", baseline), ("intake, 1 connection", intake),
                      (f"intake, {CONCURRENT_CLIENTS} connections", concurrent)):
        print(f"  {name:<26} p50 {row['p50_ms']:7.3f} ms  p99 {row['p99_ms']:7.3f} ms  "
              f"{row['msgs_per_s']:8,.0f} msg/s")
    print(f"  ratio echo/intake throughput (1 conn) = {baseline['msgs_per_s'] / intake['msgs_per_s']:.1f}x")
    assert intake["p99_ms"] < 2000, "an ACK took seconds"


def test_er7_dft_mapping_beside_hl7apy_and_python_hl7_on_the_same_message() -> None:
    raw = sample("DFT-P03-01.hl7")
    text = raw.decode()
    ours = per_call(lambda: decode_dft(er7.parse(raw)))
    header_only = per_call(lambda: er7.parse_header(raw))
    python_hl7 = per_call(lambda: hl7.parse(text))
    hl7apy = per_call(lambda: parse_message(text), seconds=3.0)
    print(f"\nDFT^P03 mapping, {len(raw)} bytes, per message")
    for name, seconds in (("er7 MSH only (store+ACK)", header_only), ("er7 parse + decode_dft", ours),
                          ("python-hl7 hl7.parse", python_hl7), ("hl7apy parse_message", hl7apy)):
        print(f"  {name:<26} {seconds * 1e6:10.1f} µs  {1 / seconds:10,.0f} msg/s  "
              f"{seconds / ours:6.1f}x ours")
    assert ours < hl7apy, "the fast path is slower than a full hl7apy parse"


