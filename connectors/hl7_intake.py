"""HL7 v2 intake (connectors layer): store raw (MSH-4/9/10 read from MSH alone), then decode and dispatch,
then mark the stored message; for MLLP, turn the outcome into the ACK (``mappings.hl7v2.ack``).

The order is the guarantee: nothing is processed, and no AA/CA is sent, before the raw bytes are committed.
Errors map to ACK codes once: DecodeError/UnsupportedMessage -> AR (CR), MappingError/DomainViolation and a
reused control id -> AE, TransientError -> AE with "send again" text (CE); the message stays stored.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from mappings.hl7v2 import er7
from mappings.hl7v2.ack import AckError, Verdict, ack_code, build_ack, error_of, read_header, should_send, verdict_of
from mappings.hl7v2.inbound import to_commands
from router.adapters.message_store import MessageStatus, MessageStore, NewMessage, StoredMessage, digest_of
from router.bus import MessageBus
from router.domain.errors import HubError, PermanentError, StoreUnavailable, TransientError

log = logging.getLogger(__name__)

_CONFLICT = "message control id already used for a message with different content"


@dataclass(frozen=True)
class Hl7Outcome:
    verdict: Verdict
    control_id: str = ""
    duplicate: bool = False
    error: AckError | None = None
    reason: str | None = None
    location: str | None = None
    message_id: int | None = None

    @property
    def status(self) -> str:
        """The intake's per-message status: accepted, duplicate or rejected."""
        if self.verdict is not Verdict.ACCEPTED:
            return "rejected"
        return "duplicate" if self.duplicate else "accepted"


class Hl7Intake:
    def __init__(self, bus: MessageBus, store: MessageStore | None = None) -> None:
        self.bus = bus
        self.store = store

    def receive(self, raw: bytes | str, channel: str = "file", peer: str = "") -> Hl7Outcome:
        """Store, decode, dispatch and mark one message. ``TransientError`` propagates (the caller retries
        or answers AE); every permanent error becomes a rejected outcome with its reason and location."""
        msh = read_header(raw)
        data = raw if isinstance(raw, bytes) else raw.encode(er7.codec_of(msh) if msh else "utf-8", "replace")
        return self._receive(data, msh, channel, peer)

    def receive_mllp(self, payload: bytes, peer: str) -> bytes | None:
        """The ACK bytes (unframed) for one MLLP payload, or None when MSH-15 asks for none."""
        msh = read_header(payload)
        try:
            outcome = self._receive(payload, msh, "mllp", peer)
            verdict, error = outcome.verdict, outcome.error
        except TransientError as exc:
            verdict, error = Verdict.RETRY, error_of(exc)
        except Exception as exc:  # a bug must not cost the peer its answer; the message is kept if stored
            # No traceback: exception texts (SQL parameters, field values) can carry PHI.
            log.error("HL7 intake failed unexpectedly (%s) on a %d-byte message from %s", type(exc).__name__,
                      len(payload), peer)
            verdict = Verdict.RETRY
            error = error_of(StoreUnavailable(f"internal error ({type(exc).__name__})"))
        return ack_for(Hl7Outcome(verdict, error=error), msh)

    def _receive(self, data: bytes, msh: er7.Segment | None, channel: str, peer: str) -> Hl7Outcome:
        stored = self._store(data, msh, channel, peer)
        repeat = standing(stored, msh) if stored is not None else None
        if repeat is not None:
            return repeat
        msg: er7.Message | None = None
        try:
            msg = er7.parse(data)
            duplicate, account, claim_key = False, None, None
            for command in to_commands(msg):
                duplicate = self.bus.handle(command).duplicate
                account = getattr(command, "account", account)
                claim_key = getattr(command, "claim_key", claim_key)
        except PermanentError as exc:
            self._mark(stored, MessageStatus.REJECTED, exc, account=account_hint(msg))
            return rejected(exc, msh, stored.id if stored else None, msg)
        except TransientError as exc:
            self._mark(stored, MessageStatus.RECEIVED, exc)  # left for replay
            raise
        status = MessageStatus.DUPLICATE if duplicate else MessageStatus.PROCESSED
        self._mark(stored, status, account=account, claim_key=claim_key)
        return Hl7Outcome(Verdict.ACCEPTED, control_id_of(msh), duplicate=duplicate,
                          message_id=stored.id if stored else None)

    def _store(self, data: bytes, msh: er7.Segment | None, channel: str, peer: str) -> StoredMessage | None:
        if self.store is None:
            return None
        [stored] = self.store.store_many([to_store(data, msh, channel, peer)])
        log.info("stored HL7 message %d (%s, %d bytes) from %s: %s", stored.id, stored.message_type or "?",
                 len(data), channel, stored.status.value)
        return stored

    def _mark(self, stored: StoredMessage | None, status: MessageStatus, exc: HubError | None = None,
              account: str | None = None, claim_key: str | None = None) -> None:
        if self.store is None or stored is None:
            return
        # A failed mark leaves the row 'received' with the raw kept: replayable, never lost.
        with contextlib.suppress(TransientError):
            self.store.mark(stored.id, status, exc.reason if exc else None, exc.location if exc else None,
                            account, claim_key)


def to_store(data: bytes, msh: er7.Segment | None, channel: str, peer: str,
             error: HubError | None = None) -> NewMessage:
    """What the message store keeps of one HL7 v2 message: sender (MSH-4, else MSH-3), type (MSH-9) and
    control id (MSH-10) read from MSH alone, and the digest of its canonical form, so the same message sent
    by file and by MLLP is recognised. With ``error`` it is kept rejected for that reason."""
    sender = (msh.get(4) or msh.get(3)) if msh is not None else ""
    message_type = f"{msh.get(9, 1)}^{msh.get(9, 2)}".strip("^") if msh is not None else ""
    return NewMessage(data, channel, peer, "hl7v2", message_type, sender, msh.get(10) if msh is not None else "",
                      digest=digest_of(er7.canonical(data)), error=error.reason if error else None,
                      error_location=error.location if error else None)


def standing(stored: StoredMessage, msh: er7.Segment | None) -> Hl7Outcome | None:
    """The answer for a message the store recognised (a resend: accepted again, not processed; a reused
    control id: flagged), or None for one to process."""
    control_id = control_id_of(msh)
    if stored.is_resend:
        return Hl7Outcome(Verdict.ACCEPTED, control_id, duplicate=True, message_id=stored.id)
    if stored.is_conflict:
        log.warning("HL7 message %d flagged: control id reused with different content", stored.id)
        return Hl7Outcome(Verdict.CONFLICT, control_id, error=AckError(f"MSH-10: {_CONFLICT}", 205, "MSH", 1, 10),
                          reason=_CONFLICT, location="MSH-10", message_id=stored.id)
    return None


def rejected(exc: PermanentError, msh: er7.Segment | None, message_id: int | None,
             msg: er7.Message | None = None) -> Hl7Outcome:
    """The outcome of a message refused for ``exc`` (``msg``, when parsed, places the ERR location)."""
    return Hl7Outcome(verdict_of(exc), control_id_of(msh), error=error_of(exc, msg), reason=exc.reason,
                      location=exc.location, message_id=message_id)


def control_id_of(msh: er7.Segment | None) -> str:
    return msh.get(10) if msh is not None else ""


def ack_for(outcome: Hl7Outcome, msh: er7.Segment | None, *, control_id: str | None = None) -> bytes | None:
    """The ACK (unframed) answering ``outcome``, or None when MSH-15/16 ask for none; ``control_id`` is the
    ACK's own MSH-10 (default: a fresh one)."""
    code = ack_code(outcome.verdict, msh)
    return build_ack(msh, code, outcome.error, control_id=control_id) if should_send(code, msh) else None


def account_hint(msg: er7.Message | None) -> str | None:
    """PID-18 of a rejected message, so IT can still find it by account."""
    pid = msg.first("PID") if msg is not None else None
    return (pid.get(18).strip() or None) if pid is not None else None
