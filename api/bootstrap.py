"""Composition root: builds the engine, unit-of-work factory, bus and intake from settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

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
