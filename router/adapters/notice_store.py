"""Notices, contacts, dunning states, pay links and collection placements: reads and writes (adapter layer).

The balance that drives dunning is the ledger's patient-responsibility balance, summed in SQL here the
same way ``router.queries.account_balances`` sums it. Every function works inside the caller's session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from router.adapters.orm import AccountRow, LedgerRow, utcnow
from router.adapters.orm_notices import (
    CollectionPlacementRow,
    DunningStateRow,
    NoticeContactRow,
    NoticeRow,
    PayLinkRow,
)
from router.domain.dunning import OPEN, CycleStatus, DunningState
from router.domain.ledger import Responsibility
from router.domain.money import from_cents

SENDABLE = ("pending", "failed")
CHANNELS: tuple[str, ...] = ("email", "sms")


@dataclass(frozen=True)
class Contact:
    """PHI: never logged. ``preferred`` is email, sms or both."""

    email: str = ""
    phone: str = ""
    email_opt_out: bool = False
    sms_opt_out: bool = False
    preferred: str = "both"

    def reachable(self, channel: str) -> bool:
        address = self.email if channel == "email" else self.phone
        opted_out = self.email_opt_out if channel == "email" else self.sms_opt_out
        return bool(address) and not opted_out

    def channels(self, enabled: tuple[str, ...] = CHANNELS) -> tuple[list[str], str]:
        """The channels a notice goes out on, and why there is none when the list is empty.

        The preferred channels first; when none of them can be used, any other channel the patient has an
        address for and has not opted out of (a statement the patient can receive beats none). ``enabled``:
        the channels the hub has a server or provider for.
        """
        wanted = list(CHANNELS) if self.preferred == "both" else [self.preferred]
        allowed: list[str] = [c for c in wanted if c in enabled and self.reachable(c)]
        if not allowed:
            allowed = [c for c in CHANNELS if c in enabled and self.reachable(c)][:1]
        if allowed:
            return allowed, ""
        if not (self.email or self.phone):
            return [], "no_contact"
        if any(self.reachable(c) for c in CHANNELS):
            return [], "channel_off"
        return [], "opted_out"


def patient_balances(session: Session, accounts_like: str | None = None) -> dict[int, tuple[str, Decimal]]:
    """account id -> (number, patient balance) for every account with a patient balance or an open cycle."""
    query = (select(AccountRow.id, AccountRow.number, func.sum(LedgerRow.amount_cents))
             .join(LedgerRow, LedgerRow.account_id == AccountRow.id)
             .where(LedgerRow.responsibility == Responsibility.PATIENT.value)
             .group_by(AccountRow.id, AccountRow.number)
             .having(func.sum(LedgerRow.amount_cents) != 0))
    tracked = (select(AccountRow.id, AccountRow.number)
               .join(DunningStateRow, DunningStateRow.account_id == AccountRow.id)
               .where(DunningStateRow.status.in_([*(s.value for s in OPEN), CycleStatus.COLLECTIONS.value])))
    if accounts_like is not None:
        # Accounts first, then their entries by the account_id index: a join lets the planner scan the ledger.
        ids = list(session.scalars(select(AccountRow.id).where(AccountRow.number.like(accounts_like))))
        query = query.where(LedgerRow.account_id.in_(ids))
        tracked = tracked.where(AccountRow.id.in_(ids))
    found = {row[0]: (row[1], from_cents(int(row[2]))) for row in session.execute(query)}
    for account_id, number in session.execute(tracked):
        found.setdefault(account_id, (number, from_cents(0)))
    return found


def _state(row: DunningStateRow) -> DunningState:
    return DunningState(row.cycle, CycleStatus(row.status), row.cycle_start, row.next_step, row.last_step_on,
                        row.suspended_on)


def load_state(session: Session, account_id: int) -> DunningState | None:
    row = session.get(DunningStateRow, account_id)
    return None if row is None else _state(row)


def load_states(session: Session, account_ids: Iterable[int]) -> dict[int, DunningState]:
    """The cycles of many accounts at once (``IN`` lists of 1,000)."""
    ids, found = list(account_ids), {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        for row in session.scalars(select(DunningStateRow).where(DunningStateRow.account_id.in_(chunk))):
            found[row.account_id] = _state(row)
    return found


def save_state(session: Session, account_id: int, state: DunningState, today: date) -> None:
    row = session.get(DunningStateRow, account_id)
    if row is None:
        row = DunningStateRow(account_id=account_id)
        session.add(row)
    row.cycle, row.status, row.cycle_start = state.cycle, state.status.value, state.cycle_start
    row.next_step, row.last_step_on, row.suspended_on = state.next_step, state.last_step_on, state.suspended_on
    row.last_run_on, row.updated_at = today, utcnow()


def contact(session: Session, account_id: int) -> Contact | None:
    row = session.get(NoticeContactRow, account_id)
    if row is None:
        return None
    return Contact(row.email, row.phone, row.email_opt_out, row.sms_opt_out, row.preferred)


def set_contact(session: Session, account: str, value: Contact) -> None:
    """Create or replace an account's contact preferences (the account row is created if new)."""
    account_id = session.scalar(select(AccountRow.id).where(AccountRow.number == account))
    if account_id is None:
        created = AccountRow(number=account)
        session.add(created)
        session.flush()
        account_id = created.id
    row = session.get(NoticeContactRow, account_id)
    if row is None:
        row = NoticeContactRow(account_id=account_id)
        session.add(row)
    row.email, row.phone, row.preferred = value.email, value.phone, value.preferred
    row.email_opt_out, row.sms_opt_out, row.updated_at = value.email_opt_out, value.sms_opt_out, utcnow()


def opt_out(session: Session, account_id: int, channel: str) -> None:
    """Record an opt-out the provider told us about (e.g. an SMS STOP)."""
    row = session.get(NoticeContactRow, account_id)
    if row is not None:
        if channel == "sms":
            row.sms_opt_out = True
        elif channel == "email":
            row.email_opt_out = True
        row.updated_at = utcnow()


def add_link(session: Session, link_id: str, account_id: int, cycle: int, step_no: int, amount_cents: int,
             issued_on: date) -> None:
    session.add(PayLinkRow(id=link_id, account_id=account_id, cycle=cycle, step_no=step_no,
                           amount_cents=amount_cents, issued_on=issued_on))


def link_account(session: Session, link_id: str) -> tuple[int, str] | None:
    """(account id, account number) a pay link pays, or None for an unknown link."""
    row = session.execute(select(AccountRow.id, AccountRow.number)
                          .join(PayLinkRow, PayLinkRow.account_id == AccountRow.id)
                          .where(PayLinkRow.id == link_id)).first()
    return (row[0], row[1]) if row else None


def patient_balance(session: Session, account_id: int) -> Decimal:
    cents = session.scalar(select(func.coalesce(func.sum(LedgerRow.amount_cents), 0)).where(
        LedgerRow.account_id == account_id, LedgerRow.responsibility == Responsibility.PATIENT.value))
    return from_cents(int(cents or 0))


def add_notice(session: Session, *, key: str, account_id: int, cycle: int, step_no: int, kind: str, channel: str,
               status: str, reason: str, amount_cents: int, due_on: date, link_id: str | None) -> None:
    session.add(NoticeRow(idempotency_key=key, account_id=account_id, cycle=cycle, step_no=step_no, kind=kind,
                          channel=channel, status=status, reason=reason, amount_cents=amount_cents, due_on=due_on,
                          link_id=link_id, provider_ref="", attempts=0))


def _sendable(max_attempts: int, stale_before: datetime) -> ColumnElement[bool]:
    """New, failed with attempts left, or taken by a runner that never finished (it crashed mid-send)."""
    return or_(and_(NoticeRow.status.in_(SENDABLE), NoticeRow.attempts < max_attempts),
               and_(NoticeRow.status == "sending", NoticeRow.claimed_at < stale_before,
                    NoticeRow.attempts < max_attempts))


def sendable(session: Session, max_attempts: int, stale_before: datetime,
             accounts_like: str | None = None) -> list[int]:
    """Ids of notices waiting to go out, oldest first."""
    query = select(NoticeRow.id).where(_sendable(max_attempts, stale_before))
    if accounts_like is not None:
        query = query.join(AccountRow, AccountRow.id == NoticeRow.account_id).where(
            AccountRow.number.like(accounts_like))
    return list(session.scalars(query.order_by(NoticeRow.id)))


def claim_notice(session: Session, notice_id: int, max_attempts: int, stale_before: datetime) -> NoticeRow | None:
    """Take a notice for sending; None when another runner took it first (conditional UPDATE, no lock held)."""
    taken = session.execute(update(NoticeRow).where(NoticeRow.id == notice_id, _sendable(max_attempts, stale_before))
                            .values(status="sending", attempts=NoticeRow.attempts + 1, claimed_at=utcnow()))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(NoticeRow, notice_id)


def finish_notice(session: Session, notice_id: int, *, status: str, reason: str = "", provider_ref: str = "",
                  attempts: int | None = None) -> None:
    """Record a delivery outcome; ``attempts`` set to the maximum stops retries (a permanent rejection)."""
    values: dict[str, object] = {"status": status, "reason": reason, "provider_ref": provider_ref,
                                 "sent_at": utcnow() if status == "sent" else None}
    if attempts is not None:
        values["attempts"] = attempts
    session.execute(update(NoticeRow).where(NoticeRow.id == notice_id).values(values))


def account_id(session: Session, account: str) -> int | None:
    return session.scalar(select(AccountRow.id).where(AccountRow.number == account))


def account_number(session: Session, account_id: int) -> str:
    return session.execute(select(AccountRow.number).where(AccountRow.id == account_id)).scalar_one()


def sent_count(session: Session, account_id: int, cycle: int) -> int:
    """Steps of a cycle that reached the patient on at least one channel."""
    return int(session.scalar(select(func.count(NoticeRow.step_no.distinct())).where(
        NoticeRow.account_id == account_id, NoticeRow.cycle == cycle, NoticeRow.status == "sent")) or 0)


def add_placement(session: Session, *, account_id: int, cycle: int, placed_on: date, cycle_start: date,
                  balance_cents: int, notices_sent: int) -> None:
    session.add(CollectionPlacementRow(account_id=account_id, cycle=cycle, placed_on=placed_on,
                                       cycle_start=cycle_start, balance_cents=balance_cents,
                                       notices_sent=notices_sent))


@dataclass(frozen=True)
class Placement:
    id: int
    account: str
    guarantor: str  # PHI: goes to the agency file only, never to a log
    cycle: int
    cycle_start: date
    placed_on: date
    balance: Decimal
    notices_sent: int


def unexported_placements(session: Session, accounts_like: str | None = None) -> list[Placement]:
    query = (select(CollectionPlacementRow, AccountRow.number, AccountRow.guarantor)
             .join(AccountRow, AccountRow.id == CollectionPlacementRow.account_id)
             .where(CollectionPlacementRow.export_batch.is_(None)).order_by(CollectionPlacementRow.id))
    if accounts_like is not None:
        query = query.where(AccountRow.number.like(accounts_like))
    return [Placement(r.id, number, guarantor, r.cycle, r.cycle_start, r.placed_on, from_cents(r.balance_cents),
                      r.notices_sent) for r, number, guarantor in session.execute(query)]


def mark_exported(session: Session, placement_ids: Iterable[int], batch: str) -> int:
    """Stamp placements with their export batch; only ones not exported yet (a concurrent export loses)."""
    ids = list(placement_ids)
    if not ids:
        return 0
    result = session.execute(update(CollectionPlacementRow).where(
        CollectionPlacementRow.id.in_(ids), CollectionPlacementRow.export_batch.is_(None)).values(
        export_batch=batch, exported_at=utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]


def notices_for(session: Session, *, account: str | None = None, accounts_like: str | None = None,
                limit: int = 1000) -> list[dict[str, object]]:
    """Notices as ``rcmhub notices list --json`` prints them: ids, kinds, channels and outcomes (no PHI)."""
    query = (select(NoticeRow, AccountRow.number).join(AccountRow, AccountRow.id == NoticeRow.account_id)
             .order_by(NoticeRow.id).limit(limit))
    if account is not None:
        query = query.where(AccountRow.number == account)
    if accounts_like is not None:
        query = query.where(AccountRow.number.like(accounts_like))
    return [{"id": r.id, "account": number, "cycle": r.cycle, "step": r.step_no, "kind": r.kind,
             "channel": r.channel, "status": r.status, "reason": r.reason,
             "amount": f"{from_cents(r.amount_cents):.2f}", "due_on": r.due_on.isoformat(), "attempts": r.attempts}
            for r, number in session.execute(query)]
