"""Real services for integration tests: skip locally when one is missing, fail under CI=true."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get("RCMHUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("RCMHUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: integration tests must not skip)")
    pytest.skip(message)


def postgres_url() -> str:
    require("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


def amqp_url() -> str:
    require("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL
