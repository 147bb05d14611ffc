"""HL7 v2 from the inbound queue, a batch at a time (intake workers): keep what is not kept yet, decode,
post the whole batch's commands in ONE group commit, mark every stored message, and answer each one with
the ACK an MLLP sender would have had.

Why a batch: posting one DFT^P03 at a time costs ~12 SQL round trips and a commit per message; the
set-based handlers (``router.handlers.BATCH_HANDLERS``) post a batch with a few statements in all. The
messages forwarded by the MLLP listener arrive already stored (``x-rcmhub-stored-id``); what an EMR
publishes straight to the inbound exchange is stored here first, in one transaction for the batch.

A ``TransientError`` (database or broker away) propagates: nothing of the batch was posted or marked,
and the consumer retries every message of it. Permanent errors are per message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.hl7_intake import Hl7Outcome, account_hint, ack_for, control_id_of, rejected, standing, to_store
from mappings.hl7v2 import er7
from mappings.hl7v2.ack import Verdict, read_header
from mappings.hl7v2.inbound import to_commands
from router.adapters.message_store import Mark, MessageStatus, MessageStore
from router.bus import InProcessBus, Outcome
from router.domain.commands import Command
from router.domain.errors import PermanentError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    raw: bytes
    stored_id: int | None = None  # the row the MLLP listener kept it in; None: store it here first
    channel: str = "amqp"
    peer: str = ""
    wants_ack: bool = True  # False: nobody to answer (forwarded by MLLP, which answered already)


@dataclass(frozen=True)
class Received:
    """One message's result: its outcome, the error that rejected it (parked with its reason), its ACK (if
    wanted and MSH-15/16 do not decline it)."""

    outcome: Hl7Outcome
    error: PermanentError | None
    ack: bytes | None


class Hl7Batch:
    def __init__(self, bus: InProcessBus, store: MessageStore) -> None:
        self.bus = bus
        self.store = store

    def receive(self, items: Sequence[Inbound]) -> list[Received]:
        headers = [read_header(item.raw) for item in items]
        ids = [item.stored_id for item in items]
        done: dict[int, tuple[Hl7Outcome, PermanentError | None]] = {}
        fresh = [n for n, item in enumerate(items) if item.stored_id is None]
        kept = self.store.store_many([to_store(items[n].raw, headers[n], items[n].channel, items[n].peer)
                                      for n in fresh])
        for n, stored in zip(fresh, kept, strict=True):
            ids[n] = stored.id
            repeat = standing(stored, headers[n])
            if repeat is not None:  # a resend (nothing to do) or a reused control id (flagged, not posted)
                done[n] = (repeat, None)

        commands: dict[int, list[Command]] = {}
        marks: list[Mark] = []
        for n, item in enumerate(items):
            if n in done:
                continue
            msg = None
            try:
                msg = er7.parse(item.raw)
                commands[n] = to_commands(msg)
            except PermanentError as exc:
                done[n] = (rejected(exc, headers[n], ids[n], msg), exc)
                marks.append(Mark(_id(ids[n]), MessageStatus.REJECTED, exc.reason, exc.location,
                                  account=account_hint(msg)))

        order = sorted(commands)
        results = iter(self.bus.handle_many([c for n in order for c in commands[n]]))
        for n in order:
            mine = [next(results) for _ in commands[n]]
            error = next((r for r in mine if isinstance(r, PermanentError)), None)
            account = next((getattr(c, "account", None) for c in commands[n]), None)
            claim_key = next((getattr(c, "claim_key", None) for c in commands[n] if hasattr(c, "claim_key")), None)
            if error is not None:
                done[n] = (rejected(error, headers[n], ids[n]), error)
                marks.append(Mark(_id(ids[n]), MessageStatus.REJECTED, error.reason, error.location, account))
                continue
            duplicate = all(isinstance(r, Outcome) and r.duplicate for r in mine)
            done[n] = (Hl7Outcome(Verdict.ACCEPTED, control_id_of(headers[n]), duplicate=duplicate,
                                  message_id=ids[n]), None)
            marks.append(Mark(_id(ids[n]), MessageStatus.DUPLICATE if duplicate else MessageStatus.PROCESSED,
                              account=account, claim_key=claim_key))
        # After the postings committed: a failed mark leaves rows 'received' with the raw kept (replayable);
        # the redelivery finds its commands in the inbox and posts nothing twice.
        self.store.mark_each(marks)
        log.info("intake batch: %d HL7 message(s), %d posted, %d rejected", len(items),
                 sum(1 for m in marks if m.status is MessageStatus.PROCESSED),
                 sum(1 for m in marks if m.status is MessageStatus.REJECTED))
        return [Received(outcome, error, ack_for(outcome, headers[n]) if items[n].wants_ack else None)
                for n, (outcome, error) in sorted(done.items())]


def _id(stored_id: int | None) -> int:
    assert stored_id is not None  # every item is stored before it is decoded
    return stored_id
