"""Queue depth and flow for IT operations (connectors), one shape whatever the bus.

RabbitMQ: its management HTTP API when reachable (a few httpx calls: ``GET /api/queues/{vhost}``); otherwise a
passive ``queue_declare`` per queue over AMQP gives depth and consumers only. Embedded: the message store and
the outbound tables stand in for queues (received-not-yet-processed messages, unpublished outbox events,
pending deliveries).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pika
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.rabbitmq.publisher import PIKA_ERRORS
from connectors.rabbitmq.topology import Topology
from router.adapters.orm import MessageRow, OutboxRow
from router.adapters.orm_outbound import DeliveryRow


@dataclass(frozen=True)
class QueueStats:
    name: str
    role: str  # intake, router, outbound; "parking" / "retry" for their side queues
    kind: str  # work, parking, retry
    depth: int
    ready: int | None
    unacked: int | None
    consumers: int | None
    publish_rate: float | None  # messages/s
    deliver_rate: float | None
    oldest_age_seconds: float | None
    source: str  # management, amqp, embedded

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _kinds(topology: Topology) -> dict[str, tuple[str, str]]:
    kinds: dict[str, tuple[str, str]] = {}
    for queue in map(topology.queue, topology.roles):
        kinds[queue.name] = (queue.role, "work")
        kinds[queue.parking] = (queue.role, "parking")
        kinds.update({wait: (queue.role, "retry") for _, wait in queue.waits})
    return kinds


def management_url(amqp_url: str, override: str = "") -> tuple[str, tuple[str, str], str]:
    """Base URL, credentials and vhost of the management API beside ``amqp_url`` (port 15672 unless given)."""
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
    base = override.rstrip("/") or f"http://{parts.hostname or '127.0.0.1'}:15672"
    return base, auth, vhost


def _rate(stats: dict[str, Any], key: str) -> float | None:
    details = stats.get(f"{key}_details")
    return float(details["rate"]) if isinstance(details, dict) and "rate" in details else None


def from_management(amqp_url: str, topology: Topology, override: str = "", timeout: float = 2.0,
                    transport: httpx.BaseTransport | None = None) -> list[QueueStats] | None:
    """The topology's queues from the management API, or None when it cannot be reached."""
    base, auth, vhost = management_url(amqp_url, override)
    kinds = _kinds(topology)
    columns = ("name,messages,messages_ready,messages_unacknowledged,consumers,message_stats,"
               "head_message_timestamp")
    try:
        with httpx.Client(base_url=base, auth=auth, timeout=timeout, transport=transport) as client:
            response = client.get(f"/api/queues/{quote(vhost, safe='')}", params={"columns": columns})
        if response.status_code != 200:
            return None
        rows = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    now = datetime.now(UTC).timestamp()
    found = []
    for row in rows if isinstance(rows, list) else []:
        name = row.get("name")
        if name not in kinds:
            continue
        stats = row.get("message_stats") or {}
        head = row.get("head_message_timestamp")
        role, kind = kinds[name]
        found.append(QueueStats(
            name, role, kind, int(row.get("messages") or 0), row.get("messages_ready"),
            row.get("messages_unacknowledged"), row.get("consumers"), _rate(stats, "publish"),
            _rate(stats, "deliver_get"), max(0.0, now - float(head)) if isinstance(head, int | float) else None,
            "management"))
    return sorted(found, key=lambda q: q.name)


def from_amqp(amqp_url: str, topology: Topology) -> list[QueueStats]:
    """Depth and consumers by passive declare (no management plugin): rates and ages are unknown."""
    found = []
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        for name, (role, kind) in sorted(_kinds(topology).items()):
            channel = connection.channel()
            try:
                ok = channel.queue_declare(name, passive=True).method
            except PIKA_ERRORS:  # not declared yet: the channel closes, the queue is reported empty
                if not connection.is_open:
                    raise
                found.append(QueueStats(name, role, kind, 0, 0, None, 0, None, None, None, "amqp"))
                continue
            found.append(QueueStats(name, role, kind, ok.message_count, ok.message_count, None, ok.consumer_count,
                                    None, None, None, "amqp"))
            with contextlib.suppress(*PIKA_ERRORS):
                channel.close()
    finally:
        with contextlib.suppress(*PIKA_ERRORS):
            connection.close()
    return found


def embedded(session: Session, window: timedelta = timedelta(minutes=1)) -> list[QueueStats]:
    """The in-process bus has no broker queues: report what waits in the tables, in the broker's shape."""
    now = datetime.now(UTC)
    since = now - window
    seconds = window.total_seconds()

    def age(oldest: datetime | None) -> float | None:
        if oldest is None:
            return None
        return max(0.0, (now - (oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC))).total_seconds())

    waiting, oldest = session.execute(select(func.count(), func.min(MessageRow.received_at))
                                      .where(MessageRow.status == "received")).one()
    received = session.scalar(select(func.count()).where(MessageRow.received_at >= since)) or 0
    processed = session.scalar(select(func.count()).where(MessageRow.processed_at >= since)) or 0
    events, first_event = session.execute(select(func.count(), func.min(OutboxRow.created_at))
                                          .where(OutboxRow.published_at.is_(None))).one()
    pending, first_pending = session.execute(select(func.count(), func.min(DeliveryRow.created_at))
                                             .where(DeliveryRow.status == "pending")).one()
    dead = session.scalar(select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status == "dead")) or 0
    delivered = session.scalar(select(func.count()).select_from(DeliveryRow)
                               .where(DeliveryRow.delivered_at >= since)) or 0
    return [
        QueueStats("intake", "intake", "work", waiting, waiting, 0, 1, received / seconds, processed / seconds,
                   age(oldest), "embedded"),
        QueueStats("outbox", "router", "work", events, events, 0, 1, None, None, age(first_event), "embedded"),
        QueueStats("outbound", "outbound", "work", pending, pending, 0, 1, None, delivered / seconds,
                   age(first_pending), "embedded"),
        QueueStats("outbound.dead", "outbound", "parking", dead, dead, 0, 0, None, None, None, "embedded"),
    ]
