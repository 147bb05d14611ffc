"""Segment readers shared by every HL7 v2 decoder (mappings layer): MSH-4/10 source id, PID patient,
PID-18 account, GT1-3 guarantor and the IN1/IN2 coverage group.

Member id: IN1-36 (policy number); real feeds often leave it empty and send it in the IN2 that follows
the IN1 instead, so the fallback order is IN2-61 (patient member number), IN2-6 (Medicare HIC number),
IN2-8 (Medicaid case number). An IN1 naming self-pay (IN1-2 plan or IN1-4 name ``SELF PAY``, as some
EMRs send) is not insurance and is skipped, so the account stays self-pay.
"""

from __future__ import annotations

from mappings.hl7v2.er7 import Message, Segment, parse_date
from router.domain.errors import MappingError
from router.domain.model import Coverage, Patient

_IN2_MEMBER_FIELDS = (61, 6, 8)
_SELF_PAY = {"SELFPAY", "SELF PAY", "SELF-PAY"}


def source_id(msg: Message) -> str:
    """``hl7:{MSH-4}:{MSH-10}``: a resend of the same message is recognised by this key."""
    control_id = msg.msh.require(10, "message control id (MSH-10)")
    return f"hl7:{msg.sending_facility}:{control_id}"


def mrn_of(pid: Segment) -> str:
    """PID-3: the repetition whose CX-5 identifier type is MR, else the first one."""
    for n in range(1, len(pid.repetitions(3)) + 1):
        if pid.get(3, 5, repetition=n).upper() == "MR" and pid.get(3, 1, repetition=n).strip():
            return pid.get(3, 1, repetition=n).strip()
    return pid.require(3, "patient identifier (PID-3)")


def patient_of(pid: Segment) -> Patient:
    """PID-3 MRN, PID-5 name (family^given), PID-7 birth date."""
    birth = pid.get(7)
    return Patient(mrn=mrn_of(pid), family=pid.get(5, 1), given=pid.get(5, 2),
                   birth_date=parse_date(birth, pid.loc(7)) if birth else None)


def account_of(pid: Segment) -> str:
    return pid.require(18, "patient account number (PID-18)")


def guarantor_of(msg: Message) -> str:
    """GT1-3 of the first GT1 as ``FAMILY, GIVEN`` (GT1-1 set id 1 is the primary guarantor)."""
    gt1 = msg.first("GT1")
    if gt1 is None:
        return ""
    family, given = gt1.get(3, 1).strip(), gt1.get(3, 2).strip()
    return ", ".join(part for part in (family, given) if part)


def coverages_of(msg: Message) -> tuple[Coverage, ...]:
    """One ``Coverage`` per IN1 (sequence IN1-1, plan IN1-2, payer id IN1-3, name IN1-4, group IN1-8).

    Messages that repeat the insurance group (BAR^P01 per visit, DFT^P11 per transaction) list the same
    policy more than once: identical repeats collapse, a sequence repeated with other data is an error.
    """
    found: dict[int, Coverage] = {}
    in2_after = _in2_by_in1(msg)
    for in1 in msg.all("IN1"):
        sequence = in1.get(1).strip() or str(len(found) + 1)
        if not sequence.isdigit():
            raise MappingError(f"set id {sequence!r} is not a number", location=in1.loc(1))
        if {in1.get(2).strip().upper(), in1.get(4).strip().upper()} & _SELF_PAY:
            continue
        member = in1.get(36).strip()
        in2 = in2_after.get(in1.position)
        if not member and in2 is not None:
            member = next((v for v in (in2.get(n).strip() for n in _IN2_MEMBER_FIELDS) if v), "")
        coverage = Coverage(sequence=int(sequence), payer_id=in1.require(3, "insurance company id (IN1-3)"),
                            payer_name=in1.get(4).strip(), member_id=member, group_number=in1.get(8).strip(),
                            plan=in1.get(2).strip())
        earlier = found.setdefault(coverage.sequence, coverage)
        if earlier != coverage:
            raise MappingError(f"coverage sequence {coverage.sequence} is repeated with different insurance data",
                               location=in1.loc(1))
    return tuple(found.values())


def _in2_by_in1(msg: Message) -> dict[int, Segment]:
    """The IN2 that belongs to each IN1 (by the IN1's position): the next IN2 before any other IN1."""
    pairs: dict[int, Segment] = {}
    current: Segment | None = None
    for seg in msg.segments:
        if seg.name == "IN1":
            current = seg
        elif seg.name == "IN2" and current is not None:
            pairs.setdefault(current.position, seg)
            current = None
        elif seg.name not in ("IN3", "ROL"):
            current = None
    return pairs
