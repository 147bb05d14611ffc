"""``rcmhub payments`` (typer sub-app) and the wiring of the gateway and the autopay scheduler from settings.

``run-due`` charges due plan installments once (safe to run from cron and beside ``serve``'s own scheduler
thread: claims are atomic, charges carry idempotency keys); ``import-lockbox`` posts a lockbox/deposit CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.bootstrap import Hub, build
from api.settings import Settings
from connectors.payments.autopay import AutopayScheduler, AutopayThread
from connectors.payments.gateway import PaymentGateway
from router.bus import MessageBus
from router.domain.commands import PostPatientPayment
from router.domain.errors import HubError, MappingError
from router.domain.payments import Channel

log = logging.getLogger(__name__)
payments_app = typer.Typer(help="Patient payments: autopay, lockbox files", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]
LOCKBOX_COLUMNS = ("account", "amount", "check_number", "bank", "received_on")


def payment_gateway(settings: Settings) -> PaymentGateway | None:
    """The Stripe gateway, or None when no API key is configured (online payments off)."""
    key = settings.stripe_api_key.get_secret_value()
    if not key:
        return None
    # Imported here: the SDK costs every CLI command (workers included) ~0.2 s of start-up otherwise.
    from connectors.payments.stripe_gateway import StripeGateway

    return StripeGateway(key, webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
                         api_base=settings.stripe_api_base, tolerance=settings.stripe_webhook_tolerance)


def local_bus(hub: Hub) -> MessageBus:
    """Payments are handled in this process (a receipt or a charge result is needed at once)."""
    return hub.local_bus or hub.bus


def autopay_scheduler(hub: Hub, gateway: PaymentGateway, accounts: list[str] | None = None) -> AutopayScheduler:
    return AutopayScheduler(hub.sessions, local_bus(hub), gateway, retry_days=hub.settings.payments_retry_days,
                            accounts=accounts or None)


def start_autopay(hub: Hub) -> Callable[[], None]:
    """Start the autopay thread inside ``serve``; returns its stop function (a no-op when autopay is off)."""
    gateway = payment_gateway(hub.settings)
    if gateway is None or hub.settings.payments_interval_seconds == 0:
        return lambda: None
    thread = AutopayThread(autopay_scheduler(hub, gateway), hub.settings.payments_interval_seconds)
    thread.start()

    def stop() -> None:
        thread.stop()
        thread.join(10)

    return stop


def _hub() -> Hub:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return build(settings, in_process=True)
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


@payments_app.command("run-due")
def run_due(as_json: JsonFlag = False, account: Annotated[list[str] | None, typer.Option(
        "--account", help="Only these accounts (repeatable)")] = None) -> None:
    """Charge every plan installment that is due (each exactly once, even beside another runner)."""
    hub = _hub()
    try:
        gateway = payment_gateway(hub.settings)
        if gateway is None:
            err.print("[red]error:[/] no payment gateway configured (RCMHUB_STRIPE_API_KEY)")
            raise typer.Exit(1)
        report = autopay_scheduler(hub, gateway, account).run_due()
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        out.print(f"claimed {report.claimed}: {report.succeeded} paid, {report.failed} declined, "
                  f"{report.pending} pending")
    if report.errors:
        raise typer.Exit(1)


def lockbox_commands(data: bytes, name: str) -> list[PostPatientPayment]:
    """A lockbox/deposit CSV (``account,amount,check_number,bank,received_on``) as payment commands.

    The source id is the file's digest plus the row number, so the same file imported twice posts once.
    """
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MappingError("not UTF-8 text", location=name) from exc
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in LOCKBOX_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise MappingError(f"missing columns {missing}", location=f"{name}:1")
    built = []
    for n, row in enumerate(reader, start=2):
        where = f"{name}:{n}"
        try:
            amount = Decimal(row["amount"].strip())
            received = date.fromisoformat(row["received_on"].strip())
        except (InvalidOperation, ValueError) as exc:
            raise MappingError("amount or received_on is not valid", location=where) from exc
        if not row["account"].strip():
            raise MappingError("account is empty", location=where)
        built.append(PostPatientPayment(f"lockbox:{digest}:{n}", row["account"].strip(), amount, "check", received,
                                        check_number=row["check_number"].strip(), bank=row["bank"].strip(),
                                        channel=Channel.LOCKBOX.value))
    return built


@payments_app.command("import-lockbox")
def import_lockbox(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
                   as_json: JsonFlag = False) -> None:
    """Post the checks of a lockbox/deposit CSV; every row is validated before any is posted."""
    hub = _hub()
    posted = duplicates = 0
    try:
        commands = lockbox_commands(path.read_bytes(), path.name)
        bus = local_bus(hub)
        for command in commands:
            if bus.handle(command).duplicate:
                duplicates += 1
            else:
                posted += 1
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps({"file": path.name, "posted": posted, "duplicates": duplicates}))
    else:
        out.print(f"{path.name}: {posted} posted, {duplicates} already posted")
