"""Builds workbench situations through the real pipeline (import from tests): a billed claim, and 835s that
leave it unmatched (a mangled CLP01 whose best candidate scores 85), denied, or overpaid.

    case = unmatched_case(hub, uid)   # -> Case(account, claim, exception id/version, paid, co, pr)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import text
from x12_factory import Cas, ClaimSpec, LineSpec, RemittanceSpec, render_835

from api.bootstrap import Hub
from router.domain.commands import PostCharges
from router.domain.model import ChargeLine, Coverage, Patient
from router.queries import account_balances

SERVICE = date(2024, 3, 2)  # one day after the 835's DTM*472, so the fuzzy score stays below 90


@dataclass(frozen=True)
class Case:
    account: str
    claim: str
    exception_id: int
    version: int
    paid: Decimal
    co: Decimal
    pr: Decimal
    trace: str


def bill(hub: Hub, uid: str, *, suffix: str = "", lines: tuple[tuple[str, str], ...] = (("99213", "100.00"),
                                                                                        ("85025", "50.00"))) -> str:
    """Post one claim ``V{uid}{suffix}`` for account ``A{uid}`` with a primary coverage (member ``MX{uid}{suffix}``)."""
    account, claim = f"A{uid}", f"V{uid}{suffix}"
    charges = tuple(ChargeLine(n, SERVICE, code, Decimal(amount)) for n, (code, amount) in enumerate(lines, 1))
    assert hub.local_bus is not None
    patient = Patient(f"MRN{uid}", family(uid), "JANE")
    hub.local_bus.handle(PostCharges(f"test:{claim}", account, claim, patient, charges,
                                     coverages=(Coverage(1, "99999", "ACME HEALTH", f"MX{uid}{suffix}"),)))
    return claim


def family(uid: str) -> str:
    """A last name of this test's own: on a shared database the matcher's name search must find only ours."""
    return f"ZED{uid}"


def remit(hub: Hub, claim: ClaimSpec, trace: str, uid: str) -> None:
    text_835 = render_835([RemittanceSpec((claim,), trace_number=trace, control_number=trace[-4:])])
    data = text_835.replace("NM1*QC*1*DOE*JANE*", f"NM1*QC*1*{family(uid)}*JANE*").encode()
    report = hub.intake.ingest(data, f"{trace}.835")
    assert not report.rejected, report.as_json()


def exception_of(hub: Hub, trace: str, kind: str) -> tuple[int, int]:
    with hub.sessions() as s:
        row = s.execute(text("SELECT x.id, x.version FROM exceptions x JOIN remittances r ON r.id = x.remittance_id "
                             "WHERE r.trace_number = :t AND x.type = :k"), {"t": trace, "k": kind}).one()
    return int(row[0]), int(row[1])


def paid_claim(pcn: str, icn: str) -> tuple[ClaimSpec, Decimal, Decimal, Decimal]:
    d = Decimal
    lines = (LineSpec("99213", d("100.00"), (Cas("CO", "45", d("20.00")), Cas("PR", "2", d("16.00")))),
             LineSpec("85025", d("50.00"), (Cas("CO", "45", d("10.00")), Cas("PR", "2", d("8.00")))))
    spec = ClaimSpec(pcn, lines, payer_claim_number=icn)
    return spec, spec.paid, Decimal("30.00"), Decimal("24.00")


def unmatched_case(hub: Hub, uid: str) -> Case:
    """A claim billed as V{uid}; the payer sends it back as X{uid} (not a key we sent): held, unmatched."""
    claim = bill(hub, uid)
    spec, paid, co, pr = paid_claim(f"X{uid}", f"I{uid}")
    trace = f"U{uid}"
    remit(hub, spec, trace, uid)
    exception_id, version = exception_of(hub, trace, "unmatched_claim")
    return Case(f"A{uid}", claim, exception_id, version, paid, co, pr, trace)


def denied_case(hub: Hub, uid: str, suffix: str = "D") -> Case:
    """A claim the payer denied (CO-50 on both lines, nothing paid): held as a denial on its matched claim."""
    claim = bill(hub, uid, suffix=suffix)
    lines = (LineSpec("99213", Decimal("100.00"), (Cas("CO", "50", Decimal("100.00")),)),
             LineSpec("85025", Decimal("50.00"), (Cas("CO", "50", Decimal("50.00")),)))
    trace = f"D{uid}{suffix}"
    remit(hub, ClaimSpec(claim, lines, payer_claim_number=f"I{uid}{suffix}"), trace, uid)
    exception_id, version = exception_of(hub, trace, "denial")
    return Case(f"A{uid}", claim, exception_id, version, Decimal(0), Decimal(0), Decimal(0), trace)


def partly_denied_case(hub: Hub, uid: str, suffix: str = "PD") -> Case:
    """One line paid (64.00 after CO-45 20.00 and PR-2 16.00), the other denied (CO-50, nothing paid): the
    whole claim is held as a denial, and with it the 64.00 the payer paid."""
    claim = bill(hub, uid, suffix=suffix)
    d = Decimal
    lines = (LineSpec("99213", d("100.00"), (Cas("CO", "45", d("20.00")), Cas("PR", "2", d("16.00")))),
             LineSpec("85025", d("50.00"), (Cas("CO", "50", d("50.00")),)))
    trace = f"PD{uid}{suffix}"
    remit(hub, ClaimSpec(claim, lines, payer_claim_number=f"I{uid}{suffix}"), trace, uid)
    exception_id, version = exception_of(hub, trace, "denial")
    return Case(f"A{uid}", claim, exception_id, version, d("64.00"), d("70.00"), d("16.00"), trace)


def overpaid_case(hub: Hub, uid: str, suffix: str = "O") -> Case:
    """A claim paid twice by two remittances: the second leaves an insurance credit balance of ``paid``."""
    claim = bill(hub, uid, suffix=suffix)
    spec, paid, co, pr = paid_claim(claim, f"I{uid}{suffix}")
    remit(hub, spec, f"P{uid}{suffix}", uid)
    remit(hub, ClaimSpec(claim, spec.lines, payer_claim_number=f"J{uid}{suffix}"), f"Q{uid}{suffix}", uid)
    exception_id, version = exception_of(hub, f"Q{uid}{suffix}", "credit_balance")
    return Case(f"A{uid}", claim, exception_id, version, paid, co, pr, f"Q{uid}{suffix}")


def balances(hub: Hub, account: str) -> tuple[Decimal, Decimal]:
    with hub.sessions() as s:
        found = account_balances(s, account)
    assert found is not None
    return found.insurance, found.patient
