"""The RabbitMQ ``MessageBus`` (connectors): ``handle`` publishes the command to the work exchange.

Its ``Outcome`` means *accepted for processing* (confirmed by the broker), never *posted*: duplicates
and domain errors are decided later by a router worker. Callers that must wait for the ledger (the
``ingest`` and ``demo`` commands) use the in-process bus against the same database instead.
"""

from __future__ import annotations

from connectors.rabbitmq.publisher import Publisher
from connectors.rabbitmq.topology import Topology
from router.bus import Outcome
from router.domain.commands import Command


class RabbitBus:
    def __init__(self, publisher: Publisher, topology: Topology) -> None:
        self.publisher = publisher
        self.queue = topology.queue("router")

    def handle(self, command: Command) -> Outcome:
        """Publish with confirms; raises ``BrokerUnavailable`` when the broker did not take it."""
        self.publisher.publish_command(self.queue.exchange, self.queue.routing_key, command)
        return Outcome(command.source_id)

    def close(self) -> None:
        self.publisher.close()
