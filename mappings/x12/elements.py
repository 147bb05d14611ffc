"""Typed reads of X12 elements (mappings layer): R amounts, N quantities, CCYYMMDD dates and composites,
raising ``ElementError`` (a ``MappingError``) that names the loop, element and segment position.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache

from mappings.x12.segments import Segment
from router.domain.errors import MappingError
from router.domain.money import CENT

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
    elements = seg.elements
    if n < len(elements) and elements[n]:
        return elements[n]
    raise ElementError(f"{loop}/{seg.id}{n:02d} missing", seg, n)


def _decimal(seg: Segment, n: int, loop: str, text: str) -> Decimal:
    # Plain string tests, cheaper than a regex on the hot path; Decimal alone would take "1e3" or "NaN".
    digits = (text[1:] if text[:1] == "-" else text).replace(".", "", 1)
    if not (digits.isdigit() and digits.isascii() and len(digits) <= _MAX_DIGITS):
        raise ElementError(f"{loop}/{seg.id}{n:02d} is not a number: {text[:30]!r}", seg, n, code="6")
    return Decimal(text)


def fast_amount(text: str) -> Decimal | None:
    """``amount`` of a plain well-formed value (nearly every element), with no segment or loop to pass;
    None sends the caller to ``amount``, which raises the exact error or accepts the rarer forms."""
    digits = text.replace(".", "", 1)
    if not (digits.isdigit() and digits.isascii()):  # "" and "-" fail too: negatives take ``amount``
        return None
    size = len(digits)
    if size == len(text):
        return Decimal(text).quantize(CENT) if size <= _MAX_DIGITS + 1 else None
    places = len(text) - 1 - text.index(".")
    if places > 2 or size > _MAX_DIGITS:
        return None
    # "12.30" is already exact to the cent: quantize (a third of the cost) only the shorter forms.
    return Decimal(text) if places == 2 else Decimal(text).quantize(CENT)


@lru_cache(maxsize=1024)  # units and days repeat ("1", "2") on every line
def fast_number(text: str) -> Decimal | None:
    """A well-formed N/R quantity, or None (the caller then raises through ``optional_number``)."""
    digits = (text[1:] if text[:1] == "-" else text).replace(".", "", 1)
    return Decimal(text) if digits.isdigit() and digits.isascii() and len(digits) <= _MAX_DIGITS else None


def amount(seg: Segment, n: int, loop: str) -> Decimal:
    """A required monetary amount, exact to the cent; more than two decimals is refused, not rounded."""
    elements = seg.elements
    text = elements[n] if n < len(elements) else ""
    body = text[1:] if text[:1] == "-" else text
    whole, _, cents = body.partition(".")
    if len(cents) <= 2 and len(body) <= _MAX_DIGITS + 1 and (whole + cents).isdigit() and body.isascii():
        return Decimal(text).quantize(CENT)  # the common case, kept to plain string tests
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


@lru_cache(maxsize=4096)  # a remittance repeats a handful of dates thousands of times
def parse_date(text: str) -> date | None:
    if len(text) != 8 or not (text.isdigit() and text.isascii()):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def ccyymmdd(seg: Segment, n: int, loop: str) -> date:
    text = required(seg, n, loop)
    value = parse_date(text)
    if value is None:
        reason = f"{loop}/{seg.id}{n:02d} is not a CCYYMMDD date: {text[:30]!r}"
        raise ElementError(reason, seg, n, code="8")
    return value


def optional_date(seg: Segment, n: int, loop: str) -> date | None:
    return ccyymmdd(seg, n, loop) if seg.el(n) else None


def components(value: str, separator: str) -> list[str]:
    return value.split(separator) if value else []
