"""Dead letters for the operations console (connectors), one interface over both buses.

RabbitMQ: the parking queues (``connectors.rabbitmq.parking.DeadLetters``). Embedded: the message store's
messages that did not get through — rejected, dead-lettered, or left ``received`` by a transient failure for
longer than ``stale_after`` — replayed through the same intake, or discarded (the row and its raw bytes stay,
marked, because the store is the record of what arrived).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, defer, sessionmaker

from connectors.intake import Intake
from connectors.rabbitmq.parking import DeadLetters, NotParked, Parked
from router.adapters.message_store import MessageStatus, MessageStore
from router.adapters.orm import MESSAGE_NEWEST_FIRST, MessageRow

STORE_PREFIX = "msg-"
Record = Callable[["DeadLetter"], None]


@dataclass(frozen=True)
class DeadLetter:
    id: str
    queue: str
    origin: str
    type: str
    reason: str
    attempts: int
    at: datetime | None
    size: int
    source: str  # broker or store
    body: bytes | None = None  # filled only by ``find`` for a caller allowed to see it

    def metadata(self) -> dict[str, Any]:
        return {"id": self.id, "queue": self.queue, "origin": self.origin, "type": self.type, "reason": self.reason,
                "attempts": self.attempts, "at": self.at.isoformat() if self.at else None, "size": self.size,
                "source": self.source}


@dataclass(frozen=True)
class ReplayResult:
    letter: DeadLetter
    outcome: str  # "republished" (broker: a worker takes it) or the intake status: accepted, duplicate, rejected
    detail: str = ""


class DeadLetterSource(Protocol):
    def list(self, limit: int) -> list[DeadLetter]: ...
    def find(self, letter_id: str, record: Record | None = None) -> DeadLetter: ...
    def replay(self, letter_id: str, record: Record) -> ReplayResult: ...
    def discard(self, letter_id: str, record: Record) -> DeadLetter: ...


def _from_parked(m: Parked, with_body: bool = False) -> DeadLetter:
    return DeadLetter(m.message_id, m.parking, m.origin, m.type, m.reason, m.attempts, m.timestamp, m.size, "broker",
                      m.body if with_body else None)


class BrokerDeadLetters:
    """The RabbitMQ parking queues; ids are AMQP message ids."""

    def __init__(self, dead: DeadLetters) -> None:
        self.dead = dead

    def list(self, limit: int) -> list[DeadLetter]:
        return [_from_parked(m) for m in self.dead.list(None, limit)]

    def find(self, letter_id: str, record: Record | None = None) -> DeadLetter:
        def on_found(m: Parked) -> None:
            if record is not None:
                record(_from_parked(m))

        return _from_parked(self.dead.find(letter_id, None, on_found), with_body=True)

    def replay(self, letter_id: str, record: Record) -> ReplayResult:
        letter = _from_parked(self.dead.replay(letter_id, lambda m: record(_from_parked(m))))
        return ReplayResult(letter, "republished", f"to {letter.origin}")

    def discard(self, letter_id: str, record: Record) -> DeadLetter:
        return _from_parked(self.dead.discard(letter_id, lambda m: record(_from_parked(m))))


class StoredDeadLetters:
    """Embedded mode: stored messages that failed; ids are ``msg-{message store id}``."""

    def __init__(self, sessions: sessionmaker[Session], intake: Intake,
                 stale_after: timedelta = timedelta(minutes=5)) -> None:
        self.sessions = sessions
        self.intake = intake
        self.store = MessageStore(sessions)
        self.stale_after = stale_after

    def _failed(self) -> Any:
        stale = datetime.now(UTC) - self.stale_after
        return or_(MessageRow.status.in_([MessageStatus.REJECTED.value, MessageStatus.DEAD_LETTERED.value]),
                   and_(MessageRow.status == MessageStatus.RECEIVED.value, MessageRow.received_at < stale))

    @staticmethod
    def _letter(row: MessageRow, body: bytes | None = None) -> DeadLetter:
        at = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=UTC)
        reason = f"{row.error_location}: {row.error}" if row.error_location else (row.error or row.status)
        return DeadLetter(f"{STORE_PREFIX}{row.id}", f"store:{row.status}", row.channel, row.message_type,
                          reason, 1, at, 0, "store", body)

    def list(self, limit: int) -> list[DeadLetter]:
        with self.sessions() as session:
            rows = session.scalars(select(MessageRow).options(defer(MessageRow.raw)).where(self._failed())
                                   .order_by(*MESSAGE_NEWEST_FIRST).limit(limit))
            return [self._letter(r) for r in rows]

    def _row_id(self, letter_id: str) -> int:
        digits = letter_id.removeprefix(STORE_PREFIX)
        if not letter_id.startswith(STORE_PREFIX) or not digits.isdigit():
            raise NotParked(f"no dead letter {letter_id!r} (embedded ids look like {STORE_PREFIX}123)")
        return int(digits)

    def find(self, letter_id: str, record: Record | None = None) -> DeadLetter:
        row_id = self._row_id(letter_id)
        with self.sessions() as session:
            row = session.scalars(select(MessageRow).where(MessageRow.id == row_id, self._failed())).one_or_none()
            if row is None:
                raise NotParked(f"no dead letter {letter_id!r}")
            letter = self._letter(row, row.raw)
        letter = DeadLetter(**{**letter.__dict__, "size": len(letter.body or b"")})
        if record is not None:
            record(letter)
        return letter

    def replay(self, letter_id: str, record: Record) -> ReplayResult:
        """Audit first, then run the kept bytes through the intake again; the old row is marked ``replayed``."""
        letter = self.find(letter_id)
        record(letter)
        assert letter.body is not None
        result = self.intake.receive_hl7(letter.body, channel="replay")
        detail = f"replayed: {result.status.value}" + (f" ({result.location})" if result.location else "")
        self.store.mark(self._row_id(letter_id), MessageStatus.REPLAYED, detail)
        return ReplayResult(DeadLetter(**{**letter.__dict__, "body": None}), result.status.value,
                            result.location or "")

    def discard(self, letter_id: str, record: Record) -> DeadLetter:
        letter = self.find(letter_id)
        record(letter)
        self.store.mark(self._row_id(letter_id), MessageStatus.DISCARDED, "discarded by an operator")
        return DeadLetter(**{**letter.__dict__, "body": None})
