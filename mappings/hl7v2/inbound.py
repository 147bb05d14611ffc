"""Inbound HL7 v2: route a parsed message to the decoder for its MSH-9 type."""

from __future__ import annotations

from collections.abc import Callable

from mappings.hl7v2.dft import decode_dft
from mappings.hl7v2.er7 import Message
from router.domain.commands import Command
from router.domain.errors import UnsupportedMessage

DECODERS: dict[tuple[str, str], Callable[[Message], Command]] = {
    ("DFT", "P03"): decode_dft,
}


def to_commands(msg: Message) -> list[Command]:
    code, event = msg.type
    decoder = DECODERS.get((code, event))
    if decoder is None:
        supported = ", ".join(f"{c}^{e}" for c, e in DECODERS)
        raise UnsupportedMessage(f"message type {code}^{event} is not supported (accepted: {supported})",
                                 location="MSH-9")
    return [decoder(msg)]
