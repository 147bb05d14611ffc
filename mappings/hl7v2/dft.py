"""DFT^P03 and DFT^P11 (post detail financial transactions) -> ``PostCharges``.

Reads PID-3 (MRN), PID-5 (name), PID-7 (birth date), PID-18 (account), PV1-19 (visit number = claim
key), IN1-1/2/3/4/8/36 (coverage) and per FT1: FT1-4 date, FT1-6 type (table 0017: CG charge,
CD credit, PY payment, CO copay, AJ adjustment), FT1-7 code, FT1-10 quantity, FT1-11 extended and
FT1-12 unit amount (CP, e.g. ``100&USD``), FT1-14 insurance plan, FT1-19 diagnoses, FT1-20 performer,
FT1-25 procedure, FT1-26 modifiers.

Claim key rule: PV1-19 when present; otherwise ``{PID-18}:{FT1-4 of the first FT1}`` (one claim per
account and date of service), so a visit without a number is still billed as one encounter.
Payments and adjustments carry the payer side when FT1-14 (insurance plan) is filled, else the patient.
DFT^P11 (v2.5+) carries the same FT1 fields in per-transaction groups, so it maps the same way.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from mappings.hl7v2.er7 import Message, Segment, parse_date
from mappings.hl7v2.segments import account_of, coverages_of, patient_of, source_id
from router.domain.commands import EmrTransaction, PostCharges
from router.domain.errors import MappingError
from router.domain.ledger import EntryKind, Responsibility
from router.domain.model import ChargeLine
from router.domain.money import exact_money, money


def decode_dft(msg: Message) -> PostCharges:
    sid = source_id(msg)
    pid = msg.one("PID")
    account = account_of(pid)
    ft1s = msg.all("FT1")
    if not ft1s:
        raise MappingError("DFT without FT1 segments", location="FT1")
    pv1 = msg.first("PV1")
    claim_key = (pv1.get(19) if pv1 else "").strip()
    if not claim_key:
        claim_key = f"{account}:{ft1s[0].require(4, 'transaction date (FT1-4)')[:8]}"
    charges: list[ChargeLine] = []
    transactions: list[EmrTransaction] = []
    for n, ft1 in enumerate(ft1s, start=1):
        kind = ft1.require(6, "transaction type (FT1-6)").upper()
        when = parse_date(ft1.require(4, "transaction date (FT1-4)"), ft1.loc(4))
        units = _decimal(ft1, 10) if ft1.get(10) else Decimal(1)
        amount = _amount(ft1, units)
        if kind == "CG" and amount >= 0:
            code = ft1.get(25) or ft1.require(7, "transaction code (FT1-7)")
            charges.append(ChargeLine(
                line_no=n, service_date=when, code=code, amount=amount, units=units,
                modifiers=tuple(m.split(msg.seps.component)[0] for m in ft1.repetitions(26) if m),
                description=ft1.get(25, 2) or ft1.get(7, 2),
                diagnoses=tuple(d.split(msg.seps.component)[0] for d in ft1.repetitions(19) if d),
                performer=ft1.get(20)))
            continue
        payer_side = bool(ft1.get(14))
        bucket = Responsibility.INSURANCE if payer_side else Responsibility.PATIENT
        if kind in ("CG", "CD"):  # a negative charge is a credit against the charge
            tx_kind, bucket = EntryKind.CHARGE_CREDIT, Responsibility.INSURANCE
        elif kind in ("PY", "CO"):
            tx_kind = EntryKind.INSURANCE_PAYMENT if payer_side else EntryKind.PATIENT_PAYMENT
        elif kind == "AJ":
            tx_kind = EntryKind.PAYER_ADJUSTMENT if payer_side else EntryKind.PATIENT_ADJUSTMENT
        else:
            raise MappingError(f"transaction type {kind!r} is not supported (CG, CD, PY, CO, AJ)",
                               location=ft1.loc(6))
        if amount < 0 and kind not in ("CG", "CD"):
            raise MappingError(f"negative {kind} amount {amount}: send a reversal instead", location=ft1.loc(11))
        transactions.append(EmrTransaction(line_no=n, kind=tx_kind, responsibility=bucket, amount=-abs(amount),
                                           transaction_date=when, code=ft1.get(7)))
    return PostCharges(source_id=sid, account=account, claim_key=claim_key, patient=patient_of(pid),
                       charges=tuple(charges), transactions=tuple(transactions), coverages=coverages_of(msg))


def _decimal(seg: Segment, n: int) -> Decimal:
    text = seg.get(n).strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise MappingError(f"{text!r} is not a number", location=seg.loc(n)) from None
    if not value.is_finite():
        raise MappingError(f"{text!r} is not a number", location=seg.loc(n))
    return value


def _amount(ft1: Segment, units: Decimal) -> Decimal:
    """FT1-11 extended amount, else FT1-12 unit amount x FT1-10 quantity (first sub-component: MO)."""
    if ft1.get(11):
        return exact_money(_decimal(ft1, 11), ft1.loc(11))
    if ft1.get(12):
        return money(_decimal(ft1, 12) * units)
    raise MappingError("transaction amount missing (FT1-11 or FT1-12)", location=ft1.loc(11))
