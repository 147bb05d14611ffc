"""MLLP framing (connectors layer): a pure, incremental decoder and encoder for
``0x0B <payload> 0x1C 0x0D`` frames. No I/O and no HL7 parsing happen here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
_CR = 0x0D
_SB = 0x0B

DEFAULT_MAX_FRAME_SIZE = 1024 * 1024


class FrameErrorKind(enum.Enum):
    GARBAGE = "garbage"  # bytes outside any frame, skipped
    OVERSIZE = "oversize"  # payload longer than max_frame_size, discarded up to its end block
    TRUNCATED = "truncated"  # a start block arrived before the end block of the current frame
    INCOMPLETE = "incomplete"  # the stream ended inside a frame


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class FrameError:
    """A framing fault; ``size`` counts the bytes dropped, never their content (PHI)."""

    kind: FrameErrorKind
    size: int

    @property
    def reason(self) -> str:
        return f"{self.kind.value} frame data ({self.size} bytes) dropped"


Decoded = Frame | FrameError


def encode_frame(payload: bytes) -> bytes:
    """Wrap one payload; refuse bytes the peer would read as framing."""
    if START_BLOCK in payload or END_BLOCK in payload:
        raise ValueError("payload contains MLLP framing bytes (0x0B or 0x1C 0x0D)")
    return START_BLOCK + payload + END_BLOCK


def _find(data: bytes, needle: bytes, start: int) -> int:
    found = data.find(needle, start)
    return len(data) if found < 0 else found


class MllpDecoder:
    """Incremental decoder: feed it reads of any size, get whole frames and errors in stream order.

    Memory stays bounded by ``max_frame_size``: an oversize frame is counted, not buffered.
    A lone 0x1C not followed by 0x0D is kept as payload, as the end block is the pair.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 1:
            raise ValueError("max_frame_size must be positive")
        self.max_frame_size = max_frame_size
        self._in_frame = False
        self._buffer = bytearray()
        self._oversize = False
        self._frame_bytes = 0  # payload bytes seen in the current frame, buffered or not
        self._pending_fs = False  # a 0x1C ended the previous read; the next byte decides
        self._garbage = 0

    @property
    def in_frame(self) -> bool:
        return self._in_frame

    def feed(self, data: bytes) -> list[Decoded]:
        out: list[Decoded] = []
        pos, end = 0, len(data)
        next_sb = next_fs = -1
        while pos < end:
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                if start < 0:
                    self._garbage += end - pos
                    break
                self._garbage += start - pos
                self._flush_garbage(out)
                self._begin()
                pos = start + 1
                continue
            if self._pending_fs:
                self._pending_fs = False
                if data[pos] == _CR:
                    out.append(self._finish_frame())
                    pos += 1
                    continue
                self._append(b"\x1c")
            # bytes.find (memchr) is ~30x faster than a regex class; each result is reused until passed.
            if next_sb < pos:
                next_sb = _find(data, START_BLOCK, pos)
            if next_fs < pos:
                next_fs = _find(data, b"\x1c", pos)
            stop = min(next_sb, next_fs)
            self._append(data[pos:stop])
            if stop == end:
                break
            if data[stop] == _SB:
                out.append(self._drop_frame(FrameErrorKind.TRUNCATED))
                self._begin()
            else:
                self._pending_fs = True
            pos = stop + 1
        return out

    def finish(self) -> list[Decoded]:
        """The stream ended: report whatever was left unfinished."""
        out: list[Decoded] = []
        if self._in_frame:
            if self._pending_fs:
                self._append(b"\x1c")
            out.append(self._drop_frame(FrameErrorKind.INCOMPLETE))
        self._flush_garbage(out)
        return out

    def _begin(self) -> None:
        self._in_frame = True
        self._buffer = bytearray()
        self._oversize = False
        self._frame_bytes = 0
        self._pending_fs = False

    def _append(self, chunk: bytes) -> None:
        self._frame_bytes += len(chunk)
        if self._oversize:
            return
        if self._frame_bytes > self.max_frame_size:
            self._oversize = True
            self._buffer = bytearray()
            return
        self._buffer += chunk

    def _finish_frame(self) -> Decoded:
        if self._oversize:
            return self._drop_frame(FrameErrorKind.OVERSIZE)
        frame = Frame(bytes(self._buffer))
        self._reset()
        return frame

    def _drop_frame(self, kind: FrameErrorKind) -> FrameError:
        # An oversize frame is reported as such even when it ends badly: the size is the news.
        error = FrameError(FrameErrorKind.OVERSIZE if self._oversize else kind, self._frame_bytes)
        self._reset()
        return error

    def _reset(self) -> None:
        self._in_frame = False
        self._buffer = bytearray()
        self._oversize = False
        self._frame_bytes = 0
        self._pending_fs = False

    def _flush_garbage(self, out: list[Decoded]) -> None:
        if self._garbage:
            out.append(FrameError(FrameErrorKind.GARBAGE, self._garbage))
            self._garbage = 0
