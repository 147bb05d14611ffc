"""JSON codec for the router's own commands and events (router layer, pure): exact round trips.

It lives in router/, not mappings/, because it encodes no external wire format — only the router's
own dataclasses, driven by their type hints — and transports (RabbitMQ) below api/ need it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Union

from router.domain import commands, events
from router.domain.commands import Command
from router.domain.errors import DecodeError
from router.domain.events import Event

Message = Command | Event
VERSION = 1


def _registry() -> dict[str, type[Message]]:
    found: dict[str, type[Message]] = {}
    for module, base in ((commands, Command), (events, Event)):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, base) and value is not base:
                found[value.__name__] = value
    return found


TYPES = _registry()


def encode(message: Message) -> bytes:
    """``{"type", "v", "body"}`` as compact UTF-8 JSON; Decimal keeps its exponent (``"100.00"``)."""
    doc = {"type": type(message).__name__, "v": VERSION, "body": _plain(message)}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> Message:
    """The command or event ``encode`` produced; anything else raises ``DecodeError``."""
    try:
        doc = json.loads(data)
        cls = TYPES[doc["type"]]
        if doc.get("v") != VERSION:
            raise DecodeError(f"unsupported message version {doc.get('v')!r}", location="v")
        return typing.cast(Message, _build(cls, doc["body"], "body"))
    except DecodeError:
        raise
    except RecursionError as exc:  # JSON nested deeper than the parser's stack: hostile or broken, never ours
        raise DecodeError("not a valid rcmhub message: nested too deeply") from exc
    except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        raise DecodeError(f"not a valid rcmhub message: {type(exc).__name__}") from exc


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # datetime included: isoformat keeps the offset
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(tp: Any, raw: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if raw is None and type(None) in options:
            return None
        (inner,) = [t for t in options if t is not type(None)]  # the codec supports ``X | None`` only
        return _build(inner, raw, where)
    if origin is tuple:
        args = typing.get_args(tp)
        item = args[0]
        if not isinstance(raw, list):
            raise DecodeError("expected a list", location=where)
        return tuple(_build(item, v, f"{where}[{i}]") for i, v in enumerate(raw))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(raw, dict):
            raise DecodeError("expected an object", location=where)
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        if unknown := set(raw) - names:
            raise DecodeError(f"unknown fields {sorted(unknown)}", location=where)
        return tp(**{k: _build(hints[k], v, f"{where}.{k}") for k, v in raw.items()})
    return _scalar(tp, raw, where)


def _scalar(tp: Any, raw: Any, where: str) -> Any:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(raw)
    if tp is Decimal:
        if not isinstance(raw, str):
            raise DecodeError("expected a decimal string", location=where)
        return Decimal(raw)
    if tp is datetime:
        return datetime.fromisoformat(raw)
    if tp is date:
        return date.fromisoformat(raw)
    if tp is bool and isinstance(raw, bool):
        return raw
    if tp in (int, str) and isinstance(raw, tp) and not isinstance(raw, bool):
        return raw
    raise DecodeError(f"expected {getattr(tp, '__name__', tp)}", location=where)
