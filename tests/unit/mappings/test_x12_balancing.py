"""Balancing at three levels: generated remittances always balance, any one changed amount is caught."""

from __future__ import annotations

import random
from decimal import Decimal

import x12_factory as fx
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.x12.balancing import check, is_balanced, summary, validate
from mappings.x12.model835 import Severity
from mappings.x12.remit835 import read_835

# (segment id, element holding the amount); for CAS the first triplet's amount.
TARGETS = {"CLP04": ("CLP", 4), "SVC03": ("SVC", 3), "CAS": ("CAS", 3), "BPR02": ("BPR", 2), "PLB": ("PLB", 4)}


def _spec(seed: int, claims: int) -> fx.RemittanceSpec:
    spec = fx.random_remittance(random.Random(seed), claims)
    return fx.RemittanceSpec(spec.claims, (*spec.plbs, fx.PlbSpec("WO", "ICN1", Decimal("12.34"))))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 30), st.sampled_from(["", "\n", "\r\n"]))
def test_random_balanced_remittances_always_balance(seed: int, claims: int, newline: str) -> None:
    text = fx.render_835([_spec(seed, claims)], fx.Layout(newline=newline))
    [tx] = read_835(text.encode())
    findings = validate(tx)
    assert findings == []
    assert is_balanced(findings)
    assert summary(tx, findings)["balanced"] is True


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 10**6),
    st.sampled_from(sorted(TARGETS)),
    st.integers(0, 10**6),
    st.integers(-50_000, 50_000).filter(bool),
)
def test_any_single_amount_mutation_is_caught(seed: int, target: str, pick: int, cents: int) -> None:
    segments = list(fx.interchange_segments([_spec(seed, 3)]))
    seg_id, n = TARGETS[target]
    candidates = [s for s in segments if s[0] == seg_id]
    seg = candidates[pick % len(candidates)]
    old = seg[n]
    assert isinstance(old, str)
    seg[n] = fx.amount(Decimal(old) + Decimal(cents) / 100)
    [tx] = read_835("".join(fx.render_segments(segments)).encode())
    errors = [f for f in check(tx) if f.severity is Severity.ERROR]
    assert errors, f"{target} {old} -> {seg[n]} went unnoticed"
    assert not is_balanced(errors)


def test_reversal_and_correction_pair_balances_with_negated_amounts() -> None:
    line = fx.LineSpec("99213", Decimal("100.00"), (fx.Cas("CO", "45", Decimal("30.00")),))
    original = fx.ClaimSpec("PCN1", (line,), payer_claim_number="ICN1")
    spec = fx.RemittanceSpec((original.reversal(), fx.ClaimSpec("PCN1", (line,), payer_claim_number="ICN2")))
    [tx] = read_835(fx.render_835([spec]).encode())
    assert [c.paid for c in tx.claims] == [Decimal("-70.00"), Decimal("70.00")]
    assert tx.claims[0].services[0].adjustments[0].group == "CO"
    assert validate(tx) == [] and tx.payment.amount == Decimal("0.00")


def test_claim_without_service_lines_balances_on_claim_cas_only() -> None:
    claim = fx.ClaimSpec("PCN2", (), (fx.Cas("OA", "23", Decimal("40.00")),), charge_without_lines=Decimal("100"))
    [tx] = read_835(fx.render_835([fx.RemittanceSpec((claim,))]).encode())
    assert tx.claims[0].paid == Decimal("60.00") and validate(tx) == []


def test_cross_checks_are_warnings_that_leave_the_transaction_balanced() -> None:
    claim = fx.ClaimSpec("PCN3", (fx.LineSpec("99213", Decimal("50"), (fx.Cas("PR", "1", Decimal("5")),)),),
                         interest=Decimal("1.25"))  # fmt: skip
    text = fx.render_835([fx.RemittanceSpec((claim,))]).replace("*45*5*12*", "*45*4*12*")
    [tx] = read_835(text.encode())
    findings = validate(tx)
    assert [(f.rule, f.severity, f.expected, f.actual) for f in findings] == [
        ("835/clp05-patient", Severity.WARNING, "5.00", "4.00"),
        ("835/plb-l6-interest", Severity.WARNING, "1.25", "0.00"),
    ]
    assert is_balanced(findings) and summary(tx, findings)["balanced"] is True
    assert summary(tx, findings)["errors"][0] == {
        "rule": "835/clp05-patient", "severity": "warning", "location": "CLP PCN3", "expected": "5.00",
        "actual": "4.00", "message": "ΣPR CAS 5.00 ≠ CLP05 4.00",
    }  # fmt: skip


def test_a_debit_bpr_balances_against_negative_claim_totals() -> None:
    line = fx.LineSpec("99213", Decimal("80"), ())
    spec = fx.RemittanceSpec((fx.ClaimSpec("PCN4", (line,)).reversal(),))
    text = fx.render_835([spec])
    assert "BPR*I*80*D*" in text
    [tx] = read_835(text.encode())
    assert validate(tx) == []
