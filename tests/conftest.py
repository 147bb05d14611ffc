"""Shared fixtures. The database under test is SQLite unless RCMHUB_TEST_DATABASE_URL names another
(CI runs the suite once on SQLite and once on PostgreSQL). Tests isolate by random identifiers, not
by truncating tables."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.bootstrap import Hub, build
from api.settings import Settings

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("RCMHUB_TEST_DATABASE_URL")
    if url:
        return url
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
