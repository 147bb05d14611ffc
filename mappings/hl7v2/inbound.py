"""Inbound HL7 v2: route a parsed message to the decoder for its MSH-9 type (message code, trigger event).

Anything not listed is rejected with ``UnsupportedMessage`` naming MSH-9, never dropped. DFT^P11 (v2.5+)
maps like P03: same FT1 fields, only grouped per transaction. Not taken: ADT^A40 (merge) and A60,
BAR^P02 (purge) and P12 (procedures), which change no account, coverage, charge or appointment yet.
"""

from __future__ import annotations

from collections.abc import Callable

from mappings.hl7v2.adt import decode_registration
from mappings.hl7v2.dft import decode_dft
from mappings.hl7v2.er7 import Message, Segment
from mappings.hl7v2.siu import decode_appointment
from router.domain.commands import Command
from router.domain.errors import UnsupportedMessage

DECODERS: dict[tuple[str, str], Callable[[Message], Command]] = {
    ("DFT", "P03"): decode_dft,
    ("DFT", "P11"): decode_dft,
    **{("ADT", event): decode_registration for event in ("A01", "A03", "A04", "A08", "A28", "A31")},
    ("BAR", "P01"): decode_registration,
    ("BAR", "P05"): decode_registration,
    **{("SIU", event): decode_appointment for event in ("S12", "S13", "S14", "S15", "S26")},
}


def supported() -> str:
    return ", ".join(f"{c}^{e}" for c, e in DECODERS)


def require_supported(msh: Segment) -> None:
    """Raise ``UnsupportedMessage`` naming MSH-9 unless the hub maps this message type; MSH alone is enough
    (the MLLP store-and-forward path answers from MSH, before any full parse)."""
    code, event = msh.get(9, 1).upper(), msh.get(9, 2).upper()
    if (code, event) not in DECODERS:
        raise UnsupportedMessage(f"message type {code}^{event} is not supported (accepted: {supported()})",
                                 location="MSH-9")


def to_commands(msg: Message) -> list[Command]:
    require_supported(msg.msh)
    return [DECODERS[msg.type](msg)]
