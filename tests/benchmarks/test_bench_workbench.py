"""Work queue and aging on PostgreSQL at size (issue #8): 1,000,000 ledger entries (100,000 claims of 40,000
accounts) and 50,000 open exceptions (plus 10,000 resolved), in a database of its own. Measured server-side
(the query function, and the whole request through the ASGI app with a logged-in session: auth, query, JSON or
HTML rendering), p50/p95, beside a bare SQL query of the same rows in the same run (psycopg cursor, no ORM).
Targets: work-queue first page p95 <= 100 ms, aging <= 1 s. Run:
    pytest tests/benchmarks/test_bench_workbench.py -m benchmark -s

Measured 2026-11-27 on the shared 2-core box, load average ~7 (3.4 per core; other suites running): page JSON
p50 7.2 / p95 15.5 ms, HTML p50 11.4 / p95 28.2 ms, beside the bare SQL of the same 51 rows p50 0.8 / p95 4.5 ms;
aging as served p50 1.26 s / p95 2.32 s, aging() p50 1.97 s, beside the bare per-claim group-by p50 0.97 s /
p95 1.08 s (2.0x). On a quieter moment the same code ran aging in 0.8-1.0 s beside a bare 0.45-0.6 s. Under
load even the bare scan misses 1 s, so the absolute targets are asserted only on a quiet machine.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from auth_support import staff_client
from fresh_db import fresh_database
from sqlalchemy import Engine

from api.bootstrap import Hub, build
from api.settings import Settings
from router.ar import aging
from router.workqueue import QueueFilter, work_queue

ACCOUNTS, CLAIMS, OPEN, RESOLVED = 40_000, 100_000, 50_000, 10_000
AS_OF = date(2026, 6, 30)
TYPES = ("unmatched_claim", "unmatched_line", "charge_mismatch", "denial", "credit_balance",
         "reversal_without_original", "secondary_before_primary", "unlinked_plb", "unbalanced_remittance", "duplicate")
PAYERS = ("ACME", "BLUE", "CIGNA", "DELTA", "EAST")


def _copy(engine: Engine, table: str, columns: tuple[str, ...], rows: Iterator[tuple[object, ...]]) -> None:
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def seed(engine: Engine) -> int:
    rng = random.Random(8)
    now = datetime.now(UTC)
    _copy(engine, "accounts", ("id", "number", "guarantor", "created_at"),
          ((i, f"BA{i:07d}", "", now) for i in range(1, ACCOUNTS + 1)))
    _copy(engine, "patients", ("id", "mrn", "account_id", "family", "given", "birth_date"),
          ((i, f"BM{i:07d}", i, f"FAM{i % 997}", "PAT", date(1970, 1, 1)) for i in range(1, ACCOUNTS + 1)))
    _copy(engine, "coverages", ("id", "account_id", "sequence", "payer_id", "payer_name", "member_id", "group_number",
                                "plan"),
          ((i, i, 1, PAYERS[i % 5], f"{PAYERS[i % 5]} HEALTH", f"M{i}", "G", "P") for i in range(1, ACCOUNTS + 1)))
    claims = [(c, 1 + c % ACCOUNTS, AS_OF - timedelta(days=rng.randint(0, 240))) for c in range(1, CLAIMS + 1)]
    _copy(engine, "claims", ("id", "key", "account_id", "patient_id", "created_at"),
          ((c, f"BC{c:08d}", a, a, now) for c, a, _ in claims))
    _copy(engine, "claim_keys", ("key", "claim_id", "normalized"),
          ((f"BC{c:08d}", c, f"BC{c:08d}") for c, _, _ in claims))
    _copy(engine, "charge_lines", ("id", "claim_id", "line_no", "service_date", "code", "modifiers", "units",
                                   "amount_cents", "line_control", "description", "diagnoses", "performer",
                                   "entry_key"),
          ((2 * c + n, c, n + 1, dos, "99213", "", "1", 10_000 + n * 5_000, None, "", "", "", f"seed:{c}:charge:{n}")
           for c, _, dos in claims for n in range(2)))

    def entries() -> Iterator[tuple[object, ...]]:
        n = 0
        cols = ("insurance", "patient")
        for c, a, dos in claims:
            paid_on = dos + timedelta(days=20)
            legs = [("charge", cols[0], 10_000, dos), ("charge", cols[0], 15_000, dos),
                    ("insurance_payment", cols[0], -6_000, paid_on), ("insurance_payment", cols[0], -9_000, paid_on),
                    ("contractual_adjustment", cols[0], -2_000, paid_on),
                    ("contractual_adjustment", cols[0], -3_000, paid_on),
                    ("transfer_to_patient", cols[0], -1_000, paid_on), ("transfer_to_patient", cols[1], 1_000, paid_on),
                    ("transfer_to_patient", cols[0], -1_500, paid_on), ("transfer_to_patient", cols[1], 1_500, paid_on)]
            for kind, resp, cents, when in legs:
                n += 1
                yield (n, a, c, None, kind, resp, cents, f"seed:{c}", f"seed:{c}:{n}", when, now,
                       PAYERS[a % 5] if resp == "insurance" and kind != "charge" else None,
                       1 if kind == "insurance_payment" else None)

    _copy(engine, "ledger_entries", ("id", "account_id", "claim_id", "line_no", "kind", "responsibility",
                                     "amount_cents", "source_id", "idempotency_key", "effective_date", "posted_at",
                                     "payer", "coverage_seq"), entries())

    def exceptions() -> Iterator[tuple[object, ...]]:
        for x in range(1, OPEN + RESOLVED + 1):
            status = "open" if x <= OPEN else "resolved"
            claim = rng.randint(1, CLAIMS)
            yield (x, f"seed:x{x}", TYPES[x % len(TYPES)], status, f"BC{claim:08d}", f"BA{1 + claim % ACCOUNTS:07d}",
                   PAYERS[x % 5], rng.randint(0, 500_000), x % 3 == 0, "seeded exception", "[]", None, 1,
                   now - timedelta(minutes=rng.randint(0, 60 * 24 * 180)))

    _copy(engine, "exceptions", ("id", "idempotency_key", "type", "status", "claim_key", "account", "payer",
                                 "amount_cents", "held", "reason", "candidates", "assignee", "version", "created_at"),
          exceptions())
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM ledger_entries").scalar_one())


def _times(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm: plans cached, pages in memory, as in a running server
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _p(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), q[18]


@pytest.fixture
def big_hub(tmp_path: Path) -> Iterator[Hub]:
    with fresh_database("postgresql", tmp_path) as url:
        hub = build(Settings(database_url=url, data_dir=tmp_path, amqp_url=""))
        try:
            yield hub
        finally:
            hub.close()


@pytest.mark.benchmark
@pytest.mark.timeout(1800)
def test_work_queue_first_page_and_aging_at_size(big_hub: Hub) -> None:
    started = time.perf_counter()
    assert seed(big_hub.engine) == 1_000_000
    print(f"\nseeded 1,000,000 ledger entries, {OPEN:,} open exceptions in {time.perf_counter() - started:.1f} s")
    client = staff_client(big_hub, "billing")

    def bare_page() -> object:
        with big_hub.engine.connect() as conn:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cur.execute("SELECT id, type, status, payer, claim_key, account, amount_cents, held, reason, assignee, "
                        "version, created_at, candidates FROM exceptions WHERE status = 'open' "
                        "ORDER BY created_at, id LIMIT 51")
            return cur.fetchall()

    def query_page() -> object:
        with big_hub.sessions() as s:
            page = work_queue(s, QueueFilter())
        assert len(page.items) == 50 and page.has_next
        return page

    def json_page() -> object:
        response = client.get("/api/v1/workqueue")
        assert response.status_code == 200
        return response

    def html_page() -> object:
        response = client.get("/ui/workqueue")
        assert response.status_code == 200
        return response

    def filtered_page() -> object:
        response = client.get("/api/v1/workqueue", params={"type": "denial", "payer": "ACME", "min_amount": "1000",
                                                          "sort": "amount_desc"})
        assert response.status_code == 200
        return response

    def bare_aging() -> object:
        with big_hub.engine.connect() as conn:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cur.execute("SELECT claim_id, responsibility, sum(amount_cents) FROM ledger_entries "
                        "WHERE claim_id IS NOT NULL GROUP BY claim_id, responsibility")
            return cur.fetchall()

    def query_aging() -> object:
        with big_hub.sessions() as s:
            report = aging(s, AS_OF, 500)  # as the endpoint serves it (the CSV has every row)
        assert report["by_payer"] and len(report["by_patient"]) == 500
        return report

    def http_aging() -> object:
        response = client.get("/api/v1/ar/aging", params={"as_of": f"{AS_OF}"})
        assert response.status_code == 200
        return response

    rows = []
    results = {}
    for name, fn, runs in (("page: bare SQL (51 rows)", bare_page, 60), ("page: work_queue()", query_page, 60),
                           ("page: GET /api/v1/workqueue", json_page, 60), ("page: GET /ui/workqueue", html_page, 60),
                           ("page: filtered + sorted JSON", filtered_page, 60),
                           ("aging: bare SQL group by claim", bare_aging, 7), ("aging: aging()", query_aging, 7),
                           ("aging: GET /api/v1/ar/aging", http_aging, 7)):
        p50, p95 = _p(_times(fn, runs))
        results[name] = (p50, p95)
        rows.append(f"{name:<34} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms")
    print("\n".join(rows))
    bare50 = results["page: bare SQL (51 rows)"][0]
    bare_aging50 = results["aging: bare SQL group by claim"][0]
    print(f"JSON page / bare SQL p50: {results['page: GET /api/v1/workqueue'][0] / bare50:.1f}x; "
          f"aging() / bare group-by p50: {results['aging: aging()'][0] / bare_aging50:.1f}x")
    aging_p95 = results["aging: GET /api/v1/ar/aging"][1]
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    print(f"targets: page p95 <= 100 ms: {'met' if results['page: GET /api/v1/workqueue'][1] <= 100 else 'MISSED'} "
          f"(JSON), {'met' if results['page: GET /ui/workqueue'][1] <= 100 else 'MISSED'} (HTML); "
          f"aging p95 <= 1000 ms: {'met' if aging_p95 <= 1000 else 'MISSED'} ({aging_p95:.0f} ms; the bare group-by "
          f"alone took {results['aging: bare SQL group by claim'][1]:.0f} ms p95); load average per core {load:.1f}")
    # Absolute times follow the machine (a shared 2-core box): the targets are asserted when it is quiet, the
    # ratios to the same-run baselines always.
    assert results["page: GET /api/v1/workqueue"][0] <= 5 * bare50 + 10
    assert results["aging: aging()"][0] <= 3.5 * bare_aging50
    if load < 1.0:
        assert results["page: GET /api/v1/workqueue"][1] <= 100 and results["page: GET /ui/workqueue"][1] <= 100
        assert aging_p95 <= 1000
