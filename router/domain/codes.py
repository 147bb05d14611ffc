"""Versioned code tables (CARC, RARC, CLP02, CAS group, PLB) with human descriptions and validity dates.

CARC/RARC lists change three times a year (X12/WPC); codes are kept with start/stop dates so an old
remittance is read with the table in force on its date. Unknown codes are reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Code:
    code: str
    description: str
    start: date = date(2000, 1, 1)
    stop: date | None = None

    def valid_on(self, when: date) -> bool:
        return self.start <= when and (self.stop is None or when < self.stop)


def _table(*rows: tuple[str, str] | tuple[str, str, date, date | None]) -> dict[str, Code]:
    return {r[0]: Code(*r) for r in rows}


CLAIM_STATUS = _table(
    ("1", "Processed as primary"), ("2", "Processed as secondary"), ("3", "Processed as tertiary"),
    ("4", "Denied (patient/subscriber not recognised, claim not forwarded)"),
    ("19", "Processed as primary, forwarded to additional payer(s)"),
    ("20", "Processed as secondary, forwarded to additional payer(s)"),
    ("21", "Processed as tertiary, forwarded to additional payer(s)"),
    ("22", "Reversal of previous payment"), ("23", "Not our claim, forwarded to additional payer(s)"),
    ("25", "Predetermination pricing only - no payment"),
)
GROUPS = _table(
    ("CO", "Contractual obligation"), ("PR", "Patient responsibility"), ("OA", "Other adjustment"),
    ("PI", "Payer initiated reduction"),
    ("CR", "Correction and reversal (4010 only)", date(2000, 1, 1), date(2012, 1, 1)),
)
CARC = _table(
    ("1", "Deductible amount"), ("2", "Coinsurance amount"), ("3", "Co-payment amount"),
    ("4", "Procedure code inconsistent with the modifier used"),
    ("16", "Claim/service lacks information or has submission/billing error(s)"),
    ("18", "Exact duplicate claim/service"), ("22", "May be covered by another payer (coordination of benefits)"),
    ("23", "Impact of prior payer(s) adjudication including payments and/or adjustments"),
    ("24", "Charges covered under a capitation agreement"), ("26", "Expenses incurred prior to coverage"),
    ("27", "Expenses incurred after coverage terminated"), ("29", "The time limit for filing has expired"),
    ("45", "Charge exceeds fee schedule/maximum allowable or contracted/legislated fee arrangement"),
    ("50", "Non-covered: not deemed a medical necessity by the payer"),
    ("59", "Processed based on multiple or concurrent procedure rules"),
    ("96", "Non-covered charge(s)"), ("97", "Payment included in the allowance for another service"),
    ("109", "Claim/service not covered by this payer/contractor"), ("119", "Benefit maximum reached"),
    ("144", "Incentive adjustment"), ("151", "Payment adjusted: frequency not supported by the information"),
    ("197", "Precertification/authorization/notification absent"),
    ("204", "Service not covered under the patient's current benefit plan"),
    ("242", "Services not provided by network/primary care providers"),
    ("253", "Sequestration - reduction in federal payment"), ("A1", "Claim/service denied"),
)
RARC = _table(
    ("MA15", "Your claim has been separated to expedite handling"),
    ("MA01", "Alert: if you do not agree with what we approved, you may appeal"),
    ("M15", "Separately billed services/tests have been bundled"), ("N130", "Consult plan benefit documents"),
    ("N381", "Consult our contractual agreement for restrictions/billing/payment information"),
)
PLB = _table(
    ("L6", "Interest owed"), ("WO", "Overpayment recovery"), ("FB", "Forwarding balance"),
    ("72", "Authorized return"), ("CS", "Adjustment"), ("B2", "Rebate"), ("50", "Late charge"),
    ("51", "Interest penalty charge"), ("90", "Early payment allowance"), ("E3", "Withholding"),
    ("IR", "Internal Revenue Service withholding"), ("LE", "Levy"), ("PI", "Periodic interim payment"),
    ("J1", "Nonreimbursable"), ("AH", "Origination fee"), ("AM", "Applied to borrower's account"),
    ("AP", "Acceleration of benefits"), ("BD", "Bad debt adjustment"), ("C5", "Temporary allowance"),
)

# CARCs that mean "not paid because of a problem", not "paid less by contract": a zero-paid line or claim
# with one of these is a denial for staff to work, never an automatic write-off.
DENIAL_CARCS = frozenset({"4", "16", "18", "26", "27", "29", "50", "96", "97", "109", "151", "197", "204",
                          "242", "A1"})


def describe(table: dict[str, Code], code: str, when: date | None = None) -> str:
    found = table.get(code)
    if found is None:
        return f"unknown code {code}"
    if when is not None and not found.valid_on(when):
        return f"{found.description} (not valid on {when:%Y-%m-%d})"
    return found.description
