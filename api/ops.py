"""IT operations wiring (api): which dead-letter source and queue statistics a hub has, and its metrics.

RabbitMQ mode reads the broker (management API when reachable, else AMQP); embedded mode reads the tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import Request
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from api.bootstrap import Hub
from api.security import Principal, client_address, security_for
from connectors import queue_stats
from connectors.dead_letters import BrokerDeadLetters, DeadLetter, DeadLetterSource, StoredDeadLetters
from connectors.queue_stats import QueueStats
from connectors.rabbitmq.parking import DeadLetters
from connectors.rabbitmq.topology import Topology
from router.adapters.audit import AuditRecord
from router.adapters.orm import ExceptionRow, LedgerRow, MessageRow
from router.adapters.orm_outbound import DeliveryRow
from router.domain.errors import HubError


def dead_letters(hub: Hub) -> DeadLetterSource:
    if hub.settings.amqp_url:
        return BrokerDeadLetters(DeadLetters(hub.settings.amqp_url, Topology(hub.settings.amqp_prefix)))
    return StoredDeadLetters(hub.sessions, hub.intake)


def queues(hub: Hub) -> tuple[list[QueueStats], str | None]:
    """The queues and, when the broker could not be read at all, why (the list is then empty)."""
    settings = hub.settings
    if not settings.amqp_url:
        with hub.sessions() as session:
            return queue_stats.embedded(session), None
    topology = Topology(settings.amqp_prefix)
    found = queue_stats.from_management(settings.amqp_url, topology)
    if found is not None:
        return found, None
    try:
        return queue_stats.from_amqp(settings.amqp_url, topology), None
    except HubError as exc:
        return [], exc.reason


class HubCollector(Collector):
    """Counts read from the database at scrape time; every label is a code, never a person's data."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Any]:
        received = CounterMetricFamily("rcmhub_messages_received", "Inbound messages stored, by channel",
                                       labels=["channel", "format"])
        by_status = GaugeMetricFamily("rcmhub_messages", "Stored inbound messages by current status",
                                      labels=["channel", "status"])
        sent = CounterMetricFamily("rcmhub_messages_sent", "Outbound messages delivered, by destination",
                                   labels=["destination", "format"])
        deliveries = GaugeMetricFamily("rcmhub_deliveries", "Outbound deliveries by current status",
                                       labels=["destination", "status"])
        failures = GaugeMetricFamily("rcmhub_delivery_failures", "Outbound deliveries given up (dead, awaiting "
                                     "replay), by destination", labels=["destination"])
        postings = CounterMetricFamily("rcmhub_postings", "Ledger entries posted, by kind", labels=["kind"])
        exceptions = GaugeMetricFamily("rcmhub_exceptions_open", "Open reconciliation exceptions, by type",
                                       labels=["type"])
        depth = GaugeMetricFamily("rcmhub_queue_depth", "Messages waiting, by queue", labels=["queue", "kind"])
        up = GaugeMetricFamily("rcmhub_database_up", "1 when the database answered this scrape")
        try:
            with self.hub.sessions() as session:
                totals: dict[tuple[str, str], int] = {}
                statuses: dict[tuple[str, str], int] = {}
                by_destination: dict[tuple[str, str], int] = {}
                for channel, fmt, status, n in session.execute(
                        select(MessageRow.channel, MessageRow.format, MessageRow.status, func.count())
                        .group_by(MessageRow.channel, MessageRow.format, MessageRow.status)):
                    totals[channel, fmt] = totals.get((channel, fmt), 0) + n
                    statuses[channel, status] = statuses.get((channel, status), 0) + n
                for labels, n in totals.items():
                    received.add_metric(list(labels), n)
                for labels, n in statuses.items():
                    by_status.add_metric(list(labels), n)
                for destination, fmt, status, n in session.execute(
                        select(DeliveryRow.destination, DeliveryRow.format, DeliveryRow.status, func.count())
                        .group_by(DeliveryRow.destination, DeliveryRow.format, DeliveryRow.status)):
                    # (destination, format, status) is unique per row, so each family gets distinct label sets
                    by_destination[destination, status] = by_destination.get((destination, status), 0) + n
                    if status == "delivered":
                        sent.add_metric([destination, fmt], n)
                for (destination, status), n in by_destination.items():
                    deliveries.add_metric([destination, status], n)
                    if status == "dead":
                        failures.add_metric([destination], n)
                for kind, n in session.execute(select(LedgerRow.kind, func.count()).group_by(LedgerRow.kind)):
                    postings.add_metric([kind], n)
                for kind, n in session.execute(select(ExceptionRow.type, func.count())
                                               .where(ExceptionRow.status == "open").group_by(ExceptionRow.type)):
                    exceptions.add_metric([kind], n)
            up.add_metric([], 1)
        except Exception:  # a scrape reports the database as down instead of failing
            up.add_metric([], 0)
        try:
            for q in queues(self.hub)[0]:
                depth.add_metric([q.name, q.kind], q.depth)
        except Exception:  # queue depth is best effort: the series is simply absent
            pass
        yield from (received, by_status, sent, deliveries, failures, postings, exceptions, depth, up)


def registry_for(hub: Hub) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))
    return registry


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def redacted(reason: str) -> str:
    """A failure reason without the field values it quotes (``'1980-13-01' is not a date`` -> ``'…' is not a
    date``): mapping errors echo the bad value, which can be PHI, and IT roles see metadata only."""
    return _QUOTED.sub("'…'", reason)


def recorder(request: Request, principal: Principal, action: str) -> Callable[[DeadLetter], None]:
    """The audit callback a dead-letter action calls once it has found the message, before it acts."""
    security = security_for(request.app)

    def record(letter: DeadLetter) -> None:
        security.record(AuditRecord(principal.username, action, letter.id[:255], letter.queue[:255],
                                    f"origin={letter.origin} type={letter.type}", object_type="dead_letter",
                                    source=client_address(request)))

    return record
