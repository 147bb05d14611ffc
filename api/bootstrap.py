"""Composition root: builds the engine, unit-of-work factory, bus and intake from settings (and, on RabbitMQ,
the MLLP store-and-forward path)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from connectors.intake import Intake
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.publisher import Publisher
from connectors.rabbitmq.topology import Topology
from router.adapters.db import make_engine, upgrade
from router.adapters.message_store import MessageStore
from router.bus import InProcessBus, MessageBus
from router.domain.workbench import WorkbenchPolicy
from router.handlers import BATCH_HANDLERS, HANDLERS
from router.unit_of_work import UnitOfWork
from router.workbench import workbench_handlers

if TYPE_CHECKING:
    from connectors.hl7_forwarder import Hl7Forwarder


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    uow_factory: Callable[[], UnitOfWork]
    bus: MessageBus
    intake: Intake
    local_bus: InProcessBus | None = None  # handles commands in this process (workers, ingest, demo)

    def close(self) -> None:
        if isinstance(self.bus, RabbitBus):
            self.bus.close()
        self.engine.dispose()


def build(settings: Settings, *, migrate: bool = True, in_process: bool = False) -> Hub:
    """The hub; with ``settings.amqp_url`` its bus publishes to RabbitMQ unless ``in_process`` is asked for."""
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    uow_factory = partial(UnitOfWork, sessions)
    # Workbench actions (billing staff) always run on this in-process bus: the user waits for the outcome.
    wb_policy = WorkbenchPolicy(write_off_threshold=settings.write_off_threshold)
    local_bus = InProcessBus(uow_factory, {**HANDLERS, **workbench_handlers(policy=wb_policy)},
                             batch_handlers=BATCH_HANDLERS)
    bus: MessageBus = local_bus
    if settings.amqp_url and not in_process:
        bus = RabbitBus(Publisher(settings.amqp_url), Topology(settings.amqp_prefix))
    return Hub(settings, engine, sessions, uow_factory, bus, Intake(bus, MessageStore(sessions)), local_bus)


def mllp_forwarder(hub: Hub) -> Hl7Forwarder | None:
    """On RabbitMQ, MLLP stores and forwards raw messages to the intake queue (ACK at store + confirm); embedded
    (None), the listener keeps the synchronous intake (ACK after posting, with full validation)."""
    if hub.settings.embedded:
        return None
    from connectors.hl7_forwarder import Hl7Forwarder  # pika's asyncio adapter: only where it runs
    from connectors.rabbitmq.async_publisher import AsyncPublisher

    # Its own pool, without pre-ping: that is one more round trip per batch (~15% of the store on the 2-core
    # box). A connection PostgreSQL dropped fails one batch ("send again"); SQLAlchemy then renews the pool.
    store = MessageStore(sessionmaker(make_engine(hub.settings.database_url, pool_pre_ping=False)))
    return Hl7Forwarder(store, AsyncPublisher(hub.settings.amqp_url), Topology(hub.settings.amqp_prefix))
