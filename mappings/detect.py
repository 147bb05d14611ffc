"""Detect a payload's wire format from its first bytes: HL7 v2 ER7, FHIR JSON or X12."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    HL7V2 = "hl7v2"
    FHIR = "fhir"
    X12 = "x12"
    UNKNOWN = "unknown"


def detect_format(raw: bytes) -> Format:
    head = raw[:64].removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith((b"MSH", b"FHS", b"BHS")):
        return Format.HL7V2
    if head.startswith((b"{", b"[")):
        return Format.FHIR
    if (head.startswith(b"ISA") and head[3:4] and not head[3:4].isalnum()) or (
            head.startswith(b"ST") and head[2:3] and not head[2:3].isalnum()):
        return Format.X12
    return Format.UNKNOWN
