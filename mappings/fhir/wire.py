"""FHIR R4 JSON on the wire (mappings): bytes -> dict with exact ``Decimal`` numbers, then R4B model
validation whose errors name the FHIR element path, e.g. ``Claim.item[0].net.value``."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from router.domain.errors import DecodeError, MappingError

Raw = dict[str, Any]
MEDIA_TYPE = "application/fhir+json"  # FHIR R4 JSON, as HTTP and AMQP label it
M = TypeVar("M", bound=FHIRAbstractModel)


class InvalidResource(MappingError):
    """A resource that fails R4 validation; ``issues`` keeps every (element path, problem, missing?)."""

    def __init__(self, issues: list[tuple[str, str, bool]]) -> None:
        path, problem, _ = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(problem + more, location=path)
        self.issues = issues


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(raw: bytes | str) -> Raw:
    """Parse JSON keeping decimals exact: a float would turn 0.1 + 0.2 into 0.30000000000000004."""
    try:
        doc = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON: {exc.msg}", location=f"line {exc.lineno} column {exc.colno}") from exc
    except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN/Infinity, absurd nesting
        raise DecodeError(f"not valid JSON: {exc}", location="line 1") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise MappingError("a FHIR resource is a JSON object with a resourceType", location="resourceType")
    return doc


def element_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    """pydantic's error location -> FHIRPath-like element path (validator tags are not elements)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "resource_type":
            out += ".resourceType"
        elif part.isidentifier():
            out += f".{part}"
    return out


def _problem(err: Any) -> str:
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, str | int | Decimal | bool) and err.get("type") != "missing":
        msg += f" (got {str(value)[:40]!r})"
    return msg


def validate(raw: Raw, model: type[M], prefix: str | None = None) -> M:
    """Validate one resource dict with its R4B model; every failure becomes ``InvalidResource``."""
    prefix = prefix or model.__name__
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        issues = [(element_path(prefix, tuple(e["loc"])), _problem(e), e["type"] == "missing")
                  for e in exc.errors()]
        raise InvalidResource(issues or [(prefix, str(exc), False)]) from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # fhir_core raises these on odd input
        raise InvalidResource([(prefix, f"invalid {model.__name__}: {exc}", False)]) from exc


def is_fhir_type(resource_type: str) -> bool:
    try:
        get_fhir_model_class(resource_type)
    except (ValueError, AttributeError):
        return False
    return True


def to_date(value: object, location: str) -> date:
    """FHIR date/dateTime -> date; a partial date (``2024-03``) names no day and is refused."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value or "")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise MappingError(f"{text!r} is not a full date (YYYY-MM-DD)", location=location) from None
