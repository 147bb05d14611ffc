"""``rcmhub notices`` and ``rcmhub collections`` (typer sub-apps), and the wiring of the dunning runner from
settings: channels, pay-link signer, plan check, and the scheduler thread ``serve`` runs.

Progress goes to stderr on a terminal only; ``--json`` prints one clean document on stdout.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from api.bootstrap import Hub
from api.settings import Settings
from connectors.notify.links import LinkSigner, load_or_create_secret
from connectors.notify.runner import DunningRunner, NoticeBranding, PlanCheck, RunReport
from connectors.notify.sms import TwilioSms
from connectors.notify.smtp import SmtpSender
from router.adapters import notice_store as store
from router.adapters.orm import AuditRow
from router.domain.dunning import DunningPolicy
from router.domain.errors import HubError
from router.payments_queries import plan_is_current

log = logging.getLogger(__name__)

notices_app = typer.Typer(help="Patient statements, reminders and pay-by-link notices", no_args_is_help=True)
collections_app = typer.Typer(help="Collections hand-offs and the agency export file", no_args_is_help=True)

out = Console()
err = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]
EXPORT_COLUMNS = ("placement_id", "account", "guarantor", "balance", "cycle_start", "placed_on", "notices_sent")


def public_url(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.api_host}:{settings.api_port}"


def link_signer(settings: Settings) -> LinkSigner:
    secret = settings.pay_link_secret.get_secret_value() or load_or_create_secret(
        settings.data_dir / "secrets" / "pay-link.key")
    return LinkSigner(secret, settings.pay_link_ttl_days * 86400)


def plan_check(hub: Hub) -> PlanCheck:
    """A cycle is suspended while the account's payment plan is current (``router.payments_queries``)."""
    sessions = hub.sessions

    def current(account: str, today: date) -> bool:
        with sessions() as session:
            return plan_is_current(session, account, today)

    return current


def build_runner(hub: Hub, *, plan_is_current: PlanCheck | None = None) -> DunningRunner:
    s = hub.settings
    email = (SmtpSender(s.smtp_host, s.smtp_port, s.smtp_from, starttls=s.smtp_starttls, username=s.smtp_username,
                        password=s.smtp_password.get_secret_value(), ca_file=s.smtp_ca_file) if s.smtp_host else None)
    sms = (TwilioSms(s.sms_base_url, s.sms_account_sid, s.sms_auth_token.get_secret_value(), s.sms_from)
           if s.sms_base_url else None)
    return DunningRunner(hub.sessions, DunningPolicy.parse(s.dunning_schedule, s.dunning_min_balance),
                         link_signer(s), email=email, sms=sms,
                         plan_is_current=plan_is_current or plan_check(hub),
                         branding=NoticeBranding(s.practice_name, s.practice_phone, public_url(s)))


def start_scheduler(hub: Hub, clock: Callable[[], date] = date.today) -> Callable[[], None]:
    """Run the dunning cycle every ``dunning_interval_seconds`` in a daemon thread; returns the stop function.

    A run on a day already run decides nothing new and only retries failed deliveries, so an hourly interval
    sends each notice once and catches up after downtime. With no SMTP server and no SMS provider configured
    the scheduler stays off: otherwise the cycle would march accounts to collections on notices nobody got
    (``rcmhub notices run-due`` still runs it on request).
    """
    interval = hub.settings.dunning_interval_seconds
    stop = threading.Event()
    if interval <= 0:
        return stop.set
    runner = build_runner(hub)
    if not runner.enabled:
        log.warning("dunning scheduler off: no SMTP host and no SMS provider configured")
        return stop.set

    def loop() -> None:
        while not stop.is_set():
            try:
                runner.run_due(clock())
            except HubError as exc:
                log.warning("dunning run failed: %s", type(exc).__name__)
            except Exception as exc:  # the API must keep serving; the type only, text may quote data
                log.error("dunning run crashed: %s", type(exc).__name__)
            stop.wait(interval)

    thread = threading.Thread(target=loop, name="dunning", daemon=True)
    thread.start()

    def stop_and_join() -> None:
        stop.set()
        thread.join(10)

    return stop_and_join


def export_placements(sessions: sessionmaker[Session], folder: Path, *, actor: str = "system",
                      accounts_like: str | None = None,
                      today: date | None = None) -> tuple[Path | None, list[dict[str, str]]]:
    """Write the placements not yet exported to a CSV for the agency (0600) and stamp them with the batch.

    The file is written before the stamp is committed: a failure leaves them unexported, to go out next time.
    PHI leaves the hub here, so the export is audited (who, which batch, how many) in the same transaction.
    """
    batch = f"{(today or date.today()).strftime('%Y%m%d')}-{uuid.uuid4().hex[:8]}"
    with sessions.begin() as session:
        placements = store.unexported_placements(session, accounts_like)
        if not placements:
            return None, []
        rows = [{"placement_id": str(p.id), "account": p.account, "guarantor": p.guarantor,
                 "balance": f"{p.balance:.2f}", "cycle_start": p.cycle_start.isoformat(),
                 "placed_on": p.placed_on.isoformat(), "notices_sent": str(p.notices_sent)} for p in placements]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"collections-{batch}.csv"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # PHI: readable by the hub user only
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(buffer.getvalue())
        store.mark_exported(session, [p.id for p in placements], batch)
        session.add(AuditRow(actor=actor, action="collections.export", message_id=batch, queue="",
                             detail=f"{len(rows)} placements to {path.name}", object_type="collections_batch",
                             source="cli", outcome="ok"))
    log.info("collections export batch %s: %s placements", batch, len(rows))
    return path, rows


def _today(value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        err.print(f"[red]error:[/] --today {value!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(2) from exc


def _cli_hub() -> Hub:
    from api.cli import _hub

    return _hub()


@notices_app.command("run-due")
def run_due(today: Annotated[str | None, typer.Option(help="the run's date, YYYY-MM-DD (default: today)")] = None,
            as_json: JsonFlag = False) -> None:
    """Apply the dunning cycle for TODAY: statements, reminders, final notices, collections hand-offs."""
    day = _today(today)
    hub = _cli_hub()
    try:
        runner = build_runner(hub)
        if not runner.enabled:
            err.print("[yellow]warning:[/] no SMTP host and no SMS provider configured: notices are recorded as "
                      "suppressed (channel_off), and the cycle still advances")
        with Progress(TextColumn("dunning"), BarColumn(), MofNCompleteColumn(), console=err, transient=True,
                      disable=not err.is_terminal) as progress:
            task = progress.add_task("accounts", total=None)
            report: RunReport = runner.run_due(
                day, progress=lambda done, total: progress.update(task, completed=done, total=total))
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        hub.close()
    data = report.as_json()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    out.print(f"[bold]dunning {data['today']}[/]: {data['accounts']} accounts, steps {data['steps']}, "
              f"notices {data['notices']}, placements {data['placements']}")


@notices_app.command("contact")
def contact(account: str,
            email: Annotated[str | None, typer.Option(help="email address ('' removes it)")] = None,
            phone: Annotated[str | None, typer.Option(help="mobile number, E.164 ('' removes it)")] = None,
            prefer: Annotated[str | None, typer.Option(help="email, sms or both")] = None,
            opt_out: Annotated[list[str] | None, typer.Option(help="email or sms (repeatable)")] = None,
            opt_in: Annotated[list[str] | None, typer.Option(help="email or sms (repeatable)")] = None) -> None:
    """Set how an account is reached and what it opted out of."""
    for channel in [*(opt_out or []), *(opt_in or []), *([prefer] if prefer and prefer != "both" else [])]:
        if channel not in ("email", "sms"):
            err.print(f"[red]error:[/] channel {channel!r} must be email or sms")
            raise typer.Exit(2)
    hub = _cli_hub()
    try:
        with hub.sessions.begin() as session:
            account_id = store.account_id(session, account)
            old = (store.contact(session, account_id) if account_id is not None else None) or store.Contact()
            outs = set(opt_out or []) - set(opt_in or [])
            ins = set(opt_in or [])
            store.set_contact(session, account, store.Contact(
                email=old.email if email is None else email, phone=old.phone if phone is None else phone,
                email_opt_out=("email" in outs) or (old.email_opt_out and "email" not in ins),
                sms_opt_out=("sms" in outs) or (old.sms_opt_out and "sms" not in ins),
                preferred=prefer or old.preferred))
    finally:
        hub.close()
    err.print(f"contact preferences saved for account {account}")


@notices_app.command("list")
def list_notices(account: Annotated[str | None, typer.Option(help="one account")] = None,
                 as_json: JsonFlag = False) -> None:
    """Notices with their channel and outcome (no addresses)."""
    hub = _cli_hub()
    try:
        with hub.sessions() as session:
            rows = store.notices_for(session, account=account)
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "account", "due", "kind", "channel", "status", "amount", "reason")
    for r in rows:
        table.add_row(*(str(r[k]) for k in ("id", "account", "due_on", "kind", "channel", "status", "amount",
                                            "reason")))
    out.print(table)


@collections_app.command("export")
def collections_export(
        folder: Annotated[Path | None, typer.Option("--dir", help="default: $RCMHUB_DATA_DIR/collections")] = None,
        actor: Annotated[str | None, typer.Option("--actor", help="who exports (default: the OS user)")] = None,
        as_json: JsonFlag = False) -> None:
    """Write the hand-offs not exported yet to a CSV file for the agency; each goes out once (audited)."""
    hub = _cli_hub()
    try:
        path, rows = export_placements(hub.sessions, folder or hub.settings.data_dir / "collections",
                                       actor=actor or getpass.getuser())
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps({"file": str(path) if path else None, "placements": len(rows)}, indent=2))
        return
    err.print(f"{len(rows)} placements exported to {path}" if path else "nothing to export")

