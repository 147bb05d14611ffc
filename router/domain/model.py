"""Practice-side records: patients, guarantor accounts, coverages, claims and their charge lines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Patient:
    mrn: str
    family: str = ""
    given: str = ""
    birth_date: date | None = None


@dataclass(frozen=True)
class Coverage:
    """One insurance policy on an account; ``sequence`` 1 = primary, 2 = secondary, ..."""

    sequence: int
    payer_id: str
    payer_name: str = ""
    member_id: str = ""
    group_number: str = ""
    plan: str = ""


@dataclass(frozen=True)
class ChargeLine:
    """A billed service line (837 2400 / FT1): what the claim asks the payer to pay."""

    line_no: int
    service_date: date
    code: str  # CPT/HCPCS
    amount: Decimal
    units: Decimal = Decimal(1)
    modifiers: tuple[str, ...] = ()
    line_control: str | None = None  # REF*6R echoed by the payer
    description: str = ""
    diagnoses: tuple[str, ...] = ()
    performer: str = ""


@dataclass(frozen=True)
class Claim:
    """An encounter billed under ``key``: the patient control number (CLM01, echoed in CLP01)."""

    key: str
    account: str
    patient_mrn: str | None
    lines: tuple[ChargeLine, ...] = ()

    @property
    def total_charge(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))
