"""The dunning policy alone: when each step falls due, suspension while a plan is current, stop when paid."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from router.domain.dunning import (
    Change,
    CycleStatus,
    DunningPolicy,
    DunningState,
    StepAction,
    advance,
)
from router.domain.errors import MappingError

POLICY = DunningPolicy.parse()
D0 = date(2026, 1, 5)


def run(days: int, balance: dict[int, Decimal] | Decimal, plan_days: set[int] = frozenset(),  # type: ignore[assignment]
        policy: DunningPolicy = POLICY, every: int = 1) -> list[tuple[int, str]]:
    """Run the policy every ``every`` days from D0; returns (day, action) of each step taken."""
    state: DunningState | None = None
    taken = []
    for day in range(0, days + 1, every):
        owed = balance if isinstance(balance, Decimal) else balance.get(day, balance[max(k for k in balance
                                                                                          if k <= day)])
        decision = advance(policy, state, owed, plan_current=day in plan_days, today=D0 + timedelta(days=day))
        state = decision.state
        if decision.step:
            taken.append((day, decision.step.action.value))
    return taken


def test_an_unpaid_balance_gets_the_whole_schedule_on_its_days() -> None:
    assert run(150, Decimal("80.00")) == [(0, "statement"), (30, "reminder"), (60, "reminder"),
                                         (90, "final_notice"), (120, "collections")]


def test_paying_stops_the_cycle_and_a_later_balance_opens_a_new_one() -> None:
    balance = {0: Decimal("80.00"), 45: Decimal("0.00"), 70: Decimal("25.00")}
    assert run(150, balance) == [(0, "statement"), (30, "reminder"), (70, "statement"), (100, "reminder"),
                                 (130, "reminder")]


def test_a_current_plan_stops_the_clock_for_as_many_days_as_it_lasts() -> None:
    plan = set(range(10, 41))  # 31 days
    assert run(160, Decimal("80.00"), plan) == [(0, "statement"), (61, "reminder"), (91, "reminder"),
                                                (121, "final_notice"), (151, "collections")]


def test_a_balance_that_appears_during_a_plan_gets_its_statement_when_the_plan_ends() -> None:
    assert run(40, Decimal("80.00"), set(range(0, 12))) == [(12, "statement")]


def test_missed_runs_never_send_two_notices_closer_than_the_schedule() -> None:
    # Run on day 0, then not until day 65: the first reminder goes on 65, the second waits 30 days more.
    state = advance(POLICY, None, Decimal("10.00"), plan_current=False, today=D0).state
    late = advance(POLICY, state, Decimal("10.00"), plan_current=False, today=D0 + timedelta(days=65))
    assert late.step is not None and late.step.action is StepAction.REMINDER
    again = advance(POLICY, late.state, Decimal("10.00"), plan_current=False, today=D0 + timedelta(days=66))
    assert again.step is None
    later = advance(POLICY, late.state, Decimal("10.00"), plan_current=False, today=D0 + timedelta(days=95))
    assert later.step is not None and later.step_no == 2


def test_running_twice_on_one_day_takes_a_step_once() -> None:
    first = advance(POLICY, None, Decimal("10.00"), plan_current=False, today=D0)
    second = advance(POLICY, first.state, Decimal("10.00"), plan_current=False, today=D0)
    assert first.step is not None and second.step is None and second.state == first.state


def test_an_account_with_the_agency_stays_there_until_paid() -> None:
    placed = DunningState(1, CycleStatus.COLLECTIONS, D0, next_step=5, last_step_on=D0)
    assert advance(POLICY, placed, Decimal("99.00"), plan_current=False, today=D0).state == placed
    paid = advance(POLICY, placed, Decimal("0.00"), plan_current=False, today=D0)
    assert paid.state is not None and paid.state.status is CycleStatus.PAID and paid.changes == (Change.PAID,)
    reopened = advance(POLICY, paid.state, Decimal("5.00"), plan_current=False, today=D0)
    assert reopened.state is not None and reopened.state.cycle == 2 and reopened.step_no == 0


def test_credit_and_tiny_balances_open_nothing() -> None:
    policy = DunningPolicy.parse(min_balance="5.00")
    assert run(60, Decimal("-20.00")) == []
    assert run(60, Decimal("4.99"), policy=policy) == []
    assert run(0, Decimal("5.00"), policy=policy) == [(0, "statement")]


@pytest.mark.parametrize("schedule, message", [
    ("30:statement", "day 0"),
    ("0:statement,30:remind", "ACTION one of"),
    ("0:statement,60:reminder,30:reminder", "strictly increase"),
    ("0:statement,30:collections,60:reminder", "last step"),
    ("0 statement", "has no ':'"),
])
def test_a_bad_schedule_is_refused_naming_the_setting(schedule: str, message: str) -> None:
    with pytest.raises(MappingError, match=message) as caught:
        DunningPolicy.parse(schedule)
    assert caught.value.location == "dunning_schedule"
