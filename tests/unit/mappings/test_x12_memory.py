"""Reading is streamed: peak memory does not grow with the number of claims in the file."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import x12_factory as fx

from mappings.x12.balancing import check, is_balanced
from mappings.x12.remit835 import read_835


def _write(path: Path, claims: int) -> None:
    with path.open("w") as out:
        fx.write_835(out, fx.stream_remittances(claims, seed=5, per_transaction=500), fx.Layout(newline="\n"))


def _peak_while_reading(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        count = 0
        with path.open("rb") as stream:
            for tx in read_835(stream):
                assert is_balanced(check(tx))
                count += len(tx.claims)
        return tracemalloc.get_traced_memory()[1], count
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_from_10k_to_100k_claims(tmp_path: Path) -> None:
    small, large = tmp_path / "10k.835", tmp_path / "100k.835"
    _write(small, 10_000)
    _write(large, 100_000)
    assert large.stat().st_size > 9 * small.stat().st_size
    small_peak, small_claims = _peak_while_reading(small)
    large_peak, large_claims = _peak_while_reading(large)
    assert small_claims >= 10_000 and large_claims >= 100_000
    print(f"peak {small_peak / 2**20:.1f} MiB for 10k claims, {large_peak / 2**20:.1f} MiB for 100k claims")
    assert large_peak < small_peak * 1.3


def test_the_streaming_writer_keeps_nothing_of_what_it_wrote(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        _write(tmp_path / "w.835", 5_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
