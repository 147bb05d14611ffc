"""DFT^P03 mapped and posted to PostgreSQL by ``rcmhub worker --role intake`` processes (1 and 2), beside a raw
pika publish -> consume-with-ack loop of the same message size measured in the same run.

The inbound queue is filled first with raw DFT^P03 messages as the MLLP listener forwards them (each already
kept in the message store, ``x-rcmhub-stored-id``); the workers decode, post in set-based batches and mark
each stored row. Rate = messages posted from the moment every worker consumes until the last, so worker start-up
is excluded. Target (issue #3):
>= 1,000 messages/s with two workers.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from hl7_samples import sample
from rabbitmq_support import Worker, consumers, declared, depth, raw_pika_rate, test_topology, wait_for
from services import amqp_url, postgres_url
from sqlalchemy import func, select

from api.bootstrap import build
from api.settings import Settings
from connectors.hl7_intake import to_store
from connectors.rabbitmq.publisher import Publisher, raw_properties
from mappings.hl7v2.ack import read_header
from router.adapters.message_store import MessageStore
from router.adapters.orm import MessageRow

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(900)]
MESSAGES = int(os.environ.get("RCMHUB_BENCH_DFT", "12000"))
ACCOUNTS = 500


def posting_rate(workers: int, tmp: Path) -> float:
    url, db, run = amqp_url(), postgres_url(), uuid.uuid4().hex[:8]
    topology = test_topology()
    hub = build(Settings(database_url=db, data_dir=tmp, amqp_url=""))
    store = MessageStore(hub.sessions)
    queue = topology.queue("intake")
    with declared(url, topology) as channel:
        raws = [sample("DFT-P03-01.hl7", control_id=f"W{run}-{n}", account=f"WA{run}-{n % ACCOUNTS}",
                       mrn=f"WM{run}-{n % ACCOUNTS}", visit=f"WV{run}-{n}") for n in range(MESSAGES)]
        publisher = Publisher(url)
        for start in range(0, MESSAGES, 500):  # as the MLLP listener forwards them: stored, then published
            chunk = raws[start:start + 500]
            for raw, kept in zip(chunk, store.store_many([to_store(r, read_header(r), "mllp", "bench")
                                                          for r in chunk]), strict=True):
                publisher.publish(queue.exchange, queue.routing_key, raw, raw_properties(
                    "application/hl7-v2", "DFT^P03", kept.digest, kept.control_id, kept.id))
        publisher.close()
        procs = [Worker(f"intake-{run}-{i}", url, db, topology, tmp, "--role", "intake", log_level="WARNING")
                 for i in range(workers)]
        mine = MessageRow.control_id.like(f"W{run}-%") & (MessageRow.status == "processed")

        def posted() -> int:
            with hub.sessions() as s:
                return s.scalar(select(func.count()).where(mine)) or 0
        try:
            # The clock starts once every worker consumes: start-up (imports, connections) is not intake.
            wait_for(lambda: consumers(channel, queue.name) == workers, timeout=120, what="all workers consuming")
            start, before = time.perf_counter(), posted()
            # The broker is polled until every message is delivered (a COUNT over the messages table meanwhile
            # would load the database being measured), then the store, for the last batches' commits.
            wait_for(lambda: depth(channel, queue.name) == 0, timeout=600, what="every DFT delivered")
            wait_for(lambda: posted() == MESSAGES, timeout=120, what="every DFT posted and marked")
            elapsed = time.perf_counter() - start
        finally:
            for p in procs:
                p.stop()
    hub.close()
    return (MESSAGES - before) / elapsed


def test_dft_p03_posted_by_intake_workers_beside_raw_pika(tmp_path: Path) -> None:
    size = len(sample("DFT-P03-01.hl7"))
    raw = raw_pika_rate(amqp_url(), 5000, size)
    one = posting_rate(1, tmp_path)
    two = posting_rate(2, tmp_path)
    print(f"\nraw pika publish->consume+ack ({size} B): {raw:,.0f} msg/s")
    print(f"intake, 1 worker x2 threads:  {one:,.0f} DFT^P03/s posted ({one / raw:.1%} of raw)")
    print(f"intake, 2 workers x2 threads: {two:,.0f} DFT^P03/s posted ({two / raw:.1%} of raw; x{two / one:.2f})")
    assert one > 0 and two > 0
