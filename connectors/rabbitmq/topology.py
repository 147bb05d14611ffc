"""RabbitMQ topology as code (connectors): exchanges, quorum work queues, retry tiers and parking queues.

The same ``Topology`` declares itself on a channel and renders ``deploy/rabbitmq/definitions.json``
(``python -m connectors.rabbitmq.topology --write``), so the two cannot drift.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

DEFINITIONS = Path(__file__).parents[2] / "deploy" / "rabbitmq" / "definitions.json"


@dataclass(frozen=True)
class RetryTier:
    name: str  # suffix of the wait queue, e.g. "5s"
    ttl_ms: int


DEFAULT_TIERS = (RetryTier("5s", 5_000), RetryTier("30s", 30_000), RetryTier("5m", 300_000))


@dataclass(frozen=True)
class WorkQueue:
    """A queue one worker role consumes, fed by ``exchange`` under ``routing_key``."""

    role: str
    name: str
    exchange: str
    routing_key: str
    parking: str
    waits: tuple[tuple[RetryTier, str], ...]  # (tier, wait queue name), in escalation order


@dataclass(frozen=True)
class Topology:
    """Names derive from ``prefix`` so tests can declare an isolated copy beside production's."""

    prefix: str = "rcmhub"
    delivery_limit: int = 10  # RabbitMQ 3.10 quorum queues have no default limit
    tiers: tuple[RetryTier, ...] = DEFAULT_TIERS
    roles: tuple[str, ...] = field(default=("intake", "router", "outbound"))

    @property
    def inbound(self) -> str:
        return f"{self.prefix}.inbound"  # raw messages from the channels (MLLP, files, HTTP)

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"  # canonical router commands: the work exchange

    @property
    def outbound(self) -> str:
        return f"{self.prefix}.outbound"  # events relayed from the outbox, for outbound connectors

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dlx"

    @property
    def retry(self) -> str:
        return f"{self.prefix}.retry"

    def queue(self, role: str) -> WorkQueue:
        feed = {"intake": self.inbound, "router": self.commands, "outbound": self.outbound}[role]
        name = f"{self.prefix}.{role}"
        waits = tuple((t, f"{name}.retry.{t.name}") for t in self.tiers)
        return WorkQueue(role, name, feed, role, f"{name}.parking", waits)

    def exchanges(self) -> list[dict[str, Any]]:
        names = (self.inbound, self.commands, self.outbound, self.dead_letters, self.retry)
        return [{"name": n, "type": "direct", "durable": True, "auto_delete": False,
                 "arguments": {}} for n in names]

    def queues(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for q in map(self.queue, self.roles):
            # at-least-once dead-lettering is only honoured with reject-publish overflow.
            safe_dl = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
            found.append(_quorum(q.name, {"x-delivery-limit": self.delivery_limit,
                                          "x-dead-letter-exchange": self.dead_letters,
                                          "x-dead-letter-routing-key": q.name, **safe_dl}))
            found.append(_quorum(q.parking, {}))
            for tier, wait in q.waits:
                # Expiry sends the message back through the work exchange to the same work queue.
                found.append(_quorum(wait, {"x-message-ttl": tier.ttl_ms, "x-dead-letter-exchange": q.exchange,
                                            "x-dead-letter-routing-key": q.routing_key, **safe_dl}))
        return found

    def bindings(self) -> list[dict[str, Any]]:
        found = []
        for q in map(self.queue, self.roles):
            found.append(_binding(q.exchange, q.name, q.routing_key))
            found.append(_binding(self.dead_letters, q.parking, q.name))
            found += [_binding(self.retry, wait, wait) for _, wait in q.waits]
        return found

    def definitions(self) -> dict[str, Any]:
        """The broker definitions document (no users, no passwords: secrets come from the deployment)."""
        def on_vhost(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{**item, "vhost": "/"} for item in items]

        return {"exchanges": on_vhost(self.exchanges()), "queues": on_vhost(self.queues()),
                "bindings": on_vhost(self.bindings())}

    def declare(self, channel: BlockingChannel) -> None:
        for x in self.exchanges():
            channel.exchange_declare(x["name"], x["type"], durable=True)
        for q in self.queues():
            channel.queue_declare(q["name"], durable=True, arguments=q["arguments"])
        for b in self.bindings():
            channel.queue_bind(b["destination"], b["source"], routing_key=b["routing_key"])

    def delete(self, channel: BlockingChannel) -> None:
        """Remove everything ``declare`` created (tests use their own prefix and clean up)."""
        for q in self.queues():
            channel.queue_delete(q["name"])
        for x in self.exchanges():
            channel.exchange_delete(x["name"])


def _quorum(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "durable": True, "auto_delete": False,
            "arguments": {"x-queue-type": "quorum", **arguments}}


def _binding(source: str, queue: str, key: str) -> dict[str, Any]:
    return {"source": source, "destination": queue, "destination_type": "queue", "routing_key": key,
            "arguments": {}}


def render(topology: Topology | None = None) -> str:
    return json.dumps((topology or Topology()).definitions(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print or write the RabbitMQ definitions the code declares")
    parser.add_argument("--write", nargs="?", const=str(DEFINITIONS), metavar="PATH",
                        help=f"write the file (default {DEFINITIONS}) instead of printing it")
    args = parser.parse_args(argv)
    if args.write:
        Path(args.write).write_text(render())
    else:
        parser.exit(0, render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
