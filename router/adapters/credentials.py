"""Users, API tokens, staff sessions and login attempts (adapter layer over ``orm_security``).

Stores and reads hashes only; hashing, policy (lockout, expiry) and HTTP live in ``api/security.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from router.adapters.orm_security import ApiTokenRow, LoginAttemptRow, StaffSessionRow, UserRow
from router.domain.errors import DomainViolation, StoreUnavailable


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    roles: frozenset[str]
    active: bool
    locked_until: datetime | None


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    roles: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns; every stored time is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _roles(text: str) -> frozenset[str]:
    return frozenset(r for r in text.split(",") if r)


def _user(row: UserRow) -> UserRecord:
    return UserRecord(row.id, row.username, row.password_hash, _roles(row.roles), row.active,
                      _aware(row.locked_until))


def _token(row: ApiTokenRow) -> TokenRecord:
    return TokenRecord(row.id, row.name, _roles(row.roles), _aware(row.created_at) or row.created_at,
                       _aware(row.expires_at), _aware(row.revoked_at))


class Credentials:
    """One short transaction per call; database failures surface as ``StoreUnavailable``."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # users -------------------------------------------------------------------------------------------------
    def add_user(self, username: str, password_hash: str, roles: frozenset[str]) -> int:
        try:
            with self.sessions.begin() as session:
                row = UserRow(username=username, password_hash=password_hash, roles=",".join(sorted(roles)))
                session.add(row)
                session.flush()
                return row.id
        except IntegrityError as exc:
            raise DomainViolation(f"user {username!r} already exists", location="username") from exc
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"users: {type(exc).__name__}") from exc

    def user(self, username: str) -> UserRecord | None:
        try:
            with self.sessions() as session:
                row = session.scalars(select(UserRow).where(UserRow.username == username)).one_or_none()
                return None if row is None else _user(row)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"users: {type(exc).__name__}") from exc

    def users(self) -> list[UserRecord]:
        with self.sessions() as session:
            return [_user(r) for r in session.scalars(select(UserRow).order_by(UserRow.username))]

    def update_user(self, username: str, *, password_hash: str | None = None, roles: frozenset[str] | None = None,
                    active: bool | None = None, locked_until: datetime | bool | None = False) -> bool:
        """Change what is given (``locked_until=None`` unlocks; ``False`` leaves it); False if no such user."""
        values: dict[str, object] = {}
        if password_hash is not None:
            values["password_hash"] = password_hash
        if roles is not None:
            values["roles"] = ",".join(sorted(roles))
        if active is not None:
            values["active"] = active
        if locked_until is not False:
            values["locked_until"] = locked_until
        try:
            with self.sessions.begin() as session:
                result = session.execute(update(UserRow).where(UserRow.username == username).values(**values))
                return bool(getattr(result, "rowcount", 0))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"users: {type(exc).__name__}") from exc

    # login attempts ----------------------------------------------------------------------------------------
    def record_attempt(self, username: str, success: bool, source: str, at: datetime) -> None:
        try:
            with self.sessions.begin() as session:
                session.add(LoginAttemptRow(username=username[:120], success=success, source=source[:64], at=at))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"login attempts: {type(exc).__name__}") from exc

    def failures_since(self, username: str, since: datetime) -> int:
        """Failed attempts after ``since`` and after the last success."""
        with self.sessions() as session:
            last_ok = session.scalar(select(func.max(LoginAttemptRow.at)).where(
                LoginAttemptRow.username == username, LoginAttemptRow.success.is_(True)))
            last_ok = _aware(last_ok)
            start = max(since, last_ok) if last_ok is not None else since
            return session.scalar(select(func.count()).select_from(LoginAttemptRow).where(
                LoginAttemptRow.username == username, LoginAttemptRow.success.is_(False),
                LoginAttemptRow.at > start)) or 0

    # tokens ------------------------------------------------------------------------------------------------
    def add_token(self, name: str, token_hash: str, roles: frozenset[str], expires_at: datetime | None) -> int:
        try:
            with self.sessions.begin() as session:
                row = ApiTokenRow(name=name, token_hash=token_hash, roles=",".join(sorted(roles)),
                                  expires_at=expires_at)
                session.add(row)
                session.flush()
                return row.id
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"tokens: {type(exc).__name__}") from exc

    def token(self, token_hash: str) -> TokenRecord | None:
        try:
            with self.sessions() as session:
                row = session.scalars(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)).one_or_none()
                return None if row is None else _token(row)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"tokens: {type(exc).__name__}") from exc

    def tokens(self) -> list[TokenRecord]:
        with self.sessions() as session:
            return [_token(r) for r in session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]

    def revoke_token(self, token_id: int, at: datetime) -> bool:
        with self.sessions.begin() as session:
            result = session.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id,
                                                               ApiTokenRow.revoked_at.is_(None)).values(revoked_at=at))
            return bool(getattr(result, "rowcount", 0))

    # staff sessions ----------------------------------------------------------------------------------------
    def open_session(self, session_hash: str, user_id: int, csrf_token: str, expires_at: datetime) -> None:
        try:
            with self.sessions.begin() as session:
                session.add(StaffSessionRow(id=session_hash, user_id=user_id, csrf_token=csrf_token,
                                            expires_at=expires_at))
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"sessions: {type(exc).__name__}") from exc

    def session_user(self, session_hash: str, now: datetime) -> tuple[UserRecord, str] | None:
        """The live session's user and CSRF token; None when unknown, ended, expired, or the user is disabled."""
        try:
            with self.sessions() as session:
                found = session.execute(select(StaffSessionRow, UserRow).join(
                    UserRow, UserRow.id == StaffSessionRow.user_id).where(StaffSessionRow.id == session_hash)).first()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"sessions: {type(exc).__name__}") from exc
        if found is None:
            return None
        staff, user = found
        expires = _aware(staff.expires_at)
        if staff.revoked_at is not None or (expires is not None and expires <= now) or not user.active:
            return None
        return _user(user), staff.csrf_token

    def end_session(self, session_hash: str, at: datetime) -> None:
        with self.sessions.begin() as session:
            session.execute(update(StaffSessionRow).where(StaffSessionRow.id == session_hash,
                                                          StaffSessionRow.revoked_at.is_(None)).values(revoked_at=at))

    def end_sessions_of(self, username: str, at: datetime) -> None:
        """Log a user out everywhere (password change, disable)."""
        with self.sessions.begin() as session:
            user_id = select(UserRow.id).where(UserRow.username == username).scalar_subquery()
            session.execute(update(StaffSessionRow).where(StaffSessionRow.user_id == user_id,
                                                          StaffSessionRow.revoked_at.is_(None)).values(revoked_at=at))
