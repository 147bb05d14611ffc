"""Reads 835 transactions from an X12 stream one at a time (mappings layer), checking the envelope:
ISA13 = IEA02, IEA01 = groups, GS06 = GE02, GE01 = sets, ST02 = SE02, SE01 = segments counted.

Control-number and count violations are findings, so a file can still be checked and reported; a file
whose envelope cannot be followed (ST outside GS, no SE before EOF, ...) raises ``DecodeError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from mappings.x12.gc_pause import gc_paused
from mappings.x12.loops835 import TransactionBuilder
from mappings.x12.model835 import (
    Adjustment,
    Claim,
    Envelope,
    Finding,
    Party,
    Payment,
    PlbAdjustment,
    ProviderAdjustment,
    Remittance,
    ServiceLine,
    Severity,
)
from mappings.x12.segments import Segment, SegmentReader, Separators
from router.domain.errors import DecodeError, MappingError

__all__ = [
    "Adjustment", "Claim", "Envelope", "Finding", "Party", "Payment", "PlbAdjustment",
    "ProviderAdjustment", "Remittance", "ServiceLine", "Severity", "TransactionResult",
    "read_835", "scan_835",
]  # fmt: skip

IMPLEMENTATION = "005010X221A1"
_ENVELOPE = frozenset({"SE", "ST", "GE", "GS", "IEA", "ISA"})


@dataclass(frozen=True, slots=True)
class TransactionResult:
    """Every transaction set of a file: an 835 read in full, an 835 that failed mapping, or another set."""

    envelope: Envelope
    set_id: str  # ST01
    control_number: str  # ST02
    implementation: str  # ST03
    position: int
    segment_count: int
    remittance: Remittance | None
    error: MappingError | None
    findings: tuple[Finding, ...]


def _finding(rule: str, seg: Segment, expected: object, actual: object, message: str) -> Finding:
    return Finding(rule, Severity.ERROR, seg.where, str(expected), str(actual), message, seg.id)


class _EnvelopeReader:
    """Walks ISA/GS/ST..SE/GE/IEA; holds back each result until the trailers after it are checked."""

    def __init__(self, source: BinaryIO | bytes) -> None:
        self.reader = SegmentReader(source)
        self.isa: Segment | None = None
        self.gs: Segment | None = None
        self.envelope: Envelope | None = None
        self.groups = 0
        self.sets = 0
        self.pending: TransactionResult | None = None
        self.carry: list[Finding] = []  # trailer findings seen before any result could take them

    def _note(self, finding: Finding) -> None:
        if self.pending is not None:
            self.pending = _with_findings(self.pending, (finding,))
        else:
            self.carry.append(finding)

    def __iter__(self) -> Iterator[TransactionResult]:
        segments = iter(self.reader)
        for seg in segments:
            sid = seg.id
            if sid == "ST":
                if self.gs is None or self.envelope is None:
                    raise DecodeError("ST outside a functional group (no GS)", location=seg.where)
                result = self._transaction(seg, segments)
                if self.pending is not None:
                    yield self.pending
                self.pending = _with_findings(result, tuple(self.carry))
                self.carry.clear()
            elif sid == "ISA":
                if self.isa is not None:
                    raise DecodeError("ISA inside an interchange (IEA missing)", location=seg.where)
                self.isa, self.groups = seg, 0
            elif sid == "GS":
                if self.isa is None or self.gs is not None:
                    raise DecodeError("GS outside an interchange or inside a group", location=seg.where)
                self._open_group(seg, self.isa)
            elif sid == "GE":
                self._close_group(seg)
            elif sid == "IEA":
                self._close_interchange(seg)
            else:
                raise DecodeError(f"{sid} outside a transaction set (no ST)", location=seg.where)
        if self.gs is not None:
            self._note(_finding("envelope/ge-missing", self.gs, "GE", "end of file", "file ends without GE"))
        if self.isa is not None:
            self._note(_finding("envelope/iea-missing", self.isa, "IEA", "end of file", "file ends without IEA"))
        if self.pending is None:
            raise DecodeError("no transaction set (ST..SE) in the interchange", location=f"segment {seg.position}")
        yield self.pending

    def _open_group(self, gs: Segment, isa: Segment) -> None:
        self.gs, self.sets = gs, 0
        self.groups += 1
        i, g = isa.el, gs.el
        self.envelope = Envelope(i(5), i(6).strip(), i(7), i(8).strip(), i(13), i(15), g(1), g(2), g(3), g(6), g(8))

    def _close_group(self, ge: Segment) -> None:
        if self.gs is None:
            raise DecodeError("GE without GS", location=ge.where)
        if ge.el(2) != self.gs.el(6):
            self._note(_finding("envelope/ge02-control", ge, self.gs.el(6), ge.el(2), "GE02 does not match GS06"))
        if ge.el(1) != str(self.sets):
            self._note(_finding("envelope/ge01-count", ge, self.sets, ge.el(1), "GE01 is not the number of sets"))
        self.gs = None

    def _close_interchange(self, iea: Segment) -> None:
        if self.isa is None:
            raise DecodeError("IEA without ISA", location=iea.where)
        if self.gs is not None:
            self._note(_finding("envelope/ge-missing", iea, "GE", "IEA", "group not closed before IEA"))
            self.gs = None
        if iea.el(2) != self.isa.el(13):
            self._note(_finding("envelope/iea02-control", iea, self.isa.el(13), iea.el(2), "IEA02 ≠ ISA13"))
        if iea.el(1) != str(self.groups):
            self._note(_finding("envelope/iea01-count", iea, self.groups, iea.el(1), "IEA01 ≠ groups"))
        self.isa = None

    def _transaction(self, st: Segment, segments: Iterator[Segment]) -> TransactionResult:
        assert self.envelope is not None  # checked by the caller
        self.sets += 1
        set_id, envelope = st.el(1), self.envelope
        findings: list[Finding] = []
        builder: TransactionBuilder | None = None
        if set_id != "835":
            findings.append(_finding("envelope/unsupported-set", st, "835", set_id, "not an 835; skipped"))
        else:
            # pyx12's 5010 map marks ST03 "not used" and payers often omit it: GS08 then names the guide.
            version = st.el(3) or envelope.version
            if version != IMPLEMENTATION:
                findings.append(replace(
                    _finding("envelope/implementation", st, IMPLEMENTATION, version,
                             "not a 5010 835 (ST03/GS08); read on a best-effort basis"),
                    severity=Severity.WARNING,
                ))  # fmt: skip
            builder = TransactionBuilder(st, envelope, self._separators())
        with gc_paused():
            return self._body(st, segments, builder, findings)

    def _body(
        self, st: Segment, segments: Iterator[Segment], builder: TransactionBuilder | None, findings: list[Finding]
    ) -> TransactionResult:
        error: MappingError | None = None
        feed = builder.feed if builder is not None else None
        for seg in segments:
            sid = seg[0]
            if sid in _ENVELOPE:
                if sid == "SE":
                    return self._close_set(st, seg, builder, error, findings)
                raise DecodeError(f"{sid} inside transaction set {st.el(2)!r} (SE missing)", location=seg.where)
            if feed is not None:
                try:
                    feed(seg)
                except MappingError as exc:
                    error, feed = exc, None  # read on to SE so the rest of the file can still be checked
        raise DecodeError(f"file ends inside transaction set {st.el(2)!r} (SE missing)", location=st.where)

    def _close_set(
        self, st: Segment, se: Segment, builder: TransactionBuilder | None, error: MappingError | None,
        findings: list[Finding],
    ) -> TransactionResult:  # fmt: skip
        count = se.position - st.position + 1
        if se.el(2) != st.el(2):
            findings.append(_finding("envelope/se02-control", se, st.el(2), se.el(2), "SE02 does not match ST02"))
        if se.el(1) != str(count):
            findings.append(_finding("envelope/se01-count", se, count, se.el(1), "SE01 is not the segment count"))
        remittance = None
        if builder is not None and error is None:
            try:
                remittance = builder.finish(se, tuple(findings))
            except MappingError as exc:
                error = exc
        assert self.envelope is not None
        return TransactionResult(
            self.envelope,
            st.el(1),
            st.el(2),
            st.el(3),
            st.position,
            count,
            remittance,
            error,
            tuple(findings),
        )

    def _separators(self) -> Separators:
        assert self.reader.separators is not None  # set before the ISA was yielded
        return self.reader.separators


def _with_findings(result: TransactionResult, extra: tuple[Finding, ...]) -> TransactionResult:
    if not extra:
        return result
    remittance = result.remittance
    if remittance is not None:
        remittance = replace(remittance, findings=(*remittance.findings, *extra))
    return replace(result, remittance=remittance, findings=(*result.findings, *extra))


def scan_835(source: BinaryIO | bytes) -> Iterator[TransactionResult]:
    """Every transaction set in the file, 835 or not, with mapping errors captured per set (for checks).

    Why not pyx12 here: on a generated 10,000-claim 835 (3.5 MB, 2 shared cores) this reader plus
    balancing takes ~1-2 s while pyx12 4.0 full validation (``x12n_document``) took 33 s and its bare
    segment reader alone ~2 s (tests/benchmarks/test_bench_835_end_to_end.py). pyx12 also rejects two PLBs
    (legal) and its 999 writer cuts off, so it fits only an optional, offline ``--strict`` check.
    """
    return iter(_EnvelopeReader(source))


def read_835(source: BinaryIO | bytes) -> Iterator[Remittance]:
    """The 835 transactions of a file, one at a time; other sets are skipped, a mapping error is raised."""
    for result in scan_835(source):
        if result.error is not None:
            raise result.error
        if result.remittance is not None:
            yield result.remittance
