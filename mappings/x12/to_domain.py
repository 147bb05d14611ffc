"""835 transaction -> the router's ``Remittance`` and ``PostRemittance`` (mappings layer).

Reads TRN02/TRN03, BPR02/03/04/16, N1*PR (REF*2U) and N1*PE, CLP01-07, REF*F8, NM1*QC/IL/TT, MIA/MOA
RARCs, AMT*I, DTM*232/472, SVC01/02/03/06, REF*6R, LQ*HE, CAS and PLB. The balancing verdict comes from
``mappings.x12.balancing``; an unbalanced transaction still maps, flagged, so it is quarantined whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from mappings.x12 import model835 as x
from mappings.x12.balancing import is_balanced
from router.domain.commands import PostRemittance
from router.domain.money import fmt
from router.domain.remittance import Cas, PlbEntry, RemitClaim, RemitLine, Remittance


def payer_id(tx: x.Remittance) -> str:
    """REF*2U payer id, else TRN03 (1 + EIN), else N104, else the payer's name."""
    ref = next((r.value for r in tx.payer.references if r.qualifier == "2U"), "")
    return ref or tx.trace_payer_id or tx.payer.id or tx.payer.name


def source_id(tx: x.Remittance) -> str:
    """The payment, not the file: the same 835 under another name or envelope posts once."""
    return f"835:{payer_id(tx)}:{tx.trace_number}:{fmt(tx.payment.amount)}"


def _cas(adjustments: Sequence[x.Adjustment]) -> tuple[Cas, ...]:
    return tuple(Cas(a.group, a.reason, a.amount) for a in adjustments)


def _line(s: x.ServiceLine) -> RemitLine:
    when = next((d.value for d in s.dates if d.qualifier in ("472", "150")), None)
    original = s.original_procedure
    return RemitLine(number=s.number, code=s.procedure.code, modifiers=s.procedure.modifiers, charge=s.charge,
                     paid=s.paid, adjustments=_cas(s.adjustments), line_control=s.control_number,
                     original_code=original.code if original else None,
                     original_modifiers=original.modifiers if original else (), service_date=when,
                     remarks=s.remark_codes)


def _claim(c: x.Claim) -> RemitClaim:
    patient = c.name("QC")
    insured = c.name("IL")
    crossover = c.name("TT")
    lines = tuple(_line(s) for s in c.services)
    when = next((d.value for d in c.dates if d.qualifier in ("232", "050")), None)
    return RemitClaim(
        pcn=c.patient_control_number, status=c.status, charge=c.charge, paid=c.paid,
        patient_responsibility=c.patient_responsibility, payer_claim_number=c.payer_claim_number,
        original_reference=next((r.value for r in c.references if r.qualifier == "F8"), ""),
        patient_last=patient.last if patient else "", patient_first=patient.first if patient else "",
        member_id=(insured.id if insured else "") or (patient.id if patient else ""),
        crossover_payer=(crossover.last or crossover.id) if crossover else "",
        adjustments=_cas(c.adjustments), lines=lines, remarks=c.remark_codes, interest=c.interest,
        service_date=when or next((ln.service_date for ln in lines if ln.service_date), None), raw=c.raw)


def to_remittance(tx: x.Remittance, findings: Sequence[x.Finding]) -> Remittance:
    amount = tx.payment.amount if tx.payment.credit_debit != "D" else -tx.payment.amount
    return Remittance(
        payer_id=payer_id(tx), payer_name=tx.payer.name, payee_id=tx.payee.id, payee_name=tx.payee.name,
        trace_number=tx.trace_number, payment_amount=amount, payment_method=tx.payment.method,
        payment_date=tx.payment.date, claims=tuple(_claim(c) for c in tx.claims),
        plb=tuple(PlbEntry(a.reason, a.reference, a.amount, p.provider_id)
                  for p in tx.provider_adjustments for a in p.adjustments),
        balanced=is_balanced(findings),
        problems=tuple(f"{f.location}: {f.message}" for f in findings if f.severity is x.Severity.ERROR),
        control_number=tx.control_number)


def to_command(tx: x.Remittance, findings: Sequence[x.Finding]) -> PostRemittance:
    return PostRemittance(source_id(tx), to_remittance(tx, findings))
