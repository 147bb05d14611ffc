"""The dunning policy (domain, pure): statement, reminders and the collections hand-off for a patient balance.

A cycle opens the first time an account's patient-responsibility balance (the ledger's) reaches
``min_balance``; its steps fall due ``day`` days after the cycle opened, one step per run at most and never
closer together than the schedule spaces them. The cycle is suspended while a payment plan is current (the
clock stops: the suspended days are added to the schedule), stopped when the balance falls below
``min_balance`` (paid), and ends with the hand-off to the agency. The caller passes ``today``; nothing here
reads a clock.

Policy choices, stated once: a partial payment does not restart the cycle; new charges during a cycle join it
(every notice shows the current balance); an account handed to the agency stays there (no new cycle) until
its balance is paid, after which a later balance opens a new cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from router.domain.errors import MappingError
from router.domain.money import money


class StepAction(StrEnum):
    STATEMENT = "statement"
    REMINDER = "reminder"
    FINAL_NOTICE = "final_notice"
    COLLECTIONS = "collections"  # hand-off to the agency: a placement, no notice to the patient


class CycleStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # a payment plan is current
    PAID = "paid"  # closed: the balance fell below the threshold
    COLLECTIONS = "collections"  # closed: handed to the agency


OPEN = frozenset({CycleStatus.ACTIVE, CycleStatus.SUSPENDED})


@dataclass(frozen=True)
class Step:
    day: int
    action: StepAction


DEFAULT_SCHEDULE = "0:statement,30:reminder,60:reminder,90:final_notice,120:collections"


@dataclass(frozen=True)
class DunningPolicy:
    steps: tuple[Step, ...]
    min_balance: Decimal = Decimal("0.01")

    def __post_init__(self) -> None:
        if not self.steps or self.steps[0].day != 0:
            raise MappingError("the dunning schedule must start with a step at day 0", location="dunning_schedule")
        days = [s.day for s in self.steps]
        if days != sorted(set(days)):
            raise MappingError(f"dunning days must strictly increase: {days}", location="dunning_schedule")
        if any(s.action is StepAction.COLLECTIONS for s in self.steps[:-1]):
            raise MappingError("collections can only be the last step", location="dunning_schedule")
        if self.min_balance <= 0:
            raise MappingError(f"min_balance must be positive, got {self.min_balance}", location="dunning_min_balance")

    @classmethod
    def parse(cls, schedule: str = DEFAULT_SCHEDULE, min_balance: Decimal | str = "0.01") -> DunningPolicy:
        """``"0:statement,30:reminder,60:reminder,90:final_notice,120:collections"``."""
        steps = []
        for n, part in enumerate(p.strip() for p in schedule.split(",") if p.strip()):
            day, sep, action = part.partition(":")
            if not sep:
                raise MappingError(f"step {n + 1} {part!r} has no ':'", location="dunning_schedule")
            try:
                steps.append(Step(int(day), StepAction(action.strip())))
            except ValueError as exc:
                raise MappingError(f"step {n + 1} {part!r} is not DAY:ACTION with ACTION one of "
                                   f"{', '.join(a.value for a in StepAction)}", location="dunning_schedule") from exc
        return cls(tuple(steps), money(min_balance))


@dataclass(frozen=True)
class DunningState:
    """One account's current cycle. ``cycle_start`` moves later by the days a cycle spent suspended."""

    cycle: int
    status: CycleStatus
    cycle_start: date
    next_step: int = 0
    last_step_on: date | None = None
    suspended_on: date | None = None


class Change(StrEnum):
    NONE = "none"
    OPENED = "opened"
    STEP = "step"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    PAID = "paid"


@dataclass(frozen=True)
class Decision:
    state: DunningState | None
    changes: tuple[Change, ...] = ()
    step: Step | None = None  # the step due now
    step_no: int | None = None  # its position in the schedule (0-based)


def due_on(policy: DunningPolicy, state: DunningState) -> date | None:
    """When the next step of an open cycle falls due (ignoring suspension), or None when none is left."""
    if state.next_step >= len(policy.steps):
        return None
    step = policy.steps[state.next_step]
    due = state.cycle_start + timedelta(days=step.day)
    if state.last_step_on is not None and state.next_step > 0:
        gap = step.day - policy.steps[state.next_step - 1].day
        due = max(due, state.last_step_on + timedelta(days=gap))
    return due


def advance(policy: DunningPolicy, state: DunningState | None, balance: Decimal, *, plan_current: bool,
            today: date) -> Decision:
    """Apply one run on ``today`` to an account whose patient balance is ``balance``."""
    changes: list[Change] = []
    if state is None or state.status not in OPEN:
        if balance < policy.min_balance:
            if state is not None and state.status is CycleStatus.COLLECTIONS:
                return Decision(replace(state, status=CycleStatus.PAID), (Change.PAID,))
            return Decision(state)
        if state is not None and state.status is CycleStatus.COLLECTIONS:
            return Decision(state)  # with the agency until paid
        state = DunningState(cycle=state.cycle + 1 if state else 1, status=CycleStatus.ACTIVE, cycle_start=today)
        changes.append(Change.OPENED)
    elif balance < policy.min_balance:
        return Decision(replace(state, status=CycleStatus.PAID, suspended_on=None), (Change.PAID,))

    if plan_current:
        if state.status is CycleStatus.ACTIVE:
            state = replace(state, status=CycleStatus.SUSPENDED, suspended_on=today)
            changes.append(Change.SUSPENDED)
        return Decision(state, tuple(changes))
    if state.status is CycleStatus.SUSPENDED:
        paused = (today - state.suspended_on).days if state.suspended_on else 0
        state = replace(state, status=CycleStatus.ACTIVE, suspended_on=None,
                        cycle_start=state.cycle_start + timedelta(days=paused))
        changes.append(Change.RESUMED)

    due = due_on(policy, state)
    if due is None or today < due:
        return Decision(state, tuple(changes))
    step_no = state.next_step
    step = policy.steps[step_no]
    state = replace(state, next_step=step_no + 1, last_step_on=today,
                    status=CycleStatus.COLLECTIONS if step.action is StepAction.COLLECTIONS else state.status)
    changes.append(Change.STEP)
    return Decision(state, tuple(changes), step, step_no)
