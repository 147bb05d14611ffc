"""HL7 v2 acknowledgements (mappings layer): MSH, MSA (MSA-1 code, MSA-2 = the sender's MSH-10, MSA-3
text) and ERR (ERR-2 location, ERR-3 table 0357 code, ERR-4 severity, ERR-8 user text; ERR-1 for v2.3/2.4).

Built with f-strings, not hl7apy: hl7apy's ACK build costs ~2.5 ms and python-hl7's ``create_ack`` ~61 µs
against ~0.7 µs for plain text (../shared/docs/libraries.md), and the ACK is on every message's path.
Original mode answers AA/AE/AR after processing; enhanced mode (MSH-15 or MSH-16 set) answers the accept
ACK CA/CE/CR at commit, sent per MSH-15 (AL always, NE never, ER on error, SU on success).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from mappings.hl7v2.er7 import CHARSETS, Message, Segment, Separators, escape, parse_header, unescape
from router.domain.errors import (
    DecodeError,
    DomainViolation,
    HubError,
    MappingError,
    TransientError,
    UnsupportedMessage,
)

# HL7 table 0357, message error condition codes.
TABLE_0357 = {0: "Message accepted", 100: "Segment sequence error", 101: "Required field missing",
              102: "Data type error", 103: "Table value not found", 200: "Unsupported message type",
              201: "Unsupported event code", 202: "Unsupported processing id", 203: "Unsupported version id",
              204: "Unknown key identifier", 205: "Duplicate key identifier", 206: "Application record locked",
              207: "Application internal error"}
_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?")
_VERSION = re.compile(r"^2\.\d+(\.\d+)?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DEFAULT_VERSION = "2.5.1"
_TEXT_LIMIT = 250  # ERR-8 / MSA-3 length in v2.5


class AckCode(StrEnum):
    AA = "AA"
    AE = "AE"
    AR = "AR"
    CA = "CA"
    CE = "CE"
    CR = "CR"


class Verdict(StrEnum):
    """What happened to a message, independent of the acknowledgement mode."""

    ACCEPTED = "accepted"  # processed, or a resend of a processed message
    ERROR = "error"  # application error: MappingError, DomainViolation, control id reused
    CONFLICT = "conflict"  # control id reused with different content: not processed
    REJECTED = "rejected"  # DecodeError, UnsupportedMessage: the message itself is unacceptable
    RETRY = "retry"  # TransientError: not processed (and maybe not stored); send it again later


_ORIGINAL = {Verdict.ACCEPTED: AckCode.AA, Verdict.ERROR: AckCode.AE, Verdict.CONFLICT: AckCode.AE,
             Verdict.REJECTED: AckCode.AR, Verdict.RETRY: AckCode.AE}
# The accept ACK speaks about commit only: a stored message with an application error was still accepted.
_ENHANCED = {Verdict.ACCEPTED: AckCode.CA, Verdict.ERROR: AckCode.CA, Verdict.CONFLICT: AckCode.CE,
             Verdict.REJECTED: AckCode.CR, Verdict.RETRY: AckCode.CE}


@dataclass(frozen=True)
class AckError:
    """What goes in ERR: ``segment^sequence^field`` (sequence = occurrence of that segment id)."""

    text: str
    code: int = 207
    segment: str = ""
    sequence: int | None = None
    field: int | None = None
    severity: str = "E"


def verdict_of(exc: HubError) -> Verdict:
    if isinstance(exc, DecodeError | UnsupportedMessage):
        return Verdict.REJECTED
    if isinstance(exc, TransientError):
        return Verdict.RETRY
    return Verdict.ERROR


def error_of(exc: HubError, msg: Message | None = None) -> AckError:
    """The ERR content for an error: its table 0357 code and its location in ERL terms."""
    code = 207
    if isinstance(exc, UnsupportedMessage):
        code = 201 if msg is not None and _known_code(msg.type[0]) else 200
    elif isinstance(exc, DecodeError):
        code = 100 if exc.location in (None, "MSH") or (exc.location or "").startswith("segment") else 102
    elif isinstance(exc, MappingError):
        code = 101 if "missing" in exc.reason else 103 if "not supported" in exc.reason else 102
    elif isinstance(exc, DomainViolation) and "different content" in exc.reason:
        code = 205
    text = f"{exc.reason}; not processed, send again later" if isinstance(exc, TransientError) else exc.reason
    if exc.location:
        text = f"{exc.location}: {text}"
    segment, sequence, field = _erl(exc.location or "", msg)
    return AckError(text, code, segment, sequence, field)


def is_enhanced(msh: Segment | None) -> bool:
    return msh is not None and bool(msh.get(15).strip() or msh.get(16).strip())


def ack_code(verdict: Verdict, msh: Segment | None) -> AckCode:
    return (_ENHANCED if is_enhanced(msh) else _ORIGINAL)[verdict]


def should_send(code: AckCode, msh: Segment | None) -> bool:
    """Original mode always answers; enhanced mode answers as MSH-15 asks (empty or unknown: AL)."""
    if not is_enhanced(msh) or msh is None:
        return True
    condition = msh.get(15).strip().upper()
    if condition == "NE":
        return False
    if condition == "ER":
        return code is not AckCode.CA
    if condition == "SU":
        return code is AckCode.CA
    return True


def read_header(data: bytes | str) -> Segment | None:
    """MSH if it can be read at all (even when MSH-18 names an unknown charset), else None."""
    try:
        return parse_header(data)
    except DecodeError:
        pass
    try:
        return parse_header(data.decode("latin-1") if isinstance(data, bytes) else data)
    except DecodeError:
        return None


def build_ack(msh: Segment | None, code: AckCode, error: AckError | None = None, *,
              control_id: str | None = None, now: datetime | None = None) -> bytes:
    """The ACK for a message whose MSH is ``msh`` (None: unreadable; MSA-2 stays empty), as bytes in
    the sender's MSH-18 charset. The sender's separators are kept unless they are control characters."""
    seps = msh.seps if msh is not None and _printable(msh.seps) else Separators()
    f, c = seps.field, seps.component

    def echo(n: int) -> str:
        return _recode(msh.raw(n), msh.seps, seps) if msh is not None else ""

    version = msh.get(12).strip() if msh is not None else ""
    version = version if _VERSION.match(version) else _DEFAULT_VERSION
    event = re.sub(r"[^A-Z0-9]", "", msh.get(9, 2).upper())[:3] if msh is not None else ""
    msh9 = f"ACK{c}{event}{c}ACK" if event and _at_least(version, 2, 4) else f"ACK{c}{event}" if event else "ACK"
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%z")
    charset = echo(18) if msh is not None and msh.get(18).strip().upper() in CHARSETS else ""
    header = ["MSH", seps.component + seps.repetition + seps.escape + seps.subcomponent,
              echo(5) or "RCMHUB", echo(6) or "RCMHUB", echo(3), echo(4), stamp, "", msh9,
              control_id or uuid.uuid4().hex[:20], echo(11) or "P", version]
    if charset:
        header += ["", "", "", "", "", charset]
    segments = [f.join(header), f.join(["MSA", code.value, echo(10)])]
    if error is not None:
        text = _text(error.text, seps)
        segments[1] += f + text
        segments.append(_err(error, text, seps, version))
    codec = CHARSETS.get(charset.upper(), "utf-8")
    return ("\r".join(segments) + "\r").encode(codec, errors="replace")


def _err(error: AckError, text: str, seps: Separators, version: str) -> str:
    c, s = seps.component, seps.subcomponent
    where = [error.segment, str(error.sequence or ""), str(error.field or "")]
    name = TABLE_0357.get(error.code, "")
    fields = ["ERR", "", c.join(where).rstrip(c) if error.segment else "", f"{error.code}{c}{name}{c}HL70357",
              error.severity, "", "", "", text]
    if not _at_least(version, 2, 5):  # v2.3/2.4 readers only know ERR-1 (ELD)
        fields[1] = c.join([*where, f"{error.code}{s}{name}{s}HL70357"])
    return seps.field.join(fields)


def _erl(location: str, msg: Message | None) -> tuple[str, int | None, int | None]:
    """``FT1[5]-11`` (5 = position in the message) -> ('FT1', occurrence of FT1, 11)."""
    found = _LOCATION.match(location)
    if found is None:
        return "", None, None
    name, position, field = found.group(1), found.group(2), found.group(3)
    sequence = 1 if position is None else None
    if position is not None and msg is not None:
        sequence = sum(1 for s in msg.segments if s.name == name and s.position <= int(position)) or None
    return name, sequence, int(field) if field else None


def _known_code(code: str) -> bool:
    from mappings.hl7v2.inbound import DECODERS  # late: inbound imports every decoder

    return any(known == code for known, _ in DECODERS)


def _text(value: str, seps: Separators) -> str:
    clean = _CONTROL.sub(" ", value)[:_TEXT_LIMIT]
    return escape(clean, seps)


def _recode(raw: str, src: Separators, dst: Separators) -> str:
    """A field's ER7 text from the sender's separators into ours, without control characters."""
    if src == dst:
        return _CONTROL.sub("", raw)
    return dst.repetition.join(
        dst.component.join(
            dst.subcomponent.join(escape(_CONTROL.sub("", unescape(sub, src)), dst) for sub in comp.split(
                src.subcomponent))
            for comp in rep.split(src.component))
        for rep in raw.split(src.repetition))


def _printable(seps: Separators) -> bool:
    return all(" " < ch < "\x7f" for ch in (seps.field, seps.component, seps.repetition, seps.escape,
                                             seps.subcomponent))


def _at_least(version: str, major: int, minor: int) -> bool:
    parts = version.split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)
