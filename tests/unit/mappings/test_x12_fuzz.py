"""Hostile input: only DecodeError or MappingError leave the reader, and quickly."""

from __future__ import annotations

import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.x12.ack999 import build_999
from mappings.x12.balancing import check, summary
from mappings.x12.remit835 import read_835, scan_835
from router.domain.errors import DecodeError, MappingError

SAMPLES = sorted((Path(__file__).parents[2] / "samples" / "x12_835").rglob("*.*"))
BLOBS = [p.read_bytes() for p in SAMPLES if p.is_file()]
DELIMS = b"*~:^>|\r\n0123456789.-ISAGSEIEAGECLPSVCCASPLB"


def _consume(data: bytes) -> None:
    """Everything a caller does with a file: scan, balance, summarise, acknowledge, strict read."""
    started = time.perf_counter()
    try:
        results = list(scan_835(data))
        for r in results:
            if r.remittance is not None:
                summary(r.remittance, check(r.remittance))
        if results:
            from datetime import datetime

            build_999(results, interchange_control=1, when=datetime(2024, 1, 1))
        list(read_835(data))
    except (DecodeError, MappingError):
        pass
    assert time.perf_counter() - started < 2.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_decode_or_mapping_errors(data: bytes) -> None:
    _consume(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(BLOBS))),
    st.lists(
        st.tuples(st.integers(0, 3000), st.integers(0, 3), st.sampled_from(list(DELIMS)) | st.integers(0, 255)),
        min_size=1, max_size=6,
    ),
)  # fmt: skip
def test_mutated_samples_only_raise_decode_or_mapping_errors(which: int, edits: list[tuple[int, int, int]]) -> None:
    data = bytearray(BLOBS[which])
    for at, op, byte in edits:
        at %= len(data) + 1
        if op == 0:
            data[at:at] = bytes([byte])  # insert
        elif op == 1:
            del data[at : at + 1 + byte % 8]  # delete a run
        elif op == 2 and at < len(data):
            data[at] = byte  # replace
        else:
            data[at:at] = data[at : at + 40]  # duplicate a stretch
    _consume(bytes(data))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(range(len(BLOBS))), st.integers(0, 3000))
def test_truncated_samples_only_raise_decode_or_mapping_errors(which: int, cut: int) -> None:
    _consume(BLOBS[which][: cut % (len(BLOBS[which]) + 1)])
