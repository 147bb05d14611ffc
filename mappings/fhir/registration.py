"""Patient (+ Account, Coverage) -> ``RegisterPatient`` (mappings).

Reads Patient.identifier (MR -> MRN; AN -> account number), Patient.name[0].family/given[0],
Patient.birthDate; Account.identifier[0] and Account.subject; Coverage.beneficiary, payor (Organization
identifier[0]/name), subscriberId (else identifier MB), order, class (group, plan), type (self-pay).

Account rule: the account number is Account.identifier[0] of an Account whose subject is the Patient,
else the Patient's identifier of type AN (v2-0203, what PID-18 becomes), else the Patient is rejected.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from fhir.resources.R4B.account import Account as FhirAccount
from fhir.resources.R4B.coverage import Coverage as FhirCoverage
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.reference import Reference

from mappings.fhir.references import Resolver, first_value, logical_value, typed_value
from mappings.fhir.wire import Raw
from router.bus import digest
from router.domain.commands import RegisterPatient
from router.domain.errors import MappingError
from router.domain.model import Coverage, Patient

SELF_PAY_CODES = frozenset({"pay", "SELFPAY"})  # coverage-selfpay "pay"; v3 ActCode-style variants


def patient_of(p: FhirPatient, prefix: str = "Patient") -> Patient:
    mrn = typed_value(p.identifier, "MR") or first_value(p.identifier)
    if not mrn:
        raise MappingError("patient identifier missing (an MR identifier, else the first one)",
                           location=f"{prefix}.identifier")
    name = p.name[0] if p.name else None
    family = str(name.family or "") if name else ""
    given = str((name.given or [""])[0]) if name else ""
    birth = p.birthDate if isinstance(p.birthDate, date) else None  # a partial date names no day
    return Patient(mrn=mrn, family=family, given=given, birth_date=birth)


def account_of(patient_raw: Raw, p: FhirPatient, resolver: Resolver, prefix: str = "Patient") -> str:
    """The account rule (module docstring): an Account naming this Patient, else its AN identifier."""
    for account_raw in resolver.referring("Account", "subject", patient_raw):
        number = first_value(resolver.model(account_raw, FhirAccount, "Account").identifier)
        if number:
            return number
    number = typed_value(p.identifier, "AN")
    if not number:
        raise MappingError("no account number: send an Account (identifier, subject = this Patient) "
                           "or a Patient.identifier of type AN", location=f"{prefix}.identifier")
    return number


def account_from_reference(ref: Reference | None, owner: Raw, resolver: Resolver, location: str) -> str:
    """Account number behind a Patient reference: resolved in the payload, or a logical AN identifier."""
    found = resolver.resolve(ref, FhirPatient, owner, location)
    if found is not None:
        return account_of(found[0], found[1], resolver)
    number = logical_value(ref, "AN")
    if not number:
        raise MappingError(f"cannot find the account: {ref.reference if ref else None!r} is not in this "
                           "payload; include the Patient or reference it by an AN identifier", location=location)
    return number


def _is_self_pay(cov: FhirCoverage) -> bool:
    codes = {c.code for c in (cov.type.coding or [])} if cov.type else set()
    payor = cov.payor[0].reference or ""
    return bool(codes & SELF_PAY_CODES) or payor.startswith(("Patient/", "RelatedPerson/"))


def _class_value(cov: FhirCoverage, code: str) -> str:
    for cls in cov.class_fhir or []:
        if any(c.code == code for c in (cls.type.coding or [])):
            return str(cls.value)
    return ""


def coverage_of(raw: Raw, resolver: Resolver, position: int, prefix: str = "Coverage") -> Coverage | None:
    """One Coverage -> a policy on the account; ``None`` for self-pay (the patient is the payor)."""
    cov = resolver.model(raw, FhirCoverage, prefix)
    if _is_self_pay(cov):
        return None
    payor = cov.payor[0]
    payer_id = payer_name = ""
    org = resolver.resolve(payor, Organization, raw, f"{prefix}.payor[0]")
    if org is not None:
        payer_id, payer_name = first_value(org[1].identifier), str(org[1].name or "")
    payer_id = payer_id or logical_value(payor)
    if not payer_id:
        raise MappingError("payer id unknown: the payor Organization must be in the payload with an "
                           "identifier, or the reference must carry one", location=f"{prefix}.payor[0]")
    return Coverage(sequence=int(cov.order or position), payer_id=payer_id,
                    payer_name=payer_name or str(payor.display or ""),
                    member_id=str(cov.subscriberId or "") or typed_value(cov.identifier, "MB")
                    or first_value(cov.identifier),
                    group_number=_class_value(cov, "group"), plan=_class_value(cov, "plan"))


def coverages_for(patient_raw: Raw, resolver: Resolver) -> tuple[Coverage, ...]:
    """Every Coverage in the payload whose beneficiary is this Patient, numbered by Coverage.order."""
    found = [coverage_of(raw, resolver, n) for n, raw in
             enumerate(resolver.referring("Coverage", "beneficiary", patient_raw), start=1)]
    return tuple(c for c in found if c is not None)


def register(patient_raw: Raw, resolver: Resolver, prefix: str = "Patient") -> RegisterPatient:
    """The registration a Patient (with its Account and Coverages from the same payload) asks for."""
    p = resolver.model(patient_raw, FhirPatient, prefix)
    command = RegisterPatient(source_id="", account=account_of(patient_raw, p, resolver, prefix),
                              patient=patient_of(p, prefix), coverages=coverages_for(patient_raw, resolver))
    # An upsert: the content digest in the source id lets a resend dedupe and a change apply.
    return replace(command, source_id=f"fhir:RegisterPatient:{command.account}:{digest(command)[:16]}")
