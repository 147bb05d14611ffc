"""``rcmhub demo``: a small synthetic practice run through the real intake pipeline.

Every identifier carries a per-run tag, so the demo can run again on the same database.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from api.bootstrap import Hub
from connectors.intake import FileReport, Status
from mappings.hl7v2.er7 import segment
from router.queries import account_view, exceptions_list, remittances_list

# (family, given, payer or "" for self-pay, [(cpt, amount), ...])
PRACTICE = [
    ("RIVERA", "ANA", "ACME", [("99214", "200.00"), ("93000", "100.00")]),
    ("CHEN", "WEI", "ACME", [("99213", "120.00")]),
    ("OKAFOR", "EMEKA", "MEDICARE", [("99215", "250.00"), ("81002", "30.00"), ("36415", "15.00")]),
    ("NOVAK", "PETRA", "", [("99212", "90.00")]),
]
PATIENT_PAYMENTS = {"NOVAK": "40.00", "CHEN": "25.00"}  # CHEN's copay at the front desk; NOVAK is self-pay


def remittance_835(tag: str) -> str:
    """Two payers' 835 transactions in one interchange, as a clearinghouse delivers them.

    ACME pays RIVERA (CO-45, deductible, coinsurance, copay, with interest) and CHEN (copay), and pays a
    claim the practice never sent (unmatched); MEDICARE pays OKAFOR's visit but denies two lines (CO-50,
    CO-97), so that claim waits for staff in the exception queue.
    """
    v = [f"V-DEMO-{tag}-{i:03d}" for i in range(1, 4)]
    acme = [
        "BPR*I*286.25*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*888888888*DA*98765*20240412",
        f"TRN*1*DEMO{tag}A*1512345678", "N1*PR*ACME HEALTH PLAN", "REF*2U*ACME", "N1*PE*DEMO CLINIC*XX*1234567890",
        "LX*1",
        f"CLP*{v[0]}*1*300*150*60*12*ICN{tag}1", "NM1*QC*1*RIVERA*ANA****MI*M1", "AMT*I*1.25",
        "SVC*HC:99214*200*110**1", "CAS*CO*45*40", "CAS*PR*1*30**2*20",
        "SVC*HC:93000*100*40**1", "CAS*CO*45*50", "CAS*PR*3*10",
        f"CLP*{v[1]}*1*120*75*25*12*ICN{tag}2", "NM1*QC*1*CHEN*WEI****MI*M2",
        "SVC*HC:99213*120*75**1", "CAS*CO*45*20", "CAS*PR*3*25",
        f"CLP*DEMO-{tag}-999*1*95*60**12*ICN{tag}9", "CAS*CO*45*35", "NM1*QC*1*UNKNOWN*PAT****MI*M9",
        f"PLB*1234567890*20241231*L6:ICN{tag}1*-1.25",
    ]
    medicare = [
        "BPR*I*200*C*ACH*CCP*01*999999999*DA*123456*1999999999**01*888888888*DA*98765*20240412",
        f"TRN*1*DEMO{tag}B*1999999999", "N1*PR*MEDICARE", "REF*2U*MEDICARE", "N1*PE*DEMO CLINIC*XX*1234567890",
        "LX*1",
        f"CLP*{v[2]}*1*295*200*35*MB*ICN{tag}3", "NM1*QC*1*OKAFOR*EMEKA****MI*M3",
        "SVC*HC:99215*250*200**1", "CAS*CO*45*15", "CAS*PR*2*35",
        "SVC*HC:81002*30*0**1", "CAS*CO*50*30", "SVC*HC:36415*15*0**1", "CAS*CO*97*15",
    ]
    sets = []
    for n, body in enumerate((acme, medicare), start=1):
        segs = [f"ST*835*{n:04d}*005010X221A1", *body]
        sets += [*segs, f"SE*{len(segs) + 1}*{n:04d}"]
    isa = ("ISA*00*          *00*          *ZZ*CLEARINGHOUSE  *ZZ*DEMOCLINIC     *240412*0900*^*00501*000000001*0*T*:")
    return "~\n".join([isa, "GS*HP*CLEARINGHOUSE*DEMOCLINIC*20240412*0900*1*X*005010X221A1", *sets,
                       "GE*2*1", "IEA*1*000000001"]) + "~\n"


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
    from api.deliveries import DemoOutbound

    outbound = DemoOutbound(hub, tag)  # a local demo EMR (MLLP + FHIR) the results flow back to

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
    remit = hub.intake.ingest(remittance_835(tag).encode(), "remittance")
    steps.append(f"clearinghouse remittance (X12 835, 2 payers): {remit.count(Status.ACCEPTED)} transactions "
                 f"accepted, 999 acknowledgement built ({len(remit.ack or '')} bytes)")

    delivered, deliveries = outbound.finish()
    steps += delivered
    accounts = []
    with hub.sessions() as session:
        for account, _ in charges:
            view = account_view(session, account)
            if view is not None:
                accounts.append({k: v for k, v in view.as_json().items() if k != "entries"}
                                | {"entries": len(view.entries)})
        remits = [r for r in remittances_list(session) if str(r["trace_number"]).startswith(f"DEMO{tag}")]
        claims = [f"V-{account}" for account, _ in charges] + [f"DEMO-{tag}-999"]
        queue = [x for claim in claims for x in exceptions_list(session, claim=claim)]
    for r in remits:
        steps.append(f"  {r['payer']} TRN {r['trace_number']}: paid {r['payment_amount']} = posted {r['posted']} + "
                     f"held {r['held']} + PLB {r['plb']} ({'balanced' if r['conserved'] else 'NOT CONSERVED'})")
    for x in queue:
        steps.append(f"  exception {x['type']}: claim {x['claim']} {x['amount']} - {x['reason']}")
    total = sum((Decimal(str(a["total_balance"])) for a in accounts), Decimal("0.00"))
    return {"run": tag, "steps": steps, "accounts": accounts, "remittances": remits,
            "exceptions": [{k: x[k] for k in ("id", "type", "claim", "account", "amount", "reason", "status")}
                           for x in queue],
            "total_ar": f"{total:.2f}", "deliveries": deliveries}
