"""SIU^S12/S13/S14/S15/S26 -> ``RecordAppointment`` (mappings layer).

Id: SCH-2 filler appointment id (the scheduling system's, stable across S12..S26), else SCH-1 placer id,
prefixed with MSH-4 so two facilities never share an appointment. Start: TQ1-7 (v2.5+), else SCH-11.4
(TQ start, v2.3/2.4), else the first AIS-4. Duration: SCH-9 in SCH-10 units. Status: the trigger event
(S12 booked, S13/S14 rescheduled, S15 cancelled, S26 noshow), overridden by SCH-25 (table 0278) when that
says Cancelled/Deleted/Noshow. Reason: SCH-7 text; provider: AIP-3 of the first AIP, else SCH-16.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from mappings.hl7v2.er7 import Message, Segment
from mappings.hl7v2.segments import account_of, patient_of, source_id
from router.domain.commands import RecordAppointment
from router.domain.errors import MappingError

_BY_EVENT = {"S12": "booked", "S13": "rescheduled", "S14": "rescheduled", "S15": "cancelled", "S26": "noshow"}
_BY_FILLER_STATUS = {"CANCELLED": "cancelled", "DELETED": "cancelled", "DC": "cancelled", "NOSHOW": "noshow"}
_MINUTES_PER_UNIT = {"MIN": Decimal(1), "M": Decimal(1), "MINUTES": Decimal(1), "H": Decimal(60), "HR": Decimal(60),
                     "HOURS": Decimal(60), "S": Decimal(1) / 60, "SEC": Decimal(1) / 60, "D": Decimal(1440)}


def decode_appointment(msg: Message) -> RecordAppointment:
    sid = source_id(msg)
    sch = msg.one("SCH")
    pid = msg.one("PID")
    external = sch.get(2).strip() or sch.get(1).strip()
    if not external:
        raise MappingError("appointment id missing (SCH-2 filler or SCH-1 placer)", location=sch.loc(2))
    status = _BY_EVENT[msg.type[1]]
    status = _BY_FILLER_STATUS.get(sch.get(25).strip().upper().replace(" ", ""), status)
    aip = msg.first("AIP")
    provider = (aip.get(3) if aip else "").strip() or sch.get(16).strip()
    return RecordAppointment(
        source_id=sid, appointment_id=f"{msg.sending_facility}:{external}", account=account_of(pid),
        patient=patient_of(pid), start=_start(msg, sch), status=status, duration_minutes=_duration(sch),
        reason=(sch.get(7, 2) or sch.get(7, 1)).strip(), provider=provider)


def _start(msg: Message, sch: Segment) -> datetime | None:
    tq1, ais = msg.first("TQ1"), msg.first("AIS")
    for seg, n, component in ((tq1, 7, 1), (sch, 11, 4), (ais, 4, 1)):
        value = seg.get(n, component).strip() if seg is not None else ""
        if value:
            return parse_timestamp(value, seg.loc(n) if seg is not None else "SCH")
    return None


def _duration(sch: Segment) -> int | None:
    amount, unit = sch.get(9).strip(), (sch.get(10, 1) or sch.get(10, 2)).strip().upper()
    if not amount:
        return None
    try:
        value = Decimal(amount)
        if not value.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise MappingError(f"{amount!r} is not a number", location=sch.loc(9)) from None
    factor = _MINUTES_PER_UNIT.get(unit or "MIN")
    return None if factor is None or not 0 <= value < 10**7 else int((value * factor).to_integral_value())


def parse_timestamp(value: str, location: str) -> datetime:
    """HL7 DTM ``YYYYMMDD[HH[MM[SS[.S+]]]][+/-ZZZZ]`` -> aware datetime (UTC when no offset is sent)."""
    text, tz = value, UTC
    for sign in ("+", "-"):
        if sign in text[8:]:
            text, offset = text[: text.index(sign, 8)], text[text.index(sign, 8) + 1:]
            if len(offset) != 4 or not offset.isdigit():
                raise MappingError(f"{value!r} has an invalid time zone offset", location=location)
            delta = timedelta(hours=int(offset[:2]), minutes=int(offset[2:]))
            tz = timezone(delta if sign == "+" else -delta)
            break
    digits = text.split(".", 1)[0]
    try:
        if len(digits) < 8 or len(digits) % 2 or not digits.isdigit():
            raise ValueError
        parts = [int(digits[:4])] + [int(digits[i:i + 2]) for i in range(4, len(digits), 2)] + [0, 0, 0]
        if len(parts) > 9:
            raise ValueError
        year, month, day, hour, minute, second = parts[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        raise MappingError(f"{value!r} is not a timestamp (YYYYMMDD[HHMM[SS]])", location=location) from None
