"""Reading is streamed: peak memory does not grow with the number of claims in the file.

Peak RSS (``ru_maxrss``) of a fresh interpreter that reads and balances the file from disk, for 10,000
and for 100,000 claims: a reader that kept claims or transactions would need ~10x the memory for the
larger file. (The former tracemalloc version took ~2.5 min; this one ~30 s.) One 835 transaction set is
held whole by design - it posts atomically - so the factory writes 500 claims per transaction; a single
100,000-claim transaction set would, correctly, take memory in proportion to its size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import x12_factory as fx

ROOT = Path(__file__).parents[3]
_READ = """
import json, resource, sys
from mappings.x12.balancing import check, is_balanced
from mappings.x12.remit835 import read_835
claims = 0
with open(sys.argv[1], "rb") as stream:
    for tx in read_835(stream):
        assert is_balanced(check(tx))
        claims += len(tx.claims)
print(json.dumps({"claims": claims, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _write(path: Path, claims: int) -> None:
    with path.open("w") as out:
        fx.write_835(out, fx.stream_remittances(claims, seed=5, per_transaction=500), fx.Layout(newline="\n"))


def _peak_rss_while_reading(path: Path) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", _READ, str(path)], cwd=ROOT, capture_output=True, text=True,
                          check=True, timeout=240)
    result = json.loads(done.stdout)
    return result["peak_kib"], result["claims"]


def test_memory_stays_flat_from_10k_to_100k_claims(tmp_path: Path) -> None:
    small, large = tmp_path / "10k.835", tmp_path / "100k.835"
    _write(small, 10_000)
    _write(large, 100_000)
    assert large.stat().st_size > 9 * small.stat().st_size
    small_peak, small_claims = _peak_rss_while_reading(small)
    large_peak, large_claims = _peak_rss_while_reading(large)
    assert small_claims >= 10_000 and large_claims >= 100_000
    print(f"peak RSS {small_peak / 1024:.1f} MiB for 10k claims, {large_peak / 1024:.1f} MiB for 100k claims")
    assert large_peak < small_peak * 1.15


def test_the_streaming_writer_keeps_nothing_of_what_it_wrote(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        _write(tmp_path / "w.835", 5_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
