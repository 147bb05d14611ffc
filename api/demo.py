"""``rcmhub demo``: a small synthetic practice run through the real intake pipeline.

Every identifier carries a per-run tag, so the demo can run again on the same database.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from api.bootstrap import Hub
from connectors.intake import FileReport, Status
from mappings.hl7v2.er7 import segment
from router.queries import account_view

# (family, given, payer or "" for self-pay, [(cpt, amount), ...])
PRACTICE = [
    ("RIVERA", "ANA", "AETNA", [("99214", "200.00"), ("93000", "100.00")]),
    ("CHEN", "WEI", "BCBS", [("99213", "120.00")]),
    ("OKAFOR", "EMEKA", "MEDICARE", [("99215", "250.00"), ("81002", "30.00"), ("36415", "15.00")]),
    ("NOVAK", "PETRA", "", [("99212", "90.00")]),
]
PATIENT_PAYMENTS = {"NOVAK": "40.00", "CHEN": "25.00"}


def _dft(tag: str, n: int, account: str, family: str, given: str, payer: str,
         ft1s: list[dict[int, str]]) -> str:
    segs = [f"MSH|^~\\&|DEMOEMR|DEMOCLINIC|RCMHUB|HUB|20240315090000||DFT^P03|{tag}-{n}|P|2.5",
            "EVN|P03|20240315090000",
            segment("PID", {1: "1", 3: f"MRN-{account}", 5: f"{family}^{given}", 7: "19700101", 18: account}),
            segment("PV1", {1: "1", 2: "O", 19: f"V-{account}"})]
    segs += [segment("FT1", {1: str(i), **f}) for i, f in enumerate(ft1s, start=1)]
    if payer:
        segs.append(segment("IN1", {1: "1", 2: f"{payer}-PPO", 3: payer, 4: payer, 36: f"M-{account}"}))
    return "\r".join(segs) + "\r"


def practice_messages(tag: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(charge messages, patient payment messages) as (account, ER7 text)."""
    charges, payments = [], []
    for i, (family, given, payer, lines) in enumerate(PRACTICE, start=1):
        account = f"DEMO-{tag}-{i:03d}"
        ft1s = [{4: "20240315", 6: "CG", 7: cpt, 10: "1", 11: f"{amount}&USD", 25: cpt} for cpt, amount in lines]
        charges.append((account, _dft(tag, i, account, family, given, payer, ft1s)))
        if family in PATIENT_PAYMENTS:
            pay = [{4: "20240320", 6: "PY", 7: "CASH", 11: f"{PATIENT_PAYMENTS[family]}&USD"}]
            payments.append((account, _dft(tag, 100 + i, account, family, given, "", pay)))
    return charges, payments


def run_demo(hub: Hub) -> dict[str, object]:
    tag = secrets.token_hex(2).upper()
    charges, payments = practice_messages(tag)
    steps: list[str] = []

    def feed(label: str, messages: list[tuple[str, str]]) -> FileReport:
        report = hub.intake.ingest("".join(m for _, m in messages).encode(), label)
        steps.append(f"{label}: {report.count(Status.ACCEPTED)} accepted, {report.count(Status.DUPLICATE)} "
                     f"duplicate, {report.rejected} rejected")
        return report

    feed("EMR charges (HL7 DFT^P03)", charges)
    feed("front-desk patient payments (HL7 DFT^P03, FT1-6 PY)", payments)
    feed("the EMR resends the charges (at-least-once delivery)", charges)
    bad = charges[0][1].replace("200.00&USD", "2OO.OO&USD")
    rejected = feed("a message with a malformed amount", [(charges[0][0], bad.replace(f"{tag}-1|", f"{tag}-X|"))])
    for result in rejected.results:
        if result.status is Status.REJECTED:
            steps.append(f"  rejected at {result.location}: {result.reason}")

    accounts = []
    with hub.sessions() as session:
        for account, _ in charges:
            view = account_view(session, account)
            if view is not None:
                accounts.append({k: v for k, v in view.as_json().items() if k != "entries"}
                                | {"entries": len(view.entries)})
    total = sum((Decimal(str(a["total_balance"])) for a in accounts), Decimal("0.00"))
    return {"run": tag, "steps": steps, "accounts": accounts, "total_ar": f"{total:.2f}"}
