"""What happens to a delivery (connectors): the verdict of a worker thread and the headers it settles with."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import BasicProperties

from connectors.rabbitmq.publisher import ATTEMPT
from router.domain.errors import HubError


@dataclass(frozen=True)
class Delivery:
    channel: BlockingChannel
    tag: int
    properties: BasicProperties
    body: bytes


class Action(Enum):
    ACK = "ack"
    RETRY = "retry"
    PARK = "park"


@dataclass(frozen=True)
class Reply:
    """What the sender asked for with ``reply_to``: an HL7 ACK, a FHIR OperationOutcome, an X12 999."""

    body: bytes
    content_type: str


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""
    reply: Reply | None = None
    headers: dict[str, Any] | None = None  # added to a retried copy: what dispatch learned (a stored row)


def reason_of(exc: BaseException) -> str:
    """Error class and location only: reason texts may quote field values, which can be PHI."""
    where = exc.location if isinstance(exc, HubError) and exc.location else ""
    return f"{type(exc).__name__} at {where}" if where else type(exc).__name__


def attempt_of(properties: BasicProperties) -> int:
    value = (properties.headers or {}).get(ATTEMPT, 0)
    return value if isinstance(value, int) else 0


def reply_properties(request: BasicProperties, reply: Reply) -> BasicProperties:
    """The answer to ``request``: its correlation id echoed, nothing else of it (no PHI in headers)."""
    return BasicProperties(content_type=reply.content_type, correlation_id=request.correlation_id,
                           delivery_mode=pika.DeliveryMode.Persistent.value)


def with_headers(properties: BasicProperties, extra: dict[str, Any]) -> BasicProperties:
    """A copy of ``properties`` (message id, type, timestamp kept) with broker bookkeeping dropped."""
    headers = {k: v for k, v in (properties.headers or {}).items() if not k.startswith(("x-death", "x-first-death",
                                                                                          "x-last-death"))}
    headers.pop("x-delivery-count", None)
    copy = BasicProperties(**{k: getattr(properties, k) for k in _PROPERTY_NAMES})
    copy.headers = {**headers, **extra}
    copy.delivery_mode = pika.DeliveryMode.Persistent.value
    return copy


_PROPERTY_NAMES = ("content_type", "content_encoding", "priority", "correlation_id", "reply_to", "message_id",
                   "timestamp", "type", "app_id")
