"""Builds a whole practice for the remittance scenario suite: accounts, DFT^P03 charges, 835 files, and
the balances and cash figures those files must produce, computed here and nowhere else.

    practice = build_practice(random.Random(7), uid="AB12", accounts=40)
    for message in practice.charges: hub.intake.receive_hl7(message)
    for name, data in practice.files: hub.intake.ingest(data, name)
    # then compare with practice.insurance / practice.patient / practice.cash / practice.exceptions

The expected values come from the posting rules as written in ``router/domain/posting.py``'s docstring,
re-implemented by ``_Book`` below without importing the router's posting or reconciliation code:

* an insurance payment lowers insurance A/R; CO lowers insurance A/R;
* PR moves from insurance to patient A/R, unless a next payer is expected (a coverage with a higher
  sequence on the account, CLP02 19/20/21, or NM1*TT) - then it stays insurance A/R;
* OA-23 (prior payer impact) is not posted; any other OA or PI lowers insurance A/R;
* a reversal (CLP02=22) restores exactly what its original (same CLP07) posted;
* held claims (denials, unknown claims) post nothing; their CLP04 is held cash;
* PLB is practice money: it changes no account, and its cash effect is -amount.

Scenarios: paid claims (CO, PR deductible/coinsurance/copay, PI, claim-level CO-253), zero-pay
deductible claims, denials (whole claim or one line), reversal + correction in one file and across
files, split claims (MOA MA15) in one file and across files, primary with PR held for a second coverage
followed by the secondary's CLP02=2 (OA-23 + PR), crossovers (CLP02=19, NM1*TT), unknown claims, PLB L6
interest with AMT*I and WO recoupments (linked to a known claim or not).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from hl7_factory import Dft, Ft1
from x12_factory import Cas, ClaimSpec, Layout, LineSpec, PlbSpec, RemittanceSpec, render_835

from mappings.hl7v2.er7 import segment

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
CODES = ("99211", "99212", "99213", "99214", "99215", "93000", "80053", "36415", "J1100", "71046", "85025",
         "90471")
DENIALS = ("50", "97", "16", "197", "29", "109")
PRIMARY, SECONDARY = "PRIM01", "SECO01"  # REF*2U of the two payers

KINDS = ("paid", "zero_deductible", "denial", "reversal_same_file", "reversal_across_files", "split",
         "split_across_files", "secondary", "crossover", "interest")


@dataclass(frozen=True)
class BilledLine:
    code: str
    charge: Decimal
    modifiers: tuple[str, ...] = ()


@dataclass
class Account:
    number: str
    family: str
    coverages: int  # 1 = primary only, 2 = primary and secondary on file
    claims: list[tuple[str, tuple[BilledLine, ...]]] = field(default_factory=list)  # (PCN, lines)


@dataclass(frozen=True)
class Cash:
    payment: int  # cents, as BPR02 (negative for a debit)
    posted: int
    held: int
    plb: int


@dataclass
class Practice:
    accounts: list[Account]
    charges: list[str]  # DFT^P03 messages, in sending order
    files: list[tuple[str, bytes]]  # 835 files, in ingest order
    insurance: dict[str, Decimal]
    patient: dict[str, Decimal]
    cash: dict[str, Cash]  # by TRN02
    exceptions: dict[str, list[tuple[str, str]]]  # TRN02 -> sorted (type, claim key) expected
    plb: dict[str, list[tuple[str, str, int, bool]]]  # TRN02 -> (code, reference, cents, linked)
    scenarios: Counter[str]


def cents(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


def _money(rng: random.Random, low: Decimal, high: Decimal) -> Decimal:
    """A random amount in [low, high], to the cent."""
    if high <= low:
        return low
    return Decimal(rng.randint(cents(low), cents(high))) / 100


class _Book:
    """The generator's own ledger: per-account buckets and what each payer claim number posted."""

    def __init__(self) -> None:
        self.insurance: dict[str, Decimal] = defaultdict(lambda: ZERO)
        self.patient: dict[str, Decimal] = defaultdict(lambda: ZERO)
        self.by_icn: dict[str, tuple[str, Decimal, Decimal]] = {}  # CLP07 -> (account, insurance, patient)
        self.reversed: set[str] = set()

    def charge(self, account: str, amount: Decimal) -> None:
        self.insurance[account] += amount

    def post(self, account: Account, claim: ClaimSpec) -> None:
        level = {"1": 1, "19": 1, "2": 2, "20": 2, "3": 3, "21": 3}[claim.status]
        next_payer = claim.status in ("19", "20", "21") or bool(claim.crossover_payer) or account.coverages > level
        insurance, patient = -claim.paid, ZERO  # the payment is CLP04 (claim-level CAS reduce it)
        for cas in (*claim.claim_adjustments, *(a for line in claim.lines for a in line.adjustments)):
            if cas.group == "PR":
                if not next_payer:
                    insurance -= cas.amount
                    patient += cas.amount
            elif not (cas.group == "OA" and cas.reason == "23"):
                insurance -= cas.amount
        self.insurance[account.number] += insurance
        self.patient[account.number] += patient
        self.by_icn[claim.payer_claim_number] = (account.number, insurance, patient)

    def reverse(self, claim: ClaimSpec) -> None:
        number, insurance, patient = self.by_icn[claim.payer_claim_number]
        assert claim.payer_claim_number not in self.reversed, "the generator reverses an original once"
        self.reversed.add(claim.payer_claim_number)
        self.insurance[number] -= insurance
        self.patient[number] -= patient


# -- adjudication of billed lines ------------------------------------------------------------------
def _pr(rng: random.Random, amount: Decimal) -> tuple[Cas, ...]:
    """Patient responsibility as deductible, coinsurance and/or copay adding up to ``amount``."""
    if not amount:
        return ()
    reasons = rng.sample(["1", "2", "3"], rng.randint(1, 2))
    if len(reasons) == 1 or amount < Decimal("0.02"):
        return (Cas("PR", reasons[0], amount),)
    first = _money(rng, CENT, amount - CENT)
    return Cas("PR", reasons[0], first), Cas("PR", reasons[1], amount - first)


def paid_line(rng: random.Random, billed: BilledLine) -> LineSpec:
    """A primary payer's line: CO-45, PR, sometimes PI-59, and a payment of at least a cent."""
    charge = billed.charge
    co = (charge * rng.randint(0, 40) / 100).quantize(CENT)
    pr = (charge * rng.randint(0, 30) / 100).quantize(CENT)
    pi = _money(rng, CENT, Decimal("5.00")) if rng.random() < 0.15 else ZERO
    adjs: list[Cas] = [Cas("CO", "45", co)] if co else []
    adjs += _pr(rng, pr)
    if pi:
        adjs.append(Cas("PI", "59", pi))
    line = LineSpec(billed.code, charge, tuple(adjs), modifiers=billed.modifiers)
    assert line.paid > 0
    return line


def zero_pay_line(rng: random.Random, billed: BilledLine) -> LineSpec:
    """Paid 0.00 because everything went to the deductible: not a denial."""
    co = (billed.charge * rng.randint(0, 40) / 100).quantize(CENT)
    adjs = ((Cas("CO", "45", co),) if co else ()) + (Cas("PR", "1", billed.charge - co),)
    return LineSpec(billed.code, billed.charge, adjs, modifiers=billed.modifiers)


def denied_line(rng: random.Random, billed: BilledLine) -> LineSpec:
    return LineSpec(billed.code, billed.charge, (Cas("CO", rng.choice(DENIALS), billed.charge),),
                    modifiers=billed.modifiers)


def secondary_line(rng: random.Random, primary: LineSpec) -> LineSpec:
    """The secondary's view of a line: OA-23 for what the primary settled, then pay part of its PR."""
    left = sum((a.amount for a in primary.adjustments if a.group == "PR"), ZERO)
    adjs: list[Cas] = [Cas("OA", "23", primary.charge - left)] if primary.charge - left else []
    if left:
        pr = (left * rng.randint(0, 60) / 100).quantize(CENT)
        co = (left * rng.randint(0, 20) / 100).quantize(CENT) if left - pr > CENT else ZERO
        if co:
            adjs.append(Cas("CO", "45", co))
        adjs += _pr(rng, pr)
    return LineSpec(primary.code, primary.charge, tuple(adjs), modifiers=primary.modifiers)


def with_sequestration(rng: random.Random, claim: ClaimSpec) -> ClaimSpec:
    """Sometimes a claim-level CO-253, never more than the lines paid."""
    room = sum((ln.paid for ln in claim.lines), ZERO) - CENT
    if rng.random() < 0.25 and room > CENT:
        return replace(claim, claim_adjustments=(Cas("CO", "253", _money(rng, CENT, min(room, Decimal("3.00")))),))
    return claim


# -- the practice ----------------------------------------------------------------------------------
def _dft(uid: str, n: int, account: Account, pcn: str, lines: tuple[BilledLine, ...]) -> str:
    message = Dft(f"{uid}D{n}", account.number, visit=pcn, mrn=f"M{account.number}", family=account.family,
                  given="PAT", payer=PRIMARY,
                  lines=[Ft1(ln.charge, code=ln.code, when=date(2024, 3, 1), modifiers=ln.modifiers)
                         for ln in lines]).er7()
    if account.coverages == 2:  # a secondary policy on file: the primary's PR waits for it
        message += segment("IN1", {1: "2", 2: "PLAN2", 3: SECONDARY, 4: "SECOND HEALTH", 8: "GRP2",
                                   36: f"S{account.number}"}) + "\r"
    return message


def _billed(rng: random.Random, count: int) -> tuple[BilledLine, ...]:
    codes = rng.sample(CODES, count)
    return tuple(BilledLine(code, _money(rng, Decimal("20.00"), Decimal("900.00")),
                            ("25",) if rng.random() < 0.2 else ()) for code in codes)


def build_practice(rng: random.Random, uid: str, accounts: int = 40) -> Practice:
    """``accounts`` accounts with 1-2 claims each; every scenario kind appears at least once."""
    book = _Book()
    people: list[Account] = []
    charges: list[str] = []
    plan: list[tuple[Account, str, tuple[BilledLine, ...], str]] = []
    kinds = list(KINDS)
    for i in range(accounts):
        two = i % 3 == 0  # a third of the accounts have a secondary coverage
        account = Account(f"A{uid}{i:03d}", rng.choice(["SMITH", "GARCIA", "NGUYEN", "OKAFOR", "MULLER"]),
                          2 if two else 1)
        people.append(account)
        for v in range(rng.randint(1, 2)):
            pcn = f"P{uid}{i:03d}{v}"
            # every kind once first (secondary needs a second coverage, crossover must not have one)
            if kinds and {"secondary": two, "crossover": not two}.get(kinds[0], True):
                kind = kinds.pop(0)
            elif two and rng.random() < 0.4:
                kind = "secondary"
            else:
                kind = rng.choice(KINDS)
            if kind == "secondary" and not two:
                kind = "paid"
            if kind == "crossover" and two:
                kind = "paid"
            lines = _billed(rng, rng.randint(2 if kind.startswith("split") else 1, 4))
            account.claims.append((pcn, lines))
            charges.append(_dft(uid, len(charges), account, pcn, lines))
            for ln in lines:
                book.charge(account.number, ln.charge)
            plan.append((account, pcn, lines, kind))
    assert not kinds, f"too few accounts for every scenario: {kinds} left"

    # (account, claim, outcome) per transaction set: P1, P2, P3 from the primary, S1 from the secondary
    files: list[list[tuple[Account | None, ClaimSpec, str]]] = [[], [], [], []]
    p1, p2, p3, s1 = files
    scenarios: Counter[str] = Counter()
    interest_icns: dict[int, list[tuple[str, Decimal]]] = defaultdict(list)
    recoverable: list[str] = []  # CLP07s of posted P1 claims a later WO may reference

    def paid_claim(pcn: str, lines: tuple[BilledLine, ...], icn: str) -> ClaimSpec:
        return with_sequestration(rng, ClaimSpec(pcn, tuple(paid_line(rng, ln) for ln in lines), (), "1", icn))

    for account, pcn, lines, kind in plan:
        scenarios[kind] += 1
        icn = f"I{pcn[1:]}"
        if kind == "paid":
            claim = paid_claim(pcn, lines, icn)
            p1.append((account, claim, "post"))
            recoverable.append(icn)
        elif kind == "interest":
            claim = replace(paid_claim(pcn, lines, icn), interest=_money(rng, CENT, Decimal("9.99")))
            target = rng.choice([0, 1])
            (p1 if target == 0 else p2).append((account, claim, "post"))
            interest_icns[target].append((icn, claim.interest or ZERO))
        elif kind == "zero_deductible":
            claim = ClaimSpec(pcn, tuple(zero_pay_line(rng, ln) for ln in lines), (), "1", icn)
            p1.append((account, claim, "post"))
        elif kind == "denial":
            if len(lines) > 1 and rng.random() < 0.5:  # one line denied, the others paid: the claim waits
                denied = rng.randrange(len(lines))
                specs = tuple(denied_line(rng, ln) if n == denied else paid_line(rng, ln)
                              for n, ln in enumerate(lines))
            else:
                specs = tuple(denied_line(rng, ln) for ln in lines)
            p1.append((account, ClaimSpec(pcn, specs, (), "1", icn), "denial"))
        elif kind in ("reversal_same_file", "reversal_across_files"):
            original = paid_claim(pcn, lines, icn)
            correction = replace(paid_claim(pcn, lines, f"{icn}C"), original_reference=icn)
            p1.append((account, original, "post"))
            p2.append((account, original.reversal(), "reverse"))
            (p2 if kind == "reversal_same_file" else p3).append((account, correction, "post"))
        elif kind in ("split", "split_across_files"):
            cut = rng.randint(1, len(lines) - 1)
            first = ClaimSpec(pcn, tuple(paid_line(rng, ln) for ln in lines[:cut]), (), "1", f"{icn}A",
                              remarks=("MA15",))
            second = ClaimSpec(pcn, tuple(paid_line(rng, ln) for ln in lines[cut:]), (), "1", f"{icn}B",
                               remarks=("MA15",))
            p1.append((account, first, "post"))
            (p1 if kind == "split" else p2).append((account, second, "post"))
        elif kind == "secondary":
            primary = paid_claim(pcn, lines, icn)
            p1.append((account, primary, "post"))
            if scenarios[kind] == 1 or rng.random() < 0.75:  # else not answered yet: PR stays insurance
                secondary = ClaimSpec(pcn, tuple(secondary_line(rng, ln) for ln in primary.lines), (), "2",
                                      f"S{icn}")
                s1.append((account, secondary, "post"))
        elif kind == "crossover":
            claim = paid_claim(pcn, lines, icn)
            claim = replace(claim, status="19") if rng.random() < 0.5 else replace(claim, crossover_payer="MEDIGAP")
            p1.append((account, claim, "post"))

    # Unknown claims: nobody billed them, so their cash is held.
    for n in range(rng.randint(1, 3)):
        lines = _billed(rng, rng.randint(1, 3))
        claim = paid_claim(f"X{uid}{n}", lines, f"IX{uid}{n}")
        rng.choice([p1, p2]).append((None, claim, "unknown"))
    scenarios["unknown"] += 1

    traces = [f"T{uid}P1", f"T{uid}P2", f"T{uid}P3", f"T{uid}S1"]
    plbs: list[list[PlbSpec]] = [[], [], [], []]
    for target, found in interest_icns.items():
        plbs[target] += [PlbSpec("L6", ref, -amount) for ref, amount in found]
    if recoverable:  # WO recoupment of an overpaid claim posted in P1, and one of a claim nobody knows
        plbs[1].append(PlbSpec("WO", rng.choice(recoverable), _money(rng, Decimal("1.00"), Decimal("40.00"))))
    plbs[2].append(PlbSpec("WO", f"IZ{uid}", _money(rng, Decimal("1.00"), Decimal("40.00"))))

    specs: list[RemittanceSpec] = []
    cash: dict[str, Cash] = {}
    exceptions: dict[str, list[tuple[str, str]]] = {}
    plb_rows: dict[str, list[tuple[str, str, int, bool]]] = {}
    known_icns: set[str] = set()
    for n, claims in enumerate(files):
        trace = traces[n]
        spec = RemittanceSpec(tuple(c for _, c, _ in claims), tuple(plbs[n]), control_number=f"{n + 1:04d}",
                              trace_number=trace, payer_ref=SECONDARY if n == 3 else PRIMARY,
                              payer_name="SECOND HEALTH" if n == 3 else "ACME HEALTH PLAN")
        posted = held = ZERO
        expected: list[tuple[str, str]] = []
        for account, claim, outcome in claims:
            if outcome == "post":
                assert account is not None
                book.post(account, claim)
                posted += claim.paid
                known_icns.add(claim.payer_claim_number)
            elif outcome == "reverse":
                book.reverse(claim)
                posted += claim.paid
            else:
                held += claim.paid
                expected.append(("denial" if outcome == "denial" else "unmatched_claim", claim.pcn))
        rows = []
        for p in spec.plbs:
            linked = p.reference in known_icns
            rows.append((p.reason, p.reference, cents(p.amount), linked))
            if not linked and p.reason == "WO":
                expected.append(("unlinked_plb", p.reference))
        plb_rows[trace] = rows
        plb_cash = -sum((p.amount for p in spec.plbs), ZERO)
        assert posted + held + plb_cash == spec.payment
        cash[trace] = Cash(cents(spec.payment), cents(posted), cents(held), cents(plb_cash))
        exceptions[trace] = sorted(expected)
        specs.append(spec)

    layout = Layout(segment="~", newline="\n")
    out = [(f"{uid}-p1.835", render_835([specs[0]], replace(layout, interchange_control=1))),
           (f"{uid}-p2.835", render_835([specs[1]], replace(layout, interchange_control=2))),
           # the last file carries two transaction sets: the primary's corrections and the secondary's claims
           (f"{uid}-p3-s1.835", render_835([specs[2], specs[3]], replace(layout, interchange_control=3)))]
    numbers = [a.number for a in people]
    return Practice(
        accounts=people, charges=charges, files=[(name, text.encode()) for name, text in out],
        insurance={a: book.insurance[a] for a in numbers}, patient={a: book.patient[a] for a in numbers},
        cash=cash, exceptions=exceptions, plb=plb_rows, scenarios=scenarios,
    )
