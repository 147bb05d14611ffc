"""The message store (adapter layer): every inbound message kept raw over ``MessageRow``, committed in its
own short transaction before any processing, then marked with what became of it.

Resends: the same sender + control id (MSH-4 + MSH-10) with the same digest as a processed message is a
resend (answered again, not processed); with a different digest it is a conflict. A message rejected
earlier may be corrected and sent again under its control id, so only processed or in-flight (received)
messages count. ``store_many`` keeps a batch in one transaction with one multi-row INSERT (the MLLP
store-and-forward path, ``connectors/hl7_forwarder.py``). The raw bytes carry PHI: they are never logged,
and ``search`` does not return them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NotRequired, TypedDict, cast, overload

from sqlalchemy import Connection, Table, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, defer, sessionmaker

from router.adapters.bulk import one_of, update_rows
from router.adapters.orm import MESSAGE_ARRIVAL, MESSAGE_NEWEST_FIRST, MessageRow, utcnow
from router.unit_of_work import translate


class MessageStatus(StrEnum):
    # Stored, not (yet) processed: waiting on the intake queue (MLLP store-and-forward) or left for replay by a
    # transient failure (then ``error`` says which). A resend of it is processed again, never waved through.
    RECEIVED = "received"
    PROCESSED = "processed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"  # a resend of a processed message; nothing done
    CONFLICT = "conflict"  # control id reused with different content; nothing done
    DEAD_LETTERED = "dead-lettered"
    REPLAYED = "replayed"  # an operator sent the kept bytes through intake again (a new row records that run)
    DISCARDED = "discarded"  # an operator gave up on it; the raw bytes stay as the record of what arrived


@dataclass(frozen=True)
class StoredMessage:
    id: int
    received_at: datetime
    channel: str
    peer: str
    format: str
    message_type: str
    sender: str
    control_id: str
    digest: str
    status: MessageStatus
    error: str | None = None
    error_location: str | None = None
    account: str | None = None
    claim_key: str | None = None
    earlier_id: int | None = None  # the processed message this one repeats or conflicts with

    @property
    def is_resend(self) -> bool:
        return self.status is MessageStatus.DUPLICATE

    @property
    def is_conflict(self) -> bool:
        return self.status is MessageStatus.CONFLICT


@dataclass(frozen=True)
class NewMessage:
    """One message to keep, as ``store_many`` takes it.

    ``digest`` defaults to SHA-256 of ``raw``; a channel may pass one over a canonical form (HL7 with its
    segment endings normalised) so the same message by file and by MLLP is recognised. With ``error`` set
    the message is already known to be unacceptable (an unreadable MSH, an MSH-9 the hub does not map): it
    is kept ``rejected`` with that reason, and being rejected it claims no control id.
    """

    raw: bytes
    channel: str
    peer: str
    format: str
    message_type: str = ""
    sender: str = ""
    control_id: str = ""
    digest: str | None = None
    error: str | None = None
    error_location: str | None = None


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


_CONFLICT = "message control id already used for a message with different content"
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}
_COUNTED = (MessageStatus.PROCESSED.value, MessageStatus.RECEIVED.value)  # what a later message is compared with


class _Row(TypedDict):
    """A ``messages`` row as ``store_many`` inserts it (Core, no ORM object per message)."""

    id: NotRequired[int]  # a reserved id (``reserve_ids``); else the sequence gives one

    channel: str
    peer: str
    format: str
    message_type: str
    sender: str
    control_id: str
    digest: str
    status: str
    raw: bytes
    received_at: datetime
    error: str | None
    error_location: str | None


@dataclass
class _Seen:
    """An earlier message under one sender + control id: a stored row, or an item earlier in the same batch."""

    digest: str
    status: str
    row_id: int | None = None
    index: int = -1  # position in the batch while its row id is not known yet


@dataclass(frozen=True)
class Mark:
    """What became of one stored message (``mark_each``)."""

    message_id: int
    status: MessageStatus
    error: str | None = None
    location: str | None = None
    account: str | None = None
    claim_key: str | None = None


class MessageStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def store(self, raw: bytes, channel: str, peer: str, format: str, message_type: str = "", sender: str = "",
              control_id: str = "", *, digest: str | None = None) -> StoredMessage:
        """Keep ``raw`` durably (committed on return) and tell whether it repeats an earlier message."""
        return self.store_many([NewMessage(raw, channel, peer, format, message_type, sender, control_id,
                                           digest)])[0]

    def reserve_ids(self, count: int) -> list[int] | None:
        """``count`` row ids taken from the ``messages`` id sequence, so that a caller can name rows before they
        are committed (``store_many(row_ids=)``: the MLLP forwarder publishes while it stores); None where the
        database has no sequence (SQLite). Ids never used leave gaps, as a rolled-back INSERT does."""
        try:
            with self.sessions() as session:
                if session.get_bind().dialect.name != "postgresql":
                    return None
                return list(session.scalars(
                    text("SELECT nextval(pg_get_serial_sequence('messages', 'id')) FROM generate_series(1, :n)"),
                    {"n": count}))
        except DBAPIError as exc:
            raise translate(exc) from exc

    def store_many(self, items: Sequence[NewMessage], row_ids: Sequence[int] | None = None) -> list[StoredMessage]:
        """Keep every item durably, committed together on return, and tell each one's standing, in order.

        Each item is judged as ``store`` would judge it alone, had the items arrived one after the other: an
        item repeats or conflicts with a stored message or with an earlier item of the same batch. One SELECT
        finds the earlier messages of every sender + control id in the batch; one multi-row INSERT keeps them
        all, RETURNING the ids in the items' order (on PostgreSQL; SQLite does not promise that order, so
        SQLAlchemy inserts row by row there, in one transaction).

        On PostgreSQL that INSERT runs in autocommit: one statement is one transaction, and it saves the
        BEGIN and COMMIT round trips (~0.5 ms each on the 2-core test box, where the whole store is ~2 ms);
        under READ COMMITTED the SELECT before it sees what it would have seen inside a transaction.
        """
        if not items:
            return []
        now = utcnow()
        try:
            with self.sessions() as session, session.begin():
                dialect = session.get_bind().dialect
                one_statement = dialect.name == "postgresql" and len(items) <= dialect.insertmanyvalues_page_size
                conn = session.connection(execution_options=_AUTOCOMMIT if one_statement else None)
                seen = self._earlier(session, conn, items)
                rows: list[_Row] = []
                earlier: list[_Seen | None] = []
                for index, item in enumerate(items):
                    sender, control_id = _fit(item.sender, 200), _fit(item.control_id, 200)
                    digest = item.digest or digest_of(item.raw)
                    status, repeated, error, location = MessageStatus.RECEIVED, None, item.error, item.error_location
                    if error is not None:
                        status = MessageStatus.REJECTED
                    elif control_id:
                        before = seen.setdefault((sender, control_id), [])
                        status, repeated = _compare(before, digest)
                        if status is MessageStatus.CONFLICT:
                            error, location = _CONFLICT, "MSH-10"
                        elif status is MessageStatus.RECEIVED:  # counts for the items after it
                            before.append(_Seen(digest, status.value, index=index))
                    rows.append(_Row(channel=_fit(item.channel, 16), peer=_fit(item.peer, 200),
                                     format=_fit(item.format, 16), message_type=_fit(item.message_type, 32),
                                     sender=sender, control_id=control_id, digest=digest, status=status.value,
                                     raw=item.raw, received_at=now, error=_fit(error),
                                     error_location=_fit(location or None, 120)))
                    if row_ids is not None:
                        rows[-1]["id"] = row_ids[index]
                    earlier.append(repeated)
                ids = list(conn.execute(insert(MessageRow).returning(MessageRow.id, sort_by_parameter_order=True),
                                        rows).scalars())
        except DBAPIError as exc:
            raise translate(exc) from exc
        return [StoredMessage(row_id, now, r["channel"], r["peer"], r["format"], r["message_type"], r["sender"],
                              r["control_id"], r["digest"], MessageStatus(r["status"]), r["error"],
                              r["error_location"], earlier_id=None if e is None else
                              e.row_id if e.row_id is not None else ids[e.index])
                for row_id, r, e in zip(ids, rows, earlier, strict=True)]

    @staticmethod
    def _earlier(session: Session, conn: Connection, items: Sequence[NewMessage]
                 ) -> dict[tuple[str, str], list[_Seen]]:
        """The counted earlier messages of each sender + control id in ``items``, oldest first."""
        keys = {(_fit(i.sender, 200), _fit(i.control_id, 200)) for i in items if i.control_id and i.error is None}
        seen: dict[tuple[str, str], list[_Seen]] = {}
        if not keys:
            return seen
        # By control id alone (its own index; PostgreSQL plans a row-value IN list poorly), then by pair.
        found = conn.execute(
            select(MessageRow.id, MessageRow.sender, MessageRow.control_id, MessageRow.digest, MessageRow.status)
            .where(one_of(session, MessageRow.control_id, {control for _, control in keys}),
                   MessageRow.status.in_(_COUNTED))
            .order_by(*MESSAGE_ARRIVAL))
        for row_id, sender, control_id, digest, status in found:
            if (sender, control_id) in keys:
                seen.setdefault((sender, control_id), []).append(_Seen(digest, status, row_id))
        return seen

    def mark(self, message_id: int, status: MessageStatus, error: str | None = None, location: str | None = None,
             account: str | None = None, claim_key: str | None = None) -> None:
        self.mark_many([message_id], status, error, location, account=account, claim_key=claim_key)

    def mark_many(self, ids: Sequence[int], status: MessageStatus, error: str | None = None,
                  location: str | None = None, *, account: str | None = None, claim_key: str | None = None,
                  only_if: MessageStatus | None = None) -> None:
        """Set what became of the messages ``ids`` (committed on return), all alike, in one UPDATE.

        ``error``/``location`` say why (None clears them); ``account``/``claim_key`` are set when given (for
        values that differ per message, mark per message). ``processed_at`` becomes now. With ``only_if``,
        only rows still in that status change: another process (an intake worker) may have moved one on.
        """
        if not ids:
            return
        values: dict[str, object] = {"status": status.value, "error": _fit(error),
                                     "error_location": _fit(location or None, 120), "processed_at": utcnow()}
        if account is not None:
            values["account"] = _fit(account, 64)
        if claim_key is not None:
            values["claim_key"] = _fit(claim_key, 64)
        query = update(MessageRow).where(MessageRow.id.in_(list(ids))).values(**values)
        if only_if is not None:
            query = query.where(MessageRow.status == only_if.value)
        try:
            with self.sessions() as session, session.begin():
                session.execute(query)
        except DBAPIError as exc:
            raise translate(exc) from exc

    def mark_each(self, marks: Sequence[Mark]) -> None:
        """Set what became of each message, with its own account and claim key, in one executemany UPDATE
        (SQLAlchemy's bulk UPDATE by primary key), committed on return."""
        if not marks:
            return
        now = utcnow()
        rows = [{"id": m.message_id, "status": m.status.value, "error": _fit(m.error),
                 "error_location": _fit(m.location or None, 120), "processed_at": now,
                 "account": _fit(m.account, 64), "claim_key": _fit(m.claim_key, 64)}
                for m in marks]
        try:
            with self.sessions() as session, session.begin():
                update_rows(session, cast(Table, MessageRow.__table__), rows)
        except DBAPIError as exc:
            raise translate(exc) from exc

    def get(self, message_id: int) -> StoredMessage | None:
        return self.get_many([message_id]).get(message_id)

    def get_many(self, ids: Sequence[int]) -> dict[int, StoredMessage]:
        """The stored messages of ``ids`` that exist (committed), by id, without their raw bytes."""
        if not ids:
            return {}
        try:
            with self.sessions() as session:
                rows = session.scalars(select(MessageRow).options(defer(MessageRow.raw))
                                       .where(one_of(session, MessageRow.id, ids)))
                return {row.id: _view(row) for row in rows}
        except DBAPIError as exc:
            raise translate(exc) from exc

    def raw(self, message_id: int) -> bytes | None:
        """The bytes as received (PHI: for replay and authorised viewing only)."""
        with self.sessions() as session:
            return session.scalar(select(MessageRow.raw).where(MessageRow.id == message_id))

    def search(self, *, control_id: str | None = None, account: str | None = None, claim_key: str | None = None,
               sender: str | None = None, status: MessageStatus | None = None,
               limit: int = 100) -> list[StoredMessage]:
        """Newest first; every given criterion must match."""
        query = select(MessageRow).options(defer(MessageRow.raw)).order_by(*MESSAGE_NEWEST_FIRST).limit(limit)
        for column, value in ((MessageRow.control_id, control_id), (MessageRow.account, account),
                              (MessageRow.claim_key, claim_key), (MessageRow.sender, sender),
                              (MessageRow.status, status.value if status else None)):
            if value is not None:
                query = query.where(column == value)
        with self.sessions() as session:
            return [_view(row) for row in session.scalars(query)]


@overload
def _fit(value: str, size: int | None = None) -> str: ...
@overload
def _fit(value: None, size: int | None = None) -> None: ...
def _fit(value: str | None, size: int | None = None) -> str | None:
    """A text column's value as it can be kept: cut to the column's size, NUL replaced (PostgreSQL text
    cannot hold it; hostile input carries it in MSH-10, PID-18 or an error's quoted field). The raw bytes are
    kept as they came."""
    return value if value is None else value.replace("\x00", "\ufffd")[:size]


def _compare(seen: list[_Seen], digest: str) -> tuple[MessageStatus, _Seen | None]:
    """A resend of a processed message; else a conflict with the first earlier one of other content."""
    for earlier in seen:
        if earlier.digest == digest and earlier.status == MessageStatus.PROCESSED.value:
            return MessageStatus.DUPLICATE, earlier
    for earlier in seen:
        if earlier.digest != digest:
            return MessageStatus.CONFLICT, earlier
    return MessageStatus.RECEIVED, None


def _view(row: MessageRow, earlier: int | None = None) -> StoredMessage:
    return StoredMessage(
        id=row.id, received_at=row.received_at, channel=row.channel, peer=row.peer, format=row.format,
        message_type=row.message_type, sender=row.sender, control_id=row.control_id, digest=row.digest,
        status=MessageStatus(row.status), error=row.error, error_location=row.error_location, account=row.account,
        claim_key=row.claim_key, earlier_id=earlier)
