"""A database of its own for tests that read whole-database figures (A/R reports, benchmarks): a new SQLite
file, or a new database on the shared PostgreSQL server created for the test and dropped after it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services import postgres_url
from sqlalchemy import create_engine, text


@contextmanager
def fresh_database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'fresh-{uuid.uuid4().hex[:8]}.db'}"
        return
    base = postgres_url()
    name = f"rcmhub_fresh_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.rsplit("/", 1)[0] + f"/{name}"
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
