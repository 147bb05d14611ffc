"""Fast HL7 v2 ER7 reader: separators from MSH-1/2, escapes, repetitions, charsets (MSH-18).

Why hand-written: hl7apy 1.3.5 needs ~29 ms to parse a 2.5 KB DFT^P03 (its per-element object model
does ~37,000 dynamic look-ups per message), python-hl7 ~1.2 ms, while splitting to sub-components
costs ~0.13 ms (../shared/docs/libraries.md). Intake must store and ACK at thousands of messages per
second, so fields are extracted here lazily, on demand; hl7apy stays for building and validating
messages where its cost is paid once. Every failure is a ``DecodeError`` naming segment and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from router.domain.errors import DecodeError, MappingError

# MSH-18 character set names (HL7 table 0211) -> Python codecs.
CHARSETS = {
    "": "utf-8", "ASCII": "ascii", "8859/1": "latin-1", "8859/15": "iso8859-15", "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8", "UTF-8": "utf-8", "WINDOWS-1252": "cp1252", "CP1252": "cp1252",
}
MEDIA_TYPE = "application/hl7-v2"  # ER7 (pipe-delimited) HL7 v2, as MLLP-less transports label it
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")


@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


def decode_bytes(raw: bytes) -> str:
    """Bytes -> text honouring MSH-18; undeclared non-UTF-8 text is read as cp1252, as EMRs send it."""
    raw = raw.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n\t ")
    if not raw.startswith(b"MSH") or len(raw) < 8:
        raise DecodeError("not an HL7 v2 message: it must start with MSH", location="MSH")
    first = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    fields = first.split(first[3:4])
    declared = fields[17].split(first[4:5], 1)[0].decode("ascii", "replace").strip().upper() if len(fields) > 17 else ""
    codec = CHARSETS.get(declared)
    if codec is None:
        raise DecodeError(f"unsupported character set {declared!r}", location="MSH-18")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        if declared:
            raise DecodeError(f"bytes are not valid {declared}", location="MSH-18") from None
        return raw.decode("cp1252", errors="replace")


class Segment:
    """One segment; ``field(n)`` uses HL7 numbering (MSH-1 is the field separator itself)."""

    __slots__ = ("fields", "name", "position", "seps")

    def __init__(self, fields: list[str], position: int, seps: Separators) -> None:
        self.name = fields[0]
        self.fields = fields
        self.position = position
        self.seps = seps

    def loc(self, n: int | None = None) -> str:
        return f"{self.name}[{self.position}]" + (f"-{n}" if n is not None else "")

    def raw(self, n: int) -> str:
        if self.name == "MSH":
            if n == 1:
                return self.seps.field
            n -= 1
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[str]:
        value = self.raw(n)
        if self.name == "MSH" and n == 2:
            return [value]
        return value.split(self.seps.repetition) if value else []

    def get(self, n: int, component: int = 1, subcomponent: int = 1, repetition: int = 1) -> str:
        """Unescaped value of ``SEG-n.component.subcomponent`` in the given repetition ('' if absent)."""
        reps = self.repetitions(n)
        if len(reps) < repetition:
            return ""
        comps = reps[repetition - 1].split(self.seps.component)
        if len(comps) < component:
            return ""
        subs = comps[component - 1].split(self.seps.subcomponent)
        return unescape(subs[subcomponent - 1], self.seps) if len(subs) >= subcomponent else ""

    def require(self, n: int, what: str, component: int = 1) -> str:
        value = self.get(n, component).strip()
        if not value:
            raise MappingError(f"{what} missing", location=self.loc(n))
        return value


class Message:
    def __init__(self, segments: list[Segment], seps: Separators) -> None:
        if not segments or segments[0].name != "MSH":
            raise DecodeError("message does not start with MSH", location="MSH")
        self.segments = segments
        self.seps = seps
        self.msh = segments[0]

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def one(self, name: str) -> Segment:
        seg = self.first(name)
        if seg is None:
            raise MappingError(f"required segment {name} missing", location=name)
        return seg

    @property
    def type(self) -> tuple[str, str]:
        """(MSH-9.1 message code, MSH-9.2 trigger event), e.g. ('DFT', 'P03')."""
        return self.msh.get(9, 1).upper(), self.msh.get(9, 2).upper()

    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    @property
    def sending_facility(self) -> str:
        return self.msh.get(4) or self.msh.get(3)


def parse(data: bytes | str) -> Message:
    """Parse one ER7 message; segments may end with CR, LF or CRLF."""
    text = decode_bytes(data) if isinstance(data, bytes) else data.removeprefix("\ufeff").lstrip("\r\n\t ")
    if not text.startswith("MSH") or len(text) < 8:
        raise DecodeError("not an HL7 v2 message: it must start with MSH", location="MSH")
    field_sep = text[3]
    end = text.find(field_sep, 4)
    encoding = text[4:end] if end != -1 else ""
    # MSH-2 holds 4 encoding characters (a 5th, truncation, exists since v2.7 and is not needed).
    chars = field_sep + encoding[:4]
    if len(encoding) not in (4, 5) or len(set(chars)) != 5 or any(c.isalnum() or c in "\r\n " for c in chars):
        raise DecodeError(f"invalid separators {text[3:9]!r}", location="MSH-2")
    seps = Separators(field_sep, *encoding[:4])
    segments: list[Segment] = []
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        if not line.strip():
            continue
        fields = line.split(seps.field)
        position = len(segments) + 1
        if not _SEGMENT_ID.match(fields[0]):
            raise DecodeError(f"invalid segment id {fields[0][:8]!r}", location=f"segment {position}")
        if "\x00" in line:  # no HL7 data type admits it, and PostgreSQL text cannot keep it
            n = next(n for n, f in enumerate(fields) if "\x00" in f)
            raise DecodeError("a NUL character (0x00) in the field",
                              location=f"{fields[0]}-{n + 1 if fields[0] == 'MSH' else n}")
        segments.append(Segment(fields, position, seps))
    return Message(segments, seps)


def parse_header(data: bytes | str) -> Segment:
    """Only MSH, cheaply: what the message store and the ACK need, before (or without) a full parse."""
    text = decode_bytes(data) if isinstance(data, bytes) else data.removeprefix("\ufeff").lstrip("\r\n\t ")
    first = text.split("\r", 1)[0].split("\n", 1)[0]
    return parse(first).msh


def codec_of(msh: Segment) -> str:
    """The Python codec for the message's MSH-18 (UTF-8 when none is declared or it is unknown)."""
    return CHARSETS.get(msh.get(18).strip().upper(), "utf-8")


def canonical(data: bytes) -> bytes:
    """The form two copies of one message share: BOM dropped, segments ended by CR, MSH-7 (time of
    sending, which some EMRs restamp on a resend) blanked. Undecodable bytes are returned as they are."""
    try:
        text = decode_bytes(data)
    except DecodeError:
        return data
    lines = [line for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if line.strip()]
    fields = lines[0].split(lines[0][3])
    if len(fields) > 6:
        fields[6] = ""
    return "\r".join([lines[0][3].join(fields), *lines[1:]]).encode("utf-8", errors="replace")


def is_single_message(data: bytes) -> bool:
    """One HL7 v2 message (MSH first, no second MSH, no FHS/BHS batch envelope), judged on the bytes alone
    without decoding: a segment starts a line, so a second message shows as a line-initial ``MSH``."""
    body = data.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
    return body.startswith(b"MSH") and b"\rMSH" not in body and b"\nMSH" not in body


def split_messages(text: str) -> list[str]:
    """Split a file holding several messages (optionally in FHS/BHS batch envelopes) at each MSH."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\r").replace("\n", "\r")
    messages: list[list[str]] = []
    for line in text.split("\r"):
        if line.startswith("MSH"):
            messages.append([line])
        elif line[:3] in ("FHS", "BHS", "BTS", "FTS") or not line.strip():
            continue
        elif messages:
            messages[-1].append(line)
        else:
            raise DecodeError("content before the first MSH segment", location=f"line 1 ({line[:3]!r})")
    return ["\r".join(m) + "\r" for m in messages]


_ESCAPES = {"F": "field", "S": "component", "T": "subcomponent", "R": "repetition", "E": "escape"}


def unescape(value: str, seps: Separators) -> str:
    esc = seps.escape
    if esc not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        end = value.find(esc, i + 1) if ch == esc else -1
        if end == -1:
            out.append(ch)
            i += 1
            continue
        code = value[i + 1:end]
        if code in _ESCAPES:
            out.append(getattr(seps, _ESCAPES[code]))
        elif code.startswith("X") and len(code) % 2 == 1:
            try:
                out.append(bytes.fromhex(code[1:]).decode("latin-1"))
            except ValueError:
                out.append(value[i:end + 1])
        elif code == ".br":
            out.append("\n")
        elif code not in ("H", "N"):  # highlighting on/off carries no data
            out.append(value[i:end + 1])
        i = end + 1
    return "".join(out)


def parse_date(value: str, location: str) -> date:
    """HL7 DT/DTM/TS (YYYY[MM[DD[...]]]) -> date of its first eight digits."""
    digits = value.strip()[:8]
    try:
        if len(digits) != 8 or not digits.isdigit():
            raise ValueError
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise MappingError(f"{value!r} is not a date (YYYYMMDD)", location=location) from None


def escape(value: str, seps: Separators = Separators()) -> str:
    """Escape delimiter characters in a data value (the inverse of ``unescape``)."""
    e = seps.escape
    out = value.replace(e, f"{e}E{e}")
    for attr, code in (("field", "F"), ("component", "S"), ("subcomponent", "T"), ("repetition", "R")):
        out = out.replace(getattr(seps, attr), f"{e}{code}{e}")
    return out


def segment(name: str, fields: dict[int, str]) -> str:
    """Encode a non-MSH segment with ``fields`` at their HL7 positions; values are already ER7 text."""
    values = [""] * max(fields, default=0)
    for n, value in fields.items():
        values[n - 1] = value
    return "|".join([name, *values])
