"""Reconciled results -> HL7 v2.5 DFT^P03 / DFT^P11 for the EMR (mappings, pure).

One message per account and claim (visit) of an event: MSH, EVN, PID (PID-3 MRN, PID-18 account), PV1
(PV1-19 visit number = claim key; PV1-46 the account's total balance and PV1-47 its charges right after
these postings, when the destination wants balances), then one FT1 per ledger entry the event posted:

| FT1 | value |
|-----|-------|
| 2   | transaction id: stable per ledger entry (``RH`` + 18 hex of its idempotency key); the EMR dedupes on it |
| 4 / 5 | effective date of the entry (BPR16 for remittances) / posting date of the message |
| 6   | type (table 0017): PY payments, AJ adjustments and transfers; per-kind codes are configurable |
| 7 / 8 | code: ``{CAS group}-{CARC}^{CARC text}^CARC`` for adjustments and transfers, else the kind; text |
| 11  | amount ``{amount}&USD``: the entry's signed effect on its responsibility's balance (see below) |
| 14  | insurance plan (payer id) on payer-side entries; empty on patient-side ones, as DFT intake reads it |
| 25  | procedure code of the charge line the entry settles |
| 30  | payment reference: the check/EFT trace (TRN02) |
| 31  | transaction reference: FT1-2 of the original charge (a reversal: FT1-2 of the entry it reverses) |

A remittance's remark codes (RARCs) follow the FT1 they explain as NTE segments (the FINANCIAL group's
NTE): ``NTE|n|O|{RARC} {description}|RE^Remark^HL70364``. A line's (LQ*HE) follow the first FT1 posted for
that line; the claim's (MIA/MOA) follow the claim's first FT1.

Sign convention (same as ``rcmhub accounts show``): negative lowers a balance (payments, adjustments,
the leaving leg of a transfer), positive raises it (the arriving leg, refunds). A transfer to the patient
is therefore two FT1 rows - insurance leg (FT1-14 filled) negative, patient leg positive - summing to zero,
and the FT1-11 of a message sum to the ledger's postings for that account and visit exactly.
Written with the project's ER7 encoder (``er7.segment``/``escape``): hl7apy would cost ~30 ms per message
on the delivery hot path for no gain in a message whose every field is set here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mappings.hl7v2.er7 import escape, segment
from router.domain.codes import CARC, RARC, describe
from router.domain.ledger import CHARGE_KINDS, EntryKind, Responsibility
from router.domain.money import fmt
from router.domain.results import AccountResult, PostedEntry, Result, transaction_id

DEFAULT_TYPES: dict[EntryKind, str] = {
    EntryKind.INSURANCE_PAYMENT: "PY",
    EntryKind.PATIENT_PAYMENT: "PY",
    EntryKind.CONTRACTUAL_ADJUSTMENT: "AJ",
    EntryKind.PAYER_ADJUSTMENT: "AJ",
    EntryKind.PATIENT_ADJUSTMENT: "AJ",
    EntryKind.WRITE_OFF: "AJ",
    EntryKind.TRANSFER_TO_PATIENT: "AJ",
    EntryKind.TRANSFER_TO_INSURANCE: "AJ",
    EntryKind.REFUND: "PY",
}
LABELS: dict[EntryKind, str] = {
    EntryKind.INSURANCE_PAYMENT: "insurance payment", EntryKind.PATIENT_PAYMENT: "patient payment",
    EntryKind.CONTRACTUAL_ADJUSTMENT: "contractual adjustment", EntryKind.PAYER_ADJUSTMENT: "payer adjustment",
    EntryKind.PATIENT_ADJUSTMENT: "patient adjustment", EntryKind.WRITE_OFF: "write-off",
    EntryKind.TRANSFER_TO_PATIENT: "transfer to patient responsibility",
    EntryKind.TRANSFER_TO_INSURANCE: "transfer to insurance responsibility", EntryKind.REFUND: "refund",
}


@dataclass(frozen=True)
class DftOptions:
    trigger: str = "P03"  # or P11
    sending_application: str = "RCMHUB"
    sending_facility: str = "RCMHUB"
    receiving_application: str = ""
    receiving_facility: str = ""
    types: Mapping[EntryKind, str] = field(default_factory=lambda: dict(DEFAULT_TYPES))
    balances: bool = True  # PV1-46/47


@dataclass(frozen=True)
class OutboundDft:
    item: str  # stable per event, account and visit: part of the delivery's dedupe key
    control_id: str  # MSH-10, stable across retries
    account: str
    claim: str | None
    entries: tuple[PostedEntry, ...]
    text: str  # ER7, segments ended by CR
    summary: str  # no PHI: message type and FT1 count


def dft_messages(result: Result, options: DftOptions, now: datetime) -> list[OutboundDft]:
    """Every DFT the event's postings need (charges are the EMR's own and are not echoed back)."""
    notes = _remarks_by_entry(result)
    out: list[OutboundDft] = []
    for account in result.accounts:
        by_claim: dict[str | None, list[PostedEntry]] = {}
        for entry in account.entries:
            if entry.effective_kind not in CHARGE_KINDS:
                by_claim.setdefault(entry.claim, []).append(entry)
        for claim, entries in by_claim.items():
            item = f"{result.source_id}|{account.account}|{claim or ''}"
            control = "RH" + hashlib.sha256(f"{item}|{options.trigger}".encode()).hexdigest()[:18].upper()
            text = build_dft(account, claim, entries, options, control, now, notes)
            out.append(OutboundDft(item, control, account.account, claim, tuple(entries), text,
                                   f"DFT^{options.trigger} {len(entries)} FT1"))
    return out


def _remarks_by_entry(result: Result) -> dict[str, tuple[str, ...]]:
    """Each posted entry's RARCs (``RemittanceResult.remarks_of``); a claim's own go to its first entry."""
    notes: dict[str, tuple[str, ...]] = {}
    if result.remittance is None:
        return notes
    for claim in result.remittance.claims:
        for entry, codes in result.remittance.remarks_of(claim):
            anchor = entry or next(iter(claim.entries), None)
            if anchor is not None:
                notes[anchor.key] = notes.get(anchor.key, ()) + codes
    return notes


def build_dft(account: AccountResult, claim: str | None, entries: list[PostedEntry], options: DftOptions,
              control_id: str, now: datetime, notes: Mapping[str, tuple[str, ...]] | None = None) -> str:
    stamp = now.strftime("%Y%m%d%H%M%S")
    msh = "|".join(["MSH", "^~\\&", escape(options.sending_application), escape(options.sending_facility),
                    escape(options.receiving_application), escape(options.receiving_facility), stamp, "",
                    f"DFT^{options.trigger}^DFT_{options.trigger}", control_id, "P", "2.5"])
    pv1 = {1: "1", 2: "O", 19: escape(claim or "")}
    if options.balances:
        pv1 |= {46: fmt(account.balances.total), 47: fmt(account.balances.charges)}
    segments = [msh, segment("EVN", {1: options.trigger, 2: stamp}),
                segment("PID", {1: "1", 3: escape(account.mrn or account.account), 18: escape(account.account)}),
                segment("PV1", pv1)]
    for n, e in enumerate(entries, start=1):
        segments.append(_ft1(n, e, options, now))
        segments += [segment("NTE", {1: str(k), 2: "O", 3: escape(f"{code} {describe(RARC, code)}"),
                                     4: "RE^Remark^HL70364"})
                     for k, code in enumerate((notes or {}).get(e.key, ()), start=1)]
    return "\r".join(segments) + "\r"


def _ft1(n: int, e: PostedEntry, options: DftOptions, now: datetime) -> str:
    kind = e.effective_kind
    if e.group_code and e.reason_code:
        code = f"{e.group_code}-{e.reason_code}^{escape(describe(CARC, e.reason_code))}^CARC"
    else:
        code = kind.value.upper()
    label = LABELS.get(kind, kind.value) + (" (reversal)" if e.kind is EntryKind.REVERSAL else "")
    reference = transaction_id(e.reverses) if e.reverses else (transaction_id(e.charge_key) if e.charge_key else "")
    when = (e.effective_date or now.date()).strftime("%Y%m%d")
    payer_side = e.responsibility is Responsibility.INSURANCE and bool(e.payer)
    return segment("FT1", {
        1: str(n), 2: e.transaction_id, 4: when, 5: now.strftime("%Y%m%d"), 6: options.types.get(kind, "AJ"),
        7: code, 8: escape(label), 10: "1", 11: f"{fmt(e.amount)}&USD", 14: escape(e.payer or "") if payer_side else "",
        25: escape(e.procedure), 30: escape(e.trace_number or ""), 31: reference})
