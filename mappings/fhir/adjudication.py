"""FHIR adjudication -> 835 amounts (mappings): ``item.adjudication`` (EOB, ClaimResponse) becomes a
line's charge (SVC02), paid (SVC03) and CAS, by category code (R4 adjudication + CARIN BB codes):

| category (adjudication.category.coding.code) | 835 meaning                                         |
|----------------------------------------------|-----------------------------------------------------|
| submitted                                    | charge (else item.net, else unitPrice x quantity)   |
| paidtoprovider, else benefit                 | paid (absent: 0.00)                                 |
| eligible                                     | CO-45 = charge - eligible - noncovered (when > 0)   |
| deductible / coinsurance / copay             | PR-1 / PR-2 / PR-3                                  |
| noncovered                                   | CO-96                                               |
| priorpayerpaid                               | OA-23                                               |
| eligpercent, unallocdeduct, tax, memberliability, paidbypatient, paidtopatient, discount, drugcost | informational |
| any other category with an amount            | not mapped: named in the balancing problem          |

A reason coded in the X12 CARC system (``x12.org/codes/claim-adjustment-reason-codes``) replaces the
CARC and keeps the group (an unknown category with a CARC is CO-{carc}); a CARC with no amount takes the
line's unexplained remainder (a denial stated without an amount). RARC reasons become remarks. Nothing
else is inferred: eligpercent is a rate, not an amount, so a line it alone would explain stays unbalanced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from fhir.resources.R4B.claimresponse import ClaimResponseItemAdjudication
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefitItemAdjudication
from fhir.resources.R4B.money import Money

from mappings.fhir.charges import MAX_AMOUNT
from router.domain.errors import MappingError
from router.domain.money import ZERO, exact_money, fmt
from router.domain.remittance import Cas

Adjudication = ExplanationOfBenefitItemAdjudication | ClaimResponseItemAdjudication

CARC_SYSTEM = "x12.org/codes/claim-adjustment-reason-codes"
RARC_SYSTEM = "x12.org/codes/remittance-advice-remark-codes"
CHARGE = "submitted"
PAID = ("paidtoprovider", "benefit")  # first found wins
ELIGIBLE = "eligible"
CAS_OF: dict[str, tuple[str, str]] = {"deductible": ("PR", "1"), "coinsurance": ("PR", "2"), "copay": ("PR", "3"),
                                      "noncovered": ("CO", "96"), "priorpayerpaid": ("OA", "23")}
OUTSIDE_ELIGIBLE = frozenset({"noncovered"})  # amounts the allowed (eligible) amount already excludes
INFORMATIONAL = frozenset({"eligpercent", "unallocdeduct", "tax", "memberliability", "paidbypatient",
                           "paidtopatient", "discount", "drugcost"})


@dataclass
class Adjudicated:
    """One item's (or the header's) adjudication read as 835 amounts; ``problems`` say why it won't balance."""

    charge: Decimal | None = None
    paid: Decimal = ZERO
    adjustments: list[Cas] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


def _codes(concept: CodeableConcept | None, system_part: str | None = None) -> list[str]:
    return [str(c.code) for c in (concept.coding if concept and concept.coding else [])
            if c.code and (system_part is None or system_part in str(c.system or ""))]


def amount_of(value: Money | None, location: str) -> Decimal | None:
    """A Money element (``location`` names it) as cents; USD only, bounded like charges."""
    if value is None or value.value is None:
        return None
    if value.currency not in (None, "USD"):
        raise MappingError(f"currency {value.currency!r} is not posted (USD only)", location=f"{location}.currency")
    number = Decimal(value.value)
    if not number.is_finite() or abs(number) >= MAX_AMOUNT:
        raise MappingError(f"{number} is out of range (|value| < {MAX_AMOUNT:,.0f})", location=f"{location}.value")
    return exact_money(number, f"{location}.value")


def adjudicate(adjudications: Sequence[Adjudication] | None, location: str, *, header: bool = False,
               fallback_charge: Decimal | None = None) -> Adjudicated:
    """Read ``location.adjudication[]``; at the ``header`` (claim level) only adjustments are taken."""
    out = Adjudicated()
    paid: dict[str, Decimal] = {}
    eligible: Decimal | None = None
    outside = ZERO
    reason_only: list[str] = []
    for i, adj in enumerate(adjudications or []):
        loc = f"{location}.adjudication[{i}]"
        categories = _codes(adj.category)
        category = categories[0] if categories else ""
        amount = amount_of(adj.amount, f"{loc}.amount")
        carcs = _codes(adj.reason, CARC_SYSTEM)
        out.remarks += _codes(adj.reason, RARC_SYSTEM)
        if category == CHARGE and not header:
            out.charge = amount
        elif category in PAID and not header:
            paid.setdefault(category, amount or ZERO)
        elif category == ELIGIBLE and not header:
            eligible = amount
        elif category in CAS_OF or carcs:
            group, reason = CAS_OF.get(category, ("CO", ""))
            if amount is None:
                reason_only += carcs
                continue
            out.adjustments.append(Cas(group, carcs[0] if carcs else reason, amount))
            outside += amount if category in OUTSIDE_ELIGIBLE else ZERO
        elif amount and category not in INFORMATIONAL and not (header and category in (CHARGE, ELIGIBLE, *PAID)):
            out.unmapped.append(f"{category or '(no category)'} {fmt(amount)} at {loc}")
    out.paid = next((paid[c] for c in PAID if c in paid), ZERO)
    if out.charge is None:
        out.charge = fallback_charge
    if out.charge is not None and eligible is not None:
        contractual = out.charge - eligible - outside
        if contractual > 0:
            out.adjustments.insert(0, Cas("CO", "45", contractual))
        elif contractual < 0:
            out.problems.append(f"{location}: eligible {fmt(eligible)} exceeds the charge {fmt(out.charge)}"
                                f"{' less noncovered ' + fmt(outside) if outside else ''}")
    if out.charge is not None and not header:
        remainder = out.charge - total(out.adjustments) - out.paid
        if remainder and reason_only:
            out.adjustments.append(Cas("CO", reason_only[0], remainder))
        elif remainder:
            unmapped = f"; adjudication not mapped: {', '.join(out.unmapped)}" if out.unmapped else ""
            out.problems.append(f"{location}: charge {fmt(out.charge)} - adjustments {fmt(total(out.adjustments))} "
                                f"≠ paid {fmt(out.paid)} ({fmt(remainder)} unexplained){unmapped}")
    return out


def total(adjustments: Sequence[Cas]) -> Decimal:
    return sum((a.amount for a in adjustments), ZERO)
