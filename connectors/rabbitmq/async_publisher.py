"""Confirmed, mandatory, persistent publishing on an asyncio loop (connectors): pipelined publisher confirms.

Why not ``Publisher``: its BlockingChannel in confirm mode waits for each message's basic.ack before it
publishes the next, one broker round trip (for a quorum queue, a replicated, fsync'd log write) per message.
Here a batch is written in one go and its confirms are awaited together; RabbitMQ acks many at once
(basic.ack multiple=True), so a batch costs about one round trip. pika's ``AsyncioConnection`` runs on the
caller's loop (the MLLP server's), so no thread hops. A nack, a basic.return (unroutable), a lost
connection or a confirm that does not come raise ``BrokerUnavailable``; the next call reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple

import pika
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel
from pika.frame import Method
from pika.spec import Basic

from connectors.rabbitmq.publisher import PIKA_ERRORS
from router.domain.errors import BrokerUnavailable

log = logging.getLogger(__name__)


class Publication(NamedTuple):
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties


class _WholeBatchConnection(AsyncioConnection):  # type: ignore[misc]  # pika ships no type stubs
    """An ``AsyncioConnection`` that can write a batch's frames with one ``send``.

    pika's asyncio transport sends every AMQP frame on its own (three per message: method, header, body);
    profiled on loopback, those ``send`` calls were ~60 µs each, most of a publish's cost. Overriding the
    adapter hook ``_adapter_emit_data`` is the one way in: pika offers no option to coalesce writes.
    """

    _held: list[bytes] | None = None

    def _adapter_emit_data(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            super()._adapter_emit_data(data)

    @contextmanager
    def whole(self) -> Iterator[None]:
        """Frames written inside the block go out together when it ends without an error (nothing else runs
        meanwhile); after an error none go out, so the broker never sees a batch cut short."""
        self._held = []
        try:
            yield
            held = self._held
        finally:
            self._held = None
        if held and self.is_open:
            super()._adapter_emit_data(b"".join(held))


class _Batch:
    """One ``publish_many`` call: done when the broker has confirmed all of its messages."""

    __slots__ = ("done", "left")

    def __init__(self, done: asyncio.Future[None], left: int) -> None:
        self.done, self.left = done, left


class AsyncPublisher:
    """Publishes batches on one lazily opened connection; ``publish_many`` may be awaited concurrently.

    After a failed connection attempt calls fail at once (no connection attempt) until a backoff delay has
    passed, doubling per failure up to ``max_backoff``. Not tenacity's retry loop: the caller must not wait
    on a broken broker (it answers its peer "send again" now, and the resend is the retry), so all that is
    left of a retry policy is the delay between attempts, one line below.
    """

    def __init__(self, url: str, *, heartbeat: int = 30, confirm_timeout: float = 10.0,
                 connect_timeout: float = 5.0, max_backoff: float = 5.0) -> None:
        self.parameters = pika.URLParameters(url)
        self.parameters.heartbeat = heartbeat
        self.parameters.blocked_connection_timeout = 30
        self.parameters.socket_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self._connection: _WholeBatchConnection | None = None
        self._channel: Channel | None = None
        self._opening = asyncio.Lock()  # two batches in flight share one connection attempt
        self._unconfirmed: OrderedDict[int, _Batch] = OrderedDict()  # delivery tag -> its batch, in tag order
        self._tag = 0  # the last delivery tag used on the current channel (tags start at 1 per channel)
        self._failures = 0
        self._retry_at = 0.0

    async def publish_many(self, messages: Sequence[Publication]) -> None:
        """Publish every message persistent and mandatory; return once the broker confirmed them all."""
        if not messages:
            return
        channel = await self._open()
        assert self._connection is not None  # set with the channel
        batch = _Batch(asyncio.get_running_loop().create_future(), len(messages))
        try:
            with self._connection.whole():
                for m in messages:
                    channel.basic_publish(m.exchange, m.routing_key, m.body, m.properties, mandatory=True)
                    self._tag += 1
                    self._unconfirmed[self._tag] = batch
        except PIKA_ERRORS as exc:
            batch.done.cancel()  # this call raises instead
            error = BrokerUnavailable(f"publish to {messages[0].exchange}: {type(exc).__name__}")
            self._lost(error)
            raise error from exc
        try:
            async with asyncio.timeout(self.confirm_timeout):
                await batch.done
        except TimeoutError:
            # Unconfirmed tags cannot be trusted any more: start over on a new connection.
            error = BrokerUnavailable(f"no publisher confirm within {self.confirm_timeout:g} s")
            self._lost(error)
            raise error from None

    async def close(self) -> None:
        """Close the connection gracefully (unconfirmed batches fail)."""
        connection, self._connection, self._channel = self._connection, None, None
        self._fail_unconfirmed(BrokerUnavailable("publisher closed"))
        if connection is None or connection.is_closed:
            return
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_closed(_connection: AsyncioConnection, _exc: BaseException) -> None:
            if not closed.done():
                closed.set_result(None)

        connection.add_on_close_callback(on_closed)
        if not connection.is_closing:
            connection.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                await closed
        except TimeoutError:
            log.warning("RabbitMQ connection did not close in %s s", self.connect_timeout)

    async def _open(self) -> Channel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        async with self._opening:
            if self._channel is not None and self._channel.is_open:
                return self._channel
            loop = asyncio.get_running_loop()
            if loop.time() < self._retry_at:
                raise BrokerUnavailable(f"RabbitMQ unreachable; next attempt in {self._retry_at - loop.time():.1f} s")
            try:
                self._channel = await self._connect(loop)
            except BrokerUnavailable:
                self._failures += 1
                self._retry_at = loop.time() + min(self.max_backoff, 0.1 * 2 ** self._failures) * random.uniform(0.5, 1)
                raise
            self._failures = 0
            return self._channel

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Channel:
        opened: asyncio.Future[Channel] = loop.create_future()

        def failed(what: str, exc: BaseException) -> None:
            if not opened.done():
                opened.set_exception(BrokerUnavailable(f"{what}: {type(exc).__name__}"))

        def on_channel(channel: Channel) -> None:
            def confirming(_frame: Method[Any]) -> None:
                if not opened.done():
                    opened.set_result(channel)

            channel.add_on_close_callback(self._on_channel_closed)
            channel.add_on_return_callback(self._on_return)
            channel.confirm_delivery(self._on_confirm, callback=confirming)

        def on_close(connection: AsyncioConnection, exc: BaseException) -> None:
            failed("RabbitMQ connection closed while opening", exc)
            if connection is self._connection:
                self._lost(BrokerUnavailable(f"RabbitMQ connection lost: {type(exc).__name__}"))

        connection = _WholeBatchConnection(
            self.parameters, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
            on_open_error_callback=lambda _c, exc: failed("connecting to RabbitMQ", exc),
            on_close_callback=on_close, custom_ioloop=loop)
        self._connection = connection
        try:
            async with asyncio.timeout(self.connect_timeout):
                channel = await opened
        except (TimeoutError, BrokerUnavailable, asyncio.CancelledError) as exc:
            self._lost(BrokerUnavailable("connection attempt abandoned"))
            if isinstance(exc, BrokerUnavailable | asyncio.CancelledError):
                raise
            raise BrokerUnavailable(f"connecting to RabbitMQ: no answer within {self.connect_timeout:g} s") from None
        self._tag = 0
        log.info("RabbitMQ publisher connected (confirms on)")
        return channel

    def _on_confirm(self, frame: Method[Any]) -> None:
        """basic.ack / basic.nack for ``delivery_tag``, or for every tag up to it when ``multiple``."""
        method = frame.method
        refused = isinstance(method, Basic.Nack)
        if method.multiple:
            while self._unconfirmed and next(iter(self._unconfirmed)) <= method.delivery_tag:
                self._settle(self._unconfirmed.popitem(last=False)[1], refused)
        elif (batch := self._unconfirmed.pop(method.delivery_tag, None)) is not None:
            self._settle(batch, refused)

    def _settle(self, batch: _Batch, refused: bool) -> None:
        if batch.done.done():
            return
        if refused:
            batch.done.set_exception(BrokerUnavailable("the broker refused a message (basic.nack)"))
            return
        batch.left -= 1
        if batch.left == 0:
            batch.done.set_result(None)

    def _on_return(self, _channel: Channel, method: Basic.Return, _properties: pika.BasicProperties,
                   _body: bytes) -> None:
        # basic.return carries no delivery tag; RabbitMQ sends it before the ack of that message, so the
        # message is among the unconfirmed: fail them all (an unroutable message means a broken topology).
        self._fail_unconfirmed(BrokerUnavailable(f"unroutable: no queue bound for {method.exchange}/"
                                                 f"{method.routing_key}"))

    def _on_channel_closed(self, channel: Channel, exc: BaseException) -> None:
        if channel is self._channel:
            self._lost(BrokerUnavailable(f"RabbitMQ channel closed: {type(exc).__name__}"))

    def _lost(self, error: BrokerUnavailable) -> None:
        """Forget the connection (closing it if still open) and fail whatever it had not confirmed."""
        connection, self._connection, self._channel = self._connection, None, None
        self._fail_unconfirmed(error)
        if connection is not None and not (connection.is_closing or connection.is_closed):
            with suppress(*PIKA_ERRORS):  # already broken; nothing to release
                connection.close()

    def _fail_unconfirmed(self, error: BrokerUnavailable) -> None:
        batches = list(self._unconfirmed.values())
        self._unconfirmed.clear()
        for batch in batches:  # a batch appears once per message; only its first failure sticks
            if not batch.done.done():
                batch.done.set_exception(error)
