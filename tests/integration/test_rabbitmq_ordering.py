"""Ordering: two workers (separate engines, as separate processes would have) never post to one account at once."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from functools import partial
from itertools import pairwise

import pytest
from services import postgres_url
from sqlalchemy.orm import sessionmaker

from router.adapters.db import make_engine, upgrade
from router.bus import InProcessBus
from router.domain.commands import Command, PostCharges
from router.domain.errors import ConcurrencyConflict
from router.domain.events import Event
from router.domain.model import ChargeLine
from router.handlers import post_charges
from router.unit_of_work import UnitOfWork

pytestmark = pytest.mark.integration


def overlaps(intervals: list[tuple[str, float, float]]) -> int:
    found = 0
    for account in {a for a, _, _ in intervals}:
        spans = sorted((s, e) for a, s, e in intervals if a == account)
        found += sum(later[0] < earlier[1] for earlier, later in pairwise(spans))
    return found


def run_two_workers(uid: str) -> tuple[list[tuple[str, float, float]], int]:
    """Intervals each posting held its account, and how many commands failed on a write race."""
    intervals: list[tuple[str, float, float]] = []
    conflicts: list[ConcurrencyConflict] = []

    def slow_post_charges(cmd: PostCharges, uow: UnitOfWork) -> Sequence[Event]:
        start = time.monotonic()
        time.sleep(0.02)  # widen the window a race would need
        events = post_charges(cmd, uow)
        intervals.append((cmd.account, start, time.monotonic()))
        return events

    engines = [make_engine(postgres_url()) for _ in range(2)]
    upgrade(engines[0])
    buses = [InProcessBus(partial(UnitOfWork, sessionmaker(e, expire_on_commit=False)),
                          {PostCharges: slow_post_charges}) for e in engines]
    work: queue.Queue[Command] = queue.Queue()
    for n in range(60):
        account = f"ORD{uid}{n % 3}"
        work.put(PostCharges(f"hl7:ORD:{uid}-{n}", account, f"V{account}", None,
                             (ChargeLine(1, date(2024, 3, 1), "99213", Decimal("1.00")),)))

    def worker(bus: InProcessBus) -> None:
        while True:
            try:
                bus.handle(work.get_nowait())
            except queue.Empty:
                return
            except ConcurrencyConflict as exc:
                conflicts.append(exc)

    threads = [threading.Thread(target=worker, args=(buses[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines:
        e.dispose()
    return intervals, len(conflicts)


def test_two_workers_never_interleave_postings_for_one_account(uid: str) -> None:
    intervals, conflicts = run_two_workers(uid)
    assert len(intervals) == 60 and conflicts == 0
    assert overlaps(intervals) == 0


def test_without_the_account_lock_the_same_load_does_interleave(uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: proves the test above can see an interleaving when there is one."""
    monkeypatch.setattr(UnitOfWork, "lock_accounts", lambda self, numbers: None)
    intervals, conflicts = run_two_workers(uid)
    assert overlaps(intervals) > 0 or conflicts > 0
