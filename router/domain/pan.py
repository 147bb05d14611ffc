"""PAN guard (domain, pure): find card numbers in free text, then reject or mask them before storage.

PCI: no hub field accepts a card number. A candidate is a run of 13-19 digits not touching another digit,
written either contiguously or in the groupings cards are printed in (4-4-4-4[-1..3], 4-4-4-1, Amex 4-6-5,
Diners 4-6-4) with one consistent space or hyphen; it is a card number when python-stdnum's Luhn check
passes. Finding the candidates is hand-written because stdnum validates a given number but does not
scan text. Masking keeps the last four digits ("**** **** **** 1111"), as receipts show them.
"""

from __future__ import annotations

import re

from stdnum import luhn

from router.domain.errors import MappingError

_GROUPED = r"\d{4}(?P<sep>[ -])\d{4}(?:(?P=sep)\d{4}){1,2}(?:(?P=sep)\d{1,4})?|\d{4}(?P<sep2>[ -])\d{6}(?P=sep2)\d{4,5}"
_CANDIDATE = re.compile(rf"(?<!\d)(?:{_GROUPED}|\d{{13,19}})(?!\d)")


def find_pans(text: str) -> list[tuple[int, int]]:
    """Spans of Luhn-valid 13-19 digit card numbers in ``text``."""
    spans = []
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            spans.append(match.span())
    return spans


def contains_pan(text: str | None) -> bool:
    return bool(text) and bool(find_pans(text or ""))


def mask_pans(text: str) -> str:
    """``text`` with every card number's digits but the last four replaced by ``*``."""
    spans = find_pans(text)
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        out.append(text[last:start])
        number = text[start:end]
        keep = len(re.sub(r"\D", "", number)) - 4
        masked = []
        for ch in number:
            if ch.isdigit() and keep > 0:
                masked.append("*")
                keep -= 1
            else:
                masked.append(ch)
        out.append("".join(masked))
        last = end
    out.append(text[last:])
    return "".join(out)


def reject_pan(text: str | None, *, location: str) -> str:
    """``text`` unchanged, or ``MappingError`` naming the field when it holds a card number (never the number)."""
    if text and find_pans(text):
        raise MappingError("a card number is not accepted here; use the gateway's hosted page", location=location)
    return text or ""
