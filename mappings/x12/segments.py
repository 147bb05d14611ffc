"""Streaming X12 tokenizer (mappings layer): separators from each ISA (ISA byte 3, ISA11, ISA16 and the
character after it), then one ``Segment`` at a time from chunked reads, never the whole file.

A file that starts at ST with no ISA is rejected: without ISA the interchange cannot be keyed
(ISA06/ISA13), acknowledged (999), and its component separator (ISA16) would have to be guessed.
"""

from __future__ import annotations

import codecs
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from router.domain.errors import DecodeError

CHUNK_SIZE = 1 << 16
# Far above any legal 835 segment (the longest elements are 264 characters); a bigger piece means a
# missing or wrong terminator, and the cap keeps memory bounded on hostile input.
MAX_SEGMENT_CHARS = 1 << 16
_ISA_SCAN_CHARS = 512  # an ISA is 106 characters; tolerate bad padding, never scan unboundedly
_WHITESPACE = " \t\r\n\ufeff"


class Segment(NamedTuple):
    """One segment; ``elements[0]`` is the id so that ``elements[n]`` is element n as the guide numbers it."""

    id: str
    elements: tuple[str, ...]
    position: int  # 1-based count of segments in the file
    raw: str

    def el(self, n: int) -> str:
        """Element ``n`` (1-based), or "" when the segment is shorter."""
        return self.elements[n] if n < len(self.elements) else ""

    @property
    def where(self) -> str:
        return f"segment {self.position} ({self.id})"


@dataclass(frozen=True, slots=True)
class Separators:
    element: str
    component: str
    segment: str
    repetition: str | None = None


def _check_separators(seps: Separators, location: str) -> None:
    chars = [seps.element, seps.component, seps.segment]
    if seps.repetition is not None:
        chars.append(seps.repetition)
    if len(set(chars)) != len(chars):
        raise DecodeError(f"ISA separators are not distinct: {chars!r}", location=location)
    for ch in chars:
        if ch.isalnum() or ch == " " or (ch in "\r\n" and ch != seps.segment):
            raise DecodeError(f"ISA separator {ch!r} is a letter, digit or space", location=location)


def parse_isa_separators(text: str, position: int) -> Separators:
    """Separators of the ISA at the start of ``text``; counts elements, so bad padding is tolerated."""
    location = f"segment {position} (ISA)"
    if len(text) < 4 or not text.startswith("ISA"):
        raise DecodeError("expected an ISA interchange header", location=location)
    element = text[3]
    found, i = 1, 3  # the separator at index 3 precedes ISA01
    while found < 16:
        i = text.find(element, i + 1, _ISA_SCAN_CHARS)
        if i < 0:
            raise DecodeError("truncated ISA: fewer than 16 elements", location=location)
        found += 1
    if i + 2 >= len(text):
        raise DecodeError("truncated ISA: no component separator or terminator", location=location)
    component, segment = text[i + 1], text[i + 2]
    fields = text[: i + 1].split(element)
    # ISA11 became the repetition separator in 00402; before that it is a standards id such as "U".
    rep = fields[11] if len(fields) > 12 else ""
    repetition = rep if len(rep) == 1 and not rep.isalnum() and rep != " " else None
    seps = Separators(element, component, segment, repetition)
    _check_separators(seps, location)
    return seps


_SplitResult = tuple[str, "Separators | None", bool]


class SegmentReader:
    """Iterate the segments of a byte stream; ``separators`` follows the current interchange."""

    def __init__(self, source: BinaryIO | bytes, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._source = source
        self._chunk_size = chunk_size
        self.separators: Separators | None = None
        self.position = 0
        self._known_ids: set[str] = set()

    def _chunks(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")()
        if isinstance(self._source, bytes | bytearray | memoryview):
            data, size = bytes(self._source), self._chunk_size
            blocks: Iterator[bytes] = (data[i : i + size] for i in range(0, len(data), size))
        else:
            stream = self._source
            blocks = iter(lambda: stream.read(self._chunk_size), b"")
        try:
            for block in blocks:
                text = decoder.decode(block)
                if text:
                    yield text
            tail = decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise DecodeError(f"bytes are not UTF-8 text: {exc.reason}", location=self._here()) from exc
        if tail:
            yield tail

    def _here(self) -> str:
        return f"segment {self.position + 1}"

    def _fail_id(self, piece: str) -> DecodeError:
        shown = piece[:20].encode("unicode_escape").decode("ascii")
        return DecodeError(f"not a segment: {shown!r} (wrong or missing terminator?)", location=self._here())

    def __iter__(self) -> Iterator[Segment]:
        chunks = self._chunks()
        buf = ""
        seps: Separators | None = None
        eof = False
        while not eof:
            chunk = next(chunks, None)
            if chunk is None:
                eof = True
            else:
                buf += chunk
            while True:
                if seps is None:
                    buf = buf.lstrip(_WHITESPACE)
                    if not buf or (len(buf) < _ISA_SCAN_CHARS and not eof):
                        break  # wait until a whole ISA header is buffered
                    seps = self._start_interchange(buf)
                buf, seps, restart = yield from self._split(buf, seps)
                if not restart:
                    break
            if len(buf) > MAX_SEGMENT_CHARS:
                raise DecodeError(f"no segment terminator within {MAX_SEGMENT_CHARS} characters", location=self._here())
        if buf.strip(_WHITESPACE):
            raise DecodeError("file ends inside a segment (missing terminator)", location=self._here())
        if self.position == 0:
            raise DecodeError("empty input: no X12 interchange", location="segment 1")

    def _start_interchange(self, buf: str) -> Separators:
        if buf.startswith("ST") and len(buf) > 2 and not buf[2].isalnum():
            raise DecodeError(
                "no ISA interchange header: file starts at ST; a bare transaction set has no "
                "sender/control number (ISA06/ISA13) to key or acknowledge it and no component separator",
                location=self._here() + " (ST)",
            )
        seps = parse_isa_separators(buf, self.position + 1)
        self.separators = seps
        return seps

    def _split(self, buf: str, seps: Separators) -> Generator[Segment, None, _SplitResult]:
        """Yield the complete segments of ``buf``; return (rest, separators, restart-after-IEA)."""
        term, elem = seps.segment, seps.element
        # CR/LF after terminators is presentation, not data (X12 has no control characters in elements).
        for newline in "\r\n":
            if newline != term and newline in buf:
                buf = buf.replace(newline, "")
        pieces = buf.split(term)
        rest = pieces.pop()
        position = self.position
        new, known = tuple.__new__, self._known_ids  # tuple.__new__ skips NamedTuple's Python-level __new__
        for i, piece in enumerate(pieces):
            position += 1
            parts = piece.split(elem)
            seg_id = parts[0]
            if seg_id not in known:
                if not (2 <= len(seg_id) <= 3 and seg_id.isalnum() and seg_id.isascii()):
                    self.position = position - 1
                    raise self._fail_id(piece)
                known.add(seg_id)
            yield new(Segment, (seg_id, tuple(parts), position, piece))
            if seg_id == "IEA":
                # The next interchange may use other separators: re-read them from its ISA.
                self.position = position
                return term.join([*pieces[i + 1 :], rest]), None, True
        self.position = position
        return rest, seps, False


def iter_segments(source: BinaryIO | bytes, *, chunk_size: int = CHUNK_SIZE) -> Iterator[Segment]:
    """Segments of an X12 byte stream, in order, read ``chunk_size`` bytes at a time."""
    return iter(SegmentReader(source, chunk_size=chunk_size))
