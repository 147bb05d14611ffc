"""Which deliveries an event needs (connectors): the one event -> deliveries mapping, and their rendering.

``DELIVERABLE`` is the whole mapping from an event type to the formats its result can be delivered in;
the result itself is read generically from the ledger (``router.adapters.results.event_result``), so a new
event that posts ledger entries (patient payments, refunds, plan charges, resolved exceptions) plugs in
with one entry here. Charges are the EMR's own data and are not echoed back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from connectors.outbound.config import FHIR, HL7_DFT, Destination, Destinations
from mappings.fhir.outbound import FhirOptions, fhir_requests
from mappings.hl7v2.dft_out import DEFAULT_TYPES, DftOptions, dft_messages
from router.adapters.results import event_result, event_scope
from router.domain.ledger import EntryKind
from router.domain.results import Result

# event type -> formats its result is delivered in. One entry per event; nothing else to change.
DELIVERABLE: dict[str, frozenset[str]] = {
    "RemittancePosted": frozenset({HL7_DFT, FHIR}),
    "PatientPaymentPosted": frozenset({HL7_DFT, FHIR}),
    "EntryReversed": frozenset({HL7_DFT, FHIR}),
    "HeldClaimPosted": frozenset({HL7_DFT, FHIR}),  # a held 835 claim resolved by staff and posted
    "ExceptionActed": frozenset({HL7_DFT, FHIR}),  # write-off, transfer, refund (actions without entries: none)
    "PatientPaymentRefunded": frozenset({HL7_DFT, FHIR}),  # issue 7: refund reversals / refund entries
    "PatientPaymentDisputed": frozenset({HL7_DFT, FHIR}),  # issue 7: a lost chargeback's refund entries
}


@dataclass(frozen=True)
class Planned:
    destination: str
    format: str
    item: str  # stable: event source id + what this message is about
    summary: str  # no PHI
    method: str  # MLLP: "", FHIR: POST/PUT
    path: str  # FHIR resource type
    condition: str  # FHIR identifier=system|value
    payload: str

    @property
    def dedupe(self) -> str:
        return hashlib.sha256(f"{self.destination}|{self.format}|{self.item}".encode()).hexdigest()


def wanted(destinations: Destinations, event_type: str) -> list[Destination]:
    formats = DELIVERABLE.get(event_type, frozenset())
    return [d for d in destinations.active if formats & set(d.formats) and d.filter.wants_event(event_type)]


def plan(session: Session, event_type: str, source_id: str, destinations: Destinations,
         now: datetime) -> list[Planned]:
    """Every message ``destinations`` should receive for one outbox event (empty when none applies)."""
    targets = wanted(destinations, event_type)
    if targets and any(d.filter.facilities or d.filter.accounts for d in targets):
        facility, accounts = event_scope(session, source_id)
        targets = [d for d in targets if d.filter.wants_facility(facility)
                   and (not d.filter.accounts or any(d.filter.wants_account(a) for a in accounts))]
    if not targets:
        return []
    result = event_result(session, event_type, source_id)
    out: list[Planned] = []
    for destination in targets:
        scoped = _filtered(result, destination)
        if scoped is None:
            continue
        if HL7_DFT in destination.formats:
            options = dft_options(destination)
            out += [Planned(destination.name, HL7_DFT, m.item, m.summary, "", "", "", m.text)
                    for m in dft_messages(scoped, options, now)]
        if FHIR in destination.formats:
            f = destination.fhir
            # With an account filter a PaymentReconciliation would describe other accounts' claims: left out.
            reconciliation = f.payment_reconciliation and not destination.filter.accounts
            fhir = FhirOptions(f.identifier_base, f.claim_resource, reconciliation, f.claims, f.accounts)
            out += [Planned(destination.name, FHIR, r.item, r.summary, r.method, r.resource_type, r.condition,
                            r.body) for r in fhir_requests(scoped, fhir, now)]
    return out


def dft_options(destination: Destination) -> DftOptions:
    h = destination.hl7
    types = dict(DEFAULT_TYPES) | {EntryKind(k): v for k, v in h.types.items()}
    return DftOptions(h.trigger, h.sending_application, h.sending_facility, h.receiving_application,
                      h.receiving_facility, types, h.balances)


def _filtered(result: Result, destination: Destination) -> Result | None:
    """The part of ``result`` this destination's filter admits (None: nothing)."""
    f = destination.filter
    if not f.wants_facility(result.facility):
        return None
    if not f.accounts:
        return result
    accounts = tuple(a for a in result.accounts if f.wants_account(a.account))
    remit = result.remittance
    if remit is not None:
        # Payment-level resources (PaymentReconciliation) describe other accounts too: only claims go out.
        remit = replace(remit, claims=tuple(c for c in remit.claims if c.account and f.wants_account(c.account)),
                        accounts=accounts)
    if not accounts:
        return None
    return replace(result, accounts=accounts, remittance=remit)
