"""FHIR intake (connectors): decode a payload with mappings.fhir, dispatch its commands in dependency
order on the bus, and report one outcome per entry (HTTP routes and the file intake share this)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mappings.fhir.inbound import decode
from mappings.fhir.outcome import error_outcome, info_outcome, response_bundle
from router.bus import MessageBus
from router.domain.errors import DecodeError, PermanentError


class EntryStatus(StrEnum):
    POSTED = "posted"
    DUPLICATE = "duplicate"
    CONTEXT = "context"  # decoded, nothing to post (e.g. Encounter, Organization): said, never dropped
    REJECTED = "rejected"
    NOT_PROCESSED = "not-processed"  # a transaction stopped before this entry


@dataclass(frozen=True)
class EntryOutcome:
    index: int
    resource_type: str
    full_url: str
    status: EntryStatus
    message: str = ""
    error: PermanentError | None = None


@dataclass(frozen=True)
class FhirReceipt:
    kind: str  # transaction | batch | message | resource ('' when undecodable)
    entries: tuple[EntryOutcome, ...] = ()
    error: PermanentError | None = None  # the payload as a whole was rejected
    error_entry: int | None = None  # Bundle.entry index the whole-payload error is about


def receive_fhir(bus: MessageBus, raw: bytes | str, expected_type: str | None = None) -> FhirReceipt:
    try:
        decoded = decode(raw, expected_type)
    except PermanentError as exc:
        return FhirReceipt("", error=exc)
    atomic = decoded.kind == "transaction"
    failed = next((e for e in decoded.entries if e.error), None)
    if atomic and failed is not None and failed.error is not None:  # validate all before posting any
        return FhirReceipt(decoded.kind, tuple(
            EntryOutcome(e.index, e.resource_type, e.full_url,
                         EntryStatus.REJECTED if e.error else EntryStatus.NOT_PROCESSED, error=e.error)
            for e in decoded.entries), failed.error, failed.index)
    outcomes: dict[int, EntryOutcome] = {}
    stop: tuple[int, PermanentError] | None = None
    for entry in decoded.dispatch_order():
        head = (entry.index, entry.resource_type, entry.full_url)
        if stop is not None:
            outcomes[entry.index] = EntryOutcome(*head, EntryStatus.NOT_PROCESSED,
                                                 f"not processed: the transaction stopped at entry {stop[0]}")
        elif entry.error is not None:
            outcomes[entry.index] = EntryOutcome(*head, EntryStatus.REJECTED, entry.error.reason, entry.error)
        elif not entry.commands:
            outcomes[entry.index] = EntryOutcome(*head, EntryStatus.CONTEXT, entry.note)
        else:
            try:
                duplicate = all([bus.handle(c).duplicate for c in entry.commands])
            except PermanentError as exc:
                outcomes[entry.index] = EntryOutcome(*head, EntryStatus.REJECTED, exc.reason, exc)
                if atomic:  # entries already posted stay posted; each is idempotent, so a resend completes it
                    stop = (entry.index, exc)
                continue
            status = EntryStatus.DUPLICATE if duplicate else EntryStatus.POSTED
            note = f"; {entry.note}" if entry.note else ""  # e.g. why a remittance is quarantined
            outcomes[entry.index] = EntryOutcome(*head, status, _summary(entry.commands, duplicate) + note)
    if stop is not None:
        return FhirReceipt(decoded.kind, tuple(outcomes[i] for i in sorted(outcomes)), stop[1], stop[0])
    return FhirReceipt(decoded.kind, tuple(outcomes[i] for i in sorted(outcomes)))


def _summary(commands: tuple[object, ...], duplicate: bool) -> str:
    names = ", ".join(type(c).__name__ for c in commands)
    return f"already processed ({names}): nothing new posted" if duplicate else f"processed: {names}"



_STATUS_LINE = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 422: "422 Unprocessable Entity"}


def reply_of(receipt: FhirReceipt) -> tuple[int, dict[str, Any]]:
    """The HTTP status and FHIR body that answer a receipt: an OperationOutcome for a rejected payload or one
    resource, a transaction/batch-response Bundle for a Bundle. The REST API and AMQP replies say the same."""
    if receipt.error is not None:
        prefix = f"Bundle.entry[{receipt.error_entry}].resource." if receipt.error_entry is not None else ""
        return 400 if isinstance(receipt.error, DecodeError) else 422, error_outcome(receipt.error, prefix)
    if receipt.kind == "resource":
        entry = receipt.entries[0]
        return _status(entry), _entry_outcome(entry)
    entries = [(_STATUS_LINE[_status(e)], _entry_outcome(e)) for e in receipt.entries]
    return 200, response_bundle(receipt.kind, entries)


def _status(entry: EntryOutcome) -> int:
    if entry.status is EntryStatus.POSTED:
        return 201
    if entry.status in (EntryStatus.DUPLICATE, EntryStatus.CONTEXT):
        return 200
    return 400 if isinstance(entry.error, DecodeError) else 422


def _entry_outcome(entry: EntryOutcome) -> dict[str, Any]:
    if entry.error is not None:
        return error_outcome(entry.error)
    return info_outcome(entry.message, "duplicate" if entry.status is EntryStatus.DUPLICATE else "informational")
