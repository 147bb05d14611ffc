"""Unit of work: one database transaction around a command; it rolls back unless committed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

from sqlalchemy import text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from router.adapters.payments import PaymentRepository
from router.adapters.remittances import RemittanceRepository
from router.adapters.repository import (
    AccountRepository,
    ClaimRepository,
    InboxRepository,
    LedgerRepository,
    OutboxRepository,
)
from router.domain.errors import ConcurrencyConflict, DomainViolation, StoreUnavailable


class UnitOfWork:
    accounts: AccountRepository
    claims: ClaimRepository
    ledger: LedgerRepository
    inbox: InboxRepository
    outbox: OutboxRepository
    remittances: RemittanceRepository
    payments: PaymentRepository

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self.committed = False

    def __enter__(self) -> Self:
        self.committed = False
        self.session = self.session_factory()
        self.accounts = AccountRepository(self.session)
        self.claims = ClaimRepository(self.session, self.accounts)
        self.ledger = LedgerRepository(self.session, self.accounts, self.claims)
        self.inbox = InboxRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        self.remittances = RemittanceRepository(self.session, self.accounts, self.claims)
        self.payments = PaymentRepository(self.session, self.accounts)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if not self.committed:
                self.session.rollback()
        finally:
            self.session.close()
        if isinstance(exc, DBAPIError):
            raise translate(exc) from exc

    def lock_accounts(self, numbers: Iterable[str]) -> None:
        """Serialize work on these accounts until commit/rollback (PostgreSQL advisory locks, sorted).

        Advisory locks work before the account row exists; SQLite needs none (``BEGIN IMMEDIATE``
        already admits one writer at a time).
        """
        if self.session.get_bind().dialect.name != "postgresql":
            return
        keys = [int.from_bytes(hashlib.sha256(f"account:{n}".encode()).digest()[:8], "big", signed=True)
                for n in sorted(set(numbers))]
        if not keys:
            return
        try:  # one round trip for the batch; unnest keeps the array's (sorted) order
            self.session.execute(text("SELECT count(pg_advisory_xact_lock(k)) "
                                      "FROM unnest(CAST(:keys AS bigint[])) AS k"), {"keys": keys})
        except DBAPIError as exc:
            raise translate(exc) from exc

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A SAVEPOINT inside the transaction: an exception rolls back only what ran inside it.

        The repositories' id caches are dropped on that rollback: they may name rows that no longer exist.
        """
        try:
            with self.session.begin_nested():
                yield
        except BaseException as exc:
            self.accounts.forget()
            self.claims.forget()
            if isinstance(exc, DataError):  # this command's values: only its savepoint fails (see translate)
                raise translate(exc) from exc
            raise

    def commit(self) -> None:
        try:
            self.session.commit()
        except DBAPIError as exc:
            raise translate(exc) from exc
        self.committed = True


def translate(exc: DBAPIError) -> Exception:
    """Map a database error to the hub's tree: lost connections are transient, races are conflicts."""
    if isinstance(exc, IntegrityError):
        return ConcurrencyConflict(f"a concurrent transaction wrote the same key: {exc.orig}")
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return StoreUnavailable(f"database unavailable: {type(exc.orig).__name__}")
    if isinstance(exc, DataError):  # the command's own values cannot be stored (too long, out of range)
        return DomainViolation(f"a value cannot be stored: {type(exc.orig).__name__}")
    return exc
