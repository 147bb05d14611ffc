"""Notice delivery under stress: two runners at once send each notice once; outages are retried, refusals are
not; a runner that died mid-send is taken over; a channel with no server configured suppresses, not fails."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from notify_support import free_port, smtp_server
from sqlalchemy import update

from api.bootstrap import Hub
from connectors.notify.links import LinkSigner
from connectors.notify.runner import DunningRunner, RunReport
from connectors.notify.smtp import SmtpSender
from router.adapters import notice_store as store
from router.adapters.orm import utcnow
from router.adapters.orm_notices import NoticeRow
from router.domain.commands import PostCharges
from router.domain.dunning import DunningPolicy
from router.domain.model import ChargeLine

D0 = date(2026, 4, 1)
SIGNER = LinkSigner("z" * 40, 86400)


def _owing(hub: Hub, uid: str, n: int, prefix: str = "N") -> list[str]:
    accounts = []
    for i in range(n):
        account = f"{prefix}{uid}{i:02d}"
        hub.bus.handle(PostCharges(f"owe:{account}", account, f"V{account}", None,
                                   (ChargeLine(1, D0, "99213", Decimal("40.00")),)))
        with hub.sessions.begin() as s:
            store.set_contact(s, account, store.Contact(email=f"{account.lower()}@example.test", preferred="email"))
        accounts.append(account)
    return accounts


def _rows(hub: Hub, like: str) -> list[dict[str, object]]:
    with hub.sessions() as s:
        return store.notices_for(s, accounts_like=like)


def _race(runners: list[DunningRunner], today: date, like: str) -> list[RunReport]:
    barrier = threading.Barrier(len(runners))
    reports: list[RunReport] = []

    def run(runner: DunningRunner) -> None:
        barrier.wait()
        reports.append(runner.run_due(today, accounts_like=like))

    threads = [threading.Thread(target=run, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(reports) == len(runners)
    return reports


def test_two_runners_at_once_send_each_notice_once(hub: Hub, uid: str) -> None:
    accounts = _owing(hub, uid, 12)
    with smtp_server() as (sink, port):
        runners = [DunningRunner(hub.sessions, DunningPolicy.parse(), SIGNER,
                                 email=SmtpSender("127.0.0.1", port, "billing@clinic.test")) for _ in range(2)]
        for day in (0, 30):
            reports = _race(runners, D0 + timedelta(days=day), f"N{uid}%")
            assert sum(r.notices["sent"] for r in reports) == 12
            assert sum(r.steps["statement" if day == 0 else "reminder"] for r in reports) == 12
    assert sorted(len(sink.to(f"{a.lower()}@example.test")) for a in accounts) == [2] * 12
    rows = _rows(hub, f"N{uid}%")
    assert len(rows) == 24 and {r["status"] for r in rows} == {"sent"} and {r["attempts"] for r in rows} == {1}


def test_an_outage_is_retried_by_the_next_run_and_a_refusal_is_not(hub: Hub, uid: str) -> None:
    ok, refused = _owing(hub, uid, 2, prefix="R")
    down = DunningRunner(hub.sessions, DunningPolicy.parse(), SIGNER,
                         email=SmtpSender("127.0.0.1", free_port(), "billing@clinic.test", timeout=1))
    report = down.run_due(D0, accounts_like=f"R{uid}%")
    assert report.notices["failed"] == 2
    assert [(r["status"], r["reason"], r["attempts"]) for r in _rows(hub, f"R{uid}%")] == [
        ("failed", "DeliveryFailed", 1)] * 2
    with smtp_server() as (sink, port):
        sink.refuse.add(f"{refused.lower()}@example.test")
        up = DunningRunner(hub.sessions, DunningPolicy.parse(), SIGNER,
                           email=SmtpSender("127.0.0.1", port, "billing@clinic.test"))
        up.run_due(D0 + timedelta(days=1), accounts_like=f"R{uid}%")
        again = up.run_due(D0 + timedelta(days=2), accounts_like=f"R{uid}%")
        assert len(sink.to(f"{ok.lower()}@example.test")) == 1
    assert sum(again.notices.values()) == 0  # the refused one is not tried again
    assert [(r["status"], r["reason"], r["attempts"]) for r in _rows(hub, f"R{uid}%")] == [
        ("sent", "", 2), ("failed", "NotifyRejected", 3)]


def test_a_notice_left_sending_by_a_dead_runner_is_sent_by_the_next_one(hub: Hub, uid: str) -> None:
    [account] = _owing(hub, uid, 1, prefix="S")
    down = DunningRunner(hub.sessions, DunningPolicy.parse(), SIGNER,
                         email=SmtpSender("127.0.0.1", free_port(), "billing@clinic.test", timeout=1))
    down.run_due(D0, accounts_like=f"S{uid}%")
    [row] = _rows(hub, f"S{uid}%")
    with hub.sessions.begin() as s:  # what a runner that crashed after claiming leaves behind
        s.execute(update(NoticeRow).where(NoticeRow.id == row["id"]).values(
            status="sending", claimed_at=utcnow() - timedelta(minutes=5)))
    with smtp_server() as (sink, port):
        runner = DunningRunner(hub.sessions, DunningPolicy.parse(), SIGNER,
                               email=SmtpSender("127.0.0.1", port, "billing@clinic.test"))
        assert sum(runner.run_due(D0, accounts_like=f"S{uid}%").notices.values()) == 0  # it may still be sending
        with hub.sessions.begin() as s:
            s.execute(update(NoticeRow).where(NoticeRow.id == row["id"]).values(
                claimed_at=utcnow() - timedelta(minutes=20)))
        assert runner.run_due(D0, accounts_like=f"S{uid}%").notices["sent"] == 1
        assert len(sink.to(f"{account.lower()}@example.test")) == 1
    [row] = _rows(hub, f"S{uid}%")
    assert (row["status"], row["attempts"]) == ("sent", 2)


def test_a_channel_with_no_server_configured_suppresses_the_notice_and_says_why(hub: Hub, uid: str) -> None:
    _owing(hub, uid, 1, prefix="O")
    report = DunningRunner(hub.sessions, DunningPolicy.parse(), SIGNER).run_due(D0, accounts_like=f"O{uid}%")
    assert report.notices["suppressed"] == 1
    [row] = _rows(hub, f"O{uid}%")
    assert (row["channel"], row["status"], row["reason"]) == ("none", "suppressed", "channel_off")


def test_serve_s_scheduler_runs_the_cycle_in_a_thread_and_stops(tmp_path: Path, uid: str) -> None:
    from api.bootstrap import build
    from api.notices import start_scheduler
    from api.settings import Settings

    own = build(Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", data_dir=tmp_path, amqp_url="",
                         dunning_interval_seconds=3600))
    try:
        [account] = _owing(own, uid, 1, prefix="T")
        start_scheduler(own, clock=lambda: D0)()  # no channel configured: stays off
        assert _rows(own, f"T{uid}%") == []
        with smtp_server() as (sink, port):
            own.settings.smtp_host, own.settings.smtp_port, own.settings.smtp_starttls = "127.0.0.1", port, False
            own.settings.smtp_from = "billing@clinic.test"
            stop = start_scheduler(own, clock=lambda: D0)
            deadline = time.monotonic() + 20
            while not sink.to(f"{account.lower()}@example.test") and time.monotonic() < deadline:
                time.sleep(0.05)
            stop()
        [row] = _rows(own, f"T{uid}%")
        assert (row["kind"], row["due_on"], row["status"]) == ("statement", D0.isoformat(), "sent")
        assert (tmp_path / "secrets" / "pay-link.key").stat().st_mode & 0o077 == 0  # made once, private
    finally:
        own.close()


def test_a_retry_after_the_balance_was_paid_is_not_sent(hub: Hub, uid: str) -> None:
    from router.domain.commands import PostPatientPayment

    [account] = _owing(hub, uid, 1, prefix="U")
    DunningRunner(hub.sessions, DunningPolicy.parse(), SIGNER,
                  email=SmtpSender("127.0.0.1", free_port(), "billing@clinic.test", timeout=1)).run_due(
        D0, accounts_like=f"U{uid}%")
    hub.bus.handle(PostPatientPayment(f"u:{uid}", account, Decimal("40.00"), "cash", D0 + timedelta(days=1)))
    with smtp_server() as (sink, port):
        report = DunningRunner(hub.sessions, DunningPolicy.parse(), SIGNER,
                               email=SmtpSender("127.0.0.1", port, "billing@clinic.test")).run_due(
            D0 + timedelta(days=1), accounts_like=f"U{uid}%")
    assert sink.messages == [] and report.changes["paid"] == 1 and report.notices["suppressed"] == 1
    [row] = _rows(hub, f"U{uid}%")
    assert (row["status"], row["reason"]) == ("suppressed", "paid")
