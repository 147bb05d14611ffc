"""Frozen values of a parsed 835 (005010X221A1) transaction (mappings layer): envelope (ISA/GS/ST), BPR,
TRN, DTM*405, N1*PR/PE loops, LX/TS3/TS2, loop 2100 (CLP, CAS, NM1, MIA/MOA, REF, DTM, AMT, QTY),
loop 2110 (SVC, DTM, CAS, REF, AMT, QTY, LQ) and PLB. Money is Decimal in cents; dates are ``date``.

The values a file repeats per segment (CAS, REF, DTM, AMT, QTY, NM1, SVC01, PLB) are ``NamedTuple``s:
a tuple of strings, Decimals and dates is built ~3x faster than a frozen dataclass and the cyclic GC
stops tracking it after its first collection, so a 10,000-claim transaction no longer makes every full
collection walk ~300,000 objects (see mappings/x12/loops835.py for the figures). Being tuples they
compare equal to a plain tuple of the same values; nothing in the hub relies on telling them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from router.domain.money import ZERO


class Severity(StrEnum):
    ERROR = "error"  # the transaction cannot be posted as is: quarantine it whole
    WARNING = "warning"  # reported, posting may go on


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule violation, envelope or balancing; ``segment``/``element`` feed 999 IK3/IK4 when known."""

    rule: str
    severity: Severity
    location: str
    expected: str | None
    actual: str | None
    message: str
    segment_id: str | None = None
    segment_in_set: int | None = None  # 1-based, ST = 1, as 999 IK302 counts
    element: int | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """ISA/GS values shared by every transaction set of one functional group."""

    sender_qualifier: str  # ISA05
    sender_id: str  # ISA06
    receiver_qualifier: str  # ISA07
    receiver_id: str  # ISA08
    interchange_control: str  # ISA13
    usage: str  # ISA15: P production, T test
    functional_id: str  # GS01
    group_sender: str  # GS02
    group_receiver: str  # GS03
    group_control: str  # GS06
    version: str  # GS08


class Reference(NamedTuple):
    qualifier: str
    value: str


class DateRef(NamedTuple):
    qualifier: str
    value: date


class MonetaryAmount(NamedTuple):
    qualifier: str  # AMT01: I interest, AU covered, B6 allowed, ...
    amount: Decimal


class Quantity(NamedTuple):
    qualifier: str
    value: Decimal


class Adjustment(NamedTuple):
    """One CAS triplet; a positive amount reduces the payment."""

    group: str  # CAS01: CO, PR, OA, PI (CR accepted from 4010)
    reason: str
    amount: Decimal
    quantity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Party:
    """N1 loop 1000A (PR) or 1000B (PE)."""

    entity: str  # N101
    name: str  # N102
    id_qualifier: str  # N103
    id: str  # N104
    references: tuple[Reference, ...] = ()


class PersonName(NamedTuple):
    """NM1 in loop 2100: QC patient, IL insured, 74 corrected, 82 rendering, TT crossover, PR payer."""

    entity: str
    entity_type: str
    last: str
    first: str
    middle: str
    id_qualifier: str
    id: str


class Procedure(NamedTuple):
    """SVC01/SVC06 composite: qualifier (HC, NU, ...), code and up to four modifiers."""

    qualifier: str
    code: str
    modifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Payment:
    """BPR: handling code, total actual provider payment (BPR02), credit/debit, method, date (BPR16)."""

    handling_code: str
    amount: Decimal
    credit_debit: str
    method: str
    date: date | None


@dataclass(frozen=True, slots=True)
class HeaderNumber:
    """LX with its informational TS3/TS2 provider summaries, kept as their elements."""

    number: str
    ts3: tuple[str, ...] | None = None
    ts2: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ServiceLine:
    number: int  # 1-based within the claim
    procedure: Procedure  # SVC01
    charge: Decimal  # SVC02
    paid: Decimal  # SVC03
    revenue_code: str  # SVC04
    units: Decimal | None  # SVC05; the guide says 1 when absent
    original_procedure: Procedure | None  # SVC06, when the payer re-coded the line
    original_units: Decimal | None  # SVC07
    dates: tuple[DateRef, ...]
    adjustments: tuple[Adjustment, ...]
    references: tuple[Reference, ...]
    amounts: tuple[MonetaryAmount, ...]
    quantities: tuple[Quantity, ...]
    remark_codes: tuple[str, ...]  # LQ*HE
    position: int

    @property
    def control_number(self) -> str | None:
        """REF*6R, the echo of the 837 line item control number."""
        return next((r.value for r in self.references if r.qualifier == "6R"), None)


@dataclass(frozen=True, slots=True)
class Claim:
    patient_control_number: str  # CLP01
    status: str  # CLP02
    charge: Decimal  # CLP03
    paid: Decimal  # CLP04
    patient_responsibility: Decimal | None  # CLP05
    filing_indicator: str  # CLP06
    payer_claim_number: str  # CLP07
    facility_code: str  # CLP08
    frequency: str  # CLP09
    header_number: str | None  # the LX01 the claim sits under
    adjustments: tuple[Adjustment, ...]
    names: tuple[PersonName, ...]
    inpatient: tuple[str, ...] | None  # MIA elements
    outpatient: tuple[str, ...] | None  # MOA elements
    references: tuple[Reference, ...]
    dates: tuple[DateRef, ...]
    amounts: tuple[MonetaryAmount, ...]
    quantities: tuple[Quantity, ...]
    services: tuple[ServiceLine, ...]
    raw: tuple[str, ...]  # the loop's segments as received, for audit
    position: int

    @property
    def remark_codes(self) -> tuple[str, ...]:
        """Claim-level RARCs: MIA05, MIA20-24 and MOA03-07."""
        codes: list[str] = []
        if self.inpatient:
            codes += [self.inpatient[i] for i in (5, 20, 21, 22, 23, 24) if i < len(self.inpatient)]
        if self.outpatient:
            codes += [self.outpatient[i] for i in range(3, 8) if i < len(self.outpatient)]
        return tuple(c for c in codes if c)

    @property
    def is_split(self) -> bool:
        """MA15: the payer split the claim, so the matcher has to aggregate the parts."""
        return "MA15" in self.remark_codes

    @property
    def interest(self) -> Decimal:
        return sum((a.amount for a in self.amounts if a.qualifier == "I"), ZERO)

    def name(self, entity: str) -> PersonName | None:
        return next((n for n in self.names if n.entity == entity), None)


class PlbAdjustment(NamedTuple):
    reason: str  # PLB03-1
    reference: str  # PLB03-2
    amount: Decimal  # positive withholds, negative adds


@dataclass(frozen=True, slots=True)
class ProviderAdjustment:
    """One PLB segment: provider (PLB01), fiscal period date (PLB02), up to six adjustments."""

    provider_id: str
    fiscal_date: date | None
    adjustments: tuple[PlbAdjustment, ...]
    position: int


@dataclass(frozen=True, slots=True)
class Remittance:
    """One 835 transaction set (ST..SE) with the envelope findings found while reading it."""

    envelope: Envelope
    control_number: str  # ST02
    implementation: str  # ST03
    payment: Payment
    trace_number: str  # TRN02
    trace_payer_id: str  # TRN03
    production_date: date | None  # DTM*405
    references: tuple[Reference, ...]  # header REF (EV, F2)
    payer: Party
    payee: Party
    header_numbers: tuple[HeaderNumber, ...]
    claims: tuple[Claim, ...]
    provider_adjustments: tuple[ProviderAdjustment, ...]
    segment_count: int  # ST..SE as counted
    position: int  # of ST in the file
    findings: tuple[Finding, ...] = ()

    @property
    def plb_total(self) -> Decimal:
        return sum((a.amount for p in self.provider_adjustments for a in p.adjustments), ZERO)

    @property
    def claim_paid_total(self) -> Decimal:
        return sum((c.paid for c in self.claims), ZERO)
