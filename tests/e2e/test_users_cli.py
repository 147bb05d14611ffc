"""``rcmhub users`` and ``rcmhub tokens`` as an operator bootstraps a hub: every change audited, a token's
secret printed once and accepted by the API, a disabled or re-passworded user signed out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner, Result

from api.app import create_app
from api.bootstrap import Hub, build
from api.cli import app
from api.settings import Settings
from router.adapters.orm import AuditRow

PASSWORD = "first operator password"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A private SQLite hub: the CLI's SQL is the same on PostgreSQL (test_security runs the store on both)."""
    hub = build(Settings(database_url=f"sqlite:///{tmp_path / 'rcmhub.db'}", data_dir=tmp_path, amqp_url=""))
    yield hub
    hub.close()


@pytest.fixture
def cli(tmp_path: Path, hub: Hub) -> CliRunnerEnv:
    return CliRunnerEnv({"RCMHUB_DATA_DIR": str(tmp_path), "RCMHUB_DATABASE_URL": str(hub.engine.url),
                         "RCMHUB_AMQP_URL": "", "LOGNAME": "opsadmin", "USER": "opsadmin"})


class CliRunnerEnv:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env, input=stdin)


def _actions(hub: Hub, object_id: str) -> list[tuple[str, str, str]]:
    with hub.sessions() as s:
        rows = s.execute(select(AuditRow.actor, AuditRow.action, AuditRow.source)
                         .where(AuditRow.message_id == object_id).order_by(AuditRow.id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_an_operator_adds_a_user_who_can_sign_in_and_manages_it(cli: CliRunnerEnv, hub: Hub, uid: str) -> None:
    name = f"ops-{uid}"
    added = cli("users", "add", name, "--role", "it-ops", "--role", "auditor", "--password-stdin",
                stdin=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert cli("users", "add", name, "--role", "it-ops", "--password-stdin", stdin=PASSWORD + "\n").exit_code == 1
    assert cli("users", "add", f"x-{uid}", "--role", "root", "--password-stdin", stdin=PASSWORD + "\n").exit_code == 1
    listed = json.loads(cli("users", "list", "--json").stdout)
    (me,) = [u for u in listed if u["username"] == name]
    assert me == {"username": name, "roles": ["auditor", "it-ops"], "active": True, "locked_until": None}
    assert "argon2" not in cli("users", "list", "--json").stdout

    client = TestClient(create_app(hub))
    signed_in = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert signed_in.status_code == 200 and signed_in.json()["roles"] == ["auditor", "it-ops"]
    assert cli("users", "passwd", name, "--password-stdin", stdin="a brand new password\n").exit_code == 0
    assert client.get("/api/v1/auth/me").status_code == 401  # a new password ends the sessions
    assert client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD}).status_code == 401
    assert cli("users", "disable", name).exit_code == 0
    assert client.post("/api/v1/auth/login",
                       json={"username": name, "password": "a brand new password"}).status_code == 401
    assert cli("users", "enable", name).exit_code == 0 and cli("users", "unlock", name).exit_code == 0
    assert cli("users", "roles", name, "--role", "billing").exit_code == 0
    again = client.post("/api/v1/auth/login", json={"username": name, "password": "a brand new password"})
    assert again.status_code == 200 and again.json()["roles"] == ["billing"]
    assert cli("users", "disable", f"nobody-{uid}").exit_code == 1
    audited = [action for _, action, _ in _actions(hub, name)]
    assert audited[:1] == ["user.add"] and {"user.passwd", "user.disable", "user.enable", "user.unlock",
                                            "user.roles"} <= set(audited)
    assert all(actor == "opsadmin" for actor, action, _ in _actions(hub, name) if action.startswith("user."))


def test_a_token_is_shown_once_works_for_its_role_only_and_stops_when_revoked(cli: CliRunnerEnv, hub: Hub,
                                                                             uid: str) -> None:
    made = cli("tokens", "create", f"emr-{uid}", "--role", "emr-system", "--days", "30", "--json")
    assert made.exit_code == 0, made.output
    token = json.loads(made.stdout)
    assert token["token"].startswith("rcm_") and token["roles"] == ["emr-system"]
    listed = cli("tokens", "list", "--json").stdout
    assert token["token"] not in listed
    (row,) = [t for t in json.loads(listed) if t["id"] == token["id"]]
    assert row["expires_at"] and row["revoked_at"] is None
    client = TestClient(create_app(hub), headers={"Authorization": f"Bearer {token['token']}"})
    assert client.get("/api/v1/auth/me").json()["roles"] == ["emr-system"]
    assert client.get("/api/v1/exceptions").status_code == 403
    assert cli("tokens", "revoke", str(token["id"])).exit_code == 0
    assert cli("tokens", "revoke", str(token["id"])).exit_code == 1
    assert client.get("/api/v1/auth/me").status_code == 401
    assert [action for _, action, _ in _actions(hub, str(token["id"]))] == ["token.create", "token.revoke"]
