"""Ledger invariants under random postings, reversals and duplicates (hypothesis, real database)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from api.bootstrap import Hub
from router.domain.commands import Command, PostCharges, PostPatientPayment, ReverseEntry
from router.domain.errors import DomainViolation
from router.domain.ledger import EntryKind, LedgerEntry, Responsibility, balances, reversal_of
from router.domain.model import ChargeLine, Coverage
from router.domain.money import ZERO, money
from router.queries import account_balances

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)
ops = st.lists(st.one_of(
    st.tuples(st.just("charge"), st.integers(0, 2), st.lists(amounts, min_size=1, max_size=3)),
    st.tuples(st.just("pay"), st.integers(0, 2), amounts),
    st.tuples(st.just("reverse"), st.integers(0, 1000)),
    st.tuples(st.just("duplicate"), st.integers(0, 1000)),
), min_size=1, max_size=25)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_balances_always_equal_the_sum_of_entries_and_reversals_restore_exactly(hub: Hub, operations) -> None:
    run = uuid.uuid4().hex[:8]
    accounts = [f"P{run}-{i}" for i in range(3)]
    expected: dict[str, dict[Responsibility, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    sent: list[Command] = []
    posted: list[tuple[str, str, Responsibility, Decimal]] = []  # (entry key, account, bucket, amount)
    reversed_keys: set[str] = set()
    for n, op in enumerate(operations):
        sid = f"prop:{run}:{n}"
        if op[0] == "charge":
            account = accounts[op[1]]
            lines = tuple(ChargeLine(i + 1, date(2024, 1, 2), "99213", a) for i, a in enumerate(op[2]))
            cmd: Command = PostCharges(sid, account, f"CLM{run}{n}", None, lines,
                                       coverages=(Coverage(1, "PAYER"),))
            for i, a in enumerate(op[2]):
                posted.append((f"{sid}:charge:{i + 1}", account, Responsibility.INSURANCE, a))
                expected[account][Responsibility.INSURANCE] += a
        elif op[0] == "pay":
            account = accounts[op[1]]
            cmd = PostPatientPayment(sid, account, op[2], "cash", date(2024, 1, 3))
            posted.append((f"{sid}:payment", account, Responsibility.PATIENT, -op[2]))
            expected[account][Responsibility.PATIENT] -= op[2]
        elif op[0] == "reverse":
            if not posted:
                continue
            key, account, bucket, amount = posted[op[1] % len(posted)]
            cmd = ReverseEntry(sid, key, "test correction")
            if key in reversed_keys:
                with pytest.raises(DomainViolation):
                    hub.bus.handle(cmd)
                continue
            reversed_keys.add(key)
            expected[account][bucket] -= amount
        else:
            if not sent:
                continue
            before = _snapshot(hub, accounts)
            assert hub.bus.handle(sent[op[1] % len(sent)]).duplicate
            assert _snapshot(hub, accounts) == before  # a duplicate changes nothing
            continue
        outcome = hub.bus.handle(cmd)
        assert not outcome.duplicate
        sent.append(cmd)

    for account in accounts:
        with hub.uow_factory() as uow:
            entries = uow.ledger.for_account(account)
        with hub.sessions() as s:
            sql = account_balances(s, account)
        if not entries:
            continue
        derived = balances(entries)
        assert sql == derived  # SQL aggregation agrees with the domain definition
        assert derived.insurance == expected[account][Responsibility.INSURANCE]
        assert derived.patient == expected[account][Responsibility.PATIENT]
        assert derived.total == derived.insurance + derived.patient
        for e in entries:
            assert type(e.amount) is Decimal and e.amount.as_tuple().exponent == -2


def _snapshot(hub: Hub, accounts: list[str]) -> list[object]:
    with hub.sessions() as s:
        return [account_balances(s, a) for a in accounts]


def test_amounts_are_stored_as_integer_cents_never_floats(hub: Hub, uid: str) -> None:
    hub.bus.handle(PostCharges(f"cents:{uid}", f"A{uid}", f"C{uid}", None,
                               (ChargeLine(1, date(2024, 1, 2), "99213", Decimal("0.10")),
                                ChargeLine(2, date(2024, 1, 2), "99213", Decimal("0.20"))),
                               coverages=(Coverage(1, "P"),)))
    with hub.sessions() as s:
        cents = s.execute(text("SELECT amount_cents FROM ledger_entries WHERE source_id = :s ORDER BY id"),
                          {"s": f"cents:{uid}"}).scalars().all()
        assert cents == [10, 20] and all(type(c) is int for c in cents)
        assert account_balances(s, f"A{uid}").charges == Decimal("0.30")  # type: ignore[union-attr]


def test_floats_are_refused_as_money() -> None:
    with pytest.raises(TypeError):
        money(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LedgerEntry("A", EntryKind.CHARGE, Responsibility.INSURANCE, 0.1, "k", "s")  # type: ignore[arg-type]


def test_reversal_negates_exactly_and_cannot_itself_be_reversed() -> None:
    charge = LedgerEntry("A", EntryKind.CHARGE, Responsibility.INSURANCE, Decimal("33.33"), "k1", "s1", claim="C")
    rev = reversal_of(charge, idempotency_key="k2", source_id="s2")
    assert balances([charge, rev]).total == ZERO
    assert balances([charge, rev]).charges == ZERO
    assert (rev.claim, rev.responsibility, rev.reverses) == ("C", Responsibility.INSURANCE, "k1")
    with pytest.raises(DomainViolation):
        reversal_of(rev, idempotency_key="k3", source_id="s3")


@pytest.mark.parametrize("kind, amount", [(EntryKind.CHARGE, "-1.00"), (EntryKind.CHARGE_CREDIT, "5.00"),
                                          (EntryKind.PATIENT_PAYMENT, "1.00"), (EntryKind.REFUND, "-2.00")])
def test_entries_with_the_wrong_sign_for_their_kind_are_refused(kind: EntryKind, amount: str) -> None:
    with pytest.raises(DomainViolation):
        LedgerEntry("A", kind, Responsibility.PATIENT, Decimal(amount), "k", "s")
