"""The dunning run (connectors): the policy applied to every account with a patient balance, then the notices
delivered and the collection placements written.

Two phases. *Decide*: for each account whose cycle changes today (checked first on the balances and states
read in bulk), one short transaction re-reads its ledger balance and cycle, applies
``router.domain.dunning.advance`` for ``today`` and writes the new state with the notices (status
``pending``, one per channel, or one ``suppressed`` row saying why none could go) or the placement it calls
for. Running twice on the same day decides nothing new; unique keys (account, cycle, step, channel) make a
concurrent run lose, not duplicate. *Deliver*: each pending notice is claimed by a conditional UPDATE (so two
runners never send the same one), rendered and sent; failures stay ``failed`` and are retried by the next
run until ``max_attempts``. A crash between sending and recording can resend one notice (at least once).
Log lines carry notice and account ids, kinds and outcomes, never an address, a name or a link.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from connectors.notify import NotifyRejected, RecipientOptedOut
from connectors.notify.links import LinkSigner, new_link_id
from connectors.notify.templates import Templates
from router.adapters import notice_store as store
from router.adapters.orm import utcnow
from router.domain.dunning import Change, CycleStatus, DunningPolicy, StepAction, advance
from router.domain.money import fmt, from_cents, to_cents

log = logging.getLogger(__name__)

PlanCheck = Callable[[str, date], bool]  # (account number, today) -> a payment plan is current
Progress = Callable[[int, int], None]


class EmailSender(Protocol):
    def send(self, to: str, subject: str, text: str, html: str | None = None) -> str: ...


class SmsSender(Protocol):
    def send(self, to: str, body: str) -> str: ...


def no_plans(_account: str, _today: date) -> bool:
    return False


@dataclass(frozen=True)
class NoticeBranding:
    practice: str = "Your care team"
    phone: str = ""
    public_url: str = "http://127.0.0.1:8000"  # where /pay/{token} is served


@dataclass
class RunReport:
    today: date
    accounts: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    steps: Counter[str] = field(default_factory=Counter)
    notices: Counter[str] = field(default_factory=Counter)  # sent, failed, suppressed, skipped (race)
    placements: int = 0
    conflicts: int = 0

    def as_json(self) -> dict[str, object]:
        return {"today": self.today.isoformat(), "accounts": self.accounts,
                "changes": dict(sorted(self.changes.items())), "steps": dict(sorted(self.steps.items())),
                "notices": dict(sorted(self.notices.items())),
                "placements": self.placements, "conflicts": self.conflicts}


class DunningRunner:
    def __init__(self, sessions: sessionmaker[Session], policy: DunningPolicy, links: LinkSigner, *,
                 email: EmailSender | None = None, sms: SmsSender | None = None,
                 plan_is_current: PlanCheck = no_plans, branding: NoticeBranding | None = None,
                 templates: Templates | None = None, max_attempts: int = 3,
                 stale_after: timedelta = timedelta(minutes=15)) -> None:
        self.sessions = sessions
        self.policy = policy
        self.links = links
        self.email = email
        self.sms = sms
        self.plan_is_current = plan_is_current
        self.branding = branding or NoticeBranding()
        self.templates = templates or Templates()
        self.max_attempts = max_attempts
        self.stale_after = stale_after
        self.enabled = tuple(c for c, sender in (("email", email), ("sms", sms)) if sender is not None)

    def run_due(self, today: date, *, accounts_like: str | None = None, progress: Progress | None = None) -> RunReport:
        """Decide and deliver everything due on ``today`` (``accounts_like``: an SQL LIKE pattern, for scoping)."""
        report = RunReport(today)
        with self.sessions() as session:
            candidates = store.patient_balances(session, accounts_like)
            states = store.load_states(session, candidates)
        report.accounts = len(candidates)
        for done, account_id in enumerate(sorted(candidates), 1):
            number, balance = candidates[account_id]
            plan_current = self.plan_is_current(number, today)
            state = states.get(account_id)
            # Most accounts on most days change nothing: decided in memory, no write transaction for them.
            if advance(self.policy, state, balance, plan_current=plan_current, today=today).state != state:
                try:
                    self._decide(account_id, plan_current, today, report)
                except IntegrityError:  # a concurrent run decided this account first: its rows stand
                    report.conflicts += 1
                    log.info("dunning account_id=%s decided by a concurrent run", account_id)
            if progress:
                progress(done, len(candidates))
        self.deliver(today, report, accounts_like=accounts_like)
        log.info("dunning run %s: accounts=%s steps=%s notices=%s placements=%s", today.isoformat(),
                 report.accounts, dict(report.steps), dict(report.notices), report.placements)
        return report

    def _decide(self, account_id: int, plan_current: bool, today: date, report: RunReport) -> None:
        """One account's decision in one transaction, on the balance and cycle re-read inside it; counted and
        logged only once it is committed. The plan check ran before: it reads on its own connection."""
        suppressed = ""
        with self.sessions.begin() as session:
            balance = store.patient_balance(session, account_id)  # re-read inside the transaction
            state = store.load_state(session, account_id)
            decision = advance(self.policy, state, balance, plan_current=plan_current, today=today)
            if decision.state is None or decision.state == state:
                return
            store.save_state(session, account_id, decision.state, today)
            step, step_no, cycle = decision.step, decision.step_no, decision.state.cycle
            if step is not None and step_no is not None and step.action is StepAction.COLLECTIONS:
                session.flush()
                store.add_placement(session, account_id=account_id, cycle=cycle, placed_on=today,
                                    cycle_start=decision.state.cycle_start, balance_cents=to_cents(balance),
                                    notices_sent=store.sent_count(session, account_id, cycle))
            elif step is not None and step_no is not None:
                contact = store.contact(session, account_id) or store.Contact()
                channels, suppressed = contact.channels(self.enabled)
                link_id = new_link_id()
                store.add_link(session, link_id, account_id, cycle, step_no, to_cents(balance), today)
                session.flush()  # the link row before the notices that name it
                for channel in channels or ["none"]:
                    store.add_notice(session, key=f"{account_id}:{cycle}:{step_no}:{channel}",
                                     account_id=account_id, cycle=cycle, step_no=step_no, kind=step.action.value,
                                     channel=channel, status="pending" if channels else "suppressed",
                                     reason=suppressed, amount_cents=to_cents(balance), due_on=today,
                                     link_id=link_id)
        report.changes.update(c.value for c in decision.changes if c is not Change.STEP)
        if step is None:
            return
        report.steps[step.action.value] += 1
        if step.action is StepAction.COLLECTIONS:
            report.placements += 1
            log.info("collections placement account_id=%s cycle=%s", account_id, cycle)
        elif suppressed:
            report.notices["suppressed"] += 1
            log.info("notice suppressed account_id=%s cycle=%s step=%s kind=%s reason=%s", account_id, cycle,
                     step_no, step.action.value, suppressed)

    def deliver(self, today: date, report: RunReport | None = None, *, accounts_like: str | None = None) -> RunReport:
        """Send every pending (or retryable failed) notice."""
        report = report or RunReport(today)
        with self.sessions() as session:
            ids = store.sendable(session, self.max_attempts, self._stale_before(), accounts_like)
        for notice_id in ids:
            report.notices[self._send_one(notice_id, today)] += 1
        return report

    def _stale_before(self) -> datetime:
        """A notice still ``sending`` after this long was taken by a runner that died: send it again."""
        return utcnow() - self.stale_after

    def _send_one(self, notice_id: int, today: date) -> str:
        with self.sessions.begin() as session:
            row = store.claim_notice(session, notice_id, self.max_attempts, self._stale_before())
            if row is None:
                return "skipped"
            account_id, channel, kind, attempts = row.account_id, row.channel, row.kind, row.attempts
            contact = store.contact(session, account_id) or store.Contact()
            state = store.load_state(session, account_id)
            paid = state is None or state.cycle != row.cycle or state.status is CycleStatus.PAID
            context = self._context(session, account_id, row.amount_cents, row.link_id or "", row.step_no, today)
        status, reason, ref, attempts_left = "sent", "", "", True
        try:
            if paid:  # a retry that comes after the balance was paid: never ask for money no longer owed
                status, reason = "suppressed", "paid"
            elif not contact.reachable(channel) or channel not in self.enabled:  # changed since it was decided
                status, reason = "suppressed", "opted_out" if channel in self.enabled else "channel_off"
            elif channel == "email" and self.email is not None:
                rendered = self.templates.email(kind, context)
                ref = self.email.send(contact.email, rendered.subject, rendered.text, rendered.html)
            elif channel == "sms" and self.sms is not None:
                ref = self.sms.send(contact.phone, self.templates.sms(kind, context))
        except RecipientOptedOut:
            status, reason = "suppressed", "opted_out"
            with self.sessions.begin() as session:
                store.opt_out(session, account_id, channel)
        except NotifyRejected as exc:  # permanent: no further attempts
            status, reason, attempts_left = "failed", type(exc).__name__, False
            log.warning("notice %s account_id=%s channel=%s kind=%s rejected: %s", notice_id, account_id, channel,
                        kind, exc.reason)
        except Exception as exc:  # transient, or a bug: retried by the next run; the type only, text may quote data
            status, reason = "failed", type(exc).__name__
            log.warning("notice %s account_id=%s channel=%s kind=%s attempt %s failed: %s", notice_id, account_id,
                        channel, kind, attempts, type(exc).__name__)
        with self.sessions.begin() as session:
            store.finish_notice(session, notice_id, status=status, reason=reason, provider_ref=ref,
                                attempts=None if attempts_left else self.max_attempts)
        log.info("notice %s account_id=%s channel=%s kind=%s %s%s", notice_id, account_id, channel, kind, status,
                 f" ({reason})" if reason else "")
        return status

    def _context(self, session: Session, account_id: int, amount_cents: int, link_id: str, step_no: int,
                 today: date) -> dict[str, object]:
        number = store.account_number(session, account_id)
        token = self.links.token(link_id)
        expires = today + timedelta(seconds=self.links.ttl_seconds)
        return {"practice": self.branding.practice, "phone": self.branding.phone,
                "amount": fmt(from_cents(amount_cents)),
                "account_tail": number[-4:], "link": f"{self.branding.public_url.rstrip('/')}/pay/{token}",
                "link_expires": expires.isoformat(),
                "respond_by": (today + timedelta(days=self._days_to_next_step(step_no))).isoformat()}

    def _days_to_next_step(self, step_no: int) -> int:
        """How long the patient has before the schedule's next step (the hand-off after a final notice)."""
        steps = self.policy.steps
        return steps[step_no + 1].day - steps[step_no].day if step_no + 1 < len(steps) else 30
