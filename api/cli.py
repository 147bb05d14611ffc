"""The ``rcmhub`` command line (typer): serve, demo, ingest, accounts, db.

Exit codes: 0 success; 1 input rejected or an operation failed; 2 usage error.
Progress goes to stderr on a terminal only, so ``--json`` on stdout stays clean.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.bootstrap import Hub, build
from api.settings import Settings
from router.domain.errors import HubError
from router.queries import account_view

app = typer.Typer(help="rcmhub: revenue-cycle integration hub", no_args_is_help=True,
                  pretty_exceptions_enable=False)
accounts_app = typer.Typer(help="Inspect patient accounts", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]


def _hub(migrate: bool = True) -> Hub:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return build(settings, migrate=migrate)
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def ingest(paths: Annotated[list[Path], typer.Argument(help="Files to process (HL7 v2, FHIR JSON, X12)",
                                                       exists=True, dir_okay=False, readable=True)],
           as_json: JsonFlag = False) -> None:
    """Feed files through the pipeline and wait until every message is processed."""
    hub = _hub()
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
    if as_json:
        typer.echo(json.dumps({"files": [r.as_json() for r in reports]}, indent=2))
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


@accounts_app.command("show")
def accounts_show(account: str, as_json: JsonFlag = False) -> None:
    """Balances and ledger entries of one account."""
    hub = _hub()
    try:
        with hub.sessions() as session:
            view = account_view(session, account)
    finally:
        hub.close()
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


@app.command()
def serve() -> None:
    """Run the hub in one process: API (RCMHUB_API_PORT) and intake listeners."""
    import uvicorn

    from api.app import create_app

    hub = _hub()
    err.print(f"rcmhub serving on http://{hub.settings.api_host}:{hub.settings.api_port} "
              f"({'embedded' if hub.settings.embedded else 'RabbitMQ'} bus)")
    try:
        uvicorn.run(create_app(hub), host=hub.settings.api_host, port=hub.settings.api_port,
                    log_level=hub.settings.log_level.lower())
    finally:
        hub.close()


@app.command()
def demo(as_json: JsonFlag = False) -> None:
    """Create a small synthetic practice and run it through the real pipeline."""
    from api.demo import run_demo

    hub = _hub()
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


def main() -> None:
    app()
