"""Shared fixtures. Database-backed tests run once per backend (SQLite and PostgreSQL; narrow with
RCMHUB_TEST_BACKENDS=sqlite). Tests isolate by random identifiers, not by truncating tables."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_services import private_hub, private_postgres, private_rabbitmq  # noqa: F401  (session fixtures)
from services import POSTGRES_URL, postgres_url
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from api.bootstrap import Hub, build
from api.settings import Settings

SAMPLES = Path(__file__).parent / "samples"


BACKENDS = [b for b in os.environ.get("RCMHUB_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every database-backed test runs on SQLite (embedded) and PostgreSQL (production)."""
    if request.param == "postgresql":
        return postgres_url()
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'rcmhub-test.db'}"


@pytest.fixture(scope="session")
def session_hub(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = build(Settings(database_url=database_url, data_dir=tmp_path_factory.mktemp("data"), amqp_url=""))
    yield hub
    hub.close()


@pytest.fixture
def hub(session_hub: Hub) -> Hub:
    return session_hub


@pytest.fixture
def uid() -> str:
    """A random identifier so tests sharing one database never collide."""
    return uuid.uuid4().hex[:10].upper()


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The hub on the real PostgreSQL, in-process bus (workers under test bring their own RabbitMQ)."""
    hub = build(Settings(database_url=postgres_url(), data_dir=tmp_path_factory.mktemp("data"), amqp_url=""))
    yield hub
    hub.close()


@pytest.fixture(autouse=True)
def analyzed_for_benchmarks(request: pytest.FixtureRequest) -> None:
    """Benchmarks measure the hub as it runs in production, where autovacuum keeps the planner's statistics
    current. This machine's PostgreSQL runs with autovacuum off (``conf.d/90-ci.conf``): tables that tests
    and earlier benchmarks filled have no statistics, and the planner takes a batch's indexed lookups
    (control ids, claim keys) for full scans (70 ms instead of 0.4 ms on 100,000 stored messages). So each
    benchmark starts from analyzed tables, as autovacuum would leave them."""
    if request.node.get_closest_marker("benchmark") is None:
        return
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
    except OperationalError:
        pass  # no PostgreSQL here: the SQLite benchmarks still run
    finally:
        engine.dispose()
