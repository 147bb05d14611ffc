"""Claim and ChargeItem -> ``PostCharges`` (mappings), the FHIR twin of DFT^P03 (mappings/hl7v2/dft.py).

Claim: identifier[0] (claim key, else the VN/first identifier of item.encounter's Encounter), status,
use, patient (account rule in registration.py), insurance.sequence/coverage, diagnosis, and per item:
sequence, servicedDate/servicedPeriod.start, productOrService.coding[0], modifier, quantity, net (else
unitPrice x quantity), diagnosisSequence. A negative net is a credit, as a negative FT1 CG is.
ChargeItem: identifier/id, status, account[0] (else subject), context (Encounter -> claim key, else
``{account}:{YYYYMMDD}`` as DFT does), occurrence[x], code, quantity, priceOverride (the total), reason.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from fhir.resources.R4B.account import Account as FhirAccount
from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.claim import Claim, ClaimItem
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.money import Money
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference

from mappings.fhir.references import Resolver, first_value, logical_value, typed_value
from mappings.fhir.registration import account_from_reference, coverage_of, patient_of
from mappings.fhir.wire import Raw, to_date
from router.domain.commands import EmrTransaction, PostCharges
from router.domain.errors import MappingError, UnsupportedMessage
from router.domain.ledger import EntryKind, Responsibility
from router.domain.model import ChargeLine, Coverage, Patient
from router.domain.money import exact_money, money

POSTED_CHARGE_ITEM_STATUSES = frozenset({"billable", "billed", "unknown"})
# Beyond these a value is a typo or an attack (1e400 would overflow the cents quantize), not a charge.
MAX_AMOUNT = Decimal("1e9")
MAX_QUANTITY = Decimal("1e6")


def _bounded(value: Decimal, limit: Decimal, location: str) -> Decimal:
    if not value.is_finite() or abs(value) >= limit:
        raise MappingError(f"{value} is out of range (|value| < {limit:,.0f})", location=location)
    return value


def _amount(value: Money | None, location: str) -> Decimal | None:
    if value is None or value.value is None:
        return None
    if value.currency not in (None, "USD"):
        raise MappingError(f"currency {value.currency!r} is not posted (USD only)", location=f"{location}.currency")
    return _bounded(Decimal(value.value), MAX_AMOUNT, f"{location}.value")


def _quantity(quantity: Quantity | None, location: str) -> Decimal:
    if quantity is None or quantity.value is None:
        return Decimal(1)
    return _bounded(Decimal(quantity.value), MAX_QUANTITY, f"{location}.value")


def _code(concept: object, location: str) -> tuple[str, str]:
    codings = getattr(concept, "coding", None) or []
    if not codings or not codings[0].code:
        raise MappingError("a code is required (coding[0].code)", location=f"{location}.coding")
    return str(codings[0].code), str(codings[0].display or "")


def _encounter_key(ref: Reference | None, owner: Raw, resolver: Resolver, location: str) -> str:
    """Visit number of an Encounter: identifier of type VN, else the first (PV1-19's FHIR home)."""
    found = resolver.resolve(ref, Encounter, owner, location)
    if found is not None:
        enc = found[1]
        return typed_value(enc.identifier, "VN") or first_value(enc.identifier)
    return logical_value(ref)


def _patient(ref: Reference | None, owner: Raw, resolver: Resolver, location: str) -> Patient | None:
    found = resolver.resolve(ref, FhirPatient, owner, location)
    return patient_of(found[1]) if found else None


def decode_claim(raw: Raw, resolver: Resolver, prefix: str = "Claim") -> PostCharges:
    claim = resolver.model(raw, Claim, prefix)
    if claim.use != "claim":
        raise UnsupportedMessage(f"Claim.use {claim.use!r} asks for no charge; only 'claim' is posted",
                                 location=f"{prefix}.use")
    if claim.status != "active":
        raise MappingError(f"Claim.status {claim.status!r} is not posted (only 'active'); correct a posted "
                           "claim with a reversal", location=f"{prefix}.status")
    items = claim.item or []
    if not items:
        raise MappingError("a Claim without items has no charges", location=f"{prefix}.item")
    key = first_value(claim.identifier[:1] if claim.identifier else None)
    for n, item in enumerate(items):
        for m, enc in enumerate(item.encounter or []):
            key = key or _encounter_key(enc, raw, resolver, f"{prefix}.item[{n}].encounter[{m}]")
    if not key:
        raise MappingError("claim key missing: Claim.identifier, else an item.encounter with an identifier",
                           location=f"{prefix}.identifier")
    account = account_from_reference(claim.patient, raw, resolver, f"{prefix}.patient")
    diagnoses = {d.sequence: _code(d.diagnosisCodeableConcept, f"{prefix}.diagnosis[{i}].diagnosisCodeableConcept")[0]
                 for i, d in enumerate(claim.diagnosis or []) if d.diagnosisCodeableConcept}
    charges: list[ChargeLine] = []
    credits: list[EmrTransaction] = []
    for n, item in enumerate(items):
        line = _claim_line(item, claim, diagnoses, f"{prefix}.item[{n}]")
        if line.amount >= 0:
            charges.append(line)
        else:  # as a negative FT1 CG: a credit against the charges
            credits.append(EmrTransaction(line.line_no, EntryKind.CHARGE_CREDIT, Responsibility.INSURANCE,
                                          line.amount, line.service_date, line.code))
    coverages: list[Coverage] = []
    for i, ins in enumerate(claim.insurance):
        found = resolver.find(ins.coverage.reference, raw)
        if found is not None and found.get("resourceType") == "Coverage":
            cov = coverage_of(found, resolver, i + 1, f"{prefix}.insurance[{i}].coverage")
            # Claim.insurance.sequence, not Coverage.order, says primary/secondary for this claim.
            coverages += [replace(cov, sequence=int(ins.sequence or i + 1))] if cov else []
    return PostCharges(source_id=f"fhir:Claim:{key}", account=account, claim_key=key,
                       patient=_patient(claim.patient, raw, resolver, f"{prefix}.patient"),
                       charges=tuple(charges), transactions=tuple(credits), coverages=tuple(coverages))


def _claim_line(item: ClaimItem, claim: Claim, diagnoses: dict[int | None, str], loc: str) -> ChargeLine:
    when = item.servicedDate or (item.servicedPeriod.start if item.servicedPeriod else None) or (
        claim.billablePeriod.start if claim.billablePeriod else None)
    if when is None:
        raise MappingError("date of service missing (servicedDate, servicedPeriod or Claim.billablePeriod)",
                           location=f"{loc}.servicedDate")
    code, display = _code(item.productOrService, f"{loc}.productOrService")
    units = _quantity(item.quantity, f"{loc}.quantity")
    amount = _amount(item.net, f"{loc}.net")
    if amount is not None:
        amount = exact_money(amount, f"{loc}.net.value")
    else:
        unit_price = _amount(item.unitPrice, f"{loc}.unitPrice")
        if unit_price is None:
            raise MappingError("amount missing (net, or unitPrice x quantity)", location=f"{loc}.net")
        factor = _bounded(Decimal(item.factor), MAX_QUANTITY, f"{loc}.factor") if item.factor is not None else 1
        amount = _bounded(unit_price * units * factor, MAX_AMOUNT, f"{loc}.unitPrice")
    codes: list[str] = []
    for j, seq in enumerate(item.diagnosisSequence or []):
        if seq not in diagnoses:
            raise MappingError(f"no Claim.diagnosis with sequence {seq}", location=f"{loc}.diagnosisSequence[{j}]")
        codes.append(diagnoses[seq])
    modifiers = tuple(_code(m, f"{loc}.modifier[{j}]")[0] for j, m in enumerate(item.modifier or []))
    return ChargeLine(line_no=int(item.sequence or 1), service_date=to_date(when, f"{loc}.servicedDate"), code=code,
                      amount=money(amount), units=units, modifiers=modifiers, description=display,
                      diagnoses=tuple(codes))


def decode_charge_item(raw: Raw, resolver: Resolver, prefix: str = "ChargeItem") -> PostCharges:
    item = resolver.model(raw, ChargeItem, prefix)
    if item.status not in POSTED_CHARGE_ITEM_STATUSES:
        raise MappingError(f"ChargeItem.status {item.status!r} is not posted "
                           f"({', '.join(sorted(POSTED_CHARGE_ITEM_STATUSES))})", location=f"{prefix}.status")
    ident = first_value(item.identifier) or str(item.id or "")
    if not ident:
        raise MappingError("identifier (or id) missing: needed so that a resend posts once",
                           location=f"{prefix}.identifier")
    account = ""
    if item.account:
        found = resolver.resolve(item.account[0], FhirAccount, raw, f"{prefix}.account[0]")
        account = first_value(found[1].identifier) if found else logical_value(item.account[0])
    account = account or account_from_reference(item.subject, raw, resolver, f"{prefix}.subject")
    when = item.occurrenceDateTime or (item.occurrencePeriod.start if item.occurrencePeriod else None)
    if when is None:
        raise MappingError("date of service missing (occurrenceDateTime or occurrencePeriod.start)",
                           location=f"{prefix}.occurrenceDateTime")
    service_date = to_date(when, f"{prefix}.occurrenceDateTime")
    price = _amount(item.priceOverride, f"{prefix}.priceOverride")
    if price is None:
        raise MappingError("priceOverride missing: the hub does not price from ChargeItemDefinition",
                           location=f"{prefix}.priceOverride")
    price = exact_money(price, f"{prefix}.priceOverride.value")
    if price < 0:
        raise MappingError("a negative ChargeItem cannot be posted; send a reversal",
                           location=f"{prefix}.priceOverride")
    code, display = _code(item.code, f"{prefix}.code")
    key = _encounter_key(item.context, raw, resolver, f"{prefix}.context") if item.context else ""
    key = key or f"{account}:{service_date:%Y%m%d}"
    units = _quantity(item.quantity, f"{prefix}.quantity")
    line = ChargeLine(line_no=1, service_date=service_date, code=code, amount=money(price), units=units,
                      description=display,
                      diagnoses=tuple(_code(r, f"{prefix}.reason[{j}]")[0] for j, r in enumerate(item.reason or [])))
    return PostCharges(source_id=f"fhir:ChargeItem:{ident}", account=account, claim_key=key,
                       patient=_patient(item.subject, raw, resolver, f"{prefix}.subject"), charges=(line,))
