"""Inbound FHIR (mappings): one resource or a transaction/batch/message Bundle -> per-entry commands.

Reads Bundle.type, entry[].fullUrl, entry[].request.method and entry[].resource. References resolve
inside the payload (``urn:uuid:`` fullUrls, ``Type/id``, ``#contained``). Registrations (Patient with
its Account and Coverages) are dispatched before charges (Claim, ChargeItem) so coverage is on file, and
remittances (ExplanationOfBenefit, ClaimResponse: remittance.py) after both, so their claims exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.account import Account as FhirAccount
from fhir.resources.R4B.coverage import Coverage as FhirCoverage
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.patient import Patient as FhirPatient

from mappings.fhir.charges import decode_charge_item, decode_claim
from mappings.fhir.references import Resolver
from mappings.fhir.registration import register
from mappings.fhir.remittance import decode_remittance
from mappings.fhir.wire import Raw, is_fhir_type, load_json
from router.domain.commands import Command
from router.domain.errors import MappingError, PermanentError, UnsupportedMessage

POSTED_REMITTANCE_TYPES = ("ExplanationOfBenefit", "ClaimResponse")
INTAKE_TYPES = ("Patient", "Coverage", "Account", "Encounter", "Claim", "ChargeItem", *POSTED_REMITTANCE_TYPES)
BUNDLE_TYPES = ("transaction", "batch", "message")
REMITTANCE_TYPES = frozenset({"PaymentReconciliation"})  # remittance-side types not taken here
REMITTANCE_HINT = ("is not mapped: post each ClaimResponse or ExplanationOfBenefit it pays (alone or in a "
                   "Bundle), or the X12 835 (file or HTTP remittance intake)")
# Patient/Account/Coverage share a link element to the patient they belong to.
_PATIENT_LINK = {"Account": "subject", "Coverage": "beneficiary"}


@dataclass(frozen=True)
class Entry:
    """One entry's decoding: its commands, or why it has none (``note``), or the error."""

    index: int  # position in Bundle.entry (0 for a single resource)
    resource_type: str
    full_url: str
    commands: tuple[Command, ...] = ()
    note: str = ""
    error: PermanentError | None = None

    @property
    def phase(self) -> int:
        kinds = {type(c).__name__ for c in self.commands}
        return 0 if "RegisterPatient" in kinds else 2 if "PostRemittance" in kinds else 1


@dataclass(frozen=True)
class Decoded:
    kind: str  # transaction | batch | message | resource
    entries: tuple[Entry, ...]

    def dispatch_order(self) -> list[Entry]:
        return sorted(self.entries, key=lambda e: (e.phase, e.index))


def decode(raw: bytes | str, expected_type: str | None = None) -> Decoded:
    """Decode a payload; an unusable envelope raises, a bad entry is reported on that entry."""
    doc = load_json(raw)
    found = doc["resourceType"]
    if expected_type and found != expected_type:
        hint = f"; {found} {REMITTANCE_HINT}" if found in REMITTANCE_TYPES else ""
        raise MappingError(f"resourceType is {found!r} but this endpoint takes {expected_type}{hint}",
                           location="resourceType")
    if found != "Bundle":
        return Decoded("resource", (_entry(0, doc, "", Resolver([(None, doc)]), standalone=True),))
    kind = doc.get("type")
    if kind not in BUNDLE_TYPES:
        raise MappingError(f"Bundle.type {kind!r} is not accepted ({', '.join(BUNDLE_TYPES)})", location="Bundle.type")
    items = doc.get("entry", [])
    if not isinstance(items, list):
        raise MappingError("Bundle.entry must be an array", location="Bundle.entry")
    usable: list[tuple[int, str, Raw]] = []
    bad: list[Entry] = []
    for i, item in enumerate(items):
        res = item.get("resource") if isinstance(item, dict) else None
        full_url = item.get("fullUrl") if isinstance(item, dict) else None
        method = ((item.get("request") or {}).get("method") or "POST") if isinstance(item, dict) else "POST"
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            bad.append(Entry(i, "", "", error=MappingError("entry without a resource", location="resource")))
        elif method not in ("POST", "PUT"):
            bad.append(Entry(i, res["resourceType"], str(full_url or ""), error=UnsupportedMessage(
                f"request.method {method!r} is not supported (POST, PUT)", location="request.method")))
        else:
            usable.append((i, str(full_url or ""), res))
    resolver = Resolver([(url or None, res) for _, url, res in usable])
    entries = bad + [_entry(i, res, url, resolver, standalone=False) for i, url, res in usable]
    return Decoded(str(kind), tuple(sorted(entries, key=lambda e: e.index)))


def _entry(index: int, res: Raw, full_url: str, resolver: Resolver, *, standalone: bool) -> Entry:
    rtype = str(res["resourceType"])
    try:
        commands, note = _map(rtype, res, resolver, standalone)
    except PermanentError as exc:
        return Entry(index, rtype, full_url, error=exc)
    except ArithmeticError as exc:  # a number no guard above foresaw: reject the entry, never a 500
        return Entry(index, rtype, full_url, error=MappingError(f"a number is out of range: {exc!r}",
                                                                location=rtype))
    return Entry(index, rtype, full_url, commands, note)


def _map(rtype: str, res: Raw, resolver: Resolver, standalone: bool) -> tuple[tuple[Command, ...], str]:
    if rtype == "Patient":
        return (register(res, resolver),), ""
    if rtype in _PATIENT_LINK:
        return _linked_to_patient(rtype, res, resolver, standalone)
    if rtype == "Claim":
        return (decode_claim(res, resolver),), ""
    if rtype == "ChargeItem":
        return (decode_charge_item(res, resolver),), ""
    if rtype == "Encounter":
        resolver.model(res, Encounter, rtype)
        return (), ("Encounter is context: its identifier (VN) is the claim key of the Claims and "
                    "ChargeItems that reference it; an Encounter alone posts nothing")
    if rtype in POSTED_REMITTANCE_TYPES:
        command, note = decode_remittance(rtype, res, resolver)
        return (command,), note
    if rtype in REMITTANCE_TYPES:
        raise UnsupportedMessage(f"{rtype} {REMITTANCE_HINT}", location="resourceType")
    if not is_fhir_type(rtype):
        raise UnsupportedMessage(f"{rtype!r} is not an R4 resource type", location="resourceType")
    if standalone:
        raise UnsupportedMessage(f"{rtype} is not taken on its own (accepted: {', '.join(INTAKE_TYPES)}, Bundle)",
                                 location="resourceType")
    return (), f"{rtype} is context only: read when another entry references it; no ledger effect"


def _linked_to_patient(rtype: str, res: Raw, resolver: Resolver,
                       standalone: bool) -> tuple[tuple[Command, ...], str]:
    """Account and Coverage register with their Patient; alone, only with a contained Patient."""
    element = _PATIENT_LINK[rtype]
    resolver.model(res, FhirAccount if rtype == "Account" else FhirCoverage, rtype)
    link = res.get(element)
    ref = (link[0] if isinstance(link, list) and link else link) or {}
    reference = ref.get("reference") if isinstance(ref, dict) else None
    target = resolver.find(reference, res)
    if target is None or target.get("resourceType") != "Patient":
        raise MappingError(f"{rtype} is registered with its Patient: the Patient must be in the same Bundle "
                           "or contained", location=f"{rtype}.{element}")
    if standalone or str(reference).startswith("#"):
        resolver.model(target, FhirPatient, "Patient")
        return (register(target, resolver),), ""
    return (), f"{rtype} applied with its Patient's registration ({reference})"
