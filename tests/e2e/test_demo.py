"""``rcmhub demo`` runs a synthetic practice through the real pipeline and the numbers tie out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RCMHUB = str(Path(sys.executable).parent / "rcmhub")


def test_demo_posts_charges_payments_and_a_remittance_and_leaves_two_exceptions(tmp_path: Path) -> None:
    env = {**os.environ, "RCMHUB_DATA_DIR": str(tmp_path)}
    result = subprocess.run([RCMHUB, "demo", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    demo = json.loads(result.stdout)
    balances = [(a["charges"], a["insurance_balance"], a["patient_balance"]) for a in demo["accounts"]]
    assert balances == [("300.00", "0.00", "60.00"),  # paid, CO-45 written off, 60 to the patient
                        ("120.00", "0.00", "0.00"),  # the copay collected at the desk settles the PR
                        ("295.00", "295.00", "0.00"),  # denied lines: the claim waits for staff
                        ("90.00", "0.00", "50.00")]  # self-pay, 40 paid
    assert sorted(x["type"] for x in demo["exceptions"]) == ["denial", "unmatched_claim"]
    assert all(r["conserved"] for r in demo["remittances"]) and len(demo["remittances"]) == 2
    assert demo["total_ar"] == "405.00"
    again = subprocess.run([RCMHUB, "demo", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and json.loads(again.stdout)["run"] != demo["run"]  # runs again on the same data
