"""835 parse throughput as ratios to a bare ``split`` baseline run in the same process.

Run: pytest tests/benchmarks/test_bench_835_parse.py -m benchmark -s -o pythonpath=tests
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import x12_factory as fx

from mappings.x12.balancing import check
from mappings.x12.remit835 import read_835
from mappings.x12.segments import iter_segments

CLAIMS = 10_000


@pytest.fixture(scope="module")
def file_835(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "10k.835"
    with path.open("w") as out:
        fx.write_835(out, fx.stream_remittances(CLAIMS, seed=1, per_transaction=CLAIMS))
    return path


def _best(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.benchmark
def test_reader_and_balancing_against_bare_split_and_pyx12(file_835: Path) -> None:
    data = file_835.read_bytes()

    def bare_split() -> object:
        return [s.split("*") for s in data.decode().split("~")]

    def tokenizer() -> object:
        return sum(1 for _ in iter_segments(data))

    def reader_and_balancing() -> object:
        return [check(tx) for tx in read_835(io.BytesIO(data))]

    def pyx12_segments() -> object:
        import pyx12.x12file

        logging.getLogger("pyx12").setLevel(logging.CRITICAL)
        return sum(1 for _ in pyx12.x12file.X12Reader(io.StringIO(data.decode())))

    baseline = _best(bare_split)
    rows = [
        ("bare split (baseline)", baseline),
        ("rcmhub tokenizer", _best(tokenizer)),
        ("rcmhub reader + balancing", _best(reader_and_balancing)),
        ("pyx12 4.0 segment reader", _best(pyx12_segments, runs=1)),
    ]
    print(f"\n{CLAIMS} claims, {len(data) / 1e6:.1f} MB")
    for label, seconds in rows:
        print(f"{label:28s} {seconds:7.3f} s {CLAIMS / seconds:10,.0f} claims/s {seconds / baseline:6.1f}x baseline")
    # Generous guard only: the target is 3x; this fails only on an order-of-magnitude regression.
    assert rows[2][1] < baseline * 25


@pytest.mark.benchmark
def test_pyx12_full_validation_against_the_reader(file_835: Path) -> None:
    """pyx12's x12n_document walks every segment through its map: minutes, not seconds (see remit835)."""
    import pyx12.params
    import pyx12.x12n_document

    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    reader = _best(lambda: [check(tx) for tx in read_835(file_835.read_bytes())], runs=1)
    started = time.perf_counter()
    pyx12.x12n_document.x12n_document(pyx12.params.params(), str(file_835), None, None, None)
    validation = time.perf_counter() - started
    print(f"\nreader+balancing {reader:.2f} s; pyx12 full validation {validation:.2f} s ({validation / reader:.0f}x)")
