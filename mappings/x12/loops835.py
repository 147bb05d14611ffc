"""Builds one 835 ``Remittance`` from the segments between ST and SE (mappings layer): BPR, TRN, DTM*405,
N1 PR/PE + REF, LX/TS3/TS2, CLP/CAS/NM1/MIA/MOA/REF/DTM/AMT/QTY (2100), SVC/DTM/CAS/REF/AMT/QTY/LQ
(2110) and PLB. The loop is tracked from the segment that opened it, because REF, DTM, CAS and AMT
mean different things in different loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from mappings.x12 import elements as el
from mappings.x12.model835 import (
    Adjustment,
    Claim,
    DateRef,
    Envelope,
    Finding,
    HeaderNumber,
    MonetaryAmount,
    Party,
    Payment,
    PersonName,
    PlbAdjustment,
    Procedure,
    ProviderAdjustment,
    Quantity,
    Reference,
    Remittance,
    ServiceLine,
    Severity,
)
from mappings.x12.segments import Segment, Separators

# Segments the hub does not use (addresses, contacts, delivery method); read past them quietly.
_IGNORED = frozenset({"N3", "N4", "PER", "RDM", "CUR", "N2"})


@dataclass
class _Service:
    seg: Segment
    number: int
    amounts: tuple[Decimal, Decimal]  # SVC02, SVC03
    dates: list[DateRef] = field(default_factory=list)
    cas: list[Adjustment] = field(default_factory=list)
    refs: list[Reference] = field(default_factory=list)
    amts: list[MonetaryAmount] = field(default_factory=list)
    qtys: list[Quantity] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass
class _Claim:
    seg: Segment
    header_number: str | None
    raw: list[str]
    amounts: tuple[Decimal, Decimal, Decimal | None]  # CLP03, CLP04, CLP05
    cas: list[Adjustment] = field(default_factory=list)
    names: list[PersonName] = field(default_factory=list)
    mia: tuple[str, ...] | None = None
    moa: tuple[str, ...] | None = None
    refs: list[Reference] = field(default_factory=list)
    dates: list[DateRef] = field(default_factory=list)
    amts: list[MonetaryAmount] = field(default_factory=list)
    qtys: list[Quantity] = field(default_factory=list)
    services: list[ServiceLine] = field(default_factory=list)


class TransactionBuilder:
    """Fed the segments of one transaction set in order; ``finish`` returns the frozen ``Remittance``."""

    def __init__(self, st: Segment, envelope: Envelope, separators: Separators) -> None:
        self.st = st
        self.envelope = envelope
        self.component = separators.component
        self.loop = "header"
        self.payment: Payment | None = None
        self.trn: Segment | None = None
        self.production_date: DateRef | None = None
        self.refs: list[Reference] = []
        self.parties: dict[str, tuple[Segment, list[Reference]]] = {}
        self.headers: list[HeaderNumber] = []
        self.claims: list[Claim] = []
        self.plbs: list[ProviderAdjustment] = []
        self.findings: list[Finding] = []
        self.claim: _Claim | None = None
        self.service: _Service | None = None
        self._handlers: dict[str, Callable[[Segment], None]] = {
            "BPR": self._bpr, "TRN": self._trn, "REF": self._ref, "DTM": self._dtm, "N1": self._n1,
            "LX": self._lx, "TS3": self._ts, "TS2": self._ts, "CLP": self._clp, "CAS": self._cas,
            "NM1": self._nm1, "MIA": self._mia, "MOA": self._mia, "AMT": self._amt, "QTY": self._qty,
            "SVC": self._svc, "LQ": self._lq, "PLB": self._plb,
        }  # fmt: skip

    def feed(self, seg: Segment) -> None:
        handler = self._handlers.get(seg.id)
        if handler is not None:
            handler(seg)
        elif seg.id not in _IGNORED:
            self.findings.append(Finding(
                "835/unexpected-segment", Severity.WARNING, seg.where, None, seg.id,
                f"segment {seg.id} is not used by the 835 and was ignored",
                seg.id, seg.position - self.st.position + 1,
            ))  # fmt: skip
        if self.claim is not None and seg.id != "CLP":
            self.claim.raw.append(seg.raw)

    # -- header and parties ---------------------------------------------------------------------
    def _bpr(self, seg: Segment) -> None:
        self.payment = Payment(
            el.required(seg, 1, "header"), el.amount(seg, 2, "header"), el.required(seg, 3, "header"),
            el.required(seg, 4, "header"), self._date(seg, 16, "header"),
        )  # fmt: skip

    def _trn(self, seg: Segment) -> None:
        el.required(seg, 2, "header")
        self.trn = seg

    def _n1(self, seg: Segment) -> None:
        self._close_claim()
        entity = el.required(seg, 1, "1000")
        self.loop = {"PR": "1000A", "PE": "1000B"}.get(entity, "1000")
        self.parties.setdefault(entity, (seg, []))

    def _ref(self, seg: Segment) -> None:
        ref = Reference(el.required(seg, 1, self.loop), seg.el(2))
        if self.service is not None:
            self.service.refs.append(ref)
        elif self.claim is not None:
            self.claim.refs.append(ref)
        elif self.loop in ("1000A", "1000B"):
            self.parties["PR" if self.loop == "1000A" else "PE"][1].append(ref)
        elif self.loop == "header":
            self.refs.append(ref)

    def _date(self, seg: Segment, n: int, loop: str) -> date | None:
        """An invalid date is reported, not fatal: money can still be checked and posting falls back."""
        try:
            return el.optional_date(seg, n, loop)
        except el.ElementError as exc:
            self.findings.append(Finding(
                "835/invalid-date", Severity.WARNING, seg.where, "CCYYMMDD", seg.el(n), exc.reason,
                seg.id, seg.position - self.st.position + 1, n,
            ))  # fmt: skip
            return None

    def _dtm(self, seg: Segment) -> None:
        qualifier = el.required(seg, 1, self.loop)
        el.required(seg, 2, self.loop)
        when = el.parse_date(seg.elements[2]) or self._date(seg, 2, self.loop)
        if when is None:
            return
        value = DateRef(qualifier, when)
        if self.service is not None:
            self.service.dates.append(value)
        elif self.claim is not None:
            self.claim.dates.append(value)
        elif value.qualifier == "405":
            self.production_date = value

    # -- loop 2000 / 2100 ---------------------------------------------------------------------------
    def _lx(self, seg: Segment) -> None:
        self._close_claim()
        self.loop = "2000"
        self.headers.append(HeaderNumber(el.required(seg, 1, "2000")))

    def _ts(self, seg: Segment) -> None:
        if not self.headers or self.claim is not None:
            raise el.SegmentError(f"{seg.id} outside loop 2000 (after LX)", seg.id, seg.position, code="2")
        last = self.headers[-1]
        if seg.id == "TS3":
            self.headers[-1] = HeaderNumber(last.number, seg.elements, last.ts2)
        else:
            self.headers[-1] = HeaderNumber(last.number, last.ts3, seg.elements)

    def _clp(self, seg: Segment) -> None:
        self._close_claim()
        self.loop = "2100"
        el.required(seg, 1, "2100"), el.required(seg, 2, "2100")
        amounts = el.amount(seg, 3, "2100"), el.amount(seg, 4, "2100"), el.optional_amount(seg, 5, "2100")
        header = self.headers[-1].number if self.headers else None
        self.claim = _Claim(seg, header, [seg.raw], amounts)

    def _in_claim(self, seg: Segment) -> _Claim:
        if self.claim is None:
            raise el.SegmentError(f"{seg.id} outside a claim (CLP first)", seg.id, seg.position, code="2")
        return self.claim

    def _cas(self, seg: Segment) -> None:
        loop = "2110" if self.service is not None else "2100"
        group = el.required(seg, 1, loop)
        target = self.service.cas if self.service is not None else self._in_claim(seg).cas
        e = seg.elements
        size = len(e)
        if size < 4:
            el.required(seg, 3, loop)
        for n in range(2, min(size, 20), 3):  # up to six (reason, amount, quantity) triplets
            if e[n] or (n + 1 < size and e[n + 1]):
                quantity = el.optional_number(seg, n + 2, loop) if n + 2 < size and e[n + 2] else None
                target.append(Adjustment(group, el.required(seg, n, loop), el.amount(seg, n + 1, loop), quantity))

    def _nm1(self, seg: Segment) -> None:
        e = seg.el
        name = PersonName(el.required(seg, 1, "2100"), e(2), e(3), e(4), e(5), e(8), e(9))
        self._in_claim(seg).names.append(name)

    def _mia(self, seg: Segment) -> None:
        claim = self._in_claim(seg)
        if seg.id == "MIA":
            claim.mia = seg.elements
        else:
            claim.moa = seg.elements

    def _amt(self, seg: Segment) -> None:
        value = MonetaryAmount(el.required(seg, 1, self.loop), el.amount(seg, 2, self.loop))
        (self.service.amts if self.service is not None else self._in_claim(seg).amts).append(value)

    def _qty(self, seg: Segment) -> None:
        value = Quantity(el.required(seg, 1, self.loop), el.optional_number(seg, 2, self.loop) or Decimal(0))
        (self.service.qtys if self.service is not None else self._in_claim(seg).qtys).append(value)

    # -- loop 2110 --------------------------------------------------------------------------------
    def _svc(self, seg: Segment) -> None:
        claim = self._in_claim(seg)
        self._close_service()
        self.loop = "2110"
        el.required(seg, 1, "2110")
        amounts = el.amount(seg, 2, "2110"), el.amount(seg, 3, "2110")  # fail at the SVC, not at its end
        self.service = _Service(seg, len(claim.services) + 1, amounts)

    def _lq(self, seg: Segment) -> None:
        if self.service is None:
            raise el.SegmentError("LQ outside a service line (loop 2110)", "LQ", seg.position, code="2")
        if seg.el(1) == "HE":
            self.service.remarks.append(el.required(seg, 2, "2110"))

    def _procedure(self, value: str) -> Procedure:
        parts = value.split(self.component)
        return Procedure(parts[0], parts[1] if len(parts) > 1 else "", tuple(p for p in parts[2:6] if p))

    def _close_service(self) -> None:
        s = self.service
        if s is None or self.claim is None:
            return
        seg = s.seg
        original = seg.el(6)
        self.claim.services.append(ServiceLine(
            s.number, self._procedure(seg.el(1)), *s.amounts,
            seg.el(4), el.optional_number(seg, 5, "2110"), self._procedure(original) if original else None,
            el.optional_number(seg, 7, "2110"), tuple(s.dates), tuple(s.cas), tuple(s.refs), tuple(s.amts),
            tuple(s.qtys), tuple(s.remarks), seg.position,
        ))  # fmt: skip
        self.service = None

    def _close_claim(self) -> None:
        self._close_service()
        c = self.claim
        if c is None:
            return
        seg = c.seg
        self.claims.append(Claim(
            seg.el(1), seg.el(2), *c.amounts, seg.el(6), seg.el(7), seg.el(8), seg.el(9), c.header_number,
            tuple(c.cas), tuple(c.names), c.mia, c.moa, tuple(c.refs), tuple(c.dates), tuple(c.amts),
            tuple(c.qtys), tuple(c.services), tuple(c.raw), seg.position,
        ))  # fmt: skip
        self.claim = None

    # -- summary ----------------------------------------------------------------------------------
    def _plb(self, seg: Segment) -> None:
        self._close_claim()
        self.loop = "summary"
        adjustments = []
        for n in range(3, min(len(seg.elements), 15), 2):
            if seg.el(n) or seg.el(n + 1):
                reason, _, reference = el.required(seg, n, "PLB").partition(self.component)
                adjustments.append(PlbAdjustment(reason, reference, el.amount(seg, n + 1, "PLB")))
        if not adjustments:
            el.required(seg, 3, "PLB")
        self.plbs.append(ProviderAdjustment(
            el.required(seg, 1, "PLB"), self._date(seg, 2, "PLB"), tuple(adjustments), seg.position
        ))  # fmt: skip

    def finish(self, se: Segment, findings: tuple[Finding, ...]) -> Remittance:
        self._close_claim()
        if self.payment is None:
            raise el.SegmentError("header/BPR missing", "BPR", se.position, code="3", location=se.where)
        if self.trn is None:
            raise el.SegmentError("header/TRN missing", "TRN", se.position, code="3", location=se.where)
        return Remittance(
            self.envelope, self.st.el(2), self.st.el(3), self.payment, self.trn.el(2), self.trn.el(3),
            self.production_date.value if self.production_date else None, tuple(self.refs),
            self._party("PR", "1000A", se), self._party("PE", "1000B", se), tuple(self.headers),
            tuple(self.claims), tuple(self.plbs), se.position - self.st.position + 1, self.st.position,
            (*findings, *self.findings),
        )  # fmt: skip

    def _party(self, entity: str, loop: str, se: Segment) -> Party:
        if entity not in self.parties:
            raise el.SegmentError(f"{loop}/N1*{entity} missing", "N1", se.position, code="3", location=se.where)
        seg, refs = self.parties[entity]
        return Party(entity, seg.el(2), seg.el(3), seg.el(4), tuple(refs))
