"""The ``rcmhub`` command line (typer): serve, demo, ingest, accounts, db, worker, dlq (``api/dlq.py``).

Exit codes: 0 success; 1 input rejected or an operation failed; 2 usage error.
Progress goes to stderr on a terminal only, so ``--json`` on stdout stays clean.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from api.bootstrap import Hub, build, mllp_forwarder
from api.deliveries import deliveries_app
from api.dlq import dlq_app
from api.notices import collections_app, notices_app, start_scheduler
from api.payments import payments_app, start_autopay
from api.settings import Settings
from api.users import tokens_app, users_app
from connectors.intake import FileReport
from router.domain.errors import BrokerUnavailable, HubError
from router.queries import account_view

app = typer.Typer(help="rcmhub: revenue-cycle integration hub", no_args_is_help=True,
                  pretty_exceptions_enable=False)
accounts_app = typer.Typer(help="Inspect patient accounts", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
era_app = typer.Typer(help="X12 835 remittance files", no_args_is_help=True)
exceptions_app = typer.Typer(help="The reconciliation exception queue", no_args_is_help=True)
remittances_app = typer.Typer(help="Posted and quarantined remittances", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(collections_app, name="collections")
app.add_typer(db_app, name="db")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(dlq_app, name="dlq")
app.add_typer(era_app, name="era")
app.add_typer(exceptions_app, name="exceptions")
app.add_typer(notices_app, name="notices")
app.add_typer(payments_app, name="payments")
app.add_typer(remittances_app, name="remittances")
app.add_typer(tokens_app, name="tokens")
app.add_typer(users_app, name="users")

out = Console()
err = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]


def _declare_topology(settings: Settings) -> None:
    """Declare the RabbitMQ topology (idempotent) before intake publishes to it: until a worker or
    definitions.json had declared it, every intake publish was unroutable. A broker that is down only warns:
    the listeners answer "send again" meanwhile and the API still serves."""
    from connectors.rabbitmq.topology import Topology
    from connectors.rabbitmq.workers import declare

    try:
        declare(settings.amqp_url, Topology(settings.amqp_prefix))
    except BrokerUnavailable as exc:
        err.print(f"[yellow]warning:[/] RabbitMQ topology not declared ({exc.reason}); intake answers "
                  "'send again' until the broker is reachable and a worker declares it")


def _hub(migrate: bool = True, in_process: bool = False) -> Hub:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return build(settings, migrate=migrate, in_process=in_process)
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Files to process (HL7 v2, FHIR JSON, X12)",
                                                       exists=True, dir_okay=False, readable=True)],
           as_json: JsonFlag = False) -> None:
    """Feed files through the pipeline and wait until every message is processed."""
    hub = _hub(in_process=True)  # waits for the ledger: handled here even when RabbitMQ is configured
    reports = []
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as progress:
            for path in paths:
                task = progress.add_task(path.name, total=None)

                def advance(done: int, total: int, task: TaskID = task) -> None:
                    progress.update(task, completed=done, total=total)

                reports.append(hub.intake.ingest(path.read_bytes(), str(path), advance))
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        hub.close()
    acks = _save_acks(hub, reports)
    if as_json:
        typer.echo(json.dumps({"files": [r.as_json() | ({"ack": acks[r.file]} if r.file in acks else {})
                                         for r in reports]}, indent=2))
    else:
        table = Table("file", "format", "messages", "accepted", "duplicates", "rejected")
        for r in reports:
            d = r.as_json()
            table.add_row(r.file, r.format.value, *(str(d[k]) for k in ("messages", "accepted", "duplicates",
                                                                        "rejected")))
        out.print(table)
        for r in reports:
            for e in r.as_json()["errors"]:  # type: ignore[attr-defined]
                out.print(f"[red]rejected[/] {r.file} message {e['message']} at {e['location']}: {e['reason']}")
    raise typer.Exit(1 if any(r.rejected for r in reports) else 0)


@contextmanager
def _session() -> Iterator[Session]:
    """A read session on the configured database, closed with its engine afterwards."""
    hub = _hub()
    try:
        with hub.sessions() as session:
            yield session
    finally:
        hub.close()


def _save_acks(hub: Hub, reports: list[FileReport]) -> dict[str, str]:
    """Write each X12 file's 999 under ``$RCMHUB_DATA_DIR/acks``; returns file -> 999 path."""
    saved = {}
    for r in reports:
        if r.ack:
            folder = hub.settings.data_dir / "acks"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{Path(r.file).name}.999"
            path.write_text(r.ack)
            saved[r.file] = str(path)
    return saved


@era_app.command("check")
def era_check(paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
              as_json: JsonFlag = False) -> None:
    """Validate 835 files without posting: envelope, the three balancing levels and cross-checks."""
    from mappings.x12.balancing import summary, validate
    from mappings.x12.remit835 import scan_835

    transactions: list[dict[str, object]] = []
    failed = False
    for path in paths:
        try:
            for result in scan_835(path.read_bytes()):
                if result.remittance is None:
                    failed = True
                    reason = result.error.reason if result.error else f"transaction set {result.set_id} is not an 835"
                    where = result.error.location if result.error else f"segment {result.position}"
                    transactions.append({"file": str(path), "control_number": result.control_number,
                                         "balanced": False, "errors": [{"rule": "read", "severity": "error",
                                                                         "location": where, "message": reason}]})
                    continue
                findings = validate(result.remittance)
                line = {"file": str(path), **summary(result.remittance, findings)}
                failed = failed or not line["balanced"]
                transactions.append(line)
        except HubError as exc:
            failed = True
            transactions.append({"file": str(path), "balanced": False, "errors": [
                {"rule": "read", "severity": "error", "location": exc.location, "message": exc.reason}]})
    if as_json:
        typer.echo(json.dumps({"transactions": transactions}, indent=2))
    else:
        table = Table("file", "ST02", "payer", "TRN02", "BPR02", "claims", "ΣCLP04", "ΣPLB", "balanced")
        for t in transactions:
            cells = [str(t.get(k, "")) for k in ("control_number", "payer", "trace_number", "payment_amount",
                                                 "claim_count", "claim_paid_total", "plb_total")]
            table.add_row(Path(str(t["file"])).name, *cells, "[green]yes[/]" if t["balanced"] else "[red]no[/]")
        out.print(table)
        for t in transactions:
            for e in t["errors"]:  # type: ignore[attr-defined]
                out.print(f"[{'red' if e['severity'] == 'error' else 'yellow'}]{e['severity']}[/] {e['location']}: "
                          f"{e['message']}")
    raise typer.Exit(1 if failed else 0)


@exceptions_app.command("list")
def exceptions_list_cmd(as_json: JsonFlag = False,
                        status: Annotated[str, typer.Option(help="open, resolved or all")] = "open") -> None:
    """The reconciliation exceptions, oldest first."""
    from router.queries import exceptions_list

    with _session() as session:
        rows = exceptions_list(session, None if status == "all" else status)
    if as_json:
        typer.echo(json.dumps([{k: r[k] for k in ("id", "type", "claim", "account", "amount", "reason", "status")}
                               for r in rows], indent=2))
        return
    table = Table("id", "type", "claim", "account", "amount", "reason")
    for r in rows:
        table.add_row(str(r["id"]), str(r["type"]), str(r["claim"] or ""), str(r["account"] or ""),
                      str(r["amount"]), str(r["reason"]))
    out.print(table)


@remittances_app.command("list")
def remittances_list_cmd(as_json: JsonFlag = False) -> None:
    """Remittances with their cash conservation: posted + held + PLB effect = BPR02."""
    from router.queries import remittances_list

    with _session() as session:
        rows = remittances_list(session)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "payer", "TRN02", "payment", "posted", "held", "PLB", "status", "conserved")
    for r in rows:
        table.add_row(*(str(r[k]) for k in ("id", "payer", "trace_number", "payment_amount", "posted", "held", "plb",
                                            "status")), "[green]yes[/]" if r["conserved"] else "[red]NO[/]")
    out.print(table)


@accounts_app.command("show")
def accounts_show(account: str, as_json: JsonFlag = False) -> None:
    """Balances and ledger entries of one account."""
    with _session() as session:
        view = account_view(session, account)
    if view is None:
        err.print(f"[red]error:[/] no account {account!r}")
        raise typer.Exit(1)
    data = view.as_json()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    out.print(f"[bold]Account {account}[/]  charges {data['charges']}  insurance {data['insurance_balance']}  "
              f"patient {data['patient_balance']}  [bold]total {data['total_balance']}[/]")
    table = Table("kind", "responsibility", "amount", "claim", "source")
    for e in view.entries:
        table.add_row(e.kind, e.responsibility, f"{e.amount:.2f}", e.claim or "", e.source)
    out.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to the latest revision."""
    hub = _hub(migrate=True)
    hub.close()
    err.print("database schema is up to date")


def _freeze_startup_heap() -> None:
    """Move what start-up built (modules, SQLAlchemy mappers, pydantic and fhir.resources models: ~190,000
    objects) out of the cyclic collector's sight: every full collection would walk it again. Measured on
    100-message DFT^P03 batches: 700-740 -> 830-900 messages/s."""
    gc.collect()
    gc.freeze()


@app.command()
def serve() -> None:
    """Run the hub in one process: API (RCMHUB_API_PORT) and intake listeners."""
    import uvicorn

    from api.app import create_app
    from connectors.dropdir import DropDirectory
    from connectors.hl7_listener import Hl7Listener

    hub = _hub()
    settings = hub.settings
    from api.deliveries import start_outbound

    outbound = start_outbound(hub)  # results back to EMRs (embedded mode); a bad destinations file stops here
    if not settings.embedded:
        _declare_topology(settings)
    try:
        _freeze_startup_heap()
        mllp = Hl7Listener(hub.intake, settings.mllp_host, settings.mllp_port,
                           forwarder=mllp_forwarder(hub)).run_in_thread()
    except OSError as exc:
        hub.close()
        err.print(f"[red]error:[/] MLLP cannot listen on {settings.mllp_host}:{settings.mllp_port}: {exc.strerror}")
        raise typer.Exit(1) from exc
    assert settings.drop_dir is not None  # defaulted by Settings
    drop = DropDirectory(settings.drop_dir, hub.intake)
    stop_watching = threading.Event()
    watcher = threading.Thread(target=drop.run, args=(stop_watching,), name="drop-directory", daemon=True)
    watcher.start()
    stop_dunning = start_scheduler(hub)  # statements, reminders, collections hand-offs (api/notices.py)
    stop_autopay = start_autopay(hub)  # plan installments due (api/payments.py)
    err.print(f"rcmhub serving on http://{settings.api_host}:{settings.api_port} and MLLP "
              f"{settings.mllp_host}:{mllp.port} ({'embedded' if settings.embedded else 'RabbitMQ'} bus); "
              f"watching {drop.inbox}")
    from api.users import first_user_hint

    if hint := first_user_hint(hub):
        err.print(hint)
    try:
        # access_log=False: uvicorn's lines carry paths and query strings (PHI); api/access_log.py logs
        # the route template instead.
        uvicorn.run(create_app(hub), host=settings.api_host, port=settings.api_port,
                    log_level=settings.log_level.lower(), access_log=False)
    finally:
        stop_watching.set()
        watcher.join(10)
        stop_dunning()
        stop_autopay()
        mllp.stop()
        if outbound is not None:
            outbound.stop()
        hub.close()


@app.command()
def demo(as_json: JsonFlag = False) -> None:
    """Create a small synthetic practice and run it through the real pipeline."""
    from api.demo import run_demo

    hub = _hub(in_process=True)
    try:
        result = run_demo(hub)
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    out.print(f"[bold]rcmhub demo[/] — database {hub.settings.database_url}")
    for step in result["steps"]:  # type: ignore[attr-defined]
        out.print(f"  {step}")
    table = Table("account", "charges", "insurance", "patient", "total")
    for acc in result["accounts"]:  # type: ignore[attr-defined]
        table.add_row(acc["account"], acc["charges"], acc["insurance_balance"], acc["patient_balance"],
                      acc["total_balance"])
    out.print(table)
    out.print(f"Inspect one: [bold]rcmhub accounts show {result['accounts'][0]['account']}[/]")  # type: ignore[index]


@app.command()
def worker(role: Annotated[str, typer.Option(help="intake, router or all")] = "all",
           concurrency: Annotated[int, typer.Option(min=1, max=64, help="worker threads per role")] = 2,
           prefetch: Annotated[int, typer.Option(min=0, help="unacked deliveries per role (0: 2 x concurrency, "
                                                            "x min(batch, 16) when batching)")] = 0,
           batch: Annotated[int, typer.Option(min=1, max=500, help="messages per transaction (group commit) for the "
                                                                   "router and intake roles; 1: one each")] = 100,
           health_port: Annotated[int, typer.Option(min=0, max=65535, help="serve /healthz and /readyz on this "
                                                                            "port (0: off)")] = 0,
           ) -> None:
    """Consume the RabbitMQ work queues as competing consumers until SIGTERM (needs RCMHUB_AMQP_URL)."""
    from api.worker_health import WorkerHealth
    from connectors.intake import Intake
    from connectors.rabbitmq.consumer import WorkConsumer
    from connectors.rabbitmq.topology import Topology
    from connectors.rabbitmq.workers import ROLES, CommandConsumer, IntakeConsumer, declare, run_workers

    roles = ROLES if role == "all" else (role,)
    if any(r not in ROLES for r in roles):
        err.print(f"[red]error:[/] --role must be one of {', '.join(ROLES)} or all")
        raise typer.Exit(2)
    settings = Settings()
    if not settings.amqp_url:
        err.print("[red]error:[/] rcmhub worker needs RCMHUB_AMQP_URL")
        raise typer.Exit(2)
    hub = _hub(migrate=False)  # schema upgrades belong to `db upgrade`/`serve`, not N racing workers
    logging.getLogger("pika").setLevel(max(logging.WARNING, logging.getLogger().level))  # pika's INFO is per frame
    assert hub.local_bus is not None
    topology = Topology(settings.amqp_prefix)
    try:
        declare(settings.amqp_url, topology)
        options = {"concurrency": concurrency, "prefetch": prefetch or None}
        consumers: list[WorkConsumer] = [
            CommandConsumer(settings.amqp_url, topology, hub.local_bus, batch_size=batch, **options) if r == "router"
            else IntakeConsumer(settings.amqp_url, topology, Intake(hub.local_bus, hub.intake.store), hub.local_bus,
                                batch_size=batch, **options) for r in roles if r != "outbound"]
        if "outbound" in roles:  # the outbox relay and one consumer per EMR destination
            from api.deliveries import outbound_for_worker

            consumers += outbound_for_worker(hub, topology, explicit=role == "outbound")
        err.print(f"rcmhub worker: {', '.join(roles)} x{concurrency} on {topology.prefix}.*")
        health = WorkerHealth(consumers, port=health_port).start() if health_port else None
        try:
            _freeze_startup_heap()
            run_workers(consumers)
        finally:
            if health is not None:
                health.stop()
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        hub.close()


def main() -> None:
    app()
