"""Builds FHIR R4 remittance payloads (ExplanationOfBenefit, ClaimResponse) as dicts from plain values."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

CARC = "https://x12.org/codes/claim-adjustment-reason-codes"


def adj(category: str, amount: str | None = None, carc: str = "") -> dict[str, Any]:
    """One adjudication: category code, optional amount (JSON number text) and CARC reason."""
    out: dict[str, Any] = {"category": {"coding": [{"code": category}]}}
    if amount is not None:
        out["amount"] = {"value": amount, "currency": "USD"}
    if carc:
        out["reason"] = {"coding": [{"system": CARC, "code": carc}]}
    return out


@dataclass
class RemitItem:
    code: str
    adjudication: list[dict[str, Any]]
    net: str | None = None
    modifiers: tuple[str, ...] = ()


@dataclass
class Eob:
    claim_key: str
    items: list[RemitItem] = field(default_factory=list)
    payer: str = "99999"
    identifier: str = "EOB1"
    trace: str = "TRACE1"
    payment: str | None = None  # payment.amount; None leaves payment out
    adjustment: str | None = None  # payment.adjustment
    outcome: str = "complete"
    status: str = "active"
    totals: dict[str, str] = field(default_factory=dict)

    def resource(self) -> dict[str, Any]:
        items = []
        for n, it in enumerate(self.items, start=1):
            item: dict[str, Any] = {"sequence": n, "productOrService": {"coding": [{"code": it.code}]},
                                    "servicedDate": "2024-03-01", "adjudication": it.adjudication}
            if it.net is not None:
                item["net"] = {"value": it.net, "currency": "USD"}
            if it.modifiers:
                item["modifier"] = [{"coding": [{"code": m}]} for m in it.modifiers]
            items.append(item)
        eob: dict[str, Any] = {
            "resourceType": "ExplanationOfBenefit", "id": self.identifier, "status": self.status,
            "identifier": [{"system": "urn:payer:eob", "value": self.identifier}],
            "type": {"coding": [{"code": "professional"}]}, "use": "claim", "patient": {"reference": "Patient/p1"},
            "created": "2024-04-15", "insurer": {"identifier": {"value": self.payer}, "display": "ACME HEALTH PLAN"},
            "provider": {"display": "GOOD CLINIC"}, "claim": {"identifier": {"value": self.claim_key}},
            "outcome": self.outcome, "insurance": [{"focal": True, "coverage": {"reference": "Coverage/c1"}}],
            "item": items}
        if self.totals:
            eob["total"] = [{"category": {"coding": [{"code": k}]}, "amount": {"value": v, "currency": "USD"}}
                            for k, v in self.totals.items()]
        if self.payment is not None:
            eob["payment"] = {"date": "2024-04-15", "amount": {"value": self.payment, "currency": "USD"},
                              "identifier": {"value": self.trace}}
            if self.adjustment is not None:
                eob["payment"]["adjustment"] = {"value": self.adjustment, "currency": "USD"}
        return eob

    def json(self) -> str:
        return numbers(json.dumps(self.resource()))


def numbers(text: str) -> str:
    """Money values go on the wire as JSON numbers, exactly as written ("110.00" -> 110.00)."""
    return re.sub(r'"value": "(-?\d+(?:\.\d+)?)", "currency"', r'"value": \1, "currency"', text)
