"""The pure MLLP decoder/encoder: no sockets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mllp_framing import (
    END_BLOCK,
    START_BLOCK,
    Decoded,
    Frame,
    FrameError,
    FrameErrorKind,
    MllpDecoder,
    encode_frame,
)

pytestmark = pytest.mark.timeout(30)

MSG = b"MSH|^~\\&|EPIC|HOSP|RCM|HUB|20240101||DFT^P03|1|P|2.5\rEVN|P03\r"


def frame(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK


def decode_all(decoder: MllpDecoder, chunks: list[bytes]) -> list[Decoded]:
    out: list[Decoded] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.finish())
    return out


def test_one_frame_in_one_read_yields_its_payload() -> None:
    assert MllpDecoder().feed(frame(MSG)) == [Frame(MSG)]


def test_several_frames_in_one_read_yield_each_in_order() -> None:
    data = frame(b"one") + frame(b"two") + frame(b"three")
    assert MllpDecoder().feed(data) == [Frame(b"one"), Frame(b"two"), Frame(b"three")]


def test_a_frame_fed_byte_by_byte_yields_once_at_the_end_block() -> None:
    decoder = MllpDecoder()
    data = frame(MSG)
    results = [decoder.feed(data[i : i + 1]) for i in range(len(data))]
    assert all(r == [] for r in results[:-1])
    assert results[-1] == [Frame(MSG)]


def test_an_end_block_split_between_reads_still_closes_the_frame() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(START_BLOCK + b"abc\x1c") == []
    assert decoder.feed(b"\r") == [Frame(b"abc")]


def test_an_empty_payload_is_a_frame() -> None:
    assert MllpDecoder().feed(frame(b"")) == [Frame(b"")]


def test_garbage_before_a_start_block_is_skipped_and_reported_with_its_size() -> None:
    assert MllpDecoder().feed(b"junk\r\n" + frame(MSG)) == [FrameError(FrameErrorKind.GARBAGE, 6), Frame(MSG)]


def test_trailing_garbage_is_reported_when_the_stream_ends() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(frame(b"a") + b"xyz") == [Frame(b"a")]
    assert decoder.finish() == [FrameError(FrameErrorKind.GARBAGE, 3)]


def test_a_lone_file_separator_inside_a_payload_is_kept_as_data() -> None:
    assert MllpDecoder().feed(frame(b"a\x1cb\x1c\x1cc")) == [Frame(b"a\x1cb\x1c\x1cc")]


def test_a_start_block_inside_a_frame_reports_the_truncated_frame_and_starts_anew() -> None:
    data = START_BLOCK + b"lost" + frame(b"kept")
    assert MllpDecoder().feed(data) == [FrameError(FrameErrorKind.TRUNCATED, 4), Frame(b"kept")]


def test_a_file_separator_followed_by_a_start_block_truncates_the_frame() -> None:
    data = START_BLOCK + b"ab\x1c" + frame(b"next")
    assert MllpDecoder().feed(data) == [FrameError(FrameErrorKind.TRUNCATED, 3), Frame(b"next")]


def test_an_oversize_frame_is_reported_and_the_next_frame_still_decodes() -> None:
    decoder = MllpDecoder(max_frame_size=10)
    data = frame(b"x" * 11) + frame(b"0123456789")
    assert decoder.feed(data) == [FrameError(FrameErrorKind.OVERSIZE, 11), Frame(b"0123456789")]


def test_an_oversize_frame_is_not_buffered_while_it_streams_in() -> None:
    decoder = MllpDecoder(max_frame_size=1000)
    decoder.feed(START_BLOCK)
    for _ in range(1000):
        assert decoder.feed(b"y" * 1000) == []
        assert len(decoder._buffer) <= 1000
    assert decoder.feed(END_BLOCK) == [FrameError(FrameErrorKind.OVERSIZE, 1_000_000)]


def test_an_oversize_frame_cut_by_a_new_start_block_is_reported_as_oversize() -> None:
    decoder = MllpDecoder(max_frame_size=3)
    assert decoder.feed(START_BLOCK + b"abcdef" + frame(b"ok")) == [
        FrameError(FrameErrorKind.OVERSIZE, 6),
        Frame(b"ok"),
    ]


def test_a_stream_ending_mid_frame_reports_an_incomplete_frame() -> None:
    decoder = MllpDecoder()
    assert decoder.feed(START_BLOCK + b"half") == []
    assert decoder.in_frame
    assert decoder.finish() == [FrameError(FrameErrorKind.INCOMPLETE, 4)]
    assert not decoder.in_frame


def test_a_stream_ending_after_a_file_separator_counts_it_in_the_incomplete_frame() -> None:
    decoder = MllpDecoder()
    decoder.feed(START_BLOCK + b"ab\x1c")
    assert decoder.finish() == [FrameError(FrameErrorKind.INCOMPLETE, 3)]


def test_encode_frame_wraps_the_payload_in_start_and_end_blocks() -> None:
    assert encode_frame(b"ACK") == b"\x0bACK\x1c\r"


@pytest.mark.parametrize("payload", [b"a\x0bb", b"a\x1c\rb"])
def test_encode_frame_refuses_payloads_holding_framing_bytes(payload: bytes) -> None:
    with pytest.raises(ValueError):
        encode_frame(payload)


def test_a_non_positive_max_frame_size_is_refused() -> None:
    with pytest.raises(ValueError):
        MllpDecoder(max_frame_size=0)


payloads = st.binary(max_size=200).filter(lambda p: START_BLOCK not in p and END_BLOCK not in p)


@st.composite
def stream_and_cuts(draw: st.DrawFn) -> tuple[list[bytes], bytes, list[int]]:
    items = draw(st.lists(payloads, max_size=8))
    data = b"".join(encode_frame(p) for p in items)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=30)))
    return items, data, cuts


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(stream_and_cuts())
def test_any_split_of_a_stream_of_frames_yields_the_same_frames(
    case: tuple[list[bytes], bytes, list[int]],
) -> None:
    items, data, cuts = case
    assert decode_all(MllpDecoder(), split(data, cuts)) == [Frame(p) for p in items]


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400).map(lambda b: b.replace(b"\x1b", b"\x0b").replace(b"\x1d", b"\x1c")),
    st.lists(st.integers(0, 400), max_size=20),
    st.integers(1, 64),
)
def test_random_bytes_never_raise_and_decode_the_same_however_split(
    data: bytes, cuts: list[int], max_frame_size: int
) -> None:
    # Framing bytes are made common so the hostile cases (nested starts, lone 0x1C) come up often.
    whole = decode_all(MllpDecoder(max_frame_size), [data])
    pieces = decode_all(MllpDecoder(max_frame_size), split(data, sorted(c for c in cuts if c <= len(data))))
    assert pieces == whole
    assert all(len(i.payload) <= max_frame_size for i in whole if isinstance(i, Frame))
    accounted = sum(len(i.payload) + 3 if isinstance(i, Frame) else i.size for i in whole)
    assert accounted <= len(data)
