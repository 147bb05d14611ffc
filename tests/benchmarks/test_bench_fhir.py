"""FHIR Claim validation + mapping (R4B model_validate -> PostCharges) against bare ``json.loads`` of the
same payload, measured in the same run and interleaved; prints claims/s and the cost ratio."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from fhir.resources.R4B.claim import Claim
from fhir_factory import ClaimBundle, Item

from mappings.fhir.inbound import decode

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(120)]

ROUNDS = 7
PER_ROUND = 300


def _claim_payload() -> bytes:
    items = [Item(f"{100 + n}.{n:02d}", code=f"99{200 + n}", modifiers=("25",), diagnoses=(1,)) for n in range(8)]
    bundle = ClaimBundle("A1", "V1", diagnoses=("J01.90",), items=items)
    claim = bundle.claim(patient_ref="#p1", coverage_ref="#c1")
    claim["contained"] = [bundle.patient() | {"id": "p1"}, {
        "resourceType": "Coverage", "id": "c1", "status": "active", "beneficiary": {"reference": "#p1"},
        "payor": [{"identifier": {"value": "BCBS"}}]}]
    return json.dumps(claim).encode()


def _rate(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(PER_ROUND):
        fn()
    return PER_ROUND / (time.perf_counter() - start)


def test_claim_validation_and_mapping_throughput_against_json_loads() -> None:
    payload = _claim_payload()
    [entry] = decode(payload).entries
    assert entry.error is None and entry.commands  # measure the success path
    mapped, baseline, library = [], [], []
    for _ in range(ROUNDS):  # interleaved, so machine noise hits all three alike
        baseline.append(_rate(lambda: json.loads(payload)))
        library.append(_rate(lambda: Claim.model_validate(json.loads(payload, parse_float=Decimal))))
        mapped.append(_rate(lambda: decode(payload)))
    best_mapped, best_base, best_lib = max(mapped), max(baseline), max(library)
    print(f"\nFHIR Claim ({len(payload)} bytes, 8 items): validate+map {best_mapped:,.0f}/s, "
          f"json.loads {best_base:,.0f}/s -> {best_base / best_mapped:.1f}x the bare parse; "
          f"R4B model_validate alone {best_lib:,.0f}/s -> decode costs {best_lib / best_mapped:.2f}x the validation")
    assert best_mapped > 0
