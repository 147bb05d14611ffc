"""The A/R figures of a generated practice equal the values this test computes on its own from what it generated:
aging by payer and by patient (from the date of service), total A/R, days in A/R, net collection rate, denial
rate and cash per week. Each backend gets a database of its own (the reports read the whole database)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fresh_db import fresh_database
from x12_factory import Cas, ClaimSpec, LineSpec, RemittanceSpec, render_835

from api.bootstrap import Hub, build
from api.settings import Settings
from router.ar import aging, cash_per_week, kpis
from router.domain.commands import PostCharges, PostPatientPayment
from router.domain.model import ChargeLine, Coverage, Patient

AS_OF = date(2026, 6, 30)
BUCKET_EDGES = (30, 60, 90, 120)
CENT = Decimal("0.01")
Z = Decimal("0.00")


@pytest.fixture(params=["sqlite", "postgresql"])
def ar_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    with fresh_database(request.param, tmp_path) as url:
        hub = build(Settings(database_url=url, data_dir=tmp_path, amqp_url=""))
        try:
            yield hub
        finally:
            hub.close()


def bucket(dos: date) -> int:
    age = (AS_OF - dos).days
    return next((i for i, edge in enumerate(BUCKET_EDGES) if age <= edge), 4)


@dataclass
class Book:
    """What the generator did, in its own terms."""

    insurance: dict[str, list[Decimal]] = field(default_factory=lambda: defaultdict(lambda: [Z] * 5))  # by payer
    patient: dict[str, list[Decimal]] = field(default_factory=lambda: defaultdict(lambda: [Z] * 5))  # by account
    paid_by_patient: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: Z))
    charges_in_period: Decimal = Z
    payments_in_period: Decimal = Z
    contractual_in_period: Decimal = Z
    remitted: int = 0
    denied: int = 0
    remitted_amount: Decimal = Z
    denied_amount: Decimal = Z
    cash: dict[date, Decimal] = field(default_factory=lambda: defaultdict(lambda: Z))

    def pay(self, when: date, amount: Decimal) -> None:
        if AS_OF - timedelta(days=89) <= when <= AS_OF:
            self.payments_in_period += amount
        self.cash[when - timedelta(days=when.weekday())] += amount


def generate(hub: Hub, seed: int) -> Book:
    rng = random.Random(seed)
    book = Book()
    bus = hub.local_bus
    assert bus is not None
    payers = {"P1": "ALPHA HEALTH", "P2": "BETA CARE"}
    remits: dict[tuple[str, date], list[ClaimSpec]] = defaultdict(list)
    for a in range(24):
        account = f"AR{seed}{a:03d}"
        payer = rng.choice([None, "P1", "P2", "P2"])
        coverage = (Coverage(1, payer, payers[payer], f"M{account}"),) if payer else ()
        for c in range(rng.randint(1, 3)):
            key = f"{account}-{c}"
            dos = AS_OF - timedelta(days=rng.randint(0, 200))
            lines = [("99213", Decimal(rng.randint(5_000, 40_000)) / 100) for _ in range(rng.randint(1, 2))]
            charge = sum((amount for _, amount in lines), Z)
            bus.handle(PostCharges(f"ar:{key}", account, key, Patient(f"MRN{account}", "ROE", f"P{a}"),
                                   tuple(ChargeLine(n, dos, code, amount) for n, (code, amount) in enumerate(lines, 1)),
                                   coverages=coverage))
            if dos >= AS_OF - timedelta(days=89):
                book.charges_in_period += charge
            if payer is None:  # self-pay: the patient owes it from the start
                book.patient[account][bucket(dos)] += charge
                continue
            fate = rng.random()
            if fate < 0.3:  # not adjudicated yet
                book.insurance[payers[payer]][bucket(dos)] += charge
                continue
            paid_on = min(AS_OF, dos + timedelta(days=rng.randint(5, 40)))
            if fate < 0.45:  # denied: nothing posts, the claim stays insurance A/R
                denied = tuple(LineSpec(code, amount, (Cas("CO", "50", amount),)) for code, amount in lines)
                spec = ClaimSpec(key, denied, payer_claim_number=f"I{key}")
                book.insurance[payers[payer]][bucket(dos)] += charge
                if AS_OF - timedelta(days=89) <= paid_on:
                    book.remitted, book.denied = book.remitted + 1, book.denied + 1
                    book.remitted_amount += charge
                    book.denied_amount += charge
            else:
                specs = []
                for code, amount in lines:
                    co = (amount * Decimal(rng.randint(0, 40)) / 100).quantize(CENT)
                    pr = (amount * Decimal(rng.randint(0, 30)) / 100).quantize(CENT)
                    specs.append(LineSpec(code, amount, (Cas("CO", "45", co), Cas("PR", "2", pr))))
                    book.patient[account][bucket(dos)] += pr
                    if AS_OF - timedelta(days=89) <= paid_on:
                        book.contractual_in_period += co
                spec = ClaimSpec(key, tuple(specs), payer_claim_number=f"I{key}")
                book.pay(paid_on, spec.paid)
                if AS_OF - timedelta(days=89) <= paid_on:
                    book.remitted += 1
                    book.remitted_amount += charge
            remits[(payer, paid_on)].append(spec)
        if rng.random() < 0.5:  # the patient pays something (sometimes more than owed: a credit)
            amount = Decimal(rng.randint(1_000, 30_000)) / 100
            when = AS_OF - timedelta(days=rng.randint(0, 60))
            bus.handle(PostPatientPayment(f"ar:pay:{account}", account, amount, "cash", when))
            book.paid_by_patient[account] += amount
            book.pay(when, amount)
    for n, ((payer, when), claims) in enumerate(sorted(remits.items())):
        spec = RemittanceSpec(tuple(claims), control_number=f"{n:04d}", trace_number=f"T{seed}{n:05d}",
                              payer_ref=payer, payer_name=payers[payer], date=f"{when:%Y%m%d}")
        report = hub.intake.ingest(render_835([spec]).encode(), f"ar{n}.835")
        assert not report.rejected, report.as_json()
    return book


def expected_patient(book: Book) -> dict[str, tuple[list[Decimal], Decimal]]:
    """Patient buckets with payments applied to the oldest first; what is left over is a credit."""
    out = {}
    for account in set(book.patient) | set(book.paid_by_patient):
        buckets = list(book.patient[account])
        credit = book.paid_by_patient[account]
        for i in reversed(range(5)):
            used = min(buckets[i], credit)
            buckets[i] -= used
            credit -= used
        if any(buckets) or credit:
            out[account] = (buckets, -credit)
    return out


@pytest.mark.parametrize("seed", [11, 2026])
def test_ar_reports_equal_the_figures_computed_from_the_generated_practice(ar_hub: Hub, seed: int) -> None:
    book = generate(ar_hub, seed)
    with ar_hub.sessions() as s:
        report = aging(s, AS_OF)
        figures = kpis(s, AS_OF, 90)
        cash = cash_per_week(s, AS_OF, 30)

    got_payers = {r.key: (r.buckets, r.credit) for r in report["by_payer"]}
    want_payers = {p: (b, Z) for p, b in book.insurance.items() if any(b)}
    assert got_payers == want_payers

    got_patients = {r.key: (r.buckets, r.credit) for r in report["by_patient"]}
    assert got_patients == expected_patient(book)
    assert report["patient_buckets"] == [sum((b[i] for b, _ in expected_patient(book).values()), Z) for i in range(5)]
    with ar_hub.sessions() as s:
        top = aging(s, AS_OF, patient_limit=3)
    assert [r.key for r in top["by_patient"]] == [r.key for r in report["by_patient"]][:3]
    assert (top["patient_total"], top["patient_accounts"]) == (report["patient_total"], len(report["by_patient"]))

    insurance = sum((sum(b, Z) for b in book.insurance.values()), Z)
    patient = sum((sum(b, Z) for b, _ in expected_patient(book).values()), Z) + sum(
        (c for _, c in expected_patient(book).values()), Z)
    total = insurance + patient
    assert (report["insurance_total"], report["patient_total"], figures["total_ar"]) == (insurance, patient, total)

    daily = book.charges_in_period / 90
    assert figures["gross_charges"] == book.charges_in_period
    assert figures["days_in_ar"] == (total / daily).quantize(Decimal("0.1"))
    ncr = 100 * book.payments_in_period / (book.charges_in_period - book.contractual_in_period)
    assert figures["payments"] == book.payments_in_period
    assert figures["net_collection_rate"] == ncr.quantize(CENT)
    assert (figures["claims_remitted"], figures["claims_denied"]) == (book.remitted, book.denied)
    assert figures["denial_rate"] == (Decimal(100 * book.denied) / book.remitted).quantize(CENT)
    assert figures["denial_rate_amount"] == (100 * book.denied_amount / book.remitted_amount).quantize(CENT)

    assert {c["week"]: c["total"] for c in cash if c["total"]} == {w: v for w, v in book.cash.items()
                                                                   if v and w >= cash[0]["week"]}
