"""The X12 tokenizer: separators from ISA, presentation newlines, hostile input -> DecodeError only."""

from __future__ import annotations

import contextlib
import io
import random

import pytest
import x12_factory as fx
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.x12.segments import SegmentReader, iter_segments, parse_isa_separators
from router.domain.errors import DecodeError

SPEC = fx.random_remittance(random.Random(3), claims=5)


def _ids(data: bytes, **kw: int) -> list[tuple[str, tuple[str, ...]]]:
    return [(s.id, s.elements) for s in iter_segments(data, **kw)]


@pytest.mark.parametrize(
    "layout",
    [
        fx.Layout(),
        fx.Layout(newline="\n"),
        fx.Layout(newline="\r\n"),
        fx.Layout(element="|", component="^", segment="\n", repetition="{"),
        fx.Layout(element="!", component=">", segment="'", repetition="}", newline="\r\n"),
        fx.Layout(element="\x1d", component="\x1f", segment="\x1e", repetition="\x1c"),
    ],
)
def test_custom_separators_and_newlines_give_the_same_segments(layout: fx.Layout) -> None:
    plain = _ids(fx.render_835([SPEC]).encode())
    text = fx.render_835([SPEC], layout).encode()
    reader = SegmentReader(text)
    # ISA names the separators and composites use the component separator; everything else is equal.
    segments = [(s.id, tuple(e.replace(layout.component, ":") for e in s.elements)) for s in reader]
    assert segments[1:] == plain[1:]
    assert reader.separators is not None
    assert (reader.separators.element, reader.separators.component, reader.separators.segment) == (
        layout.element, layout.component, layout.segment,
    )  # fmt: skip


def test_chunk_size_does_not_change_the_segments() -> None:
    data = fx.render_835([SPEC], fx.Layout(newline="\r\n")).encode()
    whole = _ids(data)
    for size in (1, 2, 7, 105, 106, 107, 4096):
        assert _ids(data, chunk_size=size) == whole
    assert [(s.id, s.elements) for s in iter_segments(io.BytesIO(data), chunk_size=3)] == whole


def test_positions_count_segments_from_one() -> None:
    segments = list(iter_segments(fx.render_835([SPEC]).encode()))
    assert [s.position for s in segments] == list(range(1, len(segments) + 1))
    assert segments[0].id == "ISA" and segments[-1].id == "IEA"


def test_leading_bom_and_whitespace_are_tolerated() -> None:
    data = fx.render_835([SPEC]).encode()
    assert _ids(b"\xef\xbb\xbf \r\n" + data) == _ids(data)


def test_a_4010_isa11_standards_id_is_not_a_repetition_separator() -> None:
    isa = "ISA*00*          *00*          *ZZ*A              *ZZ*B              *090220*1816*U*00401*000003447*1*P*:~"
    seps = parse_isa_separators(isa, 1)
    assert seps.repetition is None and seps.component == ":" and seps.segment == "~"


def test_a_second_interchange_may_use_other_separators() -> None:
    first = fx.render_835([SPEC])
    second = fx.render_835([SPEC], fx.Layout(element="|", component=":", segment="\n", repetition="{"))
    ids = _ids((first + "\r\n" + second).encode(), chunk_size=50)
    assert [i for i, _ in ids].count("ISA") == 2
    assert ids[1 : len(ids) // 2] == ids[len(ids) // 2 + 1 :]


def test_a_file_starting_at_st_without_isa_is_rejected_with_the_reason() -> None:
    with pytest.raises(DecodeError) as err:
        list(iter_segments(b"ST*835*1234~BPR*I*1*C*CHK~SE*3*1234~"))
    assert err.value.location == "segment 1 (ST)"
    assert "no ISA" in err.value.reason


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"ISA*00*", "truncated ISA"),
        (b"ISA*00*          *00*          *ZZ*A              *ZZ*B              *0902", "truncated ISA"),
        (b"HELLO WORLD" * 100, "expected an ISA"),
        (b"ISA" + b"*A" * 16 + b"~", "letter, digit or space"),
        (b"\xff\xfe\x00I\x00S\x00A", "UTF-8"),
    ],
)
def test_malformed_headers_raise_decode_error_with_the_reason(data: bytes, words: str) -> None:
    with pytest.raises(DecodeError, match=words):
        list(iter_segments(data))


def test_a_missing_final_terminator_is_reported_at_its_segment() -> None:
    data = fx.render_835([SPEC]).encode()[:-1]
    with pytest.raises(DecodeError, match="missing terminator") as err:
        list(iter_segments(data))
    assert err.value.location is not None and err.value.location.startswith("segment ")


def test_a_segment_without_terminator_for_megabytes_is_refused_early() -> None:
    isa = fx.render_835([SPEC]).split("~")[0] + "~"
    data = isa.encode() + b"GS*" + b"A" * 5_000_000
    with pytest.raises(DecodeError, match="no segment terminator"):
        list(iter_segments(data))


@settings(max_examples=300, deadline=2000)
@given(st.binary(max_size=3000))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        list(iter_segments(data, chunk_size=64))


@settings(max_examples=300, deadline=2000)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=2000))
def test_random_bytes_spliced_into_a_valid_file_raise_only_decode_error(junk: bytes, at: int) -> None:
    data = fx.render_835([SPEC]).encode()
    with contextlib.suppress(DecodeError):
        list(iter_segments(data[:at] + junk + data[at:], chunk_size=97))
