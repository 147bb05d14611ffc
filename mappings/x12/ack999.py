"""Builds the 999 (005010X231A1) for a received interchange (mappings layer): AK1 per functional group,
AK2/IK3/IK4/IK5 per transaction set, AK9 with A, E, P or R.

Own writer, not pyx12's: pyx12 4.0 writes a 999 cut off after AK1/AK2 (no IK5, AK9, SE, GE, IEA; only a
log line) for every 835 - without ST03 it fails on "vriic was not set", with ST03 its own map calls ST03
"not used" and the writer fails on that error (KeyError) - proven in tests/unit/mappings/test_x12_ack999.py.
Balancing has no 999 code: an unbalanced set is reported E with IK403 "I12" on the total that fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from mappings.x12.elements import ElementError, SegmentError
from mappings.x12.model835 import Finding, Severity
from mappings.x12.remit835 import TransactionResult
from mappings.x12.segments import Separators

IMPLEMENTATION = "005010X231A1"
# IK5 codes for envelope findings; AK9 codes for group trailer findings.
_SET_CODES = {"envelope/se02-control": "3", "envelope/se01-count": "4", "envelope/unsupported-set": "1"}
_GROUP_CODES = {"envelope/ge-missing": "3", "envelope/ge02-control": "4", "envelope/ge01-count": "5"}
_REPORTED_WARNINGS = {"835/invalid-date": ("8", "8"), "835/unexpected-segment": ("2", "")}


@dataclass(frozen=True, slots=True)
class SetAck:
    """IK5 for one transaction set, with the IK3/IK4 segments that explain it."""

    status: str  # A, E or R
    codes: tuple[str, ...]
    segments: tuple[list[str], ...]  # IK3 / IK4 element lists


def _ik(seg_id: str, position: int, seg_code: str, element: int | None, code: str, bad: str = "") -> list[list[str]]:
    out = [["IK3", seg_id, str(position), "", seg_code]]
    if element is not None:
        out.append(["IK4", str(element), "", code, bad[:99]] if bad else ["IK4", str(element), "", code])
    return out


def acknowledge_set(result: TransactionResult, balancing: Sequence[Finding] = ()) -> SetAck:
    """Decides IK5 for one set from its envelope findings, mapping error and balancing findings."""
    codes = [_SET_CODES[f.rule] for f in result.findings if f.rule in _SET_CODES]
    segments: list[list[str]] = []
    error = result.error
    if isinstance(error, SegmentError):
        in_set = error.segment_position - result.position + 1
        element = error.element if isinstance(error, ElementError) else None
        code = error.code if isinstance(error, ElementError) else ""
        bad = error.bad_value if isinstance(error, ElementError) else ""
        segments += _ik(error.segment_id, in_set, error.segment_code, element, code, bad)
        codes.append("5")
    elif error is not None:
        codes.append("5")
    if codes:
        return SetAck("R", tuple(dict.fromkeys(codes)), tuple(segments))
    noted = [f for f in (*result.findings, *balancing) if f.segment_id and f.segment_in_set]
    for f in noted:
        if f.severity is Severity.ERROR:
            segments += _ik(f.segment_id or "", f.segment_in_set or 0, "8", f.element, "I12", f.actual or "")
        elif f.rule in _REPORTED_WARNINGS:
            seg_code, el_code = _REPORTED_WARNINGS[f.rule]
            element = f.element if el_code else None
            segments += _ik(f.segment_id or "", f.segment_in_set or 0, seg_code, element, el_code, f.actual or "")
    if segments:
        return SetAck("E", ("I5",), tuple(segments))
    return SetAck("A", (), ())


def _group_status(acks: Sequence[SetAck], group_codes: Sequence[str]) -> str:
    accepted = sum(a.status != "R" for a in acks)
    if acks and accepted == 0:
        return "R"
    if accepted < len(acks):
        return "P"
    return "E" if group_codes or any(a.status == "E" for a in acks) else "A"


def _group_999(results: Sequence[TransactionResult], balancing: dict[int, Sequence[Finding]]) -> Iterator[list[str]]:
    env = results[0].envelope
    group_codes = list(
        dict.fromkeys(_GROUP_CODES[f.rule] for r in results for f in r.findings if f.rule in _GROUP_CODES)
    )
    acks = [acknowledge_set(r, balancing.get(r.position, ())) for r in results]
    yield ["AK1", env.functional_id, env.group_control, env.version]
    for result, ack in zip(results, acks, strict=True):
        yield [
            "AK2",
            result.set_id,
            result.control_number,
            *([result.implementation] if result.implementation else []),
        ]
        yield from ack.segments
        yield ["IK5", ack.status, *ack.codes]
    declared = next((f.actual for r in results for f in r.findings if f.rule == "envelope/ge01-count"), None)
    accepted = sum(a.status != "R" for a in acks)
    status = _group_status(acks, group_codes)
    yield ["AK9", status, declared or str(len(results)), str(len(results)), str(accepted), *group_codes[:5]]


def build_999(
    results: Iterable[TransactionResult], *, balancing: dict[int, Sequence[Finding]] | None = None,
    interchange_control: int, when: datetime, separators: Separators = Separators("*", ":", "~", "^"),
) -> str:  # fmt: skip
    """One 999 interchange answering the results of one received interchange: a ST*999 per group.

    ``balancing`` maps a result's ``position`` to its balancing findings (``balancing.check``).
    """
    results = list(results)
    if not results:
        raise ValueError("nothing to acknowledge")
    env = results[0].envelope
    checks = balancing or {}
    body: list[list[str]] = []
    groups = 0
    for _, members in groupby(results, key=lambda r: (r.envelope.interchange_control, r.envelope.group_control)):
        groups += 1
        st = ["ST", "999", f"{groups:04d}", IMPLEMENTATION]
        lines = [st, *_group_999(list(members), checks)]
        body += [*lines, ["SE", str(len(lines) + 1), st[2]]]
    ctl = f"{interchange_control:09d}"
    isa = ["ISA", "00", " " * 10, "00", " " * 10, env.receiver_qualifier, f"{env.receiver_id:<15}",
           env.sender_qualifier, f"{env.sender_id:<15}", when.strftime("%y%m%d"), when.strftime("%H%M"),
           separators.repetition or "^", "00501", ctl, "0", env.usage or "P",
           separators.component]  # fmt: skip
    gs = ["GS", "FA", env.group_receiver, env.group_sender, when.strftime("%Y%m%d"), when.strftime("%H%M"),
          str(interchange_control), "X", IMPLEMENTATION]  # fmt: skip
    segs = [isa, gs, *body, ["GE", str(groups), str(interchange_control)], ["IEA", "1", ctl]]
    return "".join(separators.element.join(s) + separators.segment for s in segs)
