"""835 balancing (mappings layer, TR3 1.10.2.1): SVC02 - ΣCAS = SVC03; CLP03 - Σclaim CAS - Σline CAS =
CLP04; ΣCLP04 - ΣPLB = BPR02 (negated when BPR03 = D). Cross-checks, warnings only: ΣPR CAS = CLP05 and
ΣAMT*I = -ΣPLB L6. A positive CAS or PLB amount reduces the payment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from mappings.x12.model835 import Adjustment, Claim, Finding, Remittance, Severity
from router.domain.money import ZERO, fmt

BALANCING_RULES = frozenset({"835/svc-balance", "835/clp-balance", "835/bpr-balance"})


def _sum(adjustments: Iterable[Adjustment], group: str | None = None) -> Decimal:
    return sum((a.amount for a in adjustments if group is None or a.group == group), ZERO)


def _unequal(
    rule: str, severity: Severity, location: str, expected: Decimal, actual: Decimal, message: str,
    segment_id: str | None, segment_in_set: int | None, element: int | None,
) -> Finding:  # fmt: skip
    return Finding(rule, severity, location, fmt(expected), fmt(actual), message, segment_id, segment_in_set, element)


def check_claim(claim: Claim, in_set: int = 0) -> list[Finding]:
    """Service- and claim-level rules plus the CLP05 cross-check; ``in_set`` is the ST position - 1."""
    findings: list[Finding] = []
    where = f"CLP {claim.patient_control_number}"
    line_cas = ZERO
    for line in claim.services:
        cas = _sum(line.adjustments)
        line_cas += cas
        if line.charge - cas != line.paid:
            findings.append(_unequal(
                "835/svc-balance", Severity.ERROR, f"{where} / SVC {line.number}", line.charge - cas,
                line.paid, f"SVC02 {fmt(line.charge)} - ΣCAS {fmt(cas)} ≠ SVC03 {fmt(line.paid)} "
                f"(segment {line.position})",
                "SVC", line.position - in_set, 3,
            ))  # fmt: skip
        if not line.procedure.code:
            findings.append(Finding(
                "835/svc01-code", Severity.WARNING, f"{where} / SVC {line.number}", "qualifier:code",
                line.procedure.qualifier, "SVC01 has no procedure code (is ISA16 the component separator?)",
                "SVC", line.position - in_set, 1,
            ))  # fmt: skip
    claim_cas = _sum(claim.adjustments)
    expected = claim.charge - claim_cas - line_cas
    if expected != claim.paid:
        findings.append(_unequal(
            "835/clp-balance", Severity.ERROR, where, expected, claim.paid,
            f"CLP03 {fmt(claim.charge)} - claim CAS {fmt(claim_cas)} - line CAS {fmt(line_cas)} "
            f"≠ CLP04 {fmt(claim.paid)} (segment {claim.position})",
            "CLP", claim.position - in_set, 4,
        ))  # fmt: skip
    patient = _sum(claim.adjustments, "PR") + sum((_sum(s.adjustments, "PR") for s in claim.services), ZERO)
    stated = claim.patient_responsibility if claim.patient_responsibility is not None else ZERO
    if patient != stated:
        findings.append(_unequal(
            "835/clp05-patient", Severity.WARNING, where, patient, stated,
            f"ΣPR CAS {fmt(patient)} ≠ CLP05 {fmt(stated)}", "CLP", claim.position - in_set, 5,
        ))  # fmt: skip
    return findings


def check(tx: Remittance) -> list[Finding]:
    """All balancing findings of one transaction, claims first, then the BPR and interest checks."""
    in_set = tx.position - 1
    findings: list[Finding] = []
    for claim in tx.claims:
        findings += check_claim(claim, in_set)
    paid, plb = tx.claim_paid_total, tx.plb_total
    bpr = tx.payment.amount if tx.payment.credit_debit != "D" else -tx.payment.amount
    if paid - plb != bpr:
        findings.append(_unequal(
            "835/bpr-balance", Severity.ERROR, f"ST {tx.control_number} / BPR", paid - plb, bpr,
            f"ΣCLP04 {fmt(paid)} - ΣPLB {fmt(plb)} ≠ BPR02 {fmt(bpr)}", "BPR", 2, 2,
        ))  # fmt: skip
    interest = sum((c.interest for c in tx.claims), ZERO)
    l6 = sum((a.amount for p in tx.provider_adjustments for a in p.adjustments if a.reason == "L6"), ZERO)
    if interest != -l6:
        findings.append(_unequal(
            "835/plb-l6-interest", Severity.WARNING, f"ST {tx.control_number} / PLB L6", interest, -l6,
            f"ΣAMT*I {fmt(interest)} ≠ -ΣPLB L6 {fmt(-l6)}", None, None, None,
        ))  # fmt: skip
    return findings


def validate(tx: Remittance) -> list[Finding]:
    """The envelope findings met while reading ``tx`` followed by its balancing findings."""
    return [*tx.findings, *check(tx)]


def is_balanced(findings: Iterable[Finding]) -> bool:
    """False when any balancing rule failed: the transaction is quarantined whole, never half-posted."""
    return not any(f.rule in BALANCING_RULES and f.severity is Severity.ERROR for f in findings)


def summary(tx: Remittance, findings: Sequence[Finding]) -> dict[str, Any]:
    """One line of ``rcmhub era check --json``; ``errors`` lists every finding with its severity."""
    return {
        "control_number": tx.control_number,
        "payer": tx.payer.name,
        "payee": tx.payee.name,
        "trace_number": tx.trace_number,
        "payment_amount": fmt(tx.payment.amount),
        "claim_count": len(tx.claims),
        "claim_paid_total": fmt(tx.claim_paid_total),
        "plb_total": fmt(tx.plb_total),
        "balanced": is_balanced(findings),
        "errors": [
            {
                "rule": f.rule,
                "severity": f.severity.value,
                "location": f.location,
                "expected": f.expected,
                "actual": f.actual,
                "message": f.message,
            }
            for f in findings
        ],
    }
