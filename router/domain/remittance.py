"""The domain remittance: what a payer paid and adjusted, whatever wire it came on (X12 835, FHIR EOB).

Amounts follow the 835 sign conventions: a positive adjustment (CAS, PLB) reduces the payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from router.domain.money import ZERO


@dataclass(frozen=True)
class Cas:
    """One adjustment: group (CO, PR, OA, PI, CR), CARC reason, amount (positive reduces payment)."""

    group: str
    reason: str
    amount: Decimal


@dataclass(frozen=True)
class RemitLine:
    number: int
    code: str  # SVC01-2
    modifiers: tuple[str, ...]
    charge: Decimal  # SVC02
    paid: Decimal  # SVC03
    adjustments: tuple[Cas, ...] = ()
    line_control: str | None = None  # REF*6R
    original_code: str | None = None  # SVC06-2 when the payer re-coded the line
    original_modifiers: tuple[str, ...] = ()
    service_date: date | None = None
    remarks: tuple[str, ...] = ()  # LQ*HE RARCs


@dataclass(frozen=True)
class RemitClaim:
    pcn: str  # CLP01, the practice's patient control number
    status: str  # CLP02
    charge: Decimal  # CLP03
    paid: Decimal  # CLP04
    patient_responsibility: Decimal | None = None  # CLP05
    payer_claim_number: str = ""  # CLP07
    original_reference: str = ""  # REF*F8: the payer claim number this one corrects
    patient_last: str = ""  # NM1*QC
    patient_first: str = ""
    member_id: str = ""  # NM1*IL or NM1*QC id
    crossover_payer: str = ""  # NM1*TT
    adjustments: tuple[Cas, ...] = ()  # claim level
    lines: tuple[RemitLine, ...] = ()
    remarks: tuple[str, ...] = ()  # MIA/MOA RARCs
    interest: Decimal = ZERO  # AMT*I, informational
    service_date: date | None = None
    raw: tuple[str, ...] = ()

    @property
    def split(self) -> bool:
        return "MA15" in self.remarks

    def all_adjustments(self) -> tuple[Cas, ...]:
        return self.adjustments + tuple(a for line in self.lines for a in line.adjustments)


@dataclass(frozen=True)
class PlbEntry:
    code: str  # PLB03-1: L6 interest, WO recoupment, FB forward balance, 72 return, ...
    reference: str  # PLB03-2, often a payer claim number (ICN)
    amount: Decimal  # positive withholds, negative adds to the payment
    provider_id: str = ""


@dataclass(frozen=True)
class Remittance:
    """One payment advice: an 835 transaction set or a FHIR PaymentReconciliation with its claims."""

    payer_id: str
    payer_name: str
    payee_id: str
    payee_name: str
    trace_number: str  # TRN02 check/EFT number
    payment_amount: Decimal  # BPR02 (negative for a debit)
    payment_method: str = ""  # BPR04
    payment_date: date | None = None  # BPR16
    claims: tuple[RemitClaim, ...] = ()
    plb: tuple[PlbEntry, ...] = ()
    balanced: bool = True
    problems: tuple[str, ...] = ()  # why it does not balance, rule by rule
    control_number: str = ""  # ST02 or resource id, for tracing

    @property
    def plb_total(self) -> Decimal:
        return sum((p.amount for p in self.plb), ZERO)
