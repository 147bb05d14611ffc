"""Benchmarks measure the hub as it runs in production, where PostgreSQL's autovacuum keeps the planner's
statistics current. This machine's PostgreSQL runs with autovacuum off (``conf.d/90-ci.conf``), so tables
the tests and earlier benchmarks filled have no statistics, and the planner takes indexed lookups (a batch's
control ids, claim keys) for full scans: 70 ms instead of 0.4 ms on 100,000 stored messages. Each benchmark
therefore starts from analyzed tables, as autovacuum would leave them."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text


@pytest.fixture(autouse=True)
def analyzed_postgres() -> None:
    url = os.environ.get("RCMHUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
    except Exception:  # no PostgreSQL here: the SQLite benchmarks still run
        pass
    finally:
        engine.dispose()
