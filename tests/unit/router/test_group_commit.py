"""Group commit: ``InProcessBus.handle_many`` posts a batch in one transaction, one SAVEPOINT per command."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from api.bootstrap import Hub
from router.adapters.orm import AccountRow, InboxRow, LedgerRow, OutboxRow
from router.bus import InProcessBus, Outcome
from router.domain.commands import PostCharges, PostPatientPayment
from router.domain.errors import DomainViolation, StoreUnavailable
from router.domain.model import ChargeLine, Patient
from router.handlers import HANDLERS
from router.unit_of_work import UnitOfWork


def charge(uid: str, n: int, account: str, amount: str = "10.00", claim: str | None = None) -> PostCharges:
    return PostCharges(f"gc:{uid}-{n}", account, claim or f"V{account}", Patient(f"MRN{account}", "DOE", "JANE"),
                       (ChargeLine(1, date(2024, 3, 1), "99213", Decimal(amount)),))


def bus_of(hub: Hub) -> InProcessBus:
    assert hub.local_bus is not None
    return hub.local_bus


def posted(hub: Hub, uid: str) -> dict[str, int]:
    """Inbox rows, charge legs and outbox rows of this test's source ids."""
    mine = f"gc:{uid}-%"
    with hub.sessions() as s:
        return {
            "inbox": s.scalar(select(func.count()).select_from(InboxRow).where(InboxRow.source_id.like(mine))) or 0,
            "charges": s.scalar(select(func.count()).where(LedgerRow.source_id.like(mine),
                                                           LedgerRow.kind == "charge")) or 0,
            "outbox": s.scalar(select(func.count()).select_from(OutboxRow)
                               .where(OutboxRow.source_id.like(mine))) or 0,
        }


def test_a_batch_posts_every_command_once_in_one_transaction(hub: Hub, uid: str) -> None:
    commands = [charge(uid, n, f"A{uid}{n % 3}") for n in range(9)]
    results = bus_of(hub).handle_many(commands)
    assert [r.source_id for r in results if isinstance(r, Outcome)] == [c.source_id for c in commands]
    assert all(isinstance(r, Outcome) and not r.duplicate and len(r.events) == 1 for r in results)
    assert posted(hub, uid) == {"inbox": 9, "charges": 9, "outbox": 9}
    assert bus_of(hub).handle_many([]) == []


def test_a_bad_command_in_the_middle_rolls_back_only_itself(hub: Hub, uid: str) -> None:
    owner, other = f"A{uid}", f"B{uid}"
    bus_of(hub).handle(charge(uid, 0, owner))  # claim V{owner} now belongs to ``owner``
    batch = [
        charge(uid, 1, owner),
        # Creates account ``other`` and its patient, then fails on the claim: all of it must be undone.
        charge(uid, 2, other, claim=f"V{owner}"),
        PostPatientPayment(f"gc:{uid}-3", owner, Decimal("-1.00"), "cash", date(2024, 3, 2)),
        charge(uid, 4, other),  # the account the failed savepoint created and rolled back: made afresh
        charge(uid, 5, owner),
    ]
    results = bus_of(hub).handle_many(batch)
    assert [type(r).__name__ for r in results] == ["Outcome", "DomainViolation", "DomainViolation", "Outcome",
                                                   "Outcome"]
    assert posted(hub, uid) == {"inbox": 4, "charges": 4, "outbox": 4}
    with hub.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AccountRow).where(AccountRow.number == other)) == 1


def test_a_duplicate_inside_one_batch_posts_once(hub: Hub, uid: str) -> None:
    first = charge(uid, 1, f"A{uid}")
    altered = charge(uid, 1, f"A{uid}", amount="99.00")  # same source id, other content
    results = bus_of(hub).handle_many([first, charge(uid, 2, f"A{uid}"), first, altered])
    assert isinstance(results[0], Outcome) and not results[0].duplicate
    assert isinstance(results[2], Outcome) and results[2].duplicate
    assert isinstance(results[3], DomainViolation)
    assert posted(hub, uid) == {"inbox": 2, "charges": 2, "outbox": 2}
    again = bus_of(hub).handle_many([first])  # and across batches, as with ``handle``
    assert isinstance(again[0], Outcome) and again[0].duplicate


def test_a_duplicate_of_a_command_that_failed_earlier_in_the_batch_is_handled_afresh(hub: Hub, uid: str) -> None:
    owner = f"A{uid}"
    bus_of(hub).handle(charge(uid, 0, owner))
    failing = charge(uid, 1, f"B{uid}", claim=f"V{owner}")
    results = bus_of(hub).handle_many([failing, failing])
    assert all(isinstance(r, DomainViolation) for r in results)
    assert posted(hub, uid)["inbox"] == 1


class FailingCommit(UnitOfWork):
    def commit(self) -> None:
        raise StoreUnavailable("database unavailable: commit lost")


def test_a_commit_failure_fails_the_whole_batch_and_posts_nothing(hub: Hub, uid: str) -> None:
    bus = InProcessBus(lambda: FailingCommit(hub.sessions), HANDLERS)
    with pytest.raises(StoreUnavailable):
        bus.handle_many([charge(uid, n, f"A{uid}{n % 2}") for n in range(4)])
    assert posted(hub, uid) == {"inbox": 0, "charges": 0, "outbox": 0}
    with hub.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AccountRow).where(AccountRow.number.like(f"A{uid}%"))) == 0
    # The retry (a healthy unit of work) posts the whole batch.
    results = bus_of(hub).handle_many([charge(uid, n, f"A{uid}{n % 2}") for n in range(4)])
    assert all(isinstance(r, Outcome) and not r.duplicate for r in results)
    assert posted(hub, uid) == {"inbox": 4, "charges": 4, "outbox": 4}


def test_a_value_the_database_cannot_store_fails_only_its_command_as_a_domain_violation(hub: Hub, uid: str) -> None:
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores text of any length in a VARCHAR column")
    account = f"A{uid}"
    too_long = PostCharges(f"gc:{uid}-1", account, f"V{account}", None,
                           (ChargeLine(1, date(2024, 3, 1), "9" * 5_000, Decimal("1.00")),))
    results = bus_of(hub).handle_many([charge(uid, 0, account), too_long, charge(uid, 2, account)])
    assert isinstance(results[1], DomainViolation) and "DataError" not in type(results[1]).__name__
    assert isinstance(results[0], Outcome) and isinstance(results[2], Outcome)
    with pytest.raises(DomainViolation):  # one command per transaction: the same verdict
        bus_of(hub).handle(PostCharges(f"gc:{uid}-3", account, f"V{account}", None, too_long.charges))
    assert posted(hub, uid) == {"inbox": 2, "charges": 2, "outbox": 2}
