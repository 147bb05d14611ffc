"""Reading 835s: every sample either balances or names the rule it breaks; the worked example's values."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import x12_factory as fx

from mappings.x12.balancing import is_balanced, summary, validate
from mappings.x12.elements import ElementError
from mappings.x12.remit835 import read_835, scan_835
from router.domain.errors import DecodeError, MappingError

SAMPLES = Path(__file__).parents[2] / "samples" / "x12_835"


def _rules(path: str) -> list[tuple[str, str, str]]:
    out = []
    for tx in read_835((SAMPLES / path).read_bytes()):
        out += [(f.rule, f.severity.value, f.location) for f in validate(tx)]
    return out


@pytest.mark.parametrize(
    "path",
    [
        "edi-835-parser/emedny_sample.txt",
        "edi-835-parser/united_healthcare_legacy_sample.txt",
        "linuxforhealth-x12/medicare-part-a.835",
        "pyx12/835_mult_loops.txt",
        "worked-example.835",
    ],
)
def test_clean_samples_balance_without_any_finding(path: str) -> None:
    assert _rules(path) == []


def test_managed_care_balances_and_reports_its_impossible_check_date() -> None:
    assert _rules("linuxforhealth-x12/managed-care.835") == [("835/invalid-date", "warning", "segment 4 (BPR)")]


@pytest.mark.parametrize(
    ("path", "claim", "lines"),
    [
        ("linuxforhealth-x12/cob-contractural-adjustment.835", "0001000055", [1]),
        ("linuxforhealth-x12/secondary-payment.835", "0001000053", [1, 2]),
    ],
)
def test_samples_whose_svc01_ignores_isa16_balance_and_warn(path: str, claim: str, lines: list[int]) -> None:
    expected = [("835/svc01-code", "warning", f"CLP {claim} / SVC {n}") for n in lines]
    assert _rules(path) == expected


def test_tertiary_payment_fails_exactly_the_service_line_rule() -> None:
    [tx] = read_835((SAMPLES / "linuxforhealth-x12/tertiary-payment.835").read_bytes())
    findings = validate(tx)
    errors = [(f.rule, f.location, f.expected, f.actual) for f in findings if f.severity.value == "error"]
    assert errors == [("835/svc-balance", "CLP 0001000054 / SVC 1", "23020.00", "1766.50")]
    assert not is_balanced(findings)


def test_pyx12_4010_simple_fails_exactly_the_transaction_rule() -> None:
    [tx] = read_835((SAMPLES / "pyx12/835_simple.txt").read_bytes())
    findings = validate(tx)
    assert [(f.rule, f.severity.value) for f in findings] == [
        ("envelope/implementation", "warning"),
        ("835/bpr-balance", "error"),
    ]
    bpr = findings[1]
    assert (bpr.expected, bpr.actual) == ("467.69", "5950.21")
    assert [c.status for c in tx.claims] == ["22", "1", "22"]
    assert {a.group for c in tx.claims for s in c.services for a in s.adjustments} == {"CR"}


def test_blue_cross_without_envelope_is_rejected_and_once_wrapped_names_the_broken_svc() -> None:
    bare = (SAMPLES / "edi-835-parser/blue_cross_nc_sample.txt").read_bytes()
    with pytest.raises(DecodeError, match="no ISA"):
        list(read_835(bare))
    isa = fx.render_835([]).split("~")[0:2]
    wrapped = ("~".join(isa) + "~").encode() + bare + b"GE*1*1~IEA*1*000000001~"
    [result] = scan_835(wrapped)
    assert [f.rule for f in result.findings] == ["envelope/se01-count"]
    assert (result.findings[0].expected, result.findings[0].actual) == ("32", "33")
    assert isinstance(result.error, ElementError)
    assert result.error.reason == "2110/SVC02 missing" and result.error.location == "segment 30 (SVC)"


def test_mult_isa_reports_other_sets_and_empty_835s_per_set() -> None:
    results = list(scan_835((SAMPLES / "pyx12/mult_isa.txt").read_bytes()))
    first, second = ["278", "278", "278", "837", "835", "835", "835"], ["278", "278", "278", "837", "835"]
    assert [r.set_id for r in results] == [*first, *second]
    others = [r for r in results if r.set_id != "835"]
    assert all(r.findings[0].rule == "envelope/unsupported-set" for r in others)
    empty = [r for r in results if r.set_id == "835"]
    assert all(r.error is not None and r.error.reason == "header/BPR missing" for r in empty)
    assert {r.envelope.interchange_control for r in results} == {"000010125", "000010121"}
    with pytest.raises(MappingError, match="header/BPR missing"):
        list(read_835((SAMPLES / "pyx12/mult_isa.txt").read_bytes()))


def test_worked_example_values_are_read_as_sent() -> None:
    [tx] = read_835((SAMPLES / "worked-example.835").read_bytes())
    assert (tx.envelope.sender_id, tx.envelope.interchange_control, tx.envelope.group_control) == (
        "ACMEHEALTH", "000000101", "101",
    )  # fmt: skip
    assert tx.control_number == "0001" and tx.implementation == "005010X221A1"
    p = tx.payment
    assert (p.handling_code, p.amount, p.credit_debit, p.method, p.date) == (
        "I", Decimal("137.50"), "C", "ACH", date(2024, 4, 15),
    )  # fmt: skip
    assert (tx.trace_number, tx.trace_payer_id, tx.production_date) == ("EFT0001234", "1512345678", date(2024, 4, 14))
    assert tx.payer.name == "ACME HEALTH PLAN" and tx.payer.references[0].value == "ACME01"
    assert (tx.payee.name, tx.payee.id_qualifier, tx.payee.id) == ("GOOD CLINIC", "XX", "1234567890")
    a, b, c, d = tx.claims
    assert (a.patient_control_number, a.status, a.charge, a.paid, a.patient_responsibility) == (
        "PCN1001", "1", Decimal("300.00"), Decimal("150.00"), Decimal("60.00"),
    )  # fmt: skip
    assert a.payer_claim_number == "ICN987" and a.interest == Decimal("2.50") and a.header_number == "1"
    line = a.services[0]
    assert (line.procedure.qualifier, line.procedure.code, line.charge, line.paid, line.units) == (
        "HC", "99214", Decimal("200.00"), Decimal("110.00"), Decimal(1),
    )  # fmt: skip
    assert [(x.group, x.reason, x.amount) for x in line.adjustments] == [
        ("CO", "45", Decimal("40.00")), ("PR", "1", Decimal("30.00")), ("PR", "2", Decimal("20.00")),
    ]  # fmt: skip
    assert line.control_number == "L1" and line.amounts[0].amount == Decimal("160.00")
    assert (b.status, b.charge, b.paid, b.patient_responsibility) == ("22", Decimal("-120.00"), Decimal("-80.00"), None)
    assert b.adjustments[0].amount == Decimal("-40.00") and not b.services
    assert c.references[0].qualifier == "F8" and c.references[0].value == "ICN555"
    assert (d.paid, d.status) == (Decimal("0.00"), "1")
    [plb] = tx.provider_adjustments
    assert plb.fiscal_date == date(2024, 12, 31)
    assert [(x.reason, x.reference, x.amount) for x in plb.adjustments] == [
        ("L6", "ICN987", Decimal("-2.50")), ("WO", "ICN444", Decimal("25.00")),
    ]  # fmt: skip
    assert a.raw[0] == "CLP*PCN1001*1*300*150*60*12*ICN987" and a.raw[-1] == "AMT*B6*50"
    assert summary(tx, validate(tx)) == {
        "control_number": "0001", "payer": "ACME HEALTH PLAN", "payee": "GOOD CLINIC",
        "trace_number": "EFT0001234", "payment_amount": "137.50", "claim_count": 4,
        "claim_paid_total": "160.00", "plb_total": "22.50", "balanced": True, "errors": [],
    }  # fmt: skip


def test_several_transactions_in_one_group_are_yielded_one_by_one() -> None:
    rng = random.Random(11)
    specs = [fx.random_remittance(rng, 3, control_number=f"{n:04d}", first=n * 10) for n in range(1, 4)]
    txs = list(read_835(fx.render_835(specs).encode()))
    assert [t.control_number for t in txs] == ["0001", "0002", "0003"]
    assert all(validate(t) == [] for t in txs)


def test_envelope_count_and_control_mismatches_are_findings_not_exceptions() -> None:
    text = fx.render_835([fx.random_remittance(random.Random(1), 2)])
    se = next(s for s in text.split("~") if s.startswith("SE*"))
    bad = (
        text.replace(se, "SE*999*0002")
        .replace("GE*1*1~", "GE*2*7~")
        .replace("IEA*1*000000001~", "IEA*3*000000009~")
    )
    [result] = scan_835(bad.encode())
    assert [f.rule for f in result.findings] == [
        "envelope/se02-control", "envelope/se01-count", "envelope/ge02-control", "envelope/ge01-count",
        "envelope/iea02-control", "envelope/iea01-count",
    ]  # fmt: skip
    assert result.remittance is not None and result.remittance.findings == result.findings


@pytest.mark.parametrize(
    ("old", "new", "reason", "where"),
    [
        ("CLP*PCN1001*1*300*150*60", "CLP*PCN1001*1*300**60", "2100/CLP04 missing", "segment 15 (CLP)"),
        ("SVC*HC:93000*100*40", "SVC*HC:93000*100*4O", "2110/SVC03 is not a number: '4O'", "segment 24 (SVC)"),
        ("CAS*CO*45*50~", "CAS*CO*45~", "2110/CAS03 missing", "segment 26 (CAS)"),
        ("BPR*I*137.50", "BPR*I*137.505", "header/BPR02 has more than two decimals: 137.505", "segment 4 (BPR)"),
        ("*-2.50*WO", "*1E3*WO", "PLB/PLB04 is not a number: '1E3'", "segment 41 (PLB)"),
        ("TRN*1*EFT0001234*1512345678~", "", "header/TRN missing", "segment 41 (SE)"),
    ],
)
def test_a_missing_or_invalid_required_element_raises_mapping_error_with_location(
    old: str, new: str, reason: str, where: str
) -> None:
    text = (SAMPLES / "worked-example.835").read_text()
    assert old in text
    with pytest.raises(MappingError) as err:
        list(read_835(text.replace(old, new).encode()))
    assert (err.value.reason, err.value.location) == (reason, where)


@pytest.mark.parametrize(
    ("cut", "words"),
    [
        ("SE*", "SE missing"),
        ("GS*", "ST outside a functional group"),
    ],
)
def test_a_structurally_impossible_file_raises_decode_error_with_position(cut: str, words: str) -> None:
    lines = (SAMPLES / "worked-example.835").read_text().splitlines()
    text = "\n".join(ln for ln in lines if not ln.startswith(cut))
    with pytest.raises(DecodeError, match=words) as err:
        list(read_835(text.encode()))
    assert err.value.location is not None and err.value.location.startswith("segment ")
