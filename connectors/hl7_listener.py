"""The HL7 v2 MLLP listener (connectors layer): ``MllpServer`` wired to the intake, one ACK per frame.

Embedded mode (no forwarder): each payload is stored, parsed and posted off the event loop
(``asyncio.to_thread``: blocking database work while the loop serves other connections), and the ACK
reports the full outcome. RabbitMQ mode (``forwarder``): ``Hl7Forwarder`` answers from MSH once the raw
message is stored and publisher-confirmed, and an intake worker parses and posts it; stopping the listener
drains its in-flight batches. A frame the framing layer refuses (oversize, truncated) is answered AR with
an empty MSA-2: its content was never kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.hl7_forwarder import Hl7Forwarder
from connectors.intake import Intake
from connectors.mllp import FrameError, MllpServer, MllpServerThread
from mappings.hl7v2.ack import AckCode, AckError, build_ack


class Hl7Listener:
    def __init__(self, intake: Intake, host: str = "127.0.0.1", port: int = 0, *,
                 forwarder: Hl7Forwarder | None = None, **server_options: Any) -> None:
        self.intake = intake
        self.forwarder = forwarder
        self.server = MllpServer(forwarder.handle if forwarder else self.handle, host=host, port=port,
                                 on_error=self.on_frame_error, on_stop=forwarder.close if forwarder else None,
                                 **server_options)

    async def handle(self, payload: bytes, peer: str) -> bytes | None:
        return await asyncio.to_thread(self.intake.receive_mllp, payload, peer)

    def on_frame_error(self, error: FrameError, peer: str) -> bytes:
        return build_ack(None, AckCode.AR, AckError(f"MLLP frame refused: {error.reason}", 100))

    def run_in_thread(self) -> MllpServerThread:
        return self.server.run_in_thread()
