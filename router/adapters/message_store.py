"""The message store (adapter layer): every inbound message kept raw over ``MessageRow``, committed in its
own short transaction before any processing, then marked with what became of it.

Resends: the same sender + control id (MSH-4 + MSH-10) with the same digest as a processed message is a
resend (answered again, not processed); with a different digest it is a conflict. A message rejected
earlier may be corrected and sent again under its control id, so only processed or in-flight messages
count. The raw bytes carry PHI: they are never logged, and ``search`` does not return them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, defer, sessionmaker

from router.adapters.orm import MessageRow, utcnow
from router.unit_of_work import translate


class MessageStatus(StrEnum):
    RECEIVED = "received"  # stored; not (yet) processed, e.g. a transient failure left it for replay
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


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class MessageStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def store(self, raw: bytes, channel: str, peer: str, format: str, message_type: str = "", sender: str = "",
              control_id: str = "", *, digest: str | None = None) -> StoredMessage:
        """Keep ``raw`` durably (committed on return) and tell whether it repeats an earlier message.

        ``digest`` defaults to SHA-256 of ``raw``; a channel may pass one over a canonical form (HL7 with
        its segment endings normalised) so the same message by file and by MLLP is recognised.
        """
        digest = digest or digest_of(raw)
        try:
            with self.sessions() as session, session.begin():
                status, earlier = MessageStatus.RECEIVED, None
                if control_id:
                    status, earlier = self._compare(session, sender, control_id, digest)
                row = MessageRow(channel=channel[:16], peer=peer[:200], format=format[:16],
                                 message_type=message_type[:32], sender=sender[:200], control_id=control_id[:200],
                                 digest=digest, status=status.value, raw=raw, received_at=utcnow())
                if status is MessageStatus.CONFLICT:
                    row.error = "message control id already used for a message with different content"
                    row.error_location = "MSH-10"
                session.add(row)
                session.flush()
                return _view(row, earlier)
        except DBAPIError as exc:
            raise translate(exc) from exc

    def _compare(self, session: Session, sender: str, control_id: str,
                 digest: str) -> tuple[MessageStatus, int | None]:
        rows = session.execute(
            select(MessageRow.id, MessageRow.digest, MessageRow.status)
            .where(MessageRow.sender == sender[:200], MessageRow.control_id == control_id[:200],
                   MessageRow.status.in_([MessageStatus.PROCESSED.value, MessageStatus.RECEIVED.value]))
            .order_by(MessageRow.id)).all()
        for row_id, row_digest, row_status in rows:
            if row_digest == digest and row_status == MessageStatus.PROCESSED.value:
                return MessageStatus.DUPLICATE, row_id
        for row_id, row_digest, _ in rows:
            if row_digest != digest:
                return MessageStatus.CONFLICT, row_id
        return MessageStatus.RECEIVED, None

    def mark(self, message_id: int, status: MessageStatus, error: str | None = None, location: str | None = None,
             account: str | None = None, claim_key: str | None = None) -> None:
        values: dict[str, object] = {"status": status.value, "error": error, "error_location": (location or None)
                                     and location[:120], "processed_at": utcnow()}
        if account is not None:
            values["account"] = account[:64]
        if claim_key is not None:
            values["claim_key"] = claim_key[:64]
        try:
            with self.sessions() as session, session.begin():
                session.execute(update(MessageRow).where(MessageRow.id == message_id).values(**values))
        except DBAPIError as exc:
            raise translate(exc) from exc

    def get(self, message_id: int) -> StoredMessage | None:
        with self.sessions() as session:
            row = session.get(MessageRow, message_id, options=[defer(MessageRow.raw)])
            return _view(row) if row is not None else None

    def raw(self, message_id: int) -> bytes | None:
        """The bytes as received (PHI: for replay and authorised viewing only)."""
        with self.sessions() as session:
            return session.scalar(select(MessageRow.raw).where(MessageRow.id == message_id))

    def search(self, *, control_id: str | None = None, account: str | None = None, claim_key: str | None = None,
               sender: str | None = None, status: MessageStatus | None = None,
               limit: int = 100) -> list[StoredMessage]:
        """Newest first; every given criterion must match."""
        query = select(MessageRow).options(defer(MessageRow.raw)).order_by(MessageRow.id.desc()).limit(limit)
        for column, value in ((MessageRow.control_id, control_id), (MessageRow.account, account),
                              (MessageRow.claim_key, claim_key), (MessageRow.sender, sender),
                              (MessageRow.status, status.value if status else None)):
            if value is not None:
                query = query.where(column == value)
        with self.sessions() as session:
            return [_view(row) for row in session.scalars(query)]


def _view(row: MessageRow, earlier: int | None = None) -> StoredMessage:
    return StoredMessage(
        id=row.id, received_at=row.received_at, channel=row.channel, peer=row.peer, format=row.format,
        message_type=row.message_type, sender=row.sender, control_id=row.control_id, digest=row.digest,
        status=MessageStatus(row.status), error=row.error, error_location=row.error_location, account=row.account,
        claim_key=row.claim_key, earlier_id=earlier)
