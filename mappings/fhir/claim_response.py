"""A reconciled remittance claim -> FHIR R4 ClaimResponse or ExplanationOfBenefit (mappings, pure).

Built from the remittance claim row (CLP01/02/03/04/07) and the ledger entries it posted, never the 835:
- total: ``submitted`` = CLP03, ``benefit`` = CLP04; payment: amount CLP04, identifier TRN02, date BPR16;
- item per billed line (``itemSequence`` = the charge line number): ``submitted`` = the billed amount,
  ``benefit`` = the payment posted on it, and one adjudication per CAS that reached the ledger;
- adjudication categories (R4 adjudication codes, as FHIR intake reads them in adjudication.py): PR-1
  ``deductible``, PR-2 ``coinsurance``, PR-3 ``copay``, CO-96 ``noncovered``, other CAS under their group
  code (system X12 claim adjustment group codes); ``reason`` is the CARC (X12 CARC system). An amount is the
  adjustment's effect on insurance A/R as the 835 states it (positive reduces the payment); a transfer to
  the patient counts once (its insurance leg); reversals carry negated amounts;
- claim-level CAS and payments (no billed line) go to the header ``adjudication``;
- remark codes (RARCs) become ``processNote`` entries ("{code}: {description}"); a line's (LQ*HE) are linked
  from its item by ``noteNumber``.
Patient, claim, payer and payee are logical references by identifier (``{base}:account`` etc.).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from router.domain.codes import RARC, describe
from router.domain.ledger import CHARGE_KINDS, EntryKind, Responsibility
from router.domain.money import ZERO
from router.domain.results import ClaimResult, PostedEntry, RemittanceResult

ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
GROUP_SYSTEM = "https://x12.org/codes/claim-adjustment-group-codes"
CARC_SYSTEM = "https://x12.org/codes/claim-adjustment-reason-codes"
CATEGORY_OF = {("PR", "1"): "deductible", ("PR", "2"): "coinsurance", ("PR", "3"): "copay", ("CO", "96"): "noncovered"}
PAYMENT_KINDS = frozenset({EntryKind.INSURANCE_PAYMENT})


def money(amount: Decimal) -> dict[str, Any]:
    return {"value": amount, "currency": "USD"}


def ref(system: str, value: str, display: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"identifier": {"system": system, "value": value}}
    if display:
        found["display"] = display
    return found


def _category(code: str, system: str = ADJUDICATION) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def adjudications(entries: list[PostedEntry], submitted: Decimal | None) -> list[dict[str, Any]]:
    """submitted, benefit and one entry per (group, CARC) from the insurance-side ledger entries."""
    benefit = ZERO
    adjusted: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for e in entries:
        if e.responsibility is not Responsibility.INSURANCE or e.effective_kind in CHARGE_KINDS:
            continue  # the patient leg of a transfer (its insurance leg says it); charges are not adjudication
        if e.effective_kind in PAYMENT_KINDS:
            benefit -= e.amount
        else:
            adjusted[(e.group_code or "OA", e.reason_code or "")] -= e.amount
    out: list[dict[str, Any]] = []
    if submitted is not None:
        out.append({"category": _category("submitted"), "amount": money(submitted)})
    out.append({"category": _category("benefit"), "amount": money(benefit)})
    for (group, carc), amount in adjusted.items():
        named = CATEGORY_OF.get((group, carc))
        item: dict[str, Any] = {"category": _category(named) if named else _category(group, GROUP_SYSTEM),
                                "amount": money(amount)}
        if carc:
            item["reason"] = {"coding": [{"system": CARC_SYSTEM, "code": carc}]}
        out.append(item)
    return out


def _lines(claim: ClaimResult) -> tuple[dict[int, list[PostedEntry]], list[PostedEntry], dict[int, PostedEntry]]:
    lines: dict[int, list[PostedEntry]] = defaultdict(list)
    header: list[PostedEntry] = []
    first: dict[int, PostedEntry] = {}
    for e in claim.entries:
        if e.charge_line is None:
            header.append(e)
        else:
            lines[e.charge_line].append(e)
            first.setdefault(e.charge_line, e)
    return lines, header, first


def claim_response(remit: RemittanceResult, claim: ClaimResult, identifier: dict[str, Any], base: str,
                   created: str) -> dict[str, Any]:
    lines, header, _first = _lines(claim)
    doc = _adjudicated("ClaimResponse", remit, claim, identifier, base, created)
    doc.update({
        "request": ref(f"{base}:claim", claim.claim_key or claim.pcn),
        "item": [{"itemSequence": n, "adjudication": adjudications(es, es[0].line_charge)}
                 for n, es in sorted(lines.items())],
    })
    return _finish(doc, header, _notes(remit, claim))


def explanation_of_benefit(remit: RemittanceResult, claim: ClaimResult, identifier: dict[str, Any], base: str,
                           created: str) -> dict[str, Any]:
    """The same content as an ExplanationOfBenefit (for EMRs that take EOBs): items carry their procedure."""
    lines, header, first = _lines(claim)
    doc = _adjudicated("ExplanationOfBenefit", remit, claim, identifier, base, created)
    doc.update({
        "provider": ref(f"{base}:payee", remit.payee_id or "unknown", remit.payee_name or None),
        "claim": ref(f"{base}:claim", claim.claim_key or claim.pcn),
        "insurance": [{"focal": True, "coverage": {"display": remit.payer_name or remit.payer_id or "payer"}}],
        "item": [{"sequence": n, "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt",
                                                                  "code": first[n].procedure or "unknown"}]},
                  "adjudication": adjudications(es, es[0].line_charge)} for n, es in sorted(lines.items())],
    })
    return _finish(doc, header, _notes(remit, claim))


def _adjudicated(resource_type: str, remit: RemittanceResult, claim: ClaimResult, identifier: dict[str, Any],
                 base: str, created: str) -> dict[str, Any]:
    """The elements ClaimResponse and ExplanationOfBenefit share: who, outcome, totals and payment."""
    return {
        "resourceType": resource_type, "identifier": [identifier], "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim", "patient": ref(f"{base}:account", claim.account or ""), "created": created,
        "insurer": ref(f"{base}:payer", remit.payer_id, remit.payer_name or None),
        "outcome": "complete", "disposition": f"CLP02={claim.status} {claim.outcome}",
        "total": [{"category": _category("submitted"), "amount": money(claim.charge)},
                  {"category": _category("benefit"), "amount": money(claim.paid)}],
        "payment": _payment(remit, claim),
    }


def _notes(remit: RemittanceResult, claim: ClaimResult) -> tuple[list[dict[str, Any]], dict[int, list[int]]]:
    """``processNote`` for each RARC (numbered once per code), and the note numbers per charge line."""
    numbers: dict[str, int] = {}
    by_line: dict[int, list[int]] = defaultdict(list)
    for entry, codes in remit.remarks_of(claim):
        for code in codes:
            number = numbers.setdefault(code, len(numbers) + 1)
            if entry is not None and entry.charge_line is not None and number not in by_line[entry.charge_line]:
                by_line[entry.charge_line].append(number)
    notes = [{"number": n, "type": "display", "text": f"{code}: {describe(RARC, code)}"} for code, n in numbers.items()]
    return notes, by_line


def _finish(doc: dict[str, Any], header: list[PostedEntry],
            notes: tuple[list[dict[str, Any]], dict[int, list[int]]]) -> dict[str, Any]:
    """Claim-level adjudication when there is any; remark notes; no empty ``item`` list (FHIR forbids empty
    arrays)."""
    if header:
        doc["adjudication"] = adjudications(header, None)
    process_notes, by_line = notes
    for item in doc["item"]:
        if numbers := by_line.get(item.get("itemSequence", item.get("sequence"))):
            item["noteNumber"] = numbers
    if process_notes:
        doc["processNote"] = process_notes
    if not doc["item"]:
        del doc["item"]
    return doc


def _payment(remit: RemittanceResult, claim: ClaimResult) -> dict[str, Any]:
    payment: dict[str, Any] = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-paymenttype",
                                                    "code": "complete"}]},
                               "amount": money(claim.paid),
                               "identifier": {"system": "https://x12.org/835/trn02", "value": remit.trace_number}}
    if remit.payment_date:
        payment["date"] = remit.payment_date.isoformat()
    return payment
