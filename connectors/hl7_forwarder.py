"""The MLLP ACK path in RabbitMQ mode (connectors): store and forward, answering from MSH alone.

Per frame only MSH is read: an unreadable MSH or an MSH-9 the hub does not map is kept ``rejected`` and
answered AR. Frames then wait for one batcher, which takes whatever is pending (up to ``max_batch``) as soon
as the store is free and fewer than ``in_flight`` batches are out: no timer, so a lone frame leaves at once
and a burst makes bigger batches; one batch is stored while the one before it is confirmed (two stores at
once only slowed each other down: they share the two cores). A batch is stored in one transaction
(``store_many``, on a thread: SQLAlchemy blocks), each new accepted message is published raw to the intake
queue (``raw_properties``: type MSH-9, message id the digest, headers MSH-10, attempt 0 and ``STORED_ID``),
and each frame is answered only after its commit and its broker confirm: AA, or CA in enhanced mode.

Statuses: a forwarded message stays ``received`` (stored, not processed) until the intake worker marks it
processed or rejected by its ``STORED_ID``; a resend meanwhile is forwarded again (the router's inbox makes
the second copy a no-op), so nothing ACKed is lost. A resend of a processed message is answered AA and not
published; a control id reused with other content AE (ERR at MSH-10); when the database or the broker is
unavailable AE/CE "send again", and the row stays ``received`` with the reason, kept for replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from dataclasses import dataclass

from connectors.hl7_intake import Hl7Outcome, ack_for, rejected, standing, to_store
from connectors.metrics import ACK_LATENCY
from connectors.rabbitmq.async_publisher import AsyncPublisher, Publication
from connectors.rabbitmq.publisher import raw_properties
from connectors.rabbitmq.topology import Topology
from mappings.hl7v2 import er7
from mappings.hl7v2.ack import AckError, Verdict, error_of, read_header
from mappings.hl7v2.inbound import require_supported
from router.adapters.message_store import MessageStatus, MessageStore, StoredMessage
from router.domain.errors import (
    BrokerUnavailable,
    DecodeError,
    PermanentError,
    StoreUnavailable,
    TransientError,
    UnsupportedMessage,
)

log = logging.getLogger(__name__)

@dataclass(slots=True)
class _Frame:
    payload: bytes
    peer: str
    msh: er7.Segment | None
    error: PermanentError | None  # known from MSH alone: kept rejected, answered AR
    answer: asyncio.Future[bytes | None]


class Hl7Forwarder:
    """``handle`` is an ``MllpServer`` handler; ``close`` (the server's ``on_stop``) drains, then disconnects."""

    def __init__(self, store: MessageStore, publisher: AsyncPublisher, topology: Topology, *,
                 max_batch: int = 500, in_flight: int = 2) -> None:
        self.store = store
        self.publisher = publisher
        self.queue = topology.queue("intake")
        self.max_batch = max_batch
        self._latency = ACK_LATENCY.labels("mllp")
        self._pending: list[_Frame] = []
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(in_flight)  # batches taken and not yet answered
        self._store_free = asyncio.Semaphore(1)  # batches being stored
        self._batcher: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        # ACK control ids (MSH-10): unique per process without a uuid4 per ACK (os.urandom releases the GIL,
        # and on a loaded box the loop then waits for the store thread to give it back).
        self._ack_prefix, self._acks = uuid.uuid4().hex[:8], itertools.count(1)

    async def handle(self, payload: bytes, peer: str) -> bytes | None:
        """The ACK (unframed) once the payload is stored and, if accepted, confirmed; None when MSH-15 asks none."""
        with self._latency.time():
            msh, error = _screen(payload)
            frame = _Frame(payload, peer, msh, error, asyncio.get_running_loop().create_future())
            self._pending.append(frame)
            self._wake.set()
            if self._batcher is None or self._batcher.done():
                self._batcher = asyncio.create_task(self._take_batches(), name="hl7-forwarder-batcher")
            return await frame.answer

    async def close(self, timeout: float = 30.0) -> None:
        """Finish every batch taken or pending (each frame answered), then close the broker connection."""
        try:
            async with asyncio.timeout(timeout):
                while self._pending or self._batches:
                    await asyncio.sleep(0.005)
        except TimeoutError:
            log.warning("MLLP forwarder: %d batch(es) still in flight after %s s", len(self._batches), timeout)
        if self._batcher is not None:
            self._batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._batcher
        for frame in self._pending:  # only after a timeout: never stored, so "send again"
            self._answer(frame, Verdict.RETRY, error_of(StoreUnavailable("the listener is stopping")))
        self._pending.clear()
        await self.publisher.close()

    async def _take_batches(self) -> None:
        while True:
            await self._wake.wait()
            await self._slots.acquire()
            await self._store_free.acquire()  # released by the batch once stored
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            if not self._pending:
                self._wake.clear()
            if not batch:
                self._store_free.release()
                self._slots.release()
                continue
            task = asyncio.create_task(self._forward(batch))
            self._batches.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._slots.release()

    async def _forward(self, batch: list[_Frame]) -> None:
        try:
            try:
                stored = await asyncio.to_thread(self._store, batch)
            finally:
                self._store_free.release()
            accepted: list[tuple[_Frame, StoredMessage]] = []
            for frame, row in zip(batch, stored, strict=True):
                if row.status is MessageStatus.RECEIVED:
                    accepted.append((frame, row))
                else:  # final once committed: resends, conflicts, rejections
                    self._answer(frame, *_judged(frame, row))
            if not accepted:
                return
            try:
                await self.publisher.publish_many([
                    Publication(self.queue.exchange, self.queue.routing_key, frame.payload,
                                raw_properties(er7.MEDIA_TYPE, row.message_type, row.digest, row.control_id, row.id))
                    for frame, row in accepted])
            except BrokerUnavailable as exc:
                for frame, _ in accepted:
                    self._answer(frame, Verdict.RETRY, error_of(exc))
                await self._not_forwarded([row.id for _, row in accepted], exc)
                return
            for frame, _ in accepted:
                self._answer(frame, Verdict.ACCEPTED)
        except TransientError as exc:
            log.warning("MLLP forwarder: %d message(s) not stored: %s", len(batch), exc.reason)
            for frame in batch:
                self._answer(frame, Verdict.RETRY, error_of(exc))
        except Exception as exc:  # a bug must not cost the peers their answers; what was stored is kept
            # No traceback: exception texts (SQL parameters, field values) can carry PHI.
            log.error("MLLP forwarder failed unexpectedly (%s) on a batch of %d", type(exc).__name__, len(batch))
            for frame in batch:
                self._answer(frame, Verdict.RETRY, error_of(StoreUnavailable(f"internal error ({type(exc).__name__})")))

    def _answer(self, frame: _Frame, verdict: Verdict, error: AckError | None = None) -> None:
        if frame.answer.done():  # the peer went away (its handler was cancelled)
            return
        frame.answer.set_result(ack_for(Hl7Outcome(verdict, error=error), frame.msh,
                                        control_id=f"{self._ack_prefix}{next(self._acks)}"))

    def _store(self, batch: list[_Frame]) -> list[StoredMessage]:
        return self.store.store_many([to_store(f.payload, f.msh, "mllp", f.peer, f.error) for f in batch])

    async def _not_forwarded(self, ids: list[int], exc: BrokerUnavailable) -> None:
        """Say on the rows why they wait (no traceback, no payload: PHI); a failure here changes nothing."""
        log.warning("MLLP forwarder: %d message(s) stored but not forwarded: %s", len(ids), exc.reason)
        with contextlib.suppress(TransientError):
            await asyncio.to_thread(self.store.mark_many, ids, MessageStatus.RECEIVED,
                                    f"not forwarded, kept for replay: {exc.reason}", only_if=MessageStatus.RECEIVED)


def _screen(payload: bytes) -> tuple[er7.Segment | None, PermanentError | None]:
    """MSH (as far as it can be read, for the ACK) and the reason MSH alone gives to reject the message."""
    try:
        msh = er7.parse_header(payload)
    except DecodeError as exc:
        return read_header(payload), exc
    try:
        require_supported(msh)
    except UnsupportedMessage as exc:
        return msh, exc
    return msh, None


def _judged(frame: _Frame, row: StoredMessage) -> tuple[Verdict, AckError | None]:
    """The answer for a row the store settled at once: a resend or a reused control id (as the synchronous
    intake answers them), or a message refused from MSH alone."""
    outcome = standing(row, frame.msh)
    if outcome is None:
        assert frame.error is not None  # kept rejected: the only other status store_many gives at once
        header_only = er7.Message([frame.msh], frame.msh.seps) if frame.msh is not None else None
        outcome = rejected(frame.error, frame.msh, row.id, header_only)
    return outcome.verdict, outcome.error
