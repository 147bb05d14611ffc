"""Patient payments (domain, pure): methods, oldest-first allocation, refunds, plan schedules, retries.

Allocation policy: a patient payment is applied to the account's open patient-responsibility items
(the patient bucket of each claim line, or of a claim when the EMR posted at claim level) oldest first,
"oldest" being the earliest date on the item's entries (its service date), ties broken by claim key then
line number. Each application is its own ``patient_payment`` entry on that claim line; whatever is left
when nothing more is owed stays on the account as an unapplied credit (a claim-less ``patient_payment``
entry). A full refund reverses every entry of the payment exactly; a partial refund takes back the
unapplied credit first, then the newest applications.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from router.domain.errors import DomainViolation
from router.domain.ledger import EntryKind, LedgerEntry, Responsibility, reversal_of
from router.domain.money import ZERO, money


class PaymentMethod(StrEnum):
    CASH = "cash"
    CHECK = "check"
    CARD = "card"  # a card whose funding (credit/debit) the gateway did not say
    CREDIT_CARD = "credit_card"
    DEBIT_CARD = "debit_card"
    WALLET = "wallet"  # Apple Pay / Google Pay through the gateway
    ACH = "ach"  # ACH / eCheck


GATEWAY_METHODS = frozenset({PaymentMethod.CARD, PaymentMethod.CREDIT_CARD, PaymentMethod.DEBIT_CARD,
                             PaymentMethod.WALLET, PaymentMethod.ACH})


class Channel(StrEnum):
    FRONT_DESK = "front_desk"
    ONLINE = "online"  # gateway webhook: hosted checkout, pay-by-link, phone (card-not-present)
    LOCKBOX = "lockbox"
    AUTOPAY = "autopay"


class Frequency(StrEnum):
    WEEKLY = "weekly"
    BIWEEKLY = "biweekly"
    MONTHLY = "monthly"


class ConsentScope(StrEnum):
    CARD_ON_FILE = "card_on_file"
    PLAN_AUTOPAY = "plan_autopay"


@dataclass(frozen=True)
class OpenItem:
    claim: str
    line: int | None
    since: date | None
    open: Decimal


def open_patient_items(entries: Iterable[LedgerEntry]) -> list[OpenItem]:
    """Patient-responsibility items with a positive balance, oldest first (the allocation order)."""
    owed: dict[tuple[str, int | None], Decimal] = defaultdict(lambda: ZERO)
    since: dict[tuple[str, int | None], date] = {}
    for e in entries:
        if e.claim is None:
            continue
        key = (e.claim, e.charge_line)
        if e.effective_date is not None and (key not in since or e.effective_date < since[key]):
            since[key] = e.effective_date
        if e.responsibility is Responsibility.PATIENT:
            owed[key] += e.amount
    items = [OpenItem(claim, line, since.get((claim, line)), amount)
             for (claim, line), amount in owed.items() if amount > 0]
    return sorted(items, key=lambda i: (i.since or date.max, i.claim, i.line or 0))


@dataclass(frozen=True)
class Allocation:
    applied: tuple[tuple[OpenItem, Decimal], ...]
    unapplied: Decimal


def allocate(amount: Decimal, items: Sequence[OpenItem]) -> Allocation:
    """Apply ``amount`` to ``items`` in order; the rest is an unapplied credit."""
    left = money(amount)
    applied = []
    for item in items:
        if left <= 0:
            break
        part = min(left, item.open)
        applied.append((item, part))
        left -= part
    return Allocation(tuple(applied), left)


def payment_entries(*, account: str, amount: Decimal, source_id: str, received_on: date, memo: str | None,
                    items: Sequence[OpenItem]) -> list[LedgerEntry]:
    """The ledger entries of one patient payment under the allocation policy (keys ``{source}:payment[:n]``)."""
    if amount <= 0:
        raise DomainViolation(f"a patient payment must be positive, got {amount}")
    plan = allocate(amount, items)
    entries = [LedgerEntry(account, EntryKind.PATIENT_PAYMENT, Responsibility.PATIENT, -part,
                           f"{source_id}:payment:{n}", source_id, claim=item.claim, charge_line=item.line,
                           effective_date=received_on, memo=memo)
               for n, (item, part) in enumerate(plan.applied, start=1)]
    if plan.unapplied > 0:
        entries.append(LedgerEntry(account, EntryKind.PATIENT_PAYMENT, Responsibility.PATIENT, -plan.unapplied,
                                   f"{source_id}:payment", source_id, effective_date=received_on,
                                   memo=f"unapplied credit{'; ' + memo if memo else ''}"))
    return entries


def refund_entries(payment: Sequence[LedgerEntry], amount: Decimal, *, already: Decimal, source_id: str,
                   on: date, memo: str) -> list[LedgerEntry]:
    """Entries that give back ``amount`` of a payment whose entries are ``payment`` (``already`` refunded).

    All of it at once: an exact reversal of every entry. Part of it: ``refund`` entries on the payment's
    own items, unapplied credit first, then the newest applications.
    """
    paid = -sum((e.amount for e in payment), ZERO)
    amount = money(amount)
    if amount <= 0 or amount > paid - already:
        raise DomainViolation(f"a refund of {amount} exceeds the {paid - already} left of the payment")
    if already == 0 and amount == paid:
        return [reversal_of(e, idempotency_key=f"{source_id}:refund:{n}", source_id=source_id, memo=memo)
                for n, e in enumerate(payment, start=1)]
    skip, left, out = already, amount, []
    # The same order every time, so ``already`` refunded parts are skipped where earlier refunds took them.
    ordered = [e for e in payment if e.claim is None] + [e for e in reversed(payment) if e.claim is not None]
    for n, e in enumerate(ordered, start=1):
        available = -e.amount
        taken = min(skip, available)
        skip -= taken
        part = min(left, available - taken)
        if part > 0:
            out.append(LedgerEntry(e.account, EntryKind.REFUND, Responsibility.PATIENT, part,
                                   f"{source_id}:refund:{n}", source_id, claim=e.claim, charge_line=e.charge_line,
                                   effective_date=on, memo=memo))
            left -= part
    return out


def add_months(start: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (Jan 31 -> Feb 28/29)."""
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def installment_schedule(total: Decimal, count: int, first_due: date,
                         frequency: Frequency) -> list[tuple[int, date, Decimal]]:
    """``(seq, due date, amount)`` for a plan: equal installments, the odd cents on the first one."""
    total = money(total)
    if total <= 0 or count < 1 or count > 120:
        raise DomainViolation(f"a plan needs a positive total and 1-120 installments, got {total} in {count}")
    cents = int(total * 100)
    base, odd = divmod(cents, count)
    if base == 0:
        raise DomainViolation(f"{count} installments of {total} would be less than a cent each")
    out = []
    for n in range(count):
        if frequency is Frequency.MONTHLY:
            due = add_months(first_due, n)
        else:
            due = first_due + timedelta(weeks=n * (1 if frequency is Frequency.WEEKLY else 2))
        out.append((n + 1, due, money(Decimal(base + (odd if n == 0 else 0)) / 100)))
    return out


def next_retry(failed_attempts: int, retry_days: Sequence[int], on: date) -> date | None:
    """When to try again after ``failed_attempts`` declines, or None: retries exhausted, the plan defaults."""
    if failed_attempts <= len(retry_days):
        return on + timedelta(days=retry_days[failed_attempts - 1])
    return None
