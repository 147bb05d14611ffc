"""Reconciled results -> the FHIR R4 requests an EMR destination receives (mappings, pure).

Per remittance: one ClaimResponse (or ExplanationOfBenefit) per claim that reached the ledger and one
PaymentReconciliation, each created with a conditional create (``If-None-Exist: identifier=...``) on a
stable identifier, so a retry never duplicates. Per account touched by any result: a conditional update
(``PUT Account?identifier=...``) carrying the balances right after the postings in an extension (FHIR R4
Account has no balance element; the ledger is the source of truth, the Account a projection of it).
Every resource is validated with the fhir.resources R4B model before it is queued; money is written
as exact JSON numbers from ``Decimal`` (the models' own JSON goes through float).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.account import Account
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit
from fhir.resources.R4B.paymentreconciliation import PaymentReconciliation
from fhir_core.fhirabstractmodel import FHIRAbstractModel

from mappings.fhir.claim_response import claim_response, explanation_of_benefit, money
from mappings.fhir.payment_reconciliation import payment_reconciliation
from mappings.fhir.wire import validate
from router.domain.results import Result

MODELS: dict[str, type[FHIRAbstractModel]] = {
    "PaymentReconciliation": PaymentReconciliation, "ClaimResponse": ClaimResponse,
    "ExplanationOfBenefit": ExplanationOfBenefit, "Account": Account}
_MARK = re.compile(r'"\\u0000(\d+)\\u0000"')
BALANCE_EXTENSION = "https://rcmhub.dev/fhir/StructureDefinition/account-balance"


@dataclass(frozen=True)
class FhirOptions:
    base: str = "urn:rcmhub"  # identifier systems: {base}:paymentreconciliation, {base}:account, ...
    claim_resource: str = "ClaimResponse"  # or ExplanationOfBenefit
    payment_reconciliation: bool = True
    claims: bool = True
    accounts: bool = True


@dataclass(frozen=True)
class OutboundResource:
    item: str  # stable per event and resource: part of the delivery's dedupe key
    resource_type: str
    method: str  # POST (conditional create) or PUT (conditional update)
    condition: str  # identifier=system|value
    body: str  # JSON
    summary: str  # no PHI


def fhir_requests(result: Result, options: FhirOptions, now: datetime) -> list[OutboundResource]:
    created = now.isoformat(timespec="seconds")
    out: list[OutboundResource] = []
    remit = result.remittance
    if remit is not None:
        responses: dict[int, dict[str, Any]] = {}
        for claim in remit.claims:
            if not claim.entries or not claim.account or not options.claims:
                continue  # held or unmatched: nothing adjudicated reached the ledger; the detail says the cash
            kind = options.claim_resource
            identifier = _identifier(options.base, kind, f"{result.source_id}:{claim.seq}")
            build = claim_response if kind == "ClaimResponse" else explanation_of_benefit
            doc = build(remit, claim, identifier, options.base, created)
            out.append(_create(f"{result.source_id}|{kind}|{claim.seq}", doc, identifier,
                               f"{kind} {len(doc.get('item', []))} items"))
            responses[claim.seq] = identifier
        if options.payment_reconciliation:
            identifier = _identifier(options.base, "PaymentReconciliation", result.source_id)
            doc = payment_reconciliation(remit, identifier, options.base, created, responses)
            out.append(_create(f"{result.source_id}|PaymentReconciliation", doc, identifier,
                               f"PaymentReconciliation {len(doc['detail'])} details"))
    if options.accounts:
        for account in result.accounts:
            identifier = {"system": f"{options.base}:account", "value": account.account}
            b = account.balances
            doc = {"resourceType": "Account", "identifier": [identifier], "status": "active",
                   "extension": [{"url": BALANCE_EXTENSION, "extension": [
                       {"url": "insurance", "valueMoney": money(b.insurance)},
                       {"url": "patient", "valueMoney": money(b.patient)},
                       {"url": "total", "valueMoney": money(b.total)},
                       {"url": "charges", "valueMoney": money(b.charges)},
                       {"url": "asOf", "valueDateTime": created}]}]}
            out.append(_request(f"{result.source_id}|Account|{account.account}", doc, "PUT", identifier,
                                "Account balance"))
    return out


def _identifier(base: str, kind: str, key: str) -> dict[str, Any]:
    return {"system": f"{base}:{kind.lower()}", "value": hashlib.sha256(key.encode()).hexdigest()[:24]}


def _create(item: str, doc: dict[str, Any], identifier: dict[str, Any], summary: str) -> OutboundResource:
    return _request(item, doc, "POST", identifier, summary)


def _request(item: str, doc: dict[str, Any], method: str, identifier: dict[str, Any],
             summary: str) -> OutboundResource:
    kind = str(doc["resourceType"])
    validate(doc, MODELS[kind])  # raises InvalidResource (a MappingError) naming the element
    return OutboundResource(item, kind, method, f"identifier={identifier['system']}|{identifier['value']}",
                            dumps_exact(doc), summary)


def dumps_exact(doc: Any) -> str:
    """JSON with every ``Decimal`` written as the exact number it is (``150.00``), never via float."""
    numbers: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            numbers.append(str(value))
            return f"\x00{len(numbers) - 1}\x00"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(doc), separators=(",", ":"), ensure_ascii=False)
    return _MARK.sub(lambda m: numbers[int(m.group(1))], text)
