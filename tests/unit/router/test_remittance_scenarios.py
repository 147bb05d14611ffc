"""A generated practice (40 accounts, DFT^P03 charges, four 835 transaction sets in three files) posts to
exactly the balances and cash figures the generator computed on its own, on both databases, and
delivering every file again changes nothing."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from scenario_factory import KINDS, Practice, build_practice
from sqlalchemy import bindparam, text

from api.bootstrap import Hub
from connectors.intake import Status
from router.queries import account_balances

SEEDS = [7, 2024, 90210]


def _balances(hub: Hub, practice: Practice) -> dict[str, tuple[Decimal, Decimal]]:
    out = {}
    with hub.sessions() as s:
        for account in practice.accounts:
            found = account_balances(s, account.number)
            assert found is not None, account.number
            out[account.number] = (found.insurance, found.patient)
    return out


def _remittances(hub: Hub, practice: Practice) -> dict[str, tuple[int, int, int, int, int, str]]:
    with hub.sessions() as s:
        rows = s.execute(text("SELECT trace_number, id, payment_cents, posted_cents, held_cents, plb_cents, status "
                              "FROM remittances WHERE trace_number IN :t")
                         .bindparams(bindparam("t", expanding=True)), {"t": list(practice.cash)}).all()
    assert len(rows) == len(practice.cash), "one remittance row per transaction set, never two"
    return {r[0]: tuple(r[1:]) for r in rows}


def _exceptions(hub: Hub, remittance_id: int) -> list[tuple[str, str]]:
    with hub.sessions() as s:
        rows = s.execute(text("SELECT type, claim_key FROM exceptions WHERE remittance_id = :r"),
                         {"r": remittance_id}).all()
    return sorted((r[0], r[1]) for r in rows)


def _plb(hub: Hub, remittance_id: int) -> list[tuple[str, str, int, bool]]:
    with hub.sessions() as s:
        rows = s.execute(text("SELECT code, reference, amount_cents, claim_id IS NOT NULL FROM practice_ledger "
                              "WHERE remittance_id = :r ORDER BY id"), {"r": remittance_id}).all()
    return [(r[0], r[1], r[2], bool(r[3])) for r in rows]


def _counts(hub: Hub, practice: Practice) -> tuple[int, int, int]:
    accounts = [a.number for a in practice.accounts]
    with hub.sessions() as s:
        ledger = s.execute(text("SELECT count(*) FROM ledger_entries l JOIN accounts a ON a.id = l.account_id "
                                "WHERE a.number IN :a").bindparams(bindparam("a", expanding=True)),
                           {"a": accounts}).scalar_one()
        remits = s.execute(text("SELECT count(*) FROM remittances WHERE trace_number IN :t")
                           .bindparams(bindparam("t", expanding=True)), {"t": list(practice.cash)}).scalar_one()
        exceptions = s.execute(text("SELECT count(*) FROM exceptions x JOIN remittances r ON r.id = x.remittance_id "
                                    "WHERE r.trace_number IN :t").bindparams(bindparam("t", expanding=True)),
                               {"t": list(practice.cash)}).scalar_one()
    return int(ledger), int(remits), int(exceptions)


def _load(hub: Hub, practice: Practice) -> None:
    for message in practice.charges:
        assert hub.intake.receive_hl7(message).status is Status.ACCEPTED
    for name, data in practice.files:
        report = hub.intake.ingest(data, name)
        assert [(r.status, r.reason) for r in report.results] == [(Status.ACCEPTED, None)] * len(report.results)


def test_the_generator_covers_every_scenario_and_its_figures_conserve_cash() -> None:
    for seed in SEEDS:
        practice = build_practice(random.Random(seed), "GEN", accounts=40)
        assert set(practice.scenarios) == {*KINDS, "unknown"}
        assert len(practice.accounts) == 40 and len(practice.files) == 3
        for cash in practice.cash.values():
            assert cash.posted + cash.held + cash.plb == cash.payment
        # what the generator expects is not trivially zero: money reached both buckets and some was held
        assert any(v for v in practice.patient.values()) and any(v for v in practice.insurance.values())
        assert sum(c.held for c in practice.cash.values()) > 0
        assert {t for found in practice.exceptions.values() for t, _ in found} == {
            "denial", "unmatched_claim", "unlinked_plb"}


@pytest.mark.parametrize("seed", SEEDS)
def test_every_account_balance_and_every_remittance_total_equals_what_the_generator_computed(
        hub: Hub, uid: str, seed: int) -> None:
    practice = build_practice(random.Random(seed), uid, accounts=40)
    _load(hub, practice)

    expected = {a: (practice.insurance[a], practice.patient[a]) for a in practice.insurance}
    assert _balances(hub, practice) == expected
    remits = _remittances(hub, practice)
    for trace, cash in practice.cash.items():
        rid, payment, posted, held, plb, status = remits[trace]
        assert (payment, posted, held, plb) == (cash.payment, cash.posted, cash.held, cash.plb), trace
        assert posted + held + plb == payment
        assert status == ("partial" if cash.held else "posted")
        assert _exceptions(hub, rid) == practice.exceptions[trace], trace
        assert _plb(hub, rid) == practice.plb[trace], trace


@pytest.mark.parametrize("seed", SEEDS[:1])
def test_delivering_every_file_again_is_reported_as_duplicate_and_changes_nothing(
        hub: Hub, uid: str, seed: int) -> None:
    practice = build_practice(random.Random(seed), uid, accounts=40)
    _load(hub, practice)
    balances, counts = _balances(hub, practice), _counts(hub, practice)
    for name, data in practice.files:
        report = hub.intake.ingest(data, f"again-{name}")
        assert report.results and {r.status for r in report.results} == {Status.DUPLICATE}
    for message in practice.charges:
        assert hub.intake.receive_hl7(message).status is Status.DUPLICATE
    assert _balances(hub, practice) == balances
    assert _counts(hub, practice) == counts
