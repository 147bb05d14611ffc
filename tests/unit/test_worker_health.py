"""The worker's probe server: alive while it answers, ready only while every consumer is consuming."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from typer.testing import CliRunner

from api.cli import app
from api.worker_health import WorkerHealth
from connectors.rabbitmq.consumer import WorkConsumer
from connectors.rabbitmq.topology import Topology


class Idle(WorkConsumer):
    role = "router"


def get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_readyz_follows_the_consumers_and_healthz_only_needs_the_process() -> None:
    consumer = Idle("amqp://guest:guest@127.0.0.1:5672/%2F", Topology())  # never run: no connection is made
    health = WorkerHealth([consumer], host="127.0.0.1", port=0).start()
    try:
        assert get(health.port, "/healthz") == (200, {"status": "ok"})
        assert get(health.port, "/readyz") == (503, {"status": "not ready", "consuming": {"router": False}})
        consumer.consuming.set()
        assert get(health.port, "/readyz") == (200, {"status": "ready", "consuming": {"router": True}})
        assert get(health.port, "/metrics")[0] == 404
    finally:
        health.stop()


def test_the_worker_command_offers_the_health_port() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"])
    assert result.exit_code == 0 and "--health-port" in result.output
