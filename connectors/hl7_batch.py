"""HL7 v2 from the inbound queue, a batch at a time (intake workers): keep what is not kept yet, decode,
post the whole batch's commands in ONE group commit, mark every stored message, and answer each one with
the ACK an MLLP sender would have had.

Why a batch: posting one DFT^P03 at a time costs ~12 SQL round trips and a commit per message; the
set-based handlers (``router.handlers.BATCH_HANDLERS``) post a batch with a few statements in all. The
messages forwarded by the MLLP listener name their stored row (``x-rcmhub-stored-id``, committed about when
the message is published: see ``ROW_WAITS``); what an EMR publishes straight to the inbound exchange is
stored here first, in one transaction for the batch.

A ``TransientError`` (database or broker away) propagates: nothing of the batch was posted or marked,
and the consumer retries every message of it. Permanent errors are per message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.hl7_intake import Hl7Outcome, account_hint, ack_for, control_id_of, rejected, standing, to_store
from mappings.hl7v2 import er7
from mappings.hl7v2.ack import Verdict, read_header
from mappings.hl7v2.inbound import to_commands
from router.adapters.message_store import Mark, MessageStatus, MessageStore, StoredMessage
from router.bus import InProcessBus, Outcome
from router.domain.commands import Command
from router.domain.errors import PermanentError

log = logging.getLogger(__name__)

# The MLLP forwarder publishes a message while it stores it, so a worker may receive it a few ms before its
# row (``stored_id``) is committed: it waits for the row, up to ~4 s in all. A row still missing then was never
# stored (the store failed after the publish, and the sender was told to send again): the message is kept
# and processed here, so nothing published is lost; the sender's resend then finds it, a duplicate.
ROW_WAITS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


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

    def keep(self, items: Sequence[Inbound]) -> list[int]:
        """Store ``items`` (none stored yet) in one transaction; their row ids, in order. The intake worker
        keeps them before ``receive`` and remembers the ids, so a retry after a transient error (a database
        blip while posting) does not store them again: a second row would stay 'received' for good."""
        return [row.id for row in self._kept(items)]

    def _kept(self, items: Sequence[Inbound]) -> list[StoredMessage]:
        return self.store.store_many([to_store(item.raw, read_header(item.raw), item.channel, item.peer)
                                      for item in items])

    def receive(self, items: Sequence[Inbound]) -> list[Received]:
        headers = [read_header(item.raw) for item in items]
        ids = [item.stored_id for item in items]
        done: dict[int, tuple[Hl7Outcome, PermanentError | None]] = {}
        rows = self._forwarded_rows([i for i in ids if i is not None])
        lost = [n for n, stored_id in enumerate(ids) if stored_id is None or stored_id not in rows]
        # Not stored yet, or named by the listener whose store then failed (it answered AE): kept here.
        for n, row in zip(lost, self._kept([items[n] for n in lost]), strict=True):
            ids[n], rows[row.id] = row.id, row
        for n, stored_id in enumerate(ids):
            if (settled := _settled(rows[_id(stored_id)], headers[n])) is not None:
                done[n] = (settled, None)  # a resend, a reused control id (flagged, not posted), or done

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

    def _forwarded_rows(self, ids: list[int]) -> dict[int, StoredMessage]:
        """The stored rows of ``ids`` (named by the MLLP listener, or kept by this worker beforehand), waiting
        (``ROW_WAITS``) for those not committed yet."""
        found = self.store.get_many(ids)
        for delay in ROW_WAITS:
            if len(found) == len(set(ids)):
                return found
            time.sleep(delay)
            found |= self.store.get_many([i for i in ids if i not in found])
        if len(found) < len(set(ids)):
            log.warning("intake batch: %d forwarded message(s) have no stored row after %.1f s; kept here",
                        len(set(ids)) - len(found), sum(ROW_WAITS))
        return found


def _settled(row: StoredMessage, header: er7.Segment | None) -> Hl7Outcome | None:
    """Nothing to do for a forwarded message whose row is settled: the listener stored it as a resend or a
    reused control id (its copy was published before the store judged it), or it was processed already (a
    redelivery). Any other row is processed, as before."""
    if row.status is MessageStatus.PROCESSED:
        return Hl7Outcome(Verdict.ACCEPTED, control_id_of(header), duplicate=True, message_id=row.id)
    return standing(row, header)


def _id(stored_id: int | None) -> int:
    assert stored_id is not None  # every item is stored before it is decoded
    return stored_id
