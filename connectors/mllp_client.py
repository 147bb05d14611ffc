"""Blocking MLLP client (connectors layer) for outbound HL7 sends and tests: one framed request,
one framed reply; socket and TLS failures become ``DeliveryFailed``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from types import TracebackType

from connectors.mllp_framing import DEFAULT_MAX_FRAME_SIZE, Frame, FrameErrorKind, MllpDecoder, encode_frame
from router.domain.errors import DeliveryFailed

_READ_SIZE = 64 * 1024


class MllpClient:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout: float = 10.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname or host
        self.connect_timeout = connect_timeout
        self.max_frame_size = max_frame_size
        self._sock: socket.socket | None = None

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, payload: bytes, timeout: float = 30.0) -> bytes:
        """Send one payload and return the payload of the framed reply (e.g. the ACK)."""
        data = encode_frame(payload)
        deadline = time.monotonic() + timeout
        sock = self._connected()
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(data)
            return self._read_reply(sock, deadline, timeout)
        except TimeoutError as exc:
            self.close()
            raise DeliveryFailed(f"no MLLP reply within {timeout}s", location=self._where) from exc
        except OSError as exc:  # ssl.SSLError included
            self.close()
            raise DeliveryFailed(f"MLLP send failed: {type(exc).__name__}", location=self._where) from exc

    def _read_reply(self, sock: socket.socket, deadline: float, timeout: float) -> bytes:
        decoder = MllpDecoder(self.max_frame_size)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            chunk = sock.recv(_READ_SIZE)
            items = decoder.feed(chunk) if chunk else decoder.finish()
            for item in items:
                if isinstance(item, Frame):
                    if len(items) > 1 or decoder.in_frame:
                        # More than one reply to one request: the stream is out of step, start afresh.
                        self.close()
                    return item.payload
                if item.kind is not FrameErrorKind.GARBAGE:
                    self.close()
                    raise DeliveryFailed(f"malformed MLLP reply: {item.reason}", location=self._where)
            if not chunk:
                self.close()
                raise DeliveryFailed("peer closed the connection before replying", location=self._where)

    def _connected(self) -> socket.socket:
        if self._sock is not None and _is_stale(self._sock):
            self.close()
        if self._sock is None:
            self._sock = self._connect()
        return self._sock

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise DeliveryFailed(f"MLLP connect failed: {type(exc).__name__}", location=self._where) from exc
        if self.ssl_context is None:
            return sock
        try:
            return self.ssl_context.wrap_socket(sock, server_hostname=self.server_hostname)
        except OSError as exc:
            sock.close()
            reason = f"MLLP TLS handshake failed: {type(exc).__name__}"
            raise DeliveryFailed(reason, location=self._where) from exc

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _is_stale(sock: socket.socket) -> bool:
    """Between requests nothing should arrive; readable means the peer closed (idle timeout) or
    sent something unasked, and either way this connection can no longer be trusted."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(readable)
