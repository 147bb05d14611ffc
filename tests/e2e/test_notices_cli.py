"""``rcmhub notices`` and ``rcmhub collections`` as an operator runs them: a self-pay balance gets its
statement by email, the cycle runs to the collections hand-off, and the agency file is written once."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from hl7_factory import Dft, Ft1
from notify_support import smtp_server
from typer.testing import CliRunner, Result

from api.cli import app

RCMHUB = shutil.which("rcmhub", path=str(Path(sys.executable).parent)) or "rcmhub"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed entry point in its own process (~2.5 s of imports: used once)."""
    return subprocess.run([RCMHUB, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def cli(args: list[str], env: dict[str, str]) -> Result:
    """The same typer app in this process, with the same environment."""
    return CliRunner().invoke(app, args, env=env)


def test_run_due_sends_statements_and_hands_off_to_collections(tmp_path: Path, uid: str) -> None:
    # Its own SQLite database: run-due without a scope walks every account, and the shared ones are many.
    env = {"RCMHUB_DATA_DIR": str(tmp_path / "data"), "RCMHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}",
           "RCMHUB_SMTP_FROM": "billing@clinic.test", "RCMHUB_SMTP_STARTTLS": "false",
           "RCMHUB_PUBLIC_URL": "https://pay.clinic.test", "RCMHUB_PRACTICE_NAME": "Clinic"}
    account = f"A{uid}"
    msg = tmp_path / "visit.hl7"
    msg.write_text(Dft(f"C{uid}", account, visit=f"V{uid}", lines=[Ft1("64.00")]).er7("\n"))  # no IN1: self-pay
    assert cli(["ingest", str(msg)], env).exit_code == 0
    saved = cli(["notices", "contact", account, "--email", "pat@example.test", "--phone", "+15550001234",
                 "--opt-out", "sms"], env)
    assert saved.exit_code == 0, saved.output
    assert cli(["notices", "run-due", "--today", "2026-13-01"], env).exit_code == 2

    with smtp_server() as (sink, port):
        env["RCMHUB_SMTP_HOST"], env["RCMHUB_SMTP_PORT"] = "127.0.0.1", str(port)
        first = run(["notices", "run-due", "--today", "2026-05-01", "--json"], env)
        assert first.returncode == 0, first.stderr
        reports = [json.loads(first.stdout)]  # stdout is the JSON document alone
        for day in ["2026-05-31", "2026-06-30", "2026-07-30", "2026-08-29"]:
            result = cli(["notices", "run-due", "--today", day, "--json"], env)
            assert result.exit_code == 0, result.output
            reports.append(json.loads(result.stdout))
        [statement] = [m for m in sink.to("pat@example.test") if m["Subject"] == "Your statement from Clinic"]
    assert [r["steps"] for r in reports] == [{"statement": 1}, {"reminder": 1}, {"reminder": 1},
                                             {"final_notice": 1}, {"collections": 1}]
    assert [r["notices"] for r in reports] == [{"sent": 1}] * 4 + [{}]
    assert "https://pay.clinic.test/pay/" in statement.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    listed = json.loads(cli(["notices", "list", "--account", account, "--json"], env).stdout)
    assert [(n["kind"], n["channel"], n["status"], n["amount"]) for n in listed] == [
        ("statement", "email", "sent", "64.00"), ("reminder", "email", "sent", "64.00"),
        ("reminder", "email", "sent", "64.00"), ("final_notice", "email", "sent", "64.00")]  # SMS opted out
    assert "pat@example.test" not in json.dumps(listed)

    exported = cli(["collections", "export", "--dir", str(tmp_path / "agency"), "--json"], env)
    assert exported.exit_code == 0, exported.output
    out = json.loads(exported.stdout)
    assert out["placements"] == 1
    with open(out["file"], newline="") as fh:
        [row] = list(csv.DictReader(fh))
    assert (row["account"], row["balance"], row["placed_on"], row["notices_sent"]) == (account, "64.00",
                                                                                      "2026-08-29", "4")
    again = json.loads(cli(["collections", "export", "--dir", str(tmp_path / "agency"), "--json"], env).stdout)
    assert again == {"file": None, "placements": 0}
    with sqlite3.connect(tmp_path / "hub.db") as db:  # PHI left the hub: who, which batch, how many
        audited = db.execute("SELECT actor, action, message_id, detail FROM audit_log "
                             "WHERE action LIKE 'collections.%'").fetchall()
    assert [(a[1], a[2], a[3]) for a in audited] == [
        ("collections.export", Path(out["file"]).stem.removeprefix("collections-"),
         f"1 placements to {Path(out['file']).name}")]
