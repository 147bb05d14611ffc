"""The rcmhub CLI as users and scripts call it: exit codes, clean --json, the stable output shapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hl7_factory import Dft, Ft1

RCMHUB = shutil.which("rcmhub", path=str(Path(sys.executable).parent)) or "rcmhub"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RCMHUB, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"RCMHUB_DATA_DIR": str(tmp_path / "data"), "RCMHUB_DATABASE_URL": database_url}


def test_ingest_json_reports_each_file_and_exits_zero_when_all_accepted(tmp_path: Path, env: dict[str, str],
                                                                        uid: str) -> None:
    f = tmp_path / "batch.hl7"
    f.write_text(Dft(f"C1{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("10.00")]).er7("\n")
                 + Dft(f"C2{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("5.25")]).er7("\n"))
    result = run(["ingest", "--json", str(f)], env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    assert report["files"] == [{"file": str(f), "format": "hl7v2", "messages": 2, "accepted": 2, "rejected": 0,
                                "duplicates": 0, "errors": []}]

    shown = run(["accounts", "show", f"A{uid}", "--json"], env)
    assert shown.returncode == 0, shown.stderr
    account = json.loads(shown.stdout)
    assert {k: account[k] for k in ("account", "charges", "insurance_balance", "patient_balance",
                                    "total_balance")} == {
        "account": f"A{uid}", "charges": "15.25", "insurance_balance": "15.25", "patient_balance": "0.00",
        "total_balance": "15.25"}
    assert [(e["kind"], e["responsibility"], e["amount"], e["claim"], e["source"]) for e in account["entries"]] == [
        ("charge", "insurance", "10.00", f"V{uid}", f"hl7:CLINIC:C1{uid}"),
        ("charge", "insurance", "5.25", f"V{uid}", f"hl7:CLINIC:C2{uid}")]


def test_ingest_exits_one_and_names_the_field_when_input_is_rejected(tmp_path: Path, env: dict[str, str],
                                                                     uid: str) -> None:
    f = tmp_path / "bad.hl7"
    f.write_text(Dft(f"C{uid}", f"A{uid}", lines=[Ft1("abc")]).er7())
    g = tmp_path / "garbage.bin"
    g.write_bytes(b"\x00\x01 definitely not a message")
    result = run(["ingest", "--json", str(f), str(g)], env)
    assert result.returncode == 1
    files = json.loads(result.stdout)["files"]
    assert files[0]["errors"] == [{"message": 1, "control_id": f"C{uid}", "location": "FT1[5]-11",
                                   "reason": "'abc' is not a number"}]
    assert files[1]["format"] == "unknown" and files[1]["rejected"] == 1


def test_usage_errors_exit_two(env: dict[str, str]) -> None:
    assert run(["ingest", "/no/such/file.hl7"], env).returncode == 2
    assert run(["accounts"], env).returncode == 2
    assert run(["no-such-command"], env).returncode == 2


def test_unknown_account_exits_one_with_a_reason(env: dict[str, str]) -> None:
    result = run(["accounts", "show", "NOPE-404", "--json"], env)
    assert result.returncode == 1
    assert "no account 'NOPE-404'" in result.stderr
    assert result.stdout == ""


def test_db_upgrade_creates_the_schema_on_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = run(["db", "upgrade"], {"RCMHUB_DATABASE_URL": url, "RCMHUB_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fresh.db").exists()


SAMPLES_835 = Path(__file__).parents[1] / "samples" / "x12_835"


def test_era_check_prints_the_balancing_verdict_per_transaction_without_posting(env: dict[str, str]) -> None:
    good = SAMPLES_835 / "linuxforhealth-x12/managed-care.835"
    bad = SAMPLES_835 / "linuxforhealth-x12/tertiary-payment.835"
    result = run(["era", "check", "--json", str(good), str(bad)], env)
    assert result.returncode == 1  # one transaction does not balance
    txs = json.loads(result.stdout)["transactions"]
    keys = {"control_number", "payer", "payee", "trace_number", "payment_amount", "claim_count", "claim_paid_total",
            "plb_total", "balanced", "errors"}
    assert all(keys <= set(t) for t in txs)
    assert [(t["payment_amount"], t["claim_count"], t["balanced"]) for t in txs] == [("945.00", 2, True),
                                                                                     ("187.50", 1, False)]
    assert any(e["rule"] == "835/svc-balance" and e["severity"] == "error" for e in txs[1]["errors"])
    assert run(["era", "check", "--json", str(good)], env).returncode == 0


def test_exceptions_list_json_shows_what_was_not_posted(tmp_path: Path, env: dict[str, str]) -> None:
    env = {**env, "RCMHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'own.db'}"}  # an empty queue of its own
    raw = (SAMPLES_835 / "linuxforhealth-x12/managed-care.835").read_bytes()
    f = tmp_path / "remit.835"
    f.write_bytes(raw)
    ingested = run(["ingest", "--json", str(f)], env)
    assert ingested.returncode == 0, ingested.stderr
    report = json.loads(ingested.stdout)["files"][0]
    assert report["format"] == "x12" and report["accepted"] == 1 and Path(report["ack"]).exists()
    listed = run(["exceptions", "list", "--json"], env)
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert [(r["type"], r["claim"], r["amount"], r["status"]) for r in rows] == [
        ("unmatched_claim", "5554555444", "450.00", "open"), ("unmatched_claim", "8765432112", "495.00", "open")]
    assert all(set(r) == {"id", "type", "claim", "account", "amount", "reason", "status"} for r in rows)
