"""The MLLP ACK path in RabbitMQ mode (connectors): store and forward, answering from MSH alone.

Per frame only MSH is read: an unreadable MSH or an MSH-9 the hub does not map is kept ``rejected`` and
answered AR. Frames then wait for one batcher, which takes whatever is pending (up to ``max_batch``) as soon
as the store is free and fewer than ``in_flight`` batches are out: no timer, so a lone frame leaves at once
and a burst makes bigger batches. Two stores at once only slowed each other down (they share the two
cores), so one batch is stored while the one before it is confirmed.

A batch is stored in one transaction (``store_many``, on a thread: SQLAlchemy blocks) and, at the same time,
each frame MSH did not reject is published raw to the intake queue (``raw_properties``: type MSH-9, message
id the digest, headers MSH-10, attempt 0 and ``STORED_ID``). The row ids are reserved ahead from the
database sequence (``reserve_ids``, 100 at a time) so the message can name its row before it is committed;
the intake worker waits for the row (``hl7_batch.ROW_WAITS``). Each frame is answered only after its commit
and its broker confirm: AA, or CA in enhanced mode. Why at the same time: the ACK then waits for the slower
of the two, not for their sum; on the 2-core box the p50 at 500 msg/s went from ~5 ms to ~2.7 ms and its p99
from 9-28 ms to 6-10 ms (``tests/benchmarks/test_bench_mllp_rabbitmq.py``). Where the store cannot reserve
ids (SQLite), the batch is published after its commit.

Statuses: a forwarded message stays ``received`` (stored, not processed) until the intake worker marks it
processed or rejected by its ``STORED_ID``; a resend meanwhile is forwarded again (the router's inbox makes
the second copy a no-op), so nothing ACKed is lost. A resend of a processed message is answered AA, a
control id reused with other content AE (ERR at MSH-10); their copies, published before the store judged
them, are skipped by the worker, which reads the row first. When the database or the broker is unavailable:
AE/CE "send again", and a stored row stays ``received`` with the reason, kept for replay; a copy published
whose store failed is kept by the worker once its row has not appeared (nothing published is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import deque
from dataclasses import dataclass

from connectors.hl7_intake import Hl7Outcome, ack_for, rejected, standing, to_store
from connectors.metrics import ACK_LATENCY
from connectors.rabbitmq.async_publisher import AsyncPublisher, Publication
from connectors.rabbitmq.publisher import raw_properties
from connectors.rabbitmq.topology import Topology
from mappings.hl7v2 import er7
from mappings.hl7v2.ack import AckError, Verdict, error_of, read_header
from mappings.hl7v2.inbound import require_supported
from router.adapters.message_store import MessageStatus, MessageStore, NewMessage, StoredMessage
from router.domain.errors import (
    BrokerUnavailable,
    DecodeError,
    PermanentError,
    StoreUnavailable,
    TransientError,
    UnsupportedMessage,
)

log = logging.getLogger(__name__)

RESERVE = 100  # row ids reserved at a time (see _reserved)


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
        self._free_ids: deque[int] = deque()
        self._sequential = False  # the store cannot reserve ids: publish after the store, not beside it
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
        early: asyncio.Task[None] | None = None  # the publish started beside the store
        try:
            items = [to_store(f.payload, f.msh, "mllp", f.peer, f.error) for f in batch]
            try:
                ids = await self._reserved(len(batch))
                if ids is not None:  # the frames MSH did not reject go to the broker while they are stored
                    early = asyncio.create_task(self._publish(
                        [(item, row_id) for f, item, row_id in zip(batch, items, ids, strict=True)
                         if f.error is None]))
                stored = await asyncio.to_thread(self.store.store_many, items, ids)
            finally:
                self._store_free.release()
            accepted: list[tuple[_Frame, NewMessage, StoredMessage]] = []
            for frame, item, row in zip(batch, items, stored, strict=True):
                if row.status is MessageStatus.RECEIVED:
                    accepted.append((frame, item, row))
                else:  # final once committed: resends, conflicts, rejections (a copy sent early is skipped)
                    self._answer(frame, *_judged(frame, row))
            try:
                if early is not None:
                    await early
                else:
                    await self._publish([(item, row.id) for _, item, row in accepted])
            except BrokerUnavailable as exc:
                for frame, _, _ in accepted:
                    self._answer(frame, Verdict.RETRY, error_of(exc))
                if accepted:
                    await self._not_forwarded([row.id for _, _, row in accepted], exc)
                return
            for frame, _, _ in accepted:
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
        finally:
            # Answered already; a publish whose store failed still finishes (the worker keeps what it
            # published) and is never left running unawaited.
            if early is not None:
                with contextlib.suppress(Exception):
                    await early

    async def _publish(self, messages: list[tuple[NewMessage, int]]) -> None:
        """Each kept message raw, naming its row, confirmed by the broker."""
        if messages:
            await self.publisher.publish_many([
                Publication(self.queue.exchange, self.queue.routing_key, item.raw,
                            raw_properties(er7.MEDIA_TYPE, item.message_type, item.digest or "", item.control_id,
                                           row_id))
                for item, row_id in messages])

    async def _reserved(self, count: int) -> list[int] | None:
        """Row ids for a batch from the ones reserved ahead (``RESERVE`` at a time: one round trip per block,
        not per batch), or None where the store cannot name rows before it commits them (SQLite)."""
        if self._sequential:
            return None
        while len(self._free_ids) < count:
            more = await asyncio.to_thread(self.store.reserve_ids, max(RESERVE, count))
            if more is None:
                self._sequential = True
                return None
            self._free_ids.extend(more)
        return [self._free_ids.popleft() for _ in range(count)]

    def _answer(self, frame: _Frame, verdict: Verdict, error: AckError | None = None) -> None:
        if frame.answer.done():  # the peer went away (its handler was cancelled)
            return
        frame.answer.set_result(ack_for(Hl7Outcome(verdict, error=error), frame.msh,
                                        control_id=f"{self._ack_prefix}{next(self._acks)}"))

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
