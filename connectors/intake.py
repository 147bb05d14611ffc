"""Intake pipeline shared by every channel (files, MLLP, HTTP, AMQP): detect, split, decode, dispatch.

Framing and transport stay in the channel; this module turns one payload into bus commands and a
per-message result that the channel reports back (ACK, HTTP status, CLI summary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from connectors.fhir_intake import EntryStatus, receive_fhir
from connectors.hl7_intake import Hl7Intake
from connectors.metrics import ACK_LATENCY
from connectors.remittance_intake import receive_x12
from mappings.detect import Format, detect_format
from mappings.hl7v2 import er7
from router.adapters.message_store import MessageStore
from router.bus import MessageBus
from router.domain.errors import DecodeError, UnsupportedMessage


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class MessageResult:
    index: int
    control_id: str
    status: Status
    reason: str | None = None
    location: str | None = None


@dataclass
class FileReport:
    file: str
    format: Format
    results: list[MessageResult] = field(default_factory=list)
    ack: str | None = None  # the 999 answering an X12 file

    def count(self, *statuses: Status) -> int:
        return sum(r.status in statuses for r in self.results)

    @property
    def rejected(self) -> int:
        return self.count(Status.REJECTED)

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file, "format": self.format.value, "messages": len(self.results),
            "accepted": self.count(Status.ACCEPTED, Status.DUPLICATE), "rejected": self.rejected,
            "duplicates": self.count(Status.DUPLICATE),
            "errors": [{"message": r.index, "control_id": r.control_id, "location": r.location, "reason": r.reason}
                       for r in self.results if r.status is Status.REJECTED],
        }


class Intake:
    def __init__(self, bus: MessageBus, store: MessageStore | None = None) -> None:
        self.bus = bus
        self.store = store
        self.hl7 = Hl7Intake(bus, store)

    def receive_hl7(self, raw: bytes | str, index: int = 1, channel: str = "file", peer: str = "") -> MessageResult:
        """Store one HL7 v2 message raw, then decode and dispatch it; permanent errors become a rejection."""
        outcome = self.hl7.receive(raw, channel, peer)
        return MessageResult(index, outcome.control_id, Status(outcome.status), outcome.reason, outcome.location)

    def receive_mllp(self, payload: bytes, peer: str) -> bytes | None:
        """The ACK (unframed) for one MLLP payload, sent only once the payload is stored; None: no ACK (NE)."""
        with ACK_LATENCY.labels("mllp").time():
            return self.hl7.receive_mllp(payload, peer)

    def receive_fhir(self, raw: bytes) -> list[MessageResult]:
        """Decode one FHIR resource or Bundle, dispatch it, and report one result per Bundle entry."""
        receipt = receive_fhir(self.bus, raw)
        if receipt.error is not None:
            where = f"Bundle.entry[{receipt.error_entry}]: " if receipt.error_entry is not None else ""
            return [MessageResult(1, "", Status.REJECTED, receipt.error.reason, where + (receipt.error.location or ""))]
        status = {EntryStatus.DUPLICATE: Status.DUPLICATE, EntryStatus.REJECTED: Status.REJECTED}
        return [MessageResult(e.index + 1, e.full_url or e.resource_type, status.get(e.status, Status.ACCEPTED),
                              e.error.reason if e.error else None, e.error.location if e.error else None)
                for e in receipt.entries]

    def ingest(self, data: bytes, name: str,
               progress: Callable[[int, int], None] | None = None) -> FileReport:
        """Process every message in one file's bytes, in order."""
        fmt = detect_format(data)
        report = FileReport(name, fmt)
        if fmt is Format.HL7V2:
            try:
                messages = er7.split_messages(er7.decode_bytes(data))
            except DecodeError as exc:
                report.results.append(MessageResult(1, "", Status.REJECTED, exc.reason, exc.location))
                return report
            for i, message in enumerate(messages, start=1):
                report.results.append(self.receive_hl7(message, i))
                if progress:
                    progress(i, len(messages))
            return report
        if fmt is Format.FHIR:
            report.results += self.receive_fhir(data)
            return report
        if fmt is Format.X12:
            x12 = receive_x12(self.bus, data)
            report.results += [MessageResult(i, ctl, Status(st), reason, loc)
                               for i, ctl, st, reason, loc in x12.results]
            report.ack = x12.ack
            return report
        error = (UnsupportedMessage(f"{fmt.value} intake is not available in this version", location="line 1")
                 if fmt is not Format.UNKNOWN else
                 DecodeError("unrecognised content: expected HL7 v2 (MSH), FHIR JSON or X12 (ISA)",
                             location="line 1"))
        report.results.append(MessageResult(1, "", Status.REJECTED, error.reason, error.location))
        return report
