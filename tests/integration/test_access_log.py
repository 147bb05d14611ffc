"""The HTTP access log names the route template, never the path or query string (which carry PHI)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Hub


def test_access_log_lines_carry_the_route_template_not_the_account_number(
        hub: Hub, uid: str, caplog: pytest.LogCaptureFixture) -> None:
    account = f"ACCT{uid}"
    with caplog.at_level(logging.INFO, logger="rcmhub.access"), TestClient(create_app(hub)) as client:
        client.get(f"/api/v1/workbench/accounts/{account}?q=SMITH{uid}")
        client.get(f"/no/such/{account}")
    lines = [r.getMessage() for r in caplog.records if r.name == "rcmhub.access"]
    assert len(lines) == 2
    assert "GET /api/v1/workbench/accounts/{account}" in lines[0]
    assert lines[1].startswith("GET (no route) 404")
    assert not any(account in line or f"SMITH{uid}" in line for line in lines)
