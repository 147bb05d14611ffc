"""Every 835 sample either posts with all balancing checks true, or is quarantined whole naming the exact
rule that failed, or (unreadable) is rejected with the reason; on both databases.

Samples carry fixed identifiers, so each test rewrites TRN02 with its ``uid``: every run is a new payment
(the PostgreSQL test database persists). Nothing is billed for the samples' claims, so a balanced sample's
claims are held as unmatched, never posted to an account; what is checked is the remittance itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SAMPLES
from sqlalchemy import text

from api.bootstrap import Hub
from connectors.intake import Status
from mappings.x12.balancing import is_balanced, validate
from mappings.x12.remit835 import read_835

DIR = SAMPLES / "x12_835"

# sample -> the TRN02 of each of its transaction sets
BALANCED = {
    "edi-835-parser/emedny_sample.txt": ["10100000000"],
    "edi-835-parser/united_healthcare_legacy_sample.txt": ["1234567890"],
    "linuxforhealth-x12/cob-contractural-adjustment.835": ["0063158ABC"],
    "linuxforhealth-x12/managed-care.835": ["7170066655"],
    "linuxforhealth-x12/medicare-part-a.835": ["12345"],
    "linuxforhealth-x12/secondary-payment.835": ["0012524965"],
    "pyx12/835_mult_loops.txt": ["000000000"],
    "worked-example.835": ["EFT0001234"],
}
# sample -> (TRN02, the location the failing rule names, the rule's message start)
UNBALANCED = {
    "linuxforhealth-x12/tertiary-payment.835": ("0012524879", "CLP 0001000054 / SVC 1", "SVC02 24599.00 - ΣCAS"),
    "pyx12/835_simple.txt": ("0004926", "ST 40731 / BPR", "ΣCLP04 -510.25 - ΣPLB -977.94 ≠ BPR02 5950.21"),
}
# sample -> the reasons its transaction sets (or the file) are rejected with
UNREADABLE = {
    "edi-835-parser/blue_cross_nc_sample.txt": ["no ISA interchange header"],
    "pyx12/mult_isa.txt": [*["is not a remittance"] * 3, "is not a remittance", *["header/BPR missing"] * 3,
                           *["is not a remittance"] * 4, "header/BPR missing"],
}


def test_every_sample_is_classified_here() -> None:
    on_disk = {p.relative_to(DIR).as_posix() for p in DIR.rglob("*") if p.is_file()}
    assert on_disk == {*BALANCED, *UNBALANCED, *UNREADABLE}


def _fresh(path: str, traces: list[str], uid: str) -> bytes:
    """The sample with every TRN02 prefixed by ``uid`` (and, for the worked example, its claim keys too)."""
    data = (DIR / path).read_bytes()
    sep = re.escape(data[3:4])
    for trace in traces:
        data, n = re.subn(rb"(TRN" + sep + rb"1" + sep + rb")" + re.escape(trace.encode()) + rb"(?=" + sep + rb")",
                          rb"\g<1>" + uid.encode() + trace.encode(), data)
        assert n == 1, (path, trace)
    if path == "worked-example.835":  # other tests bill PCN/ICN look-alikes: keep these claims unknown here
        data = data.replace(b"PCN", f"S{uid}".encode()).replace(b"ICN", f"J{uid}".encode())
    return data


def _remittance(hub: Hub, trace: str) -> tuple[int, int, int, int, int, str, str, int]:
    with hub.sessions() as s:
        row = s.execute(text(
            "SELECT r.id, r.payment_cents, r.posted_cents, r.held_cents, r.plb_cents, r.status, r.problems, "
            "(SELECT count(*) FROM remittance_claims c WHERE c.remittance_id = r.id) FROM remittances r "
            "WHERE r.trace_number = :t"), {"t": trace}).one()
    return tuple(row)  # type: ignore[return-value]


def _exceptions(hub: Hub, remittance_id: int) -> list[tuple[str, str, int]]:
    with hub.sessions() as s:
        rows = s.execute(text("SELECT type, reason, amount_cents FROM exceptions WHERE remittance_id = :r "
                              "ORDER BY id"), {"r": remittance_id}).all()
    return [(r[0], r[1], r[2]) for r in rows]


@pytest.mark.parametrize("path", sorted(BALANCED))
def test_a_balanced_sample_is_posted_with_every_balancing_check_true_and_conserves_cash(
        hub: Hub, uid: str, path: str) -> None:
    data = _fresh(path, BALANCED[path], uid)
    txs = list(read_835(data))
    assert all(is_balanced(validate(tx)) for tx in txs)

    report = hub.intake.ingest(data, Path(path).name)

    assert [(r.status, r.reason) for r in report.results] == [(Status.ACCEPTED, None)] * len(txs)
    assert report.ack and "AK9*A*" in report.ack
    for tx, trace in zip(txs, BALANCED[path], strict=True):
        rid, payment, posted, held, plb, status, problems, claims = _remittance(hub, uid + trace)
        assert status in ("posted", "partial") and problems == ""
        assert claims == len(tx.claims)  # every claim reached matching; none was quarantined
        assert posted + held + plb == payment
        found = _exceptions(hub, rid)
        assert "unbalanced_remittance" not in {t for t, _, _ in found}
        # nothing billed these claims: each one's cash is held as unmatched, and only that
        assert sorted(t for t, _, _ in found if t != "unlinked_plb") == ["unmatched_claim"] * len(tx.claims)
        assert held == sum(a for t, _, a in found if t == "unmatched_claim")


@pytest.mark.parametrize("path", sorted(UNBALANCED))
def test_an_unbalanced_sample_is_quarantined_whole_naming_the_rule_that_failed(
        hub: Hub, uid: str, path: str) -> None:
    trace, location, message = UNBALANCED[path]
    report = hub.intake.ingest(_fresh(path, [trace], uid), Path(path).name)

    assert [(r.status, r.reason) for r in report.results] == [(Status.ACCEPTED, None)]
    rid, payment, posted, held, plb, status, problems, claims = _remittance(hub, uid + trace)
    assert (status, posted, held, plb, claims) == ("quarantined", 0, payment, 0, 0)  # nothing half-posted
    [(kind, reason, amount)] = _exceptions(hub, rid)
    assert (kind, amount) == ("unbalanced_remittance", payment)
    assert reason.startswith(f"remittance does not balance; nothing posted: {location}: {message}")
    assert problems.splitlines() == [reason.removeprefix("remittance does not balance; nothing posted: ")]


@pytest.mark.parametrize("path", sorted(UNREADABLE))
def test_an_unreadable_sample_is_rejected_with_the_reason_and_posts_nothing(hub: Hub, path: str) -> None:
    report = hub.intake.ingest((DIR / path).read_bytes(), Path(path).name)
    reasons = UNREADABLE[path]
    assert [r.status for r in report.results] == [Status.REJECTED] * len(reasons)
    for result, expected in zip(report.results, reasons, strict=True):
        assert result.reason and expected in result.reason and result.location
