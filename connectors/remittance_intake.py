"""X12 835 intake: read each transaction set, validate, hand balanced and unbalanced remittances alike to
the router (which quarantines the unbalanced), and build the 999 for every functional group received."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from mappings.x12.ack999 import build_999
from mappings.x12.balancing import check
from mappings.x12.gc_pause import gc_paused
from mappings.x12.model835 import Finding
from mappings.x12.remit835 import TransactionResult, scan_835
from mappings.x12.to_domain import to_command
from router.bus import MessageBus
from router.domain.errors import DecodeError, PermanentError


@dataclass
class X12Outcome:
    """Per transaction set: (index, control number, status, reason, location); plus the 999 text."""

    results: list[tuple[int, str, str, str | None, str | None]] = field(default_factory=list)
    ack: str | None = None


def receive_x12(bus: MessageBus, data: bytes, control: int | None = None) -> X12Outcome:
    outcome = X12Outcome()
    scanned: list[TransactionResult] = []
    balancing: dict[int, list[Finding]] = {}
    try:
        for i, result in enumerate(scan_835(data), start=1):
            scanned.append(result)
            where = f"ST {result.control_number} (segment {result.position})"
            if result.set_id != "835":
                outcome.results.append((i, result.control_number, "rejected",
                                        f"transaction set {result.set_id} is not a remittance (835)", where))
                continue
            if result.error is not None or result.remittance is None:
                err = result.error
                outcome.results.append((i, result.control_number, "rejected",
                                        err.reason if err else "unreadable", err.location if err else where))
                continue
            tx = result.remittance
            try:
                # The cyclic GC is paused while a transaction set is mapped, matched and posted: the
                # hundreds of thousands of acyclic values it builds (claims, ledger entries, rows) made
                # each full collection walk them all, ~3.5 s of a 10,000-claim 835 (issue #4 benchmark);
                # cycles made meanwhile (ORM state) are freed by the first collection after the pause.
                with gc_paused():
                    findings = balancing[result.position] = check(tx)
                    handled = bus.handle(to_command(tx, [*tx.findings, *findings]))
            except PermanentError as exc:
                outcome.results.append((i, result.control_number, "rejected", exc.reason, exc.location or where))
                continue
            outcome.results.append((i, result.control_number, "duplicate" if handled.duplicate else "accepted",
                                    None, None))
    except DecodeError as exc:
        outcome.results.append((len(outcome.results) + 1, "", "rejected", exc.reason, exc.location))
    if scanned:
        now = datetime.now(UTC)
        outcome.ack = build_999(scanned, balancing=dict(balancing.items()),
                                interchange_control=control or int(now.timestamp()) % 1_000_000_000, when=now)
    return outcome
