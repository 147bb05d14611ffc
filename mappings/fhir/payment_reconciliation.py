"""A reconciled remittance -> FHIR R4 PaymentReconciliation (mappings, pure).

paymentAmount = BPR02, paymentIdentifier = TRN02, paymentDate = BPR16, paymentIssuer = the payer (REF*2U),
requestor = the payee (N1*PE); one ``detail`` per claim (type ``payment``, amount CLP04, request = the
practice's claim, response = its ClaimResponse identifier) and one per PLB row (type ``adjustment``, amount =
its cash effect, -PLB amount). Details therefore sum to paymentAmount exactly: posted + held + PLB = BPR02.
"""

from __future__ import annotations

from typing import Any

from mappings.fhir.claim_response import money, ref
from router.domain.results import RemittanceResult

PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/payment-type"


def payment_reconciliation(remit: RemittanceResult, identifier: dict[str, Any], base: str, created: str,
                           responses: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """``responses``: claim seq -> the identifier of the ClaimResponse sent for it."""
    details: list[dict[str, Any]] = []
    for claim in remit.claims:
        detail: dict[str, Any] = {
            "type": {"coding": [{"system": PAYMENT_TYPE, "code": "payment"}]},
            "identifier": {"system": f"{base}:clp", "value": f"{claim.seq}"},
            "request": ref(f"{base}:claim", claim.claim_key or claim.pcn),
            "amount": money(claim.paid)}
        if claim.seq in responses:
            detail["response"] = {"identifier": responses[claim.seq]}
        details.append(detail)
    for n, plb in enumerate(remit.plb, start=1):
        details.append({"type": {"coding": [{"system": PAYMENT_TYPE, "code": "adjustment"}],
                                 "text": f"PLB {plb.code}"},
                        "identifier": {"system": f"{base}:plb", "value": f"{n}:{plb.code}:{plb.reference}"},
                        "amount": money(-plb.amount)})
    doc: dict[str, Any] = {
        "resourceType": "PaymentReconciliation", "identifier": [identifier], "status": "active",
        "created": created, "paymentAmount": money(remit.payment_amount),
        "paymentIdentifier": {"system": "https://x12.org/835/trn02", "value": remit.trace_number},
        "paymentIssuer": ref(f"{base}:payer", remit.payer_id, remit.payer_name or None),
        "outcome": "complete" if remit.status == "posted" else "partial",
        "disposition": f"remittance {remit.status}", "detail": details}
    if remit.payee_id:
        doc["requestor"] = ref(f"{base}:payee", remit.payee_id, remit.payee_name or None)
    doc["paymentDate"] = (remit.payment_date.isoformat() if remit.payment_date else created[:10])
    return doc
