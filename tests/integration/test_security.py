"""Staff login (argon2, session cookie, CSRF, lockout), bearer tokens (hashed, scoped, revocable) and the
audit trail they leave, through FastAPI's TestClient on a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from auth_support import PASSWORD, add_user, bearer, login
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from api.app import create_app
from api.bootstrap import Hub
from api.security import SESSION_COOKIE, security_for
from router.adapters.orm import AuditRow
from router.adapters.orm_security import ApiTokenRow, UserRow
from router.domain.errors import DomainViolation


@pytest.fixture
def client(hub: Hub) -> TestClient:
    return TestClient(create_app(hub))


def _audit(hub: Hub, actor: str) -> list[AuditRow]:
    with hub.sessions() as s:
        return list(s.scalars(select(AuditRow).where(AuditRow.actor == actor).order_by(AuditRow.id)))


def test_a_staff_user_logs_in_with_an_argon2_password_and_gets_an_httponly_session(hub: Hub,
                                                                                   client: TestClient) -> None:
    name = login(client, "billing")
    with hub.sessions() as s:
        stored = s.scalars(select(UserRow.password_hash).where(UserRow.username == name)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
    assert cookie.has_nonstandard_attr("HttpOnly")
    me = client.get("/api/v1/auth/me").json()
    assert me["username"] == name and me["roles"] == ["billing"] and me["may_see_phi"] is True
    assert [r.action for r in _audit(hub, name)] == ["auth.login"]


def test_the_session_cookie_is_secure_when_not_on_a_loopback_host(hub: Hub) -> None:
    app = create_app(hub)
    name = add_user(app, "billing")
    response = TestClient(app, base_url="https://hub.example.org").post(
        "/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200
    header = response.headers["set-cookie"].lower()
    assert "secure" in header and "httponly" in header and "samesite=strict" in header


def test_a_write_with_a_session_but_without_the_csrf_token_is_refused_and_audited(hub: Hub,
                                                                                  client: TestClient) -> None:
    name = login(client, "billing")
    token = client.headers.pop("X-CSRF-Token")
    assert client.post("/api/v1/auth/logout").status_code == 403
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    denied = [r for r in _audit(hub, name) if r.action == "access.denied"]
    assert len(denied) == 2 and all(r.outcome == "denied" and "csrf" in r.detail for r in denied)
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_five_failures_lock_the_account_even_for_the_right_password(hub: Hub, client: TestClient) -> None:
    app = client.app
    name = add_user(app, "billing")  # type: ignore[arg-type]
    for _ in range(5):
        bad = client.post("/api/v1/auth/login", json={"username": name, "password": "not the password!"})
        assert bad.status_code == 401
    right = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert right.status_code == 401 and SESSION_COOKIE not in right.cookies
    actions = [(r.action, r.outcome) for r in _audit(hub, name)]
    assert ("auth.lockout", "locked") in actions and actions[-1] == ("auth.login", "denied")
    security_for(app).store.update_user(name, locked_until=None)  # type: ignore[arg-type]
    assert client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD}).status_code == 200


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(client: TestClient, uid: str) -> None:
    unknown = client.post("/api/v1/auth/login", json={"username": f"ghost-{uid}", "password": "whatever12345"})
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == "invalid user name or password, or the account is locked"


def test_bearer_tokens_are_stored_as_digests_and_stop_working_when_revoked_or_expired(hub: Hub,
                                                                                    client: TestClient) -> None:
    app = client.app
    headers = bearer(app, "it-ops")  # type: ignore[arg-type]
    secret = headers["Authorization"].split()[1]
    me = client.get("/api/v1/auth/me", headers=headers).json()
    assert me["kind"] == "token" and me["roles"] == ["it-ops"] and me["may_see_phi"] is False
    with hub.sessions() as s:
        assert s.scalar(select(ApiTokenRow.id).where(ApiTokenRow.token_hash == secret)) is None
    security = security_for(app)  # type: ignore[arg-type]
    token = next(t for t in security.store.tokens() if t.name == me["username"].removeprefix("token:"))
    assert security.store.revoke_token(token.id, token.created_at + timedelta(seconds=1))
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    _id, expired = security.create_token("short", {"emr-system"}, lifetime=timedelta(seconds=-1))
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    assert client.get("/api/v1/auth/me", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status_code == 401


def test_roles_are_checked_when_users_and_tokens_are_made(client: TestClient, uid: str) -> None:
    security = security_for(client.app)  # type: ignore[arg-type]
    with pytest.raises(DomainViolation):
        security.create_user(f"u-{uid}", PASSWORD, {"root"})
    with pytest.raises(DomainViolation):
        security.create_user(f"u-{uid}", PASSWORD, {"emr-system"})
    with pytest.raises(DomainViolation):
        security.create_user(f"u-{uid}", "short", {"billing"})
    with pytest.raises(DomainViolation):
        security.create_token(f"t-{uid}", set())


def test_the_login_form_redirects_only_within_the_site(hub: Hub, client: TestClient) -> None:
    name = add_user(client.app, "it-ops")  # type: ignore[arg-type]
    page = client.get("/login", params={"next": "//evil.example/x"})
    assert page.status_code == 200 and 'for="username"' in page.text and 'for="password"' in page.text
    token = page.text.split('name="form_token" value="')[1].split('"')[0]
    done = client.post("/login", data={"username": name, "password": PASSWORD, "form_token": token,
                                       "next": "//evil.example/x"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert client.get("/api/v1/auth/me").json()["username"] == name


def test_the_login_form_needs_its_own_token(hub: Hub, uid: str) -> None:
    client = TestClient(create_app(hub))
    name = add_user(client.app, "it-ops")  # type: ignore[arg-type]
    forged = client.post("/login", data={"username": name, "password": PASSWORD, "form_token": "x"},
                         follow_redirects=False)
    assert forged.status_code == 303 and "error=expired" in forged.headers["location"]
    assert SESSION_COOKIE not in forged.cookies


def test_the_generalised_audit_log_is_still_append_only(hub: Hub, client: TestClient) -> None:
    name = login(client, "auditor")
    with pytest.raises(DBAPIError), hub.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET outcome = 'ok' WHERE actor = :a"), {"a": name})
    with pytest.raises(DBAPIError), hub.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE actor = :a"), {"a": name})
    assert len(_audit(hub, name)) == 1
