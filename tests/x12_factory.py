"""Builds balanced X12 835 test files from dataclass inputs (claims -> lines -> CAS, PLB) as text.

    spec = random_remittance(random.Random(7), claims=20)     # or build ClaimSpec/LineSpec by hand
    text = render_835([spec], layout=Layout(segment="~", newline="\\n"))
    write_835(open("big.835", "w"), stream_remittances(100_000, seed=1))   # streamed, never in memory

Every amount derived here balances by construction (SVC03 = SVC02 - CAS, CLP04 = sum SVC03 - claim CAS,
BPR02 = sum CLP04 - sum PLB, PLB L6 = -sum AMT*I). ``remittance_segments`` returns the segments as lists of
elements so a test can tamper with one element before ``render_segments``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TextIO

ZERO = Decimal("0.00")
Element = str | tuple[str, ...]  # a tuple is a composite, joined with the component separator
Seg = list[Element]


@dataclass(frozen=True)
class Cas:
    group: str  # CO, PR, OA, PI
    reason: str
    amount: Decimal


@dataclass(frozen=True)
class LineSpec:
    code: str
    charge: Decimal
    adjustments: tuple[Cas, ...] = ()
    control: str = ""  # REF*6R
    units: str = "1"
    modifiers: tuple[str, ...] = ()
    remarks: tuple[str, ...] = ()  # LQ*HE line-level RARCs

    @property
    def paid(self) -> Decimal:
        return self.charge - sum((a.amount for a in self.adjustments), ZERO)


@dataclass(frozen=True)
class ClaimSpec:
    pcn: str  # CLP01
    lines: tuple[LineSpec, ...] = ()
    claim_adjustments: tuple[Cas, ...] = ()
    status: str = "1"
    payer_claim_number: str = ""
    interest: Decimal | None = None  # AMT*I
    charge_without_lines: Decimal = ZERO  # CLP03 when the claim has no service lines
    original_reference: str = ""  # REF*F8 on a corrected claim
    remarks: tuple[str, ...] = ()  # MOA03-07 claim-level RARCs (MA15 marks a split claim)
    crossover_payer: str = ""  # NM1*TT: the payer the claim was forwarded to

    @property
    def charge(self) -> Decimal:
        return sum((ln.charge for ln in self.lines), ZERO) if self.lines else self.charge_without_lines

    @property
    def paid(self) -> Decimal:
        cas = sum((a.amount for a in self.claim_adjustments), ZERO)
        return (sum((ln.paid for ln in self.lines), ZERO) if self.lines else self.charge) - cas

    @property
    def patient_responsibility(self) -> Decimal:
        every = [*self.claim_adjustments, *(a for ln in self.lines for a in ln.adjustments)]
        return sum((a.amount for a in every if a.group == "PR"), ZERO)

    def reversal(self) -> ClaimSpec:
        """CLP02=22 with every amount negated and the original group codes kept (5010)."""

        def neg(adjs: tuple[Cas, ...]) -> tuple[Cas, ...]:
            return tuple(replace(a, amount=-a.amount) for a in adjs)

        return replace(
            self, status="22", interest=None, charge_without_lines=-self.charge_without_lines,
            claim_adjustments=neg(self.claim_adjustments),
            lines=tuple(replace(ln, charge=-ln.charge, adjustments=neg(ln.adjustments)) for ln in self.lines),
        )  # fmt: skip


@dataclass(frozen=True)
class PlbSpec:
    reason: str  # L6, WO, FB, CS, ...
    reference: str
    amount: Decimal  # positive withholds, negative adds


@dataclass(frozen=True)
class RemittanceSpec:
    claims: tuple[ClaimSpec, ...]
    plbs: tuple[PlbSpec, ...] = ()
    control_number: str = "0001"  # ST02
    trace_number: str = "EFT0001234"
    payer_name: str = "ACME HEALTH PLAN"
    payer_id: str = "1512345678"
    payer_ref: str = "99999"  # REF*2U, the payer id the hub keys on
    payee_name: str = "GOOD CLINIC"
    payee_npi: str = "1234567890"
    date: str = "20240415"

    @property
    def payment(self) -> Decimal:
        return sum((c.paid for c in self.claims), ZERO) - sum((p.amount for p in self.plbs), ZERO)


@dataclass(frozen=True)
class Layout:
    element: str = "*"
    component: str = ":"
    segment: str = "~"
    repetition: str = "^"
    newline: str = ""  # written after every terminator: "", "\n" or "\r\n"
    sender: str = "PAYERSENDER"
    receiver: str = "RCMHUB"
    interchange_control: int = 1
    group_control: int = 1


def amount(value: Decimal) -> str:
    """X12 R form the way payers write it: no trailing ".00" on whole amounts."""
    return str(int(value)) if value == value.to_integral_value() else f"{value:.2f}"


def _cas_segments(adjustments: Sequence[Cas]) -> Iterator[Seg]:
    by_group: dict[str, list[Cas]] = {}
    for adj in adjustments:
        by_group.setdefault(adj.group, []).append(adj)
    for group, adjs in by_group.items():
        for start in range(0, len(adjs), 6):  # at most six triplets per CAS
            seg: Seg = ["CAS", group]
            for a in adjs[start : start + 6]:
                seg += [a.reason, amount(a.amount), ""]
            while seg[-1] == "":
                seg.pop()
            yield seg


def claim_segments(claim: ClaimSpec) -> Iterator[Seg]:
    """Loop 2100 and its 2110 lines."""
    yield ["CLP", claim.pcn, claim.status, amount(claim.charge), amount(claim.paid),
           amount(claim.patient_responsibility) if claim.patient_responsibility else "", "12",
           claim.payer_claim_number]  # fmt: skip
    yield from _cas_segments(claim.claim_adjustments)
    yield ["NM1", "QC", "1", "DOE", "JANE", "", "", "", "MI", f"M{claim.pcn}"]
    if claim.crossover_payer:
        yield ["NM1", "TT", "2", claim.crossover_payer, "", "", "", "", "PI", "CROSSOVER1"]
    if claim.remarks:
        yield ["MOA", "", "", *claim.remarks[:5]]
    if claim.original_reference:
        yield ["REF", "F8", claim.original_reference]
    yield ["DTM", "232", "20240301"]
    if claim.interest is not None:
        yield ["AMT", "I", amount(claim.interest)]
    for ln in claim.lines:
        yield ["SVC", ("HC", ln.code, *ln.modifiers), amount(ln.charge), amount(ln.paid), "", ln.units]
        yield ["DTM", "472", "20240301"]
        yield from _cas_segments(ln.adjustments)
        if ln.control:
            yield ["REF", "6R", ln.control]
        for remark in ln.remarks:
            yield ["LQ", "HE", remark]


def transaction_segments(remit: RemittanceSpec) -> Iterator[Seg]:
    """ST..SE of one 835; SE01 is counted as the segments go by."""
    payment = remit.payment
    flag, method = "C" if payment >= 0 else "D", "ACH" if payment else "NON"
    body: list[Seg] = [
        ["ST", "835", remit.control_number, "005010X221A1"],
        ["BPR", "I" if payment else "H", amount(abs(payment)), flag, method, "CCP", "01",
         "999999999", "DA", "123456", remit.payer_id, "", "01", "888888888", "DA", "98765", remit.date],
        ["TRN", "1", remit.trace_number, remit.payer_id],
        ["DTM", "405", remit.date],
        ["N1", "PR", remit.payer_name], ["REF", "2U", remit.payer_ref],
        ["N1", "PE", remit.payee_name, "XX", remit.payee_npi],
        ["LX", "1"],
    ]  # fmt: skip
    yield from body
    count = len(body)
    for claim in remit.claims:
        for seg in claim_segments(claim):
            count += 1
            yield seg
    for start in range(0, len(remit.plbs), 6):  # PLB repeats after six adjustments
        seg = ["PLB", remit.payee_npi, "20241231"]
        for p in remit.plbs[start : start + 6]:
            seg += [(p.reason, p.reference) if p.reference else p.reason, amount(p.amount)]
        count += 1
        yield seg
    yield ["SE", str(count + 1), remit.control_number]


def _isa(layout: Layout) -> Seg:
    return ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", f"{layout.sender:<15}", "ZZ",
            f"{layout.receiver:<15}", "240415", "1200", layout.repetition, "00501",
            f"{layout.interchange_control:09d}", "0", "T", layout.component]  # fmt: skip


def interchange_segments(remits: Iterable[RemittanceSpec], layout: Layout = Layout()) -> Iterator[Seg]:
    yield _isa(layout)
    yield ["GS", "HP", layout.sender, layout.receiver, "20240415", "1200", str(layout.group_control), "X",
           "005010X221A1"]  # fmt: skip
    sets = 0
    for remit in remits:
        sets += 1
        yield from transaction_segments(remit)
    yield ["GE", str(sets), str(layout.group_control)]
    yield ["IEA", "1", f"{layout.interchange_control:09d}"]


def render_segments(segments: Iterable[Seg], layout: Layout = Layout()) -> Iterator[str]:
    end = layout.segment + layout.newline
    for seg in segments:
        yield layout.element.join(e if isinstance(e, str) else layout.component.join(e) for e in seg) + end


def render_835(remits: Iterable[RemittanceSpec], layout: Layout = Layout()) -> str:
    return "".join(render_segments(interchange_segments(remits, layout), layout))


def write_835(out: TextIO, remits: Iterable[RemittanceSpec], layout: Layout = Layout()) -> None:
    """Streams the interchange to ``out``; ``remits`` may be a generator, nothing is kept."""
    for text in render_segments(interchange_segments(remits, layout), layout):
        out.write(text)


# -- random data ------------------------------------------------------------------------------------
def _cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)) / 100


def random_line(rng: random.Random, n: int) -> LineSpec:
    charge = _cents(rng, 2_000, 90_000)
    co = (charge * Decimal(rng.randint(0, 40)) / 100).quantize(Decimal("0.01"))
    pr = (charge * Decimal(rng.randint(0, 30)) / 100).quantize(Decimal("0.01"))
    adjs = [Cas("CO", "45", co)] if co else []
    if pr:
        adjs.append(Cas("PR", rng.choice("123"), pr))
    if rng.random() < 0.1:
        adjs.append(Cas("OA", "23", _cents(rng, 1, 500)))
    return LineSpec(rng.choice(["99213", "99214", "93000", "80053", "J1100"]), charge, tuple(adjs), f"L{n}")


def random_claim(rng: random.Random, pcn: str, icn: str) -> ClaimSpec:
    lines = tuple(random_line(rng, n) for n in range(1, rng.randint(1, 4) + 1))
    claim_cas = (Cas("CO", "253", _cents(rng, 1, 200)),) if rng.random() < 0.2 else ()
    interest = _cents(rng, 1, 900) if rng.random() < 0.1 else None
    return ClaimSpec(pcn, lines, claim_cas, "1", icn, interest)


def random_remittance(
    rng: random.Random, claims: int, *, control_number: str = "0001", first: int = 0,
    reversals: bool = True, recoupment: bool = True,
) -> RemittanceSpec:  # fmt: skip
    """``claims`` random claims (plus a reversal/correction pair now and then), L6 interest and a WO."""
    out: list[ClaimSpec] = []
    for i in range(first, first + claims):
        claim = random_claim(rng, f"PCN{i:07d}", f"ICN{i:09d}")
        if reversals and rng.random() < 0.05:
            out.append(claim.reversal())
            claim = replace(
                claim, payer_claim_number=f"ICN{i:09d}C", original_reference=claim.payer_claim_number
            )
        out.append(claim)
    plbs: list[PlbSpec] = []
    interest = sum((c.interest for c in out if c.interest is not None), ZERO)
    if interest:
        plbs.append(PlbSpec("L6", out[0].payer_claim_number, -interest))
    if recoupment and rng.random() < 0.5:
        plbs.append(PlbSpec("WO", f"ICN{rng.randint(1, 10**9):09d}", _cents(rng, 100, 5_000)))
    return RemittanceSpec(
        tuple(out), tuple(plbs), control_number=control_number, trace_number=f"TRN{control_number}"
    )


def stream_remittances(
    claims: int, *, seed: int = 0, per_transaction: int = 1_000
) -> Iterator[RemittanceSpec]:
    """Remittances totalling ``claims`` claims, built one transaction at a time."""
    rng = random.Random(seed)
    for n, start in enumerate(range(0, claims, per_transaction), start=1):
        yield random_remittance(
            rng, min(per_transaction, claims - start), control_number=f"{n:04d}", first=start
        )


__all__ = [
    "Cas", "ClaimSpec", "Layout", "LineSpec", "PlbSpec", "RemittanceSpec", "amount", "claim_segments",
    "interchange_segments", "random_claim", "random_line", "random_remittance", "render_835",
    "render_segments", "stream_remittances", "transaction_segments", "write_835",
]  # fmt: skip
