"""Migrations match the mapped rows; the inbox keeps commands idempotent under concurrency."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from api.bootstrap import Hub
from router.adapters.db import current_revision
from router.adapters.orm import Base
from router.domain.commands import PostCharges
from router.domain.model import ChargeLine, Coverage
from router.queries import account_balances


def test_migrated_schema_matches_the_orm_rows(hub: Hub) -> None:
    with hub.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert current_revision(hub.engine) is not None


def test_ledger_rows_cannot_be_updated_through_the_api_surface() -> None:
    from router.adapters.repository import LedgerRepository

    public = {name for name in dir(LedgerRepository) if not name.startswith("_")}
    assert public == {"append", "append_new", "get", "is_reversed", "for_account"}


def test_the_same_command_from_eight_threads_posts_once(hub: Hub, uid: str) -> None:
    cmd = PostCharges(f"race:{uid}", f"A{uid}", f"C{uid}", None,
                      (ChargeLine(1, date(2024, 5, 1), "99213", Decimal("50.00")),), coverages=(Coverage(1, "P"),))
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(hub.bus.handle(cmd).duplicate)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(results) == [False] + [True] * 7
    with hub.sessions() as s:
        assert account_balances(s, f"A{uid}").charges == Decimal("50.00")  # type: ignore[union-attr]
        count = s.execute(text("SELECT count(*) FROM ledger_entries WHERE source_id = :s"),
                          {"s": f"race:{uid}"}).scalar_one()
    assert count == 1


def test_unit_of_work_rolls_back_unless_committed(hub: Hub, uid: str) -> None:
    from router.domain.ledger import EntryKind, LedgerEntry, Responsibility

    entry = LedgerEntry(f"A{uid}", EntryKind.CHARGE, Responsibility.INSURANCE, Decimal("1.00"), f"k{uid}", "s")
    with hub.uow_factory() as uow:
        uow.ledger.append([entry])
    with hub.uow_factory() as uow:
        assert uow.ledger.get(f"k{uid}") is None
        uow.ledger.append([entry])
        uow.commit()
    with hub.uow_factory() as uow:
        assert uow.ledger.get(f"k{uid}") == entry


def test_many_new_ledger_legs_post_in_one_go_and_a_clash_is_a_concurrency_conflict(hub: Hub, uid: str) -> None:
    """``append_new`` (COPY straight into the table on PostgreSQL) posts every leg; the same keys again
    (only a concurrent writer of the same source can do that) raise ConcurrencyConflict, not a raw error."""
    import pytest

    from router.domain.errors import ConcurrencyConflict
    from router.domain.ledger import EntryKind, LedgerEntry, Responsibility

    legs = [LedgerEntry(f"A{uid}", EntryKind.PATIENT_PAYMENT, Responsibility.PATIENT, Decimal("-1.25"),
                        f"bulk:{uid}:{i}", f"bulk:{uid}") for i in range(120)]
    with hub.uow_factory() as uow:
        uow.ledger.append_new(legs)
        uow.commit()
    with hub.sessions() as s:
        assert account_balances(s, f"A{uid}").patient == Decimal("-150.00")  # type: ignore[union-attr]
    with pytest.raises(ConcurrencyConflict), hub.uow_factory() as uow:
        uow.ledger.append_new(legs)
        uow.commit()
    with hub.sessions() as s:
        assert account_balances(s, f"A{uid}").patient == Decimal("-150.00")  # type: ignore[union-attr]
