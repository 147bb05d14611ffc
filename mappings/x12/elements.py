"""Typed reads of X12 elements (mappings layer): R amounts, N quantities, CCYYMMDD dates and composites,
raising ``ElementError`` (a ``MappingError``) that names the loop, element and segment position.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from mappings.x12.segments import Segment
from router.domain.errors import MappingError
from router.domain.money import CENT

# X12 "R" type: optional sign, digits, optional point; no exponent, no NaN, no "1_000" (Decimal takes those).
_DECIMAL = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_MAX_DIGITS = 18  # X12 R/N elements are at most 18 digits


class SegmentError(MappingError):
    """A segment missing or out of place; keeps what a 999 IK3 reports (IK304 2 unexpected, 3 missing)."""

    def __init__(self, reason: str, segment_id: str, position: int, *, code: str, location: str | None = None) -> None:
        super().__init__(reason, location=location or f"segment {position} ({segment_id})")
        self.segment_id = segment_id
        self.segment_position = position
        self.segment_code = code


class ElementError(SegmentError):
    """A required element is missing or invalid; keeps what a 999 IK3/IK4 reports."""

    def __init__(self, reason: str, seg: Segment, element: int, *, code: str = "1") -> None:
        super().__init__(reason, seg.id, seg.position, code="8")
        self.element = element
        self.code = code  # 999 IK403: 1 missing, 6 invalid character, 8 invalid date
        self.bad_value = seg.el(element)


def required(seg: Segment, n: int, loop: str) -> str:
    value = seg.el(n)
    if not value:
        raise ElementError(f"{loop}/{seg.id}{n:02d} missing", seg, n)
    return value


def _decimal(seg: Segment, n: int, loop: str, text: str) -> Decimal:
    if len(text) > _MAX_DIGITS + 2 or not _DECIMAL.fullmatch(text):
        raise ElementError(f"{loop}/{seg.id}{n:02d} is not a number: {text[:30]!r}", seg, n, code="6")
    return Decimal(text)


def amount(seg: Segment, n: int, loop: str) -> Decimal:
    """A required monetary amount, exact to the cent; more than two decimals is refused, not rounded."""
    value = _decimal(seg, n, loop, required(seg, n, loop))
    quantized = value.quantize(CENT)
    if quantized != value:
        raise ElementError(f"{loop}/{seg.id}{n:02d} has more than two decimals: {value}", seg, n, code="6")
    return quantized


def optional_amount(seg: Segment, n: int, loop: str) -> Decimal | None:
    return amount(seg, n, loop) if seg.el(n) else None


def optional_number(seg: Segment, n: int, loop: str) -> Decimal | None:
    """A quantity (units, days); not money, so decimals are kept as sent."""
    text = seg.el(n)
    return _decimal(seg, n, loop, text) if text else None


def ccyymmdd(seg: Segment, n: int, loop: str) -> date:
    text = required(seg, n, loop)
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError(text)
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        reason = f"{loop}/{seg.id}{n:02d} is not a CCYYMMDD date: {text[:30]!r}"
        raise ElementError(reason, seg, n, code="8") from exc


def optional_date(seg: Segment, n: int, loop: str) -> date | None:
    return ccyymmdd(seg, n, loop) if seg.el(n) else None


def components(value: str, separator: str) -> list[str]:
    return value.split(separator) if value else []
