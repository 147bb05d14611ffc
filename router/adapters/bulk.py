"""Bulk INSERT of many rows (adapter layer): on PostgreSQL, COPY into a temporary table and one
``INSERT ... SELECT`` from it; other dialects get Core executemany (insertmanyvalues).

Why: SQLAlchemy's insertmanyvalues renders one named placeholder per value, and psycopg 3 converts each
placeholder in Python (~6 us each): 100,000 ledger rows x 19 columns spent ~12 s there alone. The previous
``INSERT ... SELECT FROM unnest(arrays)`` sent 19 parameters, but psycopg dumps list parameters in pure
Python (~2.5 s for the 10,000-claim benchmark's 101,753 ledger rows, 7.7 s for the statement in all).
``COPY ... FROM STDIN`` formats rows in psycopg's C extension (~0.4 s), and the server-side
``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING`` has exactly the rows, conflicts (also between
two new rows) and RETURNING of the multi-row INSERT. What remains is PostgreSQL's own work (~3.5 s per
100,000 ledger rows: half of it the two foreign-key checks per row, the rest heap and six btrees).

Rows whose keys are new by construction (a remittance's ledger legs: every idempotency key derives from a
source id the inbox has not seen) go through ``copy_new_rows``: COPY straight into the table, no temporary
table and no ``ON CONFLICT``. PostgreSQL then checks keys and foreign keys while the rows stream in, on its
own core, in parallel with Python formatting the next rows; a clash can only be a concurrent writer of the
same source, reported as ``ConcurrencyConflict`` (the bus re-checks the inbox and finds the duplicate).

A few rows (a charge's one to three ledger legs) skip the COPY: creating, filling and dropping a temporary
table cost ~6 ms per call, most of a charge's database time; one multi-row INSERT costs well under 1 ms.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import psycopg
from sqlalchemy import Table, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from router.domain.errors import ConcurrencyConflict, StoreUnavailable

_names = itertools.count(1)
COPY_FROM = 50  # rows; below this a plain multi-row INSERT is cheaper than COPY through a temporary table
COPY_NEW_FROM = 10  # rows; a COPY straight into the table costs about one round trip more than an INSERT


def _defaults(table: Table, given: set[str]) -> dict[str, Callable[[], Any]]:
    """Python-side column defaults (``default=utcnow``) a Core INSERT would have filled in."""
    out: dict[str, Callable[[], Any]] = {}
    for col in table.columns:
        default = col.default
        if col.key in given or default is None or not getattr(default, "is_callable", False):
            continue
        arg = default.arg  # type: ignore[attr-defined]  # SQLAlchemy wraps it to take the execution context
        out[col.key] = partial(arg, None)
    return out


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], returning: Sequence[str],
                conflict: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """INSERT ``rows`` (all with the same keys); with ``conflict``, rows clashing on it are skipped.
    Returns the ``returning`` columns of the rows inserted (in no guaranteed order on PostgreSQL)."""
    if not rows:
        return []
    if session.get_bind().dialect.name != "postgresql" or len(rows) < COPY_FROM:
        stmt = dialect_insert(session, table)
        if conflict:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
        return [tuple(r) for r in session.execute(stmt.returning(*(table.c[c] for c in returning)), list(rows))]
    keys = list(rows[0])
    defaults = _defaults(table, set(keys))
    return copy_insert(session, table, keys + list(defaults),
                       ((*(r[k] for k in keys), *(fn() for fn in defaults.values())) for r in rows),
                       returning, conflict)


def copy_insert(session: Session, table: Table, columns: Sequence[str], tuples: Any, returning: Sequence[str],
                conflict: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """PostgreSQL only: ``tuples`` (an iterable of value tuples in ``columns`` order) go through COPY into a
    temporary table dropped at commit, then into ``table`` in one statement."""
    # The SQLAlchemy connection's transaction is the driver connection's: the COPY and INSERT run inside it.
    driver = session.connection().connection.driver_connection
    assert driver is not None
    temp, cols = f"bulk_{table.name}_{next(_names)}", ", ".join(columns)
    with _translated(), driver.cursor() as cur:
        cur.execute(f"CREATE TEMPORARY TABLE {temp} ON COMMIT DROP AS SELECT {cols} FROM {table.name} WITH NO DATA")
        with cur.copy(f"COPY {temp} ({cols}) FROM STDIN") as copy:
            for values in tuples:
                copy.write_row(values)
        cur.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {temp}"
                    + (f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING" if conflict else "")
                    + f" RETURNING {', '.join(returning)}")
        found = [tuple(r) for r in cur.fetchall()]
        cur.execute(f"DROP TABLE {temp}")
    return found


def dialect_insert(session: Session, table: Any) -> Any:
    """The dialect's own INSERT construct (``on_conflict_do_*``, ``excluded``) for this session's database."""
    name = session.get_bind().dialect.name
    return {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(name, insert)(table)


def _unnest(table: Table, rows: Sequence[Mapping[str, Any]]) -> Any:
    """PostgreSQL: ``rows`` (all with the same keys) as ``unnest(array, array, ...) AS rows(keys...)``, one
    array parameter per column. Why: a multi-row VALUES statement has a new text for every row count, and
    psycopg parses each new text's placeholders in Python (~2 ms for 100 rows of 5 columns) besides
    converting every value on its own; this text and its parameter count never change."""
    names = list(rows[0])
    arrays = [bindparam(f"rows_{n}", [r[n] for r in rows], type_=postgresql.ARRAY(table.c[n].type)) for n in names]
    return func.unnest(*arrays).table_valued(*names).render_derived(name="rows")


def one_of(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column IN values`` as ``column = ANY(array)`` on PostgreSQL: one parameter, one statement text for any
    number of values (an expanded IN list has a new text, parsed anew by psycopg, for every length)."""
    values = list(values)
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))


def insert_from(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> Any:
    """A multi-row INSERT of ``rows`` (all with the same keys) in the dialect's own construct, to which
    ``on_conflict_*`` and ``returning`` may be added: ``INSERT ... SELECT FROM unnest(...)`` on PostgreSQL
    (see ``_unnest``), ``INSERT ... VALUES (...), (...)`` elsewhere."""
    if session.get_bind().dialect.name != "postgresql":
        return dialect_insert(session, table).values(list(rows))
    source = _unnest(table, rows)
    names = list(rows[0])
    return postgresql.insert(table).from_select(names, select(*(source.c[n] for n in names)))


def update_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], key: str = "id") -> None:
    """Set each row's own values (all rows with the same keys, ``key`` naming the row): one
    ``UPDATE ... FROM unnest(...)`` on PostgreSQL, an executemany elsewhere."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        params = [{f"b_{k}": v for k, v in r.items()} for r in rows]
        session.execute(update(table).where(table.c[key] == bindparam(f"b_{key}")).values(
            {n: bindparam(f"b_{n}") for n in rows[0] if n != key}), params)
        return
    source = _unnest(table, rows)
    session.execute(update(table).where(table.c[key] == source.c[key]).values(
        {n: source.c[n] for n in rows[0] if n != key}))


def insert_new(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (all with the same keys) whose unique keys are new by construction: COPY straight into
    the table on PostgreSQL from ``COPY_NEW_FROM`` rows (no per-value placeholder conversion), a Core
    executemany otherwise. A clash is a concurrent writer (``ConcurrencyConflict`` or ``IntegrityError``)."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql" or len(rows) < COPY_NEW_FROM:
        session.execute(insert(table), list(rows))
        return
    session.flush()  # pending ORM rows first: the connection is busy during the COPY
    keys = list(rows[0])
    defaults = _defaults(table, set(keys))
    copy_new_rows(session, table, keys + list(defaults),
                  ((*(r[k] for k in keys), *(fn() for fn in defaults.values())) for r in rows))


def copy_new_rows(session: Session, table: Table, columns: Sequence[str], tuples: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL only: COPY ``tuples`` (in ``columns`` order, every Python-side default included) straight
    into ``table``. For rows whose unique keys are new by construction; a clash raises ``ConcurrencyConflict``.
    ``tuples`` must not query the database while it is consumed: the connection is busy with the COPY."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    with _translated(), driver.cursor() as cur, cur.copy(statement) as copy:
        for values in tuples:
            copy.write_row(values)


@contextmanager
def _translated() -> Iterator[None]:
    """psycopg errors raised on the raw driver connection, mapped as ``unit_of_work.translate`` maps
    SQLAlchemy's (which never sees them): a key clash is a concurrent writer, a lost server is transient."""
    try:
        yield
    except psycopg.errors.IntegrityError as exc:
        raise ConcurrencyConflict(f"a concurrent transaction wrote the same key: {type(exc).__name__}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
