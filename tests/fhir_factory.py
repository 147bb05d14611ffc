"""Builds FHIR R4 test payloads (dicts) from plain values: a Patient + Coverage + Claim transaction Bundle."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@dataclass
class Item:
    net: str | None = None  # JSON number text, e.g. "125.50"
    code: str = "99213"
    quantity: str = "1"
    when: date = date(2024, 3, 1)
    modifiers: tuple[str, ...] = ()
    unit_price: str | None = None
    diagnoses: tuple[int, ...] = ()


@dataclass
class ClaimBundle:
    account: str
    claim_key: str = ""
    mrn: str = ""
    payer: str = ""  # adds a Coverage (payor Organization) when set
    items: list[Item] = field(default_factory=list)
    diagnoses: tuple[str, ...] = ()
    kind: str = "transaction"

    def patient(self) -> dict[str, Any]:
        return {"resourceType": "Patient", "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "value": self.mrn or f"MRN{self.account}"},
            {"type": {"coding": [{"system": V2_0203, "code": "AN"}]}, "value": self.account}],
            "name": [{"family": "DOE", "given": ["JANE"]}], "birthDate": "1980-01-01"}

    def claim(self, patient_ref: str = "urn:uuid:patient-1", coverage_ref: str = "urn:uuid:coverage-1") -> dict:
        items = []
        for n, it in enumerate(self.items, start=1):
            item: dict[str, Any] = {"sequence": n, "productOrService": {"coding": [{"code": it.code}]},
                                    "servicedDate": it.when.isoformat(), "quantity": {"value": it.quantity}}
            if it.net is not None:
                item["net"] = {"value": it.net, "currency": "USD"}
            if it.unit_price is not None:
                item["unitPrice"] = {"value": it.unit_price, "currency": "USD"}
            if it.modifiers:
                item["modifier"] = [{"coding": [{"code": m}]} for m in it.modifiers]
            if it.diagnoses:
                item["diagnosisSequence"] = list(it.diagnoses)
            items.append(item)
        claim: dict[str, Any] = {
            "resourceType": "Claim", "status": "active", "use": "claim", "created": "2024-03-01",
            "type": {"coding": [{"code": "professional"}]}, "priority": {"coding": [{"code": "normal"}]},
            "provider": {"display": "CLINIC"}, "patient": {"reference": patient_ref},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": coverage_ref}}], "item": items}
        if self.claim_key:
            claim["identifier"] = [{"value": self.claim_key}]
        if self.diagnoses:
            claim["diagnosis"] = [{"sequence": n, "diagnosisCodeableConcept": {"coding": [{"code": d}]}}
                                  for n, d in enumerate(self.diagnoses, start=1)]
        return claim

    def bundle(self) -> dict[str, Any]:
        entries = [("urn:uuid:patient-1", self.patient())]
        if self.payer:
            entries.append(("urn:uuid:org-1", {"resourceType": "Organization", "name": f"{self.payer} HEALTH",
                                               "identifier": [{"value": self.payer}]}))
            entries.append(("urn:uuid:coverage-1", {
                "resourceType": "Coverage", "status": "active", "subscriberId": "MEMBER1",
                "beneficiary": {"reference": "urn:uuid:patient-1"}, "payor": [{"reference": "urn:uuid:org-1"}],
                "class": [{"type": {"coding": [{"code": "group"}]}, "value": "GRP1"},
                          {"type": {"coding": [{"code": "plan"}]}, "value": "PLAN1"}]}))
        else:  # R4 requires Claim.insurance: a self-pay Coverage, whose payor is the patient
            entries.append(("urn:uuid:coverage-1", {
                "resourceType": "Coverage", "status": "active", "type": {"coding": [{"code": "pay"}]},
                "beneficiary": {"reference": "urn:uuid:patient-1"}, "payor": [{"reference": "urn:uuid:patient-1"}]}))
        entries.append(("urn:uuid:claim-1", self.claim()))
        entries.reverse()  # the Claim first: the hub must order by dependency, not by position
        return {"resourceType": "Bundle", "type": self.kind, "entry": [
            {"fullUrl": url, "resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
            for url, res in entries]}

    def json(self) -> str:
        # Amounts are written as JSON numbers (not strings), exactly as given.
        return _numbers(json.dumps(self.bundle()))


def _numbers(text: str) -> str:
    """Unquote the amount strings the dataclasses carry, so the payload holds real JSON numbers."""
    return re.sub(r'"(net|unitPrice|quantity)": \{"value": "(-?\d+(?:\.\d+)?)"', r'"\1": {"value": \2', text)
