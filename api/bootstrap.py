"""Composition root: builds the engine, unit-of-work factory, bus and intake from settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from connectors.intake import Intake
from router.adapters.db import make_engine, upgrade
from router.adapters.message_store import MessageStore
from router.bus import InProcessBus, MessageBus
from router.handlers import HANDLERS
from router.unit_of_work import UnitOfWork


@dataclass
class Hub:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    uow_factory: Callable[[], UnitOfWork]
    bus: MessageBus
    intake: Intake

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings, *, migrate: bool = True) -> Hub:
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    uow_factory = partial(UnitOfWork, sessions)
    bus = InProcessBus(uow_factory, HANDLERS)
    return Hub(settings, engine, sessions, uow_factory, bus, Intake(bus, MessageStore(sessions)))
