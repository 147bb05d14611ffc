"""Worker crash: router workers SIGKILLed at random points and restarted while DFT^P03 charges flow.

Effectively-once is the inbox (source id) plus unique ledger keys; per-account ordering is the
advisory lock each unit of work takes on its account (``UnitOfWork.lock_accounts``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hl7_factory import Dft, Ft1
from rabbitmq_support import declared, depth, test_topology, wait_for
from services import amqp_url, postgres_url
from sqlalchemy import func, select

from api.bootstrap import Hub, build
from api.settings import Settings
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.publisher import Publisher
from connectors.rabbitmq.topology import Topology
from mappings.hl7v2 import er7
from mappings.hl7v2.inbound import to_commands
from router.adapters.orm import ChargeLineRow, ClaimRow, InboxRow, LedgerRow
from router.domain.commands import Command, PostCharges
from router.queries import account_view

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
MESSAGES = int(os.environ.get("RCMHUB_CRASH_MESSAGES", "2000"))
ACCOUNTS, KILLS = 50, 5


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = build(Settings(database_url=postgres_url(), data_dir=tmp_path_factory.mktemp("data"), amqp_url=""))
    yield hub
    hub.close()


def dft_commands(uid: str, rng: random.Random) -> tuple[list[Command], dict[str, Decimal], int]:
    """DFT^P03 messages mapped to commands; about 2% are resent. Returns commands, balances, ledger legs."""
    commands: list[Command] = []
    expected: dict[str, Decimal] = Counter()  # type: ignore[assignment]
    legs = 0
    for n in range(MESSAGES):
        account = f"K{uid}{n % ACCOUNTS:02d}"
        lines = [Ft1(Decimal(rng.randint(100, 99_999)) / 100) for _ in range(rng.randint(1, 2))]
        msg = Dft(f"{uid}-{n}", account, visit=f"V{account}", facility="CRASH", payer="AETNA", lines=lines)
        (command,) = to_commands(er7.parse(msg.er7()))
        assert isinstance(command, PostCharges)
        commands.append(command)
        expected[account] += sum(line.amount for line in command.charges)
        legs += len(command.charges)
        if rng.random() < 0.02:
            commands.append(command)
    return commands, expected, legs


class Worker:
    def __init__(self, name: str, topology: Topology, logs: Path) -> None:
        self.name, self.logs, self.incarnation = name, logs, 0
        self.env = {**os.environ, "RCMHUB_AMQP_URL": amqp_url(), "RCMHUB_DATABASE_URL": postgres_url(),
                    "RCMHUB_AMQP_PREFIX": topology.prefix, "RCMHUB_LOG_LEVEL": "INFO",
                    "RCMHUB_DATA_DIR": str(logs)}
        self.process = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        self.incarnation += 1
        log = (self.logs / f"{self.name}-{self.incarnation}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import main; main()", "worker", "--role", "router",
             "--concurrency", "4"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self.process

    def busy(self) -> bool:
        """This incarnation has committed work (so a kill now lands mid-stream, not during start-up)."""
        return "handled PostCharges" in (self.logs / f"{self.name}-{self.incarnation}.log").read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def processed(hub: Hub, uid: str) -> int:
    with hub.sessions() as session:
        return session.scalar(select(func.count()).select_from(InboxRow)
                              .where(InboxRow.source_id.like(f"hl7:CRASH:{uid}-%"))) or 0


def test_sigkilled_workers_lose_nothing_and_post_nothing_twice(pg_hub: Hub, uid: str, tmp_path: Path) -> None:
    rng = random.Random(uid)
    commands, expected, legs = dft_commands(uid, rng)
    unique = len({c.source_id for c in commands})
    topology = test_topology()
    with declared(amqp_url(), topology) as channel:
        bus = RabbitBus(Publisher(amqp_url()), topology)
        for command in commands:
            bus.handle(command)
        bus.close()
        workers = [Worker(f"w{i}", topology, tmp_path) for i in range(2)]
        started = time.monotonic()
        try:
            for _ in range(KILLS):
                victim = rng.choice(workers)
                wait_for(victim.busy, timeout=60, what="the victim mid-stream")
                time.sleep(rng.uniform(0.0, 1.5))  # a random point in its stream
                victim.kill()
                victim.start()
            wait_for(lambda: processed(pg_hub, uid) == unique, timeout=150, what="every message processed")
            elapsed = time.monotonic() - started
            wait_for(lambda: depth(channel, topology.queue("router").name) == 0, what="work queue empty")
        finally:
            for w in workers:
                w.process.send_signal(signal.SIGTERM)
            codes = [w.process.wait(30) for w in workers]
        assert codes == [0, 0], "graceful SIGTERM shutdown"
        assert depth(channel, topology.queue("router").parking) == 0

    with pg_hub.sessions() as session:
        for account, total in expected.items():
            view = account_view(session, account)
            assert view is not None and Decimal(str(view.as_json()["total_balance"])) == total, account
        rows = session.execute(select(LedgerRow.idempotency_key).where(
            LedgerRow.source_id.like(f"hl7:CRASH:{uid}-%"))).scalars().all()
        assert len(rows) == legs and len(set(rows)) == legs  # zero lost, zero duplicate legs
        lines = session.execute(select(ClaimRow.key, ChargeLineRow.line_no).join(ClaimRow).where(
            ClaimRow.key.like(f"VK{uid}%"))).all()
        by_claim: dict[str, list[int]] = {}
        for key, line_no in lines:
            by_claim.setdefault(key, []).append(line_no)
        assert all(sorted(v) == list(range(1, len(v) + 1)) for v in by_claim.values())  # no gaps, no doubles
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("w*.log"))
    redeliveries = logs.count("redelivery on")
    assert redeliveries > 0, "the kills should have forced redeliveries"
    assert f"K{uid}" not in logs and "DOE" not in logs, "logs carry no account numbers or names"
    print(f"\ncrash test: {unique} messages ({len(commands) - unique} resends), {KILLS} SIGKILLs, "
          f"{redeliveries} redeliveries, {unique / elapsed:.0f} msg/s with 2 workers x 4 threads")
