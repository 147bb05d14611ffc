"""Bulk seeding of billed claims for benchmarks: the rows ``post_charges`` would write for one DFT^P03 per
claim (account, patient, primary coverage, claim + key, charge lines, CHARGE ledger entries), inserted with
Core executemany in one transaction instead of 10,000 bus round trips.

``tests/unit/router/test_claims_seed.py`` checks that a bulk-seeded claim reads back exactly like one
seeded through the bus, so the fixture cannot drift from the real charge path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, insert
from x12_factory import ClaimSpec

from router.adapters.orm import (
    AccountRow,
    ChargeLineRow,
    ClaimKeyRow,
    ClaimRow,
    CoverageRow,
    LedgerRow,
    PatientRow,
)
from router.domain.matching import normalize_pcn
from router.domain.money import to_cents

SERVICE_DATE = date(2024, 3, 1)  # the DTM*472 the x12 factory writes


@dataclass(frozen=True)
class SeedClaim:
    key: str  # CLP01 / PV1-19
    account: str
    lines: Sequence[tuple[str, tuple[str, ...], int]]  # (code, modifiers, cents); no line control, as DFT


def from_specs(claims: Sequence[ClaimSpec], prefix: str, per_account: int = 2) -> list[SeedClaim]:
    """One billed claim per distinct CLP01 of ``claims`` (reversals share theirs), ``per_account`` each."""
    out: list[SeedClaim] = []
    seen: set[str] = set()
    for spec in claims:
        if spec.pcn in seen or spec.status == "22":
            continue
        seen.add(spec.pcn)
        lines = [(ln.code, ln.modifiers, to_cents(ln.charge)) for ln in spec.lines]
        out.append(SeedClaim(spec.pcn, f"{prefix}{len(out) // per_account:06d}", lines))
    return out


def seed(engine: Engine, claims: Sequence[SeedClaim], payer: str = "ACME", source: str = "seed", *,
         family: str = "DOE", member_id: str = "MEMBER1") -> None:
    """Insert ``claims`` as if each had arrived as one DFT^P03 with an IN1 for ``payer``."""
    accounts = sorted({c.account for c in claims})
    with engine.begin() as conn:
        ids = dict(conn.execute(insert(AccountRow).returning(AccountRow.number, AccountRow.id,
                                                             sort_by_parameter_order=True),
                                [{"number": a, "guarantor": ""} for a in accounts]).all())
        patients = dict(conn.execute(insert(PatientRow).returning(PatientRow.account_id, PatientRow.id,
                                                                  sort_by_parameter_order=True),
                                     [{"mrn": f"MRN{a}", "account_id": ids[a], "family": family, "given": "JANE",
                                       "birth_date": date(1980, 1, 1)} for a in accounts]).all())
        conn.execute(insert(CoverageRow), [{"account_id": ids[a], "sequence": 1, "payer_id": payer,
                                            "payer_name": f"{payer} HEALTH", "member_id": member_id,
                                            "group_number": "GRP1", "plan": "PLAN1"} for a in accounts])
        claim_ids = dict(conn.execute(insert(ClaimRow).returning(ClaimRow.key, ClaimRow.id,
                                                                 sort_by_parameter_order=True),
                                      [{"key": c.key, "account_id": ids[c.account],
                                        "patient_id": patients[ids[c.account]]} for c in claims]).all())
        conn.execute(insert(ClaimKeyRow), [{"key": c.key, "claim_id": claim_ids[c.key],
                                            "normalized": normalize_pcn(c.key)} for c in claims])
        lines, entries = [], []
        for c in claims:
            sid = f"{source}:{c.key}"
            for n, (code, modifiers, cents) in enumerate(c.lines, start=1):
                key = f"{sid}:charge:{n}"
                lines.append({"claim_id": claim_ids[c.key], "line_no": n, "service_date": SERVICE_DATE, "code": code,
                              "modifiers": ":".join(modifiers), "units": "1", "amount_cents": cents,
                              "line_control": None, "description": "", "diagnoses": "", "performer": "",
                              "entry_key": key})
                entries.append({"account_id": ids[c.account], "claim_id": claim_ids[c.key], "line_no": n,
                                "kind": "charge", "responsibility": "insurance", "amount_cents": cents,
                                "source_id": sid, "idempotency_key": key, "effective_date": SERVICE_DATE})
        conn.execute(insert(ChargeLineRow), lines)
        conn.execute(insert(LedgerRow), entries)
