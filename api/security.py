"""Who is calling and may they (api): bearer tokens for systems, cookie sessions for staff, roles, CSRF, audit.

Use ``Depends(require("billing", "billing-supervisor"))`` on a JSON route (401/403, audited) and
``require_page(...)`` on an HTML page (anonymous callers are sent to ``/login``). The returned ``Principal``
says who it is; ``audit(request, principal, ...)`` records a PHI view or an action in the append-only log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.bootstrap import Hub
from router.adapters.audit import AuditLog, AuditRecord
from router.adapters.credentials import Credentials, UserRecord
from router.adapters.orm import AuditRow
from router.domain.errors import DomainViolation

log = logging.getLogger(__name__)

EMR_SYSTEM = "emr-system"
BILLING = "billing"
SUPERVISOR = "billing-supervisor"
IT_OPS = "it-ops"
AUDITOR = "auditor"
ROLES = (EMR_SYSTEM, BILLING, SUPERVISOR, IT_OPS, AUDITOR)
STAFF_ROLES = (BILLING, SUPERVISOR, IT_OPS, AUDITOR)
PHI_ROLES = frozenset({BILLING, SUPERVISOR})  # may read patient data and raw message payloads

SESSION_COOKIE = "rcmhub_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_PREFIX = "rcm_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "testserver"})  # testserver: Starlette TestClient


@dataclass(frozen=True)
class Policy:
    session_lifetime: timedelta = timedelta(hours=8)
    lockout_failures: int = 5  # failures within ``lockout_window`` lock the account ...
    lockout_window: timedelta = timedelta(minutes=15)
    lockout_duration: timedelta = timedelta(minutes=15)  # ... for this long
    cookie_secure: bool | None = None  # None: Secure unless served over plain http on a loopback host


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a staff user (``kind="user"``, cookie) or a system (``kind="token"``, bearer)."""

    id: str
    username: str
    roles: frozenset[str]
    kind: str = "user"
    csrf_token: str | None = field(default=None, repr=False)

    @property
    def may_see_phi(self) -> bool:
        return bool(self.roles & PHI_ROLES)

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


class LoginFailed(Exception):
    """Wrong user name or password, or a locked or disabled account: one message for all, on purpose."""

    def __init__(self, locked: bool = False) -> None:
        super().__init__("invalid user name or password, or the account is locked")
        self.locked = locked


def _digest(secret: str) -> str:
    # Tokens and session ids are 256-bit random values: a fast digest is enough at rest (argon2 is for passwords).
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def check_roles(roles: frozenset[str] | set[str] | list[str] | tuple[str, ...]) -> frozenset[str]:
    chosen = frozenset(roles)
    unknown = chosen - set(ROLES)
    if not chosen or unknown:
        raise DomainViolation(f"unknown or missing role(s) {sorted(unknown)}; roles: {', '.join(ROLES)}",
                              location="roles")
    return chosen


class Security:
    """Credential checks, logins and the audit trail for one hub."""

    def __init__(self, hub: Hub, policy: Policy | None = None) -> None:
        self.store = Credentials(hub.sessions)
        self.audit_log = AuditLog(hub.sessions)
        self.policy = policy or Policy()
        self.hasher = PasswordHasher()
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))

    # provisioning ------------------------------------------------------------------------------------------
    def create_user(self, username: str, password: str, roles: frozenset[str] | set[str] | list[str]) -> int:
        chosen = check_roles(roles)
        if EMR_SYSTEM in chosen:
            raise DomainViolation("emr-system is a role for API tokens, not for staff logins", location="roles")
        if len(password) < 12:
            raise DomainViolation("a password needs at least 12 characters", location="password")
        return self.store.add_user(username, self.hasher.hash(password), chosen)

    def set_password(self, username: str, password: str) -> bool:
        if len(password) < 12:
            raise DomainViolation("a password needs at least 12 characters", location="password")
        changed = self.store.update_user(username, password_hash=self.hasher.hash(password), locked_until=None)
        if changed:
            self.store.end_sessions_of(username, _now())
        return changed

    def create_token(self, name: str, roles: frozenset[str] | set[str] | list[str],
                     lifetime: timedelta | None = None) -> tuple[int, str]:
        """A new bearer token; the secret is returned once and only its digest is kept."""
        chosen = check_roles(roles)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = _now() + lifetime if lifetime is not None else None
        return self.store.add_token(name, _digest(secret), chosen, expires), secret

    # authentication ----------------------------------------------------------------------------------------
    def from_token(self, secret: str) -> Principal | None:
        token = self.store.token(_digest(secret))
        now = _now()
        if token is None or token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
            return None
        return Principal(f"token:{token.id}", f"token:{token.name}", token.roles, "token")

    def from_session(self, cookie: str) -> Principal | None:
        found = self.store.session_user(_digest(cookie), _now())
        if found is None:
            return None
        user, csrf = found
        return Principal(f"user:{user.id}", user.username, user.roles, "user", csrf)

    def login(self, username: str, password: str, source: str) -> tuple[Principal, str]:
        """Check the password; on success open a session and return it with the cookie value."""
        now = _now()
        user = self.store.user(username)
        locked = user is not None and user.locked_until is not None and user.locked_until > now
        valid = self._verify(user, password) and user is not None and user.active and not locked
        self.store.record_attempt(username, valid, source, now)
        if not valid or user is None:
            if user is not None and not locked and self.store.failures_since(
                    username, now - self.policy.lockout_window) >= self.policy.lockout_failures:
                self.store.update_user(username, locked_until=now + self.policy.lockout_duration)
                locked = True
                self.record(AuditRecord(username[:120], "auth.lockout", username[:255], "", "too many failures",
                                        object_type="user", source=source, outcome="locked"))
            self.record(AuditRecord(username[:120], "auth.login", username[:255], "",
                                    "locked" if locked else "bad credentials", object_type="user", source=source,
                                    outcome="denied"))
            raise LoginFailed(locked)
        if self.hasher.check_needs_rehash(user.password_hash):
            self.store.update_user(username, password_hash=self.hasher.hash(password))
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        self.store.open_session(_digest(cookie), user.id, csrf, now + self.policy.session_lifetime)
        self.record(AuditRecord(user.username, "auth.login", user.username, "", "", object_type="user",
                                source=source))
        return Principal(f"user:{user.id}", user.username, user.roles, "user", csrf), cookie

    def logout(self, cookie: str, principal: Principal, source: str) -> None:
        self.store.end_session(_digest(cookie), _now())
        self.record(AuditRecord(principal.username, "auth.logout", principal.username, "", object_type="user",
                                source=source))

    def _verify(self, user: UserRecord | None, password: str) -> bool:
        try:
            # An unknown user costs the same hash work, so response time does not reveal which names exist.
            return self.hasher.verify(user.password_hash if user else self._dummy_hash, password) and user is not None
        except (VerificationError, InvalidHashError):
            return False

    def record(self, record: AuditRecord) -> None:
        self.audit_log.append(record)


def security_for(app: FastAPI) -> Security:
    """The app's ``Security``, made on first use from ``app.state.hub`` (tests may set ``app.state.security``)."""
    security: Security | None = getattr(app.state, "security", None)
    if security is None:
        security = Security(app.state.hub)
        app.state.security = security
    return security


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def cookie_secure(request: Request, policy: Policy) -> bool:
    if policy.cookie_secure is not None:
        return policy.cookie_secure
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded == "https" or request.url.hostname not in _LOOPBACK


def audit(request: Request, principal: Principal | None, action: str, object_type: str, object_id: str,
          detail: str = "", outcome: str = "ok", session: Session | None = None) -> None:
    """Record a PHI view or an action (sync; call from a sync route or through ``run_in_threadpool``).

    Without ``session`` the record commits on its own connection: call it *before* reading with the request's
    session, because on SQLite an open transaction holds the write lock and the audit insert would wait for it.
    With ``session`` the row is added to that transaction and commits (or rolls back) with the caller's action.
    """
    record = AuditRecord(principal.username if principal else "anonymous", action, object_id[:255], "", detail,
                         object_type=object_type, source=client_address(request), outcome=outcome)
    if session is not None:
        session.add(AuditRow(at=record.at, actor=record.actor, action=record.action, message_id=record.message_id,
                             queue="", detail=record.detail, object_type=record.object_type, source=record.source,
                             outcome=record.outcome))
        return
    security_for(request.app).record(record)


class Refused(HTTPException):
    pass


def _refuse(request: Request, status: int, actor: str, reason: str, page: bool) -> Refused:
    security_for(request.app).record(AuditRecord(
        actor[:120], "access.denied", request.url.path[:255], "", f"{request.method} {reason}",
        object_type="endpoint", source=client_address(request), outcome="denied"))
    log.info("refused %s %s: %s", request.method, request.url.path, reason)
    if status == 401 and page:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Refused(303, "login required", headers={"Location": f"/login?next={quote(target, safe='')}"})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    detail = {401: "authentication required (bearer token or staff session)",
              403: "not permitted for your role" if reason.startswith("role") else "CSRF token missing or wrong"}
    return Refused(status, detail[status], headers=headers)


async def _csrf_ok(request: Request, principal: Principal) -> bool:
    given = request.headers.get(CSRF_HEADER)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given is None and media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return bool(given and principal.csrf_token and hmac.compare_digest(given, principal.csrf_token))


def _authenticate(request: Request) -> tuple[Principal | None, str]:
    """The caller, or None with why; a bearer header wins over a cookie."""
    security = security_for(request.app)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None, "malformed authorization header"
        principal = security.from_token(secret.strip())
        return principal, "" if principal else "unknown, expired or revoked token"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal = security.from_session(cookie)
        return principal, "" if principal else "unknown or expired session"
    return None, "no credentials"


def _dependency(roles: tuple[str, ...], page: bool) -> Callable[[Request], Awaitable[Principal]]:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    async def authorize(request: Request) -> Principal:
        principal, why = await run_in_threadpool(_authenticate, request)
        if principal is None:
            label = "anonymous" if why == "no credentials" else "unauthenticated"
            raise await run_in_threadpool(_refuse, request, 401, label, why, page)
        if roles and not principal.has(*roles):
            raise await run_in_threadpool(_refuse, request, 403, principal.username,
                                          f"role: needs one of {','.join(roles)}", page)
        if principal.kind == "user" and request.method not in SAFE_METHODS and not await _csrf_ok(request, principal):
            raise await run_in_threadpool(_refuse, request, 403, principal.username, "csrf", page)
        request.state.principal = principal
        return principal

    authorize.rcmhub_roles = roles  # type: ignore[attr-defined]  # read by required_roles and the matrix test
    authorize.rcmhub_page = page  # type: ignore[attr-defined]
    return authorize


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting a caller holding any of ``roles`` (none given: any authenticated caller)."""
    return _dependency(roles, page=False)


def require_page(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """As ``require``, but an anonymous browser is redirected (303) to ``/login?next=...``."""
    return _dependency(roles, page=True)


async def optional_principal(request: Request) -> Principal | None:
    """The caller if credentials are valid, else None (never refuses): for the login page and the layout."""
    principal, _ = await run_in_threadpool(_authenticate, request)
    return principal


def required_roles(route: object) -> tuple[tuple[str, ...], bool] | None:
    """The roles a route's ``require``/``require_page`` dependency asks for (and whether it is a page), or None."""
    stack = [getattr(route, "dependant", None)]
    while stack:
        dependant = stack.pop()
        for sub in getattr(dependant, "dependencies", ()):
            roles = getattr(sub.call, "rcmhub_roles", None)
            if roles is not None:
                return roles, bool(getattr(sub.call, "rcmhub_page", False))
            stack.append(sub)
    return None


async def refusal_before_validation(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI parses a body before it runs the dependencies, so a malformed body would earn a caller without
    the route's role a 422 (unaudited) instead of a refusal: authorize first, then report the validation error."""
    found = required_roles(request.scope.get("route"))
    if found is not None:
        try:
            await _dependency(found[0], found[1])(request)
        except Refused as refused:
            return await http_exception_handler(request, refused)
    return await request_validation_exception_handler(request, exc)


# Responses every protected route declares in OpenAPI: ``responses={**AUTH_RESPONSES, ...}``.
AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "no, unknown, expired or revoked credentials (audited)"},
    403: {"description": "the caller's role may not do this, or the CSRF token is missing (audited)"},
}

AnyPrincipal = Annotated[Principal, Depends(require())]
MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]
