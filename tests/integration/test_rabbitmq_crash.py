"""Worker crash: ``rcmhub worker`` processes SIGKILLed at random points and restarted while a practice's charges
and remittances flow through RabbitMQ into PostgreSQL (the private instances of ``private_services.py``).

5,000 messages: DFT^P03 charges (mapped to commands and published to the router's work exchange, about 2%
resent) and the remittance claims (CLP loops) of X12 835 files published raw to the inbound exchange, where the
intake role turns each transaction set into a ``PostRemittance`` for the router. The practices, their balances
and cash figures come from ``scenario_factory.build_practice``, which computes them on its own. Two workers run
the router role and one the intake role; five SIGKILLs land at random points: three on a router worker while
charges post, two on any worker while 835s are read and posted.

Effectively-once is the inbox (source id) plus unique ledger keys; per-account ordering is the advisory lock
each unit of work takes on its account (``UnitOfWork.lock_accounts``). Charges post before the remittances that
pay them and the 835 files go in order, as a clearinghouse sends them (``build_practice``'s expectations).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pika
import pytest
from private_services import PrivatePostgres, PrivateRabbitMQ
from rabbitmq_support import Worker, declared, depth, processed, test_topology, wait_for, worker_logs
from scenario_factory import Practice, build_practice
from sqlalchemy import bindparam, func, select, text

from api.bootstrap import Hub
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.publisher import Publisher
from connectors.rabbitmq.topology import Topology
from mappings.hl7v2 import er7
from mappings.hl7v2.inbound import to_commands
from router.adapters.orm import InboxRow, LedgerRow
from router.domain.commands import Command
from router.queries import account_balances

pytestmark = pytest.mark.integration
MESSAGES = int(os.environ.get("RCMHUB_CRASH_MESSAGES", "5000"))  # charges + remittance claims
ACCOUNTS_PER_PRACTICE, KILLS_WHILE_CHARGING, KILLS_WHILE_REMITTING = 150, 3, 2
MESSAGES_PER_ACCOUNT = 4.1  # charges + CLP loops per account, as build_practice draws them


def practices(uid: str, rng: random.Random) -> list[Practice]:
    """Practices of ``ACCOUNTS_PER_PRACTICE`` accounts until charges + remittance claims reach ``MESSAGES``."""
    found: list[Practice] = []
    total = 0
    while total < MESSAGES:
        left = max(20, min(ACCOUNTS_PER_PRACTICE, round((MESSAGES - total) / MESSAGES_PER_ACCOUNT)))
        practice = build_practice(rng, f"{uid}{len(found)}", accounts=left)
        found.append(practice)
        total += len(practice.charges) + claims_in(practice)
    return found


def claims_in(practice: Practice) -> int:
    return sum(data.count(b"CLP*") for _, data in practice.files)


def charge_commands(practice: Practice) -> list[Command]:
    return [command for message in practice.charges for command in to_commands(er7.parse(message))]


def publish_raw(publisher: Publisher, topology: Topology, name: str, data: bytes) -> None:
    queue = topology.queue("intake")
    properties = pika.BasicProperties(message_id=name, type="x12", content_type="application/edi-x12",
                                      delivery_mode=2, timestamp=int(time.time()), headers={})
    publisher.publish(queue.exchange, queue.routing_key, data, properties)


def remittance_rows(hub: Hub, traces: list[str]) -> list[tuple[str, int, int, int, int, int]]:
    with hub.sessions() as session:
        rows = session.execute(text("SELECT trace_number, id, payment_cents, posted_cents, held_cents, plb_cents "
                                    "FROM remittances WHERE trace_number IN :t")
                               .bindparams(bindparam("t", expanding=True)), {"t": traces}).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def exceptions_of(hub: Hub, remittance_id: int) -> list[tuple[str, str]]:
    with hub.sessions() as session:
        rows = session.execute(text("SELECT type, claim_key FROM exceptions WHERE remittance_id = :r"),
                               {"r": remittance_id}).all()
    return sorted((r[0], r[1]) for r in rows)


class Killer:
    """SIGKILLs a busy worker and restarts it at once; records how many kills landed."""

    def __init__(self, workers: list[Worker], rng: random.Random) -> None:
        self.workers, self.rng, self.kills = workers, rng, 0

    def kill_one(self, among: list[Worker] | None = None) -> None:
        candidates = among or self.workers
        busy = [w for w in candidates if w.busy()] or candidates
        victim = self.rng.choice(busy)
        victim.kill()
        victim.start()
        self.kills += 1

    def at_thresholds(self, progress: Callable[[], int], done: int, kills: int, timeout: float, what: str) -> None:
        """Kill ``kills`` times as ``progress()`` passes random points of the way to ``done``, then wait for it.
        Several points passed between two polls each get their kill, as long as work is left."""
        points = sorted(self.rng.uniform(0.1, 0.85) * done for _ in range(kills))
        deadline = time.monotonic() + timeout
        while (count := progress()) < done:
            while points and count >= points[0]:
                points.pop(0)
                self.kill_one()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {count} of {done}")
            time.sleep(0.01)
        assert not points, f"{len(points)} kill(s) did not land while {what}"


def test_sigkilled_workers_lose_nothing_and_post_nothing_twice(private_rabbitmq: PrivateRabbitMQ,
                                                               private_postgres: PrivatePostgres,
                                                               private_hub: Hub, uid: str, tmp_path: Path) -> None:
    hub, url = private_hub, private_rabbitmq.url
    rng = random.Random(uid)
    practice_list = practices(uid, rng)
    charges = [c for p in practice_list for c in charge_commands(p)]
    resent = [c for c in charges if rng.random() < 0.02]
    unique = len({c.source_id for c in charges})
    claims = sum(claims_in(p) for p in practice_list)
    traces = [t for p in practice_list for t in p.cash]
    topology = test_topology()
    started = time.monotonic()
    with declared(url, topology) as channel:
        publisher = Publisher(url)
        bus = RabbitBus(publisher, topology)
        # The charges are queued before the workers start: the workers post faster than one publisher
        # confirms, so without a backlog a kill finds nothing in flight (nothing to redeliver).
        for command in charges + resent:
            bus.handle(command)
        routers = [Worker(f"router{i}", url, private_postgres.url, topology, tmp_path, "--role", "router",
                          "--concurrency", "4") for i in range(2)]
        intake = Worker("intake", url, private_postgres.url, topology, tmp_path, "--role", "intake",
                        "--concurrency", "2")
        workers = [*routers, intake]
        killer = Killer(routers, rng)
        try:
            charge_ids = f"hl7:{charges[0].source_id.split(':')[1]}:{uid}"  # hl7:{MSH-4}:{uid}{k}D{n}
            killer.at_thresholds(lambda: processed(hub, charge_ids), unique, KILLS_WHILE_CHARGING, 600,
                                 "the charges post")
            # The 835 files in order: the second reverses what the first paid, the third corrects it.
            kill_in = set(rng.sample(range(3), KILLS_WHILE_REMITTING))
            for round_ in range(3):
                for practice in practice_list:
                    name, data = practice.files[round_]
                    publish_raw(publisher, topology, name, data)
                expected = len(practice_list) * (1, 2, 4)[round_]  # p1, p2, then p3 + s1 in one file
                if round_ in kill_in:
                    time.sleep(rng.uniform(0.5, 2.0))  # a random point while the round's 835s are read and posted
                    killer.kill_one(among=workers)
                wait_for(lambda: len(remittance_rows(hub, traces)) >= expected, timeout=600,  # noqa: B023
                         what=f"the remittances of 835 round {round_ + 1}")
            elapsed = time.monotonic() - started
            for role in ("router", "intake"):
                wait_for(lambda: depth(channel, topology.queue(role).name) == 0,  # noqa: B023
                         what=f"{role} queue empty")
        finally:
            bus.close()
            codes = [w.stop() for w in workers]
        assert codes == [0, 0, 0], "graceful SIGTERM shutdown"
        assert killer.kills == KILLS_WHILE_CHARGING + KILLS_WHILE_REMITTING
        for role in ("router", "intake"):
            assert depth(channel, topology.queue(role).parking) == 0, f"nothing parked from {role}"

    # Every account's balances to the cent, as the generator computed them.
    with hub.sessions() as session:
        for practice in practice_list:
            for account in practice.accounts:
                found = account_balances(session, account.number)
                assert found is not None, account.number
                expected_balances = (practice.insurance[account.number], practice.patient[account.number])
                assert (found.insurance, found.patient) == expected_balances, account.number
        inbox = session.scalar(select(func.count()).select_from(InboxRow).where(
            InboxRow.source_id.like(f"{charge_ids}%"))) or 0
        keys = session.execute(select(LedgerRow.idempotency_key, func.count()).where(
            LedgerRow.source_id.like(f"%{uid}%")).group_by(LedgerRow.idempotency_key)).all()
    assert inbox == unique, "every charge message processed once (resends dropped by the inbox)"
    assert keys and all(n == 1 for _, n in keys), "zero duplicate ledger legs"
    # Every remittance once, with its cash and exceptions to the cent.
    rows = remittance_rows(hub, traces)
    assert sorted(r[0] for r in rows) == sorted(traces), "one remittance row per transaction set, never two"
    by_trace = {r[0]: r[1:] for r in rows}
    for practice in practice_list:
        for trace, cash in practice.cash.items():
            rid, payment, posted, held, plb = by_trace[trace]
            assert (payment, posted, held, plb) == (cash.payment, cash.posted, cash.held, cash.plb), trace
            assert exceptions_of(hub, rid) == practice.exceptions[trace], trace

    logs = worker_logs(tmp_path)
    redeliveries = logs.count("redelivery on")
    assert redeliveries > 0, "the kills should have forced redeliveries"
    assert "parked message_id=" not in logs and "unexpected " not in logs
    secrets = [a.number for p in practice_list for a in p.accounts[:5]] + [a.family for a in practice_list[0].accounts]
    assert not any(s in logs for s in secrets), "logs carry no account numbers or names"
    total_balance = sum((sum(p.insurance.values(), Decimal(0)) + sum(p.patient.values(), Decimal(0))
                         for p in practice_list), Decimal(0))
    print(f"\ncrash test: {len(charges)} charges ({len(resent)} resent) + {claims} remittance claims in "
          f"{len(traces)} transaction sets = {len(charges) + claims} messages, {killer.kills} SIGKILLs, "
          f"{redeliveries} redeliveries, {len(keys)} ledger legs, A/R {total_balance}, {elapsed:.0f} s with "
          f"2 router workers x 4 threads and an intake worker")
