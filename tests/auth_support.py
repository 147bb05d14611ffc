"""Test helpers for issue-8 security: staff users, bearer tokens and logged-in TestClients (import from tests)."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import Hub
from api.security import Security, security_for

PASSWORD = "correct horse battery staple"


def security(app: FastAPI) -> Security:
    return security_for(app)


def add_user(app: FastAPI, *roles: str, username: str | None = None, password: str = PASSWORD) -> str:
    """A staff user with ``roles`` and a random name (returned)."""
    name = username or f"user-{uuid.uuid4().hex[:10]}"
    security_for(app).create_user(name, password, set(roles))
    return name


def bearer(app: FastAPI, *roles: str) -> dict[str, str]:
    """Headers carrying a fresh bearer token scoped to ``roles``."""
    _id, secret = security_for(app).create_token(f"test-{uuid.uuid4().hex[:8]}", set(roles))
    return {"Authorization": f"Bearer {secret}"}


def login(client: TestClient, *roles: str) -> str:
    """Log ``client`` in as a new staff user with ``roles``; sets its CSRF header and returns the user name."""
    app = client.app
    assert isinstance(app, FastAPI)
    name = add_user(app, *roles)
    response = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return name


def staff_client(hub: Hub, *roles: str) -> TestClient:
    """A TestClient on a new app, logged in as a staff user with ``roles``."""
    client = TestClient(create_app(hub))
    login(client, *roles)
    return client


def system_client(hub: Hub, *roles: str) -> TestClient:
    """A TestClient on a new app sending a bearer token scoped to ``roles`` (default ``emr-system``)."""
    app = create_app(hub)
    client = TestClient(app)
    client.headers.update(bearer(app, *(roles or ("emr-system",))))
    return client
