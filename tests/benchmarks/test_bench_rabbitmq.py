"""Charges/s end to end through RabbitMQ + PostgreSQL (1 and 2 worker processes) against raw pika in the same run.

Raw baseline: persistent 1 KB messages published to a quorum queue, then consumed with manual acks
(prefetch 100). Hub: PostCharges published with confirms, consumed by ``rcmhub worker`` processes that
commit before they ack; its rate is read from the ledger (first to last posting), so start-up is excluded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from rabbitmq_support import declared, raw_pika_rate, test_topology, wait_for
from services import amqp_url, postgres_url
from sqlalchemy import func, select

from api.bootstrap import build
from api.settings import Settings
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.publisher import Publisher
from router.adapters.orm import LedgerRow
from router.domain.commands import PostCharges
from router.domain.model import ChargeLine

pytestmark = pytest.mark.benchmark
ROOT = Path(__file__).parents[2]
RAW, HUB = 5000, int(os.environ.get("RCMHUB_BENCH_CHARGES", "6000"))
# A practice's charges spread over many accounts; with few, every batch locks the same accounts and the
# workers take turns (per-account ordering is the point of those locks), so scale-out cannot show.
ACCOUNTS = int(os.environ.get("RCMHUB_BENCH_ACCOUNTS", "1000"))
BATCH = os.environ.get("RCMHUB_BENCH_BATCH", "100")  # router commands per transaction (1: no group commit)


def hub_rate(workers: int, tmp: Path) -> float:
    url, db = amqp_url(), postgres_url()
    run = uuid.uuid4().hex[:8]
    topology = test_topology()
    hub = build(Settings(database_url=db, data_dir=tmp, amqp_url=""))
    with declared(url, topology):
        bus = RabbitBus(Publisher(url), topology)
        for n in range(HUB):
            account = f"B{run}{n % ACCOUNTS}"
            bus.handle(PostCharges(f"hl7:BENCH:{run}-{n}", account, f"V{account}", None,
                                   (ChargeLine(1, date(2024, 3, 1), "99213", Decimal("12.34")),)))
        bus.close()
        env = {**os.environ, "RCMHUB_AMQP_URL": url, "RCMHUB_DATABASE_URL": db, "RCMHUB_DATA_DIR": str(tmp),
               "RCMHUB_AMQP_PREFIX": topology.prefix}
        procs = [subprocess.Popen([sys.executable, "-c", "from api.cli import main; main()", "worker", "--role",
                                   "router", "--concurrency", "2", "--batch", BATCH], cwd=ROOT, env=env,
                                  stderr=(tmp / f"worker-{run}-{i}.log").open("wb")) for i in range(workers)]
        # Self-pay charges post three legs each; count the charge legs.
        mine = LedgerRow.source_id.like(f"hl7:BENCH:{run}-%") & (LedgerRow.kind == "charge")
        try:
            def done() -> bool:
                with hub.sessions() as s:
                    found = s.scalar(select(func.count()).where(mine)) == HUB
                time.sleep(0.5)
                return found
            wait_for(done, timeout=600, what="all charges posted")
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
                p.wait(30)
    with hub.sessions() as s:
        first, last = s.execute(select(func.min(LedgerRow.posted_at), func.max(LedgerRow.posted_at))
                                .where(mine)).one()
    hub.close()
    return HUB / (last - first).total_seconds()


def in_process_rate(tmp: Path) -> float:
    """The same charges through the in-process bus on one thread, in the workers' batches: the database's
    share of the cost, without the broker."""
    hub = build(Settings(database_url=postgres_url(), data_dir=tmp, amqp_url=""))
    assert hub.local_bus is not None
    run, batch = uuid.uuid4().hex[:8], int(BATCH)
    commands = [PostCharges(f"hl7:BENCH:{run}-{n}", f"I{run}{n % ACCOUNTS}", f"VI{run}{n % ACCOUNTS}", None,
                            (ChargeLine(1, date(2024, 3, 1), "99213", Decimal("12.34")),)) for n in range(HUB // 2)]
    start = time.perf_counter()
    for at in range(0, len(commands), batch):
        hub.local_bus.handle_many(commands[at:at + batch])
    elapsed = time.perf_counter() - start
    hub.close()
    return len(commands) / elapsed


def test_hub_throughput_against_raw_pika(tmp_path: Path) -> None:
    raw = raw_pika_rate(amqp_url(), RAW)
    local = in_process_rate(tmp_path)
    one = hub_rate(1, tmp_path)
    two = hub_rate(2, tmp_path)
    print(f"\nraw pika publish->consume+ack: {raw:,.0f} msg/s")
    print(f"in-process bus, 1 thread:      {local:,.0f} charges/s  (batches of {BATCH}; PostgreSQL only, no broker)")
    print(f"hub, 1 worker x2 threads:      {one:,.0f} charges/s  ({one / raw:.1%} of raw)")
    print(f"hub, 2 workers x2 threads:     {two:,.0f} charges/s  ({two / raw:.1%} of raw; x{two / one:.2f} vs 1)")
    assert one > 0 and two > 0
