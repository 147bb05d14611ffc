"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from services import postgres_url

from api.bootstrap import Hub, build
from api.settings import Settings


@pytest.fixture(scope="module")
def pg_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The hub on the real PostgreSQL, in-process bus (workers under test bring their own RabbitMQ)."""
    hub = build(Settings(database_url=postgres_url(), data_dir=tmp_path_factory.mktemp("data"), amqp_url=""))
    yield hub
    hub.close()
