"""MLLP listener (connectors layer): an asyncio TCP/TLS server that hands each framed HL7 payload
to a handler and writes its reply back, strictly one request/response at a time per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.mllp_client import MllpClient
from connectors.mllp_framing import (
    DEFAULT_MAX_FRAME_SIZE,
    Frame,
    FrameError,
    FrameErrorKind,
    MllpDecoder,
    encode_frame,
)
from router.domain.errors import HubError

__all__ = [
    "ErrorHook",
    "Frame",
    "FrameError",
    "FrameErrorKind",
    "Handler",
    "MllpClient",
    "MllpDecoder",
    "MllpServer",
    "MllpServerStats",
    "MllpServerThread",
    "encode_frame",
]

log = logging.getLogger(__name__)

Handler = Callable[[bytes, str], Awaitable[bytes | None]]
ErrorHook = Callable[[FrameError, str], bytes | Awaitable[bytes | None] | None]

_READ_SIZE = 64 * 1024
_CLOSE_TIMEOUT = 2.0


@dataclass
class MllpServerStats:
    """Plain counters for metrics; written only from the server's event loop."""

    connections_total: int = 0
    connections_open: int = 0
    frames_received: int = 0
    replies_sent: int = 0
    frame_errors: int = 0
    garbage_bytes: int = 0
    handler_failures: int = 0
    idle_timeouts: int = 0


@dataclass
class _Connection:
    task: asyncio.Task[None]
    busy: bool = False  # a frame is being handled or its reply written


class _CloseConnection(Exception):
    pass


@dataclass
class MllpServer:
    """``handler(payload, peer)`` answers each frame; its reply is framed and written before the next
    frame of that connection is read; a None reply writes nothing. ``on_error(error, peer)`` answers an
    oversize or truncated frame (e.g. with an AR ACK) or returns None to hang up; without it such a frame
    closes the connection. ``on_stop()`` runs once every connection has ended, to drain and close what the
    handler holds (e.g. the store-and-forward batches and their broker connection).
    Garbage between frames is skipped and counted; it is not a request, so it gets no reply."""

    handler: Handler
    host: str = "127.0.0.1"
    port: int = 0
    on_error: ErrorHook | None = None
    ssl_context: ssl.SSLContext | None = None
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    idle_timeout: float | None = 300.0
    on_stop: Callable[[], Awaitable[None]] | None = None
    stats: MllpServerStats = field(default_factory=MllpServerStats)
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _connections: dict[asyncio.Task[None], _Connection] = field(default_factory=dict, init=False, repr=False)
    _stopping: bool = field(default=False, init=False, repr=False)

    @property
    def bound_port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        self._stopping = False
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self.port, ssl=self.ssl_context, limit=_READ_SIZE
        )
        log.info("MLLP listening on %s:%d (tls=%s)", self.host, self.bound_port, self.ssl_context is not None)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting, let in-flight handlers finish and reply (up to ``grace`` s), close the rest."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections.values()):
            if not conn.busy:
                conn.task.cancel()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self.on_stop is not None:
            await self.on_stop()
        log.info("MLLP listener stopped")

    def run_in_thread(self, start_timeout: float = 10.0) -> MllpServerThread:
        """Serve on a private event loop in a daemon thread, for hosting beside sync code."""
        return MllpServerThread(self, start_timeout)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = _peer_name(writer)
        self._connections[task] = conn = _Connection(task)
        self.stats.connections_total += 1
        self.stats.connections_open += 1
        try:
            await self._serve(reader, writer, peer, conn)
        except (_CloseConnection, asyncio.CancelledError):
            # A cancelled connection task is ours (stop()); ending it normally keeps 3.11's
            # StreamReaderProtocol from logging the CancelledError as an unhandled exception.
            pass
        except (OSError, asyncio.IncompleteReadError) as exc:  # ssl.SSLError is an OSError
            log.info("MLLP connection from %s ended: %s", peer, type(exc).__name__)
        except Exception:  # the listener must outlive any connection
            log.exception("MLLP connection from %s failed in the transport", peer)
        finally:
            writer.close()
            # A TLS close waits for the peer's close_notify; stop() must still see this task till then.
            try:
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)
            except (Exception, asyncio.CancelledError):
                writer.transport.abort()
            self.stats.connections_open -= 1
            del self._connections[task]

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, conn: _Connection
    ) -> None:
        decoder = MllpDecoder(self.max_frame_size)
        while not self._stopping:
            try:
                # asyncio.timeout, unlike wait_for on 3.11, spawns no task per read.
                async with asyncio.timeout(self.idle_timeout):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                self.stats.idle_timeouts += 1
                log.info("MLLP connection from %s idle for %ss, closing", peer, self.idle_timeout)
                return
            items = decoder.feed(data) if data else decoder.finish()
            for item in items:
                conn.busy = True
                reply = await self._dispatch(item, peer)
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()
                    self.stats.replies_sent += 1
                conn.busy = False
                if self._stopping:
                    return
            if not data:
                return

    async def _dispatch(self, item: Frame | FrameError, peer: str) -> bytes | None:
        """Return the framed bytes to write, None to write nothing; raise _CloseConnection to hang up."""
        if isinstance(item, Frame):
            self.stats.frames_received += 1
            try:
                reply = await self.handler(item.payload, peer)
                # None: the message asked for no reply (HL7 enhanced mode, MSH-15 NE).
                return None if reply is None else encode_frame(reply)
            except Exception as exc:
                self.stats.handler_failures += 1
                # Never the payload nor str(exc): either may carry PHI.
                where = f" at {exc.location}" if isinstance(exc, HubError) and exc.location else ""
                log.error(
                    "MLLP handler failed on a %d-byte frame from %s: %s%s; closing the connection",
                    len(item.payload),
                    peer,
                    type(exc).__name__,
                    where,
                )
                raise _CloseConnection from exc
        if item.kind is FrameErrorKind.GARBAGE:
            # Not a request, so nothing to answer: an extra reply would put the peer out of step.
            self.stats.garbage_bytes += item.size
            log.warning("MLLP skipped %d bytes outside any frame from %s", item.size, peer)
            return None
        self.stats.frame_errors += 1
        log.warning("MLLP %s frame of %d bytes from %s", item.kind.value, item.size, peer)
        if item.kind is FrameErrorKind.INCOMPLETE or self.on_error is None:
            raise _CloseConnection
        try:
            answer = self.on_error(item, peer)
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is None:
                raise _CloseConnection
            return encode_frame(answer)
        except _CloseConnection:
            raise
        except Exception as exc:
            self.stats.handler_failures += 1
            log.error("MLLP on_error hook failed for %s: %s", peer, type(exc).__name__)
            raise _CloseConnection from exc


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class MllpServerThread:
    """An MllpServer running on its own event loop in a daemon thread; ``stop()`` is graceful."""

    def __init__(self, server: MllpServer, start_timeout: float) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._stop_requested: asyncio.Event | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._grace = 10.0
        self._thread = threading.Thread(target=self._run, name="mllp-server", daemon=True)
        self._thread.start()
        if not self._started.wait(start_timeout):
            raise TimeoutError("MLLP server did not start in time")
        if self._startup_error is not None:
            raise self._startup_error
        self.port = server.bound_port

    def _run(self) -> None:
        self.loop.set_exception_handler(_quiet_handshake_failures)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._startup_error = exc
            self._started.set()
            return
        self._started.set()
        await self._stop_requested.wait()
        await self.server.stop(self._grace)

    def stop(self, grace: float = 10.0, timeout: float | None = None) -> None:
        if self._thread.is_alive() and self._stop_requested is not None:
            self._grace = grace
            with contextlib.suppress(RuntimeError):  # the loop closed since is_alive()
                self.loop.call_soon_threadsafe(self._stop_requested.set)
        self._thread.join(timeout if timeout is not None else grace + 5.0)


def _quiet_handshake_failures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # A failed TLS handshake (port scan, wrong CA) is the peer's fault, not a traceback-worthy error.
    exc = context.get("exception")
    if isinstance(exc, ssl.SSLError | ConnectionError):
        log.warning("MLLP connection failed before any frame: %s", type(exc).__name__)
        return
    loop.default_exception_handler(context)
