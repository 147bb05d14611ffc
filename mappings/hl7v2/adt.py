"""ADT^A01/A03/A04/A08/A28/A31 and BAR^P01/P05 -> ``RegisterPatient`` (mappings layer).

Reads PID-3/5/7 (patient), PID-18 (account), GT1-3 (guarantor) and IN1/IN2 (coverages, see
``segments.coverages_of``). A08 and A31 are updates of the whole record: when they carry IN1 segments
the account's coverages become exactly those (``replace_coverages``); without IN1 they leave coverage
alone, because senders routinely omit insurance from demographic updates.
"""

from __future__ import annotations

from mappings.hl7v2.er7 import Message
from mappings.hl7v2.segments import account_of, coverages_of, guarantor_of, patient_of, source_id
from router.domain.commands import RegisterPatient

# Events that restate the full record rather than add to it.
_UPDATES = frozenset({("ADT", "A08"), ("ADT", "A31")})


def decode_registration(msg: Message) -> RegisterPatient:
    sid = source_id(msg)
    pid = msg.one("PID")
    coverages = coverages_of(msg)
    return RegisterPatient(
        source_id=sid, account=account_of(pid), patient=patient_of(pid), guarantor=guarantor_of(msg),
        coverages=coverages, replace_coverages=msg.type in _UPDATES and bool(msg.all("IN1")))
