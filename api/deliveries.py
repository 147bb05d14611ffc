"""``rcmhub deliveries list|replay`` and the wiring of outbound deliveries into serve, worker and demo (api).

Destinations come from ``RCMHUB_DESTINATIONS`` (a YAML file, validated at start-up: a bad file stops the
process with the element named). Embedded mode runs the relay and delivery threads inside ``serve``;
with ``RCMHUB_AMQP_URL`` they run in ``rcmhub worker --role outbound``.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from api.bootstrap import Hub, build
from api.settings import Settings
from connectors.outbound.config import Destinations, load_destinations, parse_destinations
from connectors.outbound.engine import OutboundEngine
from connectors.outbound.plan import DELIVERABLE
from connectors.outbound.sink import DemoSink
from connectors.outbound.store import DeliveryStore, deliveries_list
from connectors.rabbitmq.topology import Topology
from router.adapters.audit import AuditLog, AuditRecord
from router.adapters.orm import OutboxRow
from router.adapters.orm_outbound import DeliveryRow
from router.domain.errors import HubError
from router.domain.results import trace_id

deliveries_app = typer.Typer(help="Results delivered back to EMRs (HL7 DFT, FHIR)", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]


def destinations_of(settings: Settings) -> Destinations:
    """The configured destinations (none without ``RCMHUB_DESTINATIONS``); raises ``DestinationsInvalid``."""
    return load_destinations(settings.destinations) if settings.destinations else Destinations()


def start_outbound(hub: Hub) -> OutboundEngine | None:
    """Embedded mode: relay and deliver in this process. None with a broker or without destinations."""
    destinations = _checked(hub)  # validated at start-up: a bad file stops the process, naming the element
    if not hub.settings.embedded or not destinations.active:
        return None
    return OutboundEngine(hub.sessions, destinations).start()


@dataclass
class DemoOutbound:
    """The demo's own EMR (a local MLLP + FHIR sink) and the engine delivering to it."""

    hub: Hub
    tag: str = ""  # the run's tag: only outbox events carrying it are relayed (never a real practice's events)
    sink: DemoSink = field(init=False)
    engine: OutboundEngine = field(init=False)
    mark: int = field(init=False)

    def __post_init__(self) -> None:
        self.sink = DemoSink().start()
        destinations = parse_destinations({"destinations": [
            {"name": "demo-emr-hl7", "transport": {"mllp": {"host": "127.0.0.1", "port": self.sink.mllp_port}},
             "formats": ["hl7v2-dft"], "retry": {"attempts": 3, "initial_seconds": 0.1, "budget_seconds": 10}},
            {"name": "demo-emr-fhir", "transport": {"fhir": {"base_url": self.sink.fhir_url}}, "formats": ["fhir"],
             "retry": {"attempts": 3, "initial_seconds": 0.1, "budget_seconds": 10}}]}, "demo")
        with self.hub.sessions() as session:  # this run's events are the ones after this mark
            self.mark = session.scalar(select(func.max(OutboxRow.id))) or 0
        scope = (OutboxRow.id > self.mark) & OutboxRow.source_id.contains(self.tag)
        self.engine = OutboundEngine(self.hub.sessions, destinations, idle_seconds=0.05, scope=scope).start()

    def finish(self, timeout: float = 20.0) -> tuple[list[str], list[dict[str, object]]]:
        """Wait for this run's deliveries to settle; (report lines, ``deliveries list`` rows of this run)."""
        with self.hub.sessions() as session:
            traces = {trace_id(source) for source in session.scalars(select(OutboxRow.source_id).where(
                OutboxRow.id > self.mark, OutboxRow.source_id.contains(self.tag),
                OutboxRow.event_type.in_(DELIVERABLE)))}
        try:
            self.engine.wait_idle(timeout, where=lambda q: q.where(DeliveryRow.trace_id.in_(traces)))
        finally:
            self.engine.stop()
            self.sink.stop()
        with self.hub.sessions() as session:
            rows = [r for t in sorted(traces) for r in deliveries_list(session, trace=t)]
        fhir = self.sink.fhir
        lines = [f"results back to the EMR: {sum(r['status'] == 'delivered' for r in rows)} of {len(rows)} "
                 f"deliveries delivered (demo EMR on MLLP 127.0.0.1:{self.sink.mllp_port} and {self.sink.fhir_url})",
                 f"  HL7 DFT^P03 received and ACKed: {len(self.sink.received)} messages, "
                 f"{sum(self.sink.received.values())} FT1 rows",
                 "  FHIR created: " + ", ".join(f"{n} {kind}" for kind, n in sorted(fhir.creates.items()))
                 + "; updated: " + ", ".join(f"{n} {kind}" for kind, n in sorted(fhir.updates.items()))]
        return lines, rows


@deliveries_app.command("list")
def list_cmd(as_json: JsonFlag = False,
             status: Annotated[str | None, typer.Option(help="pending, delivered or dead")] = None,
             destination: Annotated[str | None, typer.Option(help="only this destination")] = None,
             trace: Annotated[str | None, typer.Option(help="only this trace id")] = None) -> None:
    """Delivery status per event and destination, newest first (no payloads: they carry PHI)."""
    hub = _hub()
    try:
        with hub.sessions() as session:
            rows = deliveries_list(session, status=status, destination=destination, trace=trace)
    finally:
        hub.close()
    if as_json:
        typer.echo(json.dumps([{k: r[k] for k in ("id", "destination", "format", "event", "status", "attempts",
                                                  "last_error", "trace")} for r in rows], indent=2))
        return
    table = Table("id", "destination", "format", "event", "status", "attempts", "trace", "last error")
    for r in rows:
        table.add_row(*(str(r[k] if r[k] is not None else "") for k in ("id", "destination", "format", "event",
                                                                           "status", "attempts", "trace",
                                                                           "last_error")))
    out.print(table)


@deliveries_app.command("replay")
def replay_cmd(delivery_id: int,
               actor: Annotated[str | None, typer.Option("--actor", help="who is acting (default: the OS user)")]
               = None) -> None:
    """Send a dead (or stuck) delivery again with a fresh retry budget; recorded in the audit log."""
    hub = _hub()
    try:
        who = actor or getpass.getuser()
        AuditLog(hub.sessions).append(AuditRecord(who, "deliveries.replay", str(delivery_id), "", ""))
        destination = DeliveryStore(hub.sessions).replay(delivery_id)
        if destination is None:
            err.print(f"[red]error:[/] no delivery {delivery_id} to replay (unknown or already delivered)")
            raise typer.Exit(1)
        if not hub.settings.embedded:
            from connectors.outbound.amqp import publish_jobs
            from connectors.rabbitmq.publisher import Publisher

            publisher = Publisher(hub.settings.amqp_url)
            try:
                publish_jobs(publisher, Topology(hub.settings.amqp_prefix), [(delivery_id, destination)])
            finally:
                publisher.close()
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        hub.close()
    err.print(f"delivery {delivery_id} to {destination} is pending again")


def _hub() -> Hub:
    try:
        return build(Settings(), in_process=True)
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


def outbound_for_worker(hub: Hub, topology: Topology, *, explicit: bool) -> list[Any]:
    """``rcmhub worker --role outbound`` (or ``all``): the confirmed relay and one consumer per destination.

    Without destinations ``--role all`` runs no outbound thread; ``--role outbound`` is then a usage error.
    """
    from connectors.outbound.amqp import outbound_workers

    destinations = _checked(hub)
    if not destinations.active:
        if explicit:
            err.print("[red]error:[/] --role outbound needs RCMHUB_DESTINATIONS (a destinations YAML file)")
            raise typer.Exit(2)
        return []
    return outbound_workers(hub.settings.amqp_url, topology, hub.sessions, destinations)


def _checked(hub: Hub) -> Destinations:
    try:
        return destinations_of(hub.settings)
    except HubError as exc:
        hub.close()
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
