"""``rcmhub dlq list|show|replay|discard``: operate the RabbitMQ parking queues, each action audited (api).

Listing shows metadata only; a body is printed only with ``show --body``, which is audited too, because
a parked HL7/X12/FHIR payload can carry PHI.
"""

from __future__ import annotations

import base64
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.bootstrap import build
from api.settings import Settings
from connectors.rabbitmq.parking import DeadLetters, NotParked, Parked
from connectors.rabbitmq.topology import Topology
from router.adapters.audit import AuditLog, AuditRecord
from router.domain.errors import HubError

dlq_app = typer.Typer(help="Dead-lettered (parked) RabbitMQ messages: list, show, replay, discard",
                      no_args_is_help=True)
out = Console()
err = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]
RoleOption = Annotated[str | None, typer.Option("--role", help="only this role's parking queue (intake, router, "
                                                               "outbound)")]
ActorOption = Annotated[str | None, typer.Option("--actor", help="who is acting (default: the OS user)")]
Record = Callable[[Parked], None]
BODY_WARNING = "warning: the message body may contain PHI; this read is recorded in the audit log"


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not settings.amqp_url:
        err.print("[red]error:[/] rcmhub dlq needs RCMHUB_AMQP_URL")
        raise typer.Exit(2)
    return settings


def _dead_letters(settings: Settings) -> DeadLetters:
    return DeadLetters(settings.amqp_url, Topology(settings.amqp_prefix))


def _actor(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers: the uid still identifies the account
        return f"uid:{os.getuid()}"


def _audited(settings: Settings, actor: str, action: str, run: Callable[[Record], Parked]) -> Parked:
    """Run a broker action whose ``record`` callback commits the audit row before the message is settled."""
    try:
        hub = build(settings, in_process=True)  # migrates, so the audit table exists before anything is touched
    except HubError as exc:
        err.print(f"[red]error:[/] {exc} (no audit log, nothing was touched)")
        raise typer.Exit(1) from exc
    log = AuditLog(hub.sessions)
    try:
        def record(message: Parked) -> None:
            log.append(AuditRecord(actor, action, message.message_id, message.parking,
                                   f"origin={message.origin} reason={message.reason}"))

        return run(record)
    except NotParked as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    except HubError as exc:
        err.print(f"[red]error:[/] {exc} (the parked message was kept)")
        raise typer.Exit(1) from exc
    finally:
        hub.close()


@dlq_app.command("list")
def dlq_list(role: RoleOption = None, limit: Annotated[int, typer.Option(min=1, help="per queue")] = 10_000,
             as_json: JsonFlag = False) -> None:
    """Parked messages per parking queue: metadata only, never the body."""
    try:
        found = _dead_letters(_settings()).list(role, limit)
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps([m.metadata() for m in found], indent=2))
        return
    table = Table("queue", "message id", "type", "reason", "attempts", "timestamp", "size")
    for m in found:
        d = m.metadata()
        table.add_row(m.parking, m.message_id, m.type, m.reason, str(m.attempts), str(d["timestamp"] or ""),
                      str(m.size))
    out.print(table)
    err.print(f"{len(found)} parked message(s)")


@dlq_app.command("show")
def dlq_show(message_id: Annotated[str, typer.Argument(metavar="ID")], role: RoleOption = None,
             body: Annotated[bool, typer.Option("--body", help="also print the body (may contain PHI; audited)")]
             = False, actor: ActorOption = None, as_json: JsonFlag = False) -> None:
    """One parked message's metadata; its body only with ``--body``."""
    settings = _settings()
    dead = _dead_letters(settings)
    if body:
        err.print(f"[yellow]{BODY_WARNING}[/]")
        message = _audited(settings, _actor(actor), "dlq.show_body",
                           lambda record: dead.find(message_id, role, record))
    else:
        try:
            message = dead.find(message_id, role)
        except HubError as exc:
            err.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from exc
    data: dict[str, object] = message.metadata()
    if body:
        try:
            data["body"] = message.body.decode("utf-8")
        except UnicodeDecodeError:  # poison can be any bytes: keep them exact
            data["body_base64"] = base64.b64encode(message.body).decode()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        out.print(f"[bold]{key}[/]: {value}", markup=True, highlight=False)


@dlq_app.command("replay")
def dlq_replay(message_id: Annotated[str, typer.Argument(metavar="ID")], role: RoleOption = None,
               actor: ActorOption = None) -> None:
    """Republish a parked message to its original work queue (confirmed, attempt count reset)."""
    settings = _settings()
    dead = _dead_letters(settings)
    message = _audited(settings, _actor(actor), "dlq.replay", lambda record: dead.replay(message_id, record, role))
    err.print(f"replayed {message.message_id} from {message.parking} to {message.origin}")


@dlq_app.command("discard")
def dlq_discard(message_id: Annotated[str, typer.Argument(metavar="ID")], role: RoleOption = None,
                actor: ActorOption = None) -> None:
    """Remove a parked message for good (the audit record keeps who, when and why it was parked)."""
    settings = _settings()
    dead = _dead_letters(settings)
    message = _audited(settings, _actor(actor), "dlq.discard", lambda record: dead.discard(message_id, record, role))
    err.print(f"discarded {message.message_id} from {message.parking}")
