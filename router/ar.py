"""A/R reporting (read side): aging by payer and by patient, days in A/R, net collection rate, denial rate and
cash collected per week, per the formulas in the domain primer §5. Sums run in SQL over the ledger.

Rules, fixed so every report and test agrees:
* Age = ``as_of`` - the claim's date of service (its earliest charge entry, dated with the line's service date);
  buckets 0-30, 31-60, 61-90, 91-120, 120+ days (a future date counts as 0-30; a claim without charges as 120+).
* Insurance A/R by payer: each claim's insurance balance, owed by the next payer in line - the coverage after
  the highest coverage level posted on the claim (its remittances' payments and adjustments) when the account
  has one, else that level, else the primary. Credit balances count with their sign.
* Patient A/R per account: each claim's patient balance in its bucket; patient entries without a claim
  (unapplied payments, credits) and negative claim balances are applied to the oldest buckets first (as Open
  Dental does); what is left over is shown as ``credit``.
* Days in A/R = total A/R (insurance + patient, net of credits) / (gross charges with a date of service in the
  last ``days`` days / ``days``).
* Net collection rate = (payments - refunds) / (charges - contractual adjustments) x 100, entries dated in the
  period; reversals count as the kind they reverse.
* Denial rate = remittance claims (CLP, reversals excluded) of the period that raised a denial / all of them,
  by count and by billed amount (HFMA AR-5).
* Cash collected per week = insurance + patient payments (net of their reversals) by ISO week of entry date.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session, aliased

from router.adapters.orm import (
    AccountRow,
    CoverageRow,
    ExceptionRow,
    LedgerRow,
    PatientRow,
    RemitClaimRow,
    RemittanceRow,
)
from router.domain.money import ZERO, from_cents

BUCKETS = ("0-30", "31-60", "61-90", "91-120", "120+")
PAYMENT_KINDS = ("insurance_payment", "patient_payment")


@dataclass
class AgingRow:
    key: str  # payer name, or account number
    label: str  # payer name, or the patient's name
    buckets: list[Decimal] = field(default_factory=lambda: [ZERO] * len(BUCKETS))
    credit: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return sum(self.buckets, ZERO) + self.credit

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, **dict(zip(BUCKETS, self.buckets, strict=True)),
                "credit": self.credit, "total": self.total}


def bucket_of(service_date: date | None, as_of: date) -> int:
    """The bucket index for a date of service (the same rule the SQL below applies)."""
    if service_date is None:
        return len(BUCKETS) - 1
    age = (as_of - service_date).days
    return 0 if age <= 30 else 1 if age <= 60 else 2 if age <= 90 else 3 if age <= 120 else 4


def _bucket_expr(dos: Any, as_of: date) -> Any:
    # Date comparisons against bound limits: the same SQL on SQLite and PostgreSQL.
    return case((dos.is_(None), 4), (dos >= as_of - timedelta(days=30), 0), (dos >= as_of - timedelta(days=60), 1),
                (dos >= as_of - timedelta(days=90), 2), (dos >= as_of - timedelta(days=120), 3), else_=4)


def _int(expr: Any) -> Any:
    return cast(expr, BigInteger)


def _aging_rows(as_of: date) -> tuple[Any, Any]:
    """One pass over the ledger: per claim its insurance and patient balance, the highest coverage level posted
    on it and the bucket of its date of service (the earliest charge entry: charges carry the line's service
    date); then per account and level one column per bucket for each responsibility, with the payer owed.
    The second statement sums the entries without a claim (unapplied patient credit) per account."""
    # Sums are cast back to bigint: PostgreSQL's sum(bigint) is numeric, and numeric arithmetic in the
    # aggregates above this one costs several times integer arithmetic.
    # Grouped by claim alone (its account is the same on every entry): the claim index gives the order, no sort.
    bal = (select(func.max(LedgerRow.account_id).label("account_id"),
                  _int(func.sum(case((LedgerRow.responsibility == "insurance", LedgerRow.amount_cents), else_=0)))
                  .label("ins"),
                  _int(func.sum(case((LedgerRow.responsibility == "patient", LedgerRow.amount_cents), else_=0)))
                  .label("pat"),
                  func.max(LedgerRow.coverage_seq).label("paid_seq"),
                  _bucket_expr(func.min(case((LedgerRow.kind == "charge", LedgerRow.effective_date))), as_of)
                  .label("bucket"))
           .where(LedgerRow.claim_id.is_not(None)).group_by(LedgerRow.claim_id).subquery("bal"))

    def pivot(amount: Any, prefix: str) -> list[Any]:  # one column per bucket
        return [_int(func.sum(case((bal.c.bucket == i, amount), else_=0))).label(f"{prefix}{i}")
                for i in range(len(BUCKETS))]

    level = (select(bal.c.account_id, bal.c.paid_seq, *pivot(bal.c.ins, "i"), *pivot(bal.c.pat, "p"))
             .group_by(bal.c.account_id, bal.c.paid_seq).subquery("lvl"))
    nxt, cur = aliased(CoverageRow), aliased(CoverageRow)
    payer = func.coalesce(func.nullif(nxt.payer_name, ""), nxt.payer_id, func.nullif(cur.payer_name, ""),
                          cur.payer_id, literal("(no coverage)"))
    columns = [level.c[f"{p}{i}"] for p in "ip" for i in range(len(BUCKETS))]
    per_account = (select(level.c.account_id, payer, *columns).select_from(level)
                   .outerjoin(nxt, and_(nxt.account_id == level.c.account_id, nxt.sequence == level.c.paid_seq + 1))
                   .outerjoin(cur, and_(cur.account_id == level.c.account_id,
                                        cur.sequence == func.coalesce(level.c.paid_seq, 1))))
    loose = (select(LedgerRow.responsibility, LedgerRow.account_id, _int(func.sum(LedgerRow.amount_cents)))
             .where(LedgerRow.claim_id.is_(None)).group_by(LedgerRow.responsibility, LedgerRow.account_id))
    return per_account, loose


def aging(session: Session, as_of: date, patient_limit: int | None = None) -> dict[str, Any]:
    """Aging by payer and by patient account; ``patient_limit`` keeps the largest accounts only (totals still
    cover every account). Sums stay integer cents until the rows returned are built."""
    payers: dict[str, list[int]] = {}
    accounts: dict[int, list[int]] = {}
    unapplied: dict[int, int] = defaultdict(int)
    per_account, loose_entries = _aging_rows(as_of)
    width = len(BUCKETS)
    for account_id, name, *cents in session.execute(per_account).all():
        insurance, patient = cents[:width], cents[width:]  # ints: the sums are cast to bigint
        if any(insurance):
            known = payers.get(name)
            payers[name] = insurance if known is None else [a + b for a, b in zip(known, insurance, strict=True)]
        if any(patient):
            known = accounts.get(account_id)
            accounts[account_id] = patient if known is None else [a + b for a, b in zip(known, patient, strict=True)]
    for responsibility, account_id, amount in session.execute(loose_entries).all():
        if responsibility == "patient":
            unapplied[account_id] += int(amount)
        else:  # insurance entries without a claim: none are posted today; shown, never lost
            payers.setdefault("(no claim)", [0] * len(BUCKETS))[0] += int(amount)
    for account_id in unapplied:  # an account may hold only unapplied credit
        accounts.setdefault(account_id, [0] * len(BUCKETS))
    owed: list[tuple[int, int, list[int], int]] = []  # (-total, account id, buckets, credit)
    patient_total = 0
    patient_buckets = [0] * len(BUCKETS)
    for account_id, buckets in accounts.items():
        loose = unapplied.get(account_id, 0)
        if loose or min(buckets) < 0:
            buckets, credit = apply_credits(buckets, loose)
        else:  # most accounts: nothing to apply
            credit = 0
        total = sum(buckets) + credit
        if not total and not credit and not any(buckets):
            continue
        patient_total += total
        for i, amount in enumerate(buckets):
            patient_buckets[i] += amount
        owed.append((-total, account_id, buckets, credit))
    shown = sorted(owed) if patient_limit is None else heapq.nsmallest(patient_limit, owed)
    names = _account_names(session, [t[1] for t in shown])
    patients = [AgingRow(*names.get(aid, (str(aid), "")), [from_cents(c) for c in buckets], from_cents(credit))
                for _, aid, buckets, credit in shown]
    patients.sort(key=lambda r: (-r.total, r.key))
    by_payer = sorted((AgingRow(name, name, [from_cents(c) for c in cents]) for name, cents in payers.items()
                       if any(cents)), key=lambda r: (-r.total, r.key))
    return {"as_of": as_of, "buckets": BUCKETS, "by_payer": by_payer, "by_patient": patients,
            "patient_accounts": len(owed), "insurance_total": sum((r.total for r in by_payer), ZERO),
            "patient_total": from_cents(patient_total),
            "patient_buckets": [from_cents(c) for c in patient_buckets]}  # every account, credits aside


def apply_credits(buckets: list[int], unapplied: int) -> tuple[list[int], int]:
    """Negative amounts (unapplied credits and credit buckets) pay the oldest positive buckets first."""
    credit = -unapplied  # positive: credit to apply
    out = []
    for c in buckets:
        if c < 0:
            credit -= c
            c = 0
        out.append(c)
    if credit < 0:  # an unapplied debit (e.g. a refund without a claim): owed now
        out[0] -= credit
        credit = 0
    i = len(out) - 1
    while credit and i >= 0:
        used = out[i] if out[i] < credit else credit
        out[i] -= used
        credit -= used
        i -= 1
    return out, -credit


def _account_names(session: Session, ids: list[int]) -> dict[int, tuple[str, str]]:
    found: dict[int, tuple[str, str]] = {}
    query = (select(AccountRow.id, AccountRow.number, func.min(PatientRow.family), func.min(PatientRow.given))
             .outerjoin(PatientRow, PatientRow.account_id == AccountRow.id).group_by(AccountRow.id, AccountRow.number))
    # Many ids (a full CSV): one pass over every account beats long IN lists (bound-parameter limits, parsing).
    parts = [query] if len(ids) > 2_000 else [query.where(AccountRow.id.in_(ids[i:i + 900]))
                                               for i in range(0, len(ids), 900)]
    wanted = set(ids)
    for part in parts:
        for aid, number, family, given in session.execute(part):
            if aid in wanted:
                found[aid] = (number, ", ".join(p for p in (family, given) if p))
    return found


def kpis(session: Session, as_of: date, days: int = 90) -> dict[str, Any]:
    start = as_of - timedelta(days=days - 1)
    effective = func.coalesce(LedgerRow.reversed_kind, LedgerRow.kind)
    by_kind = dict(session.execute(
        select(effective, func.sum(LedgerRow.amount_cents))
        .where(LedgerRow.effective_date >= start, LedgerRow.effective_date <= as_of).group_by(effective)).all())

    def total(*kinds: str) -> int:
        return sum(int(by_kind.get(k, 0) or 0) for k in kinds)

    charges = total("charge", "charge_credit")
    payments = -total(*PAYMENT_KINDS)
    refunds = total("refund")
    contractual = -total("contractual_adjustment")
    ar_total = int(session.scalar(select(func.coalesce(func.sum(LedgerRow.amount_cents), 0))) or 0)
    daily = Decimal(charges) / days if days else Decimal(0)
    collectible = charges - contractual
    remitted = (select(RemitClaimRow.id, RemitClaimRow.charge_cents)
                .join(RemittanceRow, RemittanceRow.id == RemitClaimRow.remittance_id)
                .where(RemittanceRow.payment_date >= start, RemittanceRow.payment_date <= as_of,
                       RemitClaimRow.status != "22").subquery())
    denied = (select(ExceptionRow.remit_claim_id).where(ExceptionRow.type == "denial").distinct().subquery())
    claims, billed, denied_n, denied_cents = session.execute(
        select(func.count(remitted.c.id), func.coalesce(func.sum(remitted.c.charge_cents), 0),
               func.count(denied.c.remit_claim_id),
               func.coalesce(func.sum(case((denied.c.remit_claim_id.is_not(None), remitted.c.charge_cents))), 0))
        .select_from(remitted).outerjoin(denied, denied.c.remit_claim_id == remitted.c.id)).one()
    return {
        "as_of": as_of, "period_days": days, "period_start": start,
        "total_ar": from_cents(ar_total), "gross_charges": from_cents(charges),
        "average_daily_charges": (daily / 100).quantize(Decimal("0.01")),
        "days_in_ar": (Decimal(ar_total) / daily).quantize(Decimal("0.1")) if daily else None,
        "payments": from_cents(payments), "refunds": from_cents(refunds), "contractual": from_cents(contractual),
        "net_collection_rate": (Decimal(100 * (payments - refunds)) / collectible).quantize(Decimal("0.01"))
        if collectible else None,
        "claims_remitted": int(claims), "claims_denied": int(denied_n),
        "denial_rate": (Decimal(100 * int(denied_n)) / int(claims)).quantize(Decimal("0.01")) if claims else None,
        "denial_rate_amount": (Decimal(100 * int(denied_cents)) / int(billed)).quantize(Decimal("0.01"))
        if billed else None,
    }


def cash_per_week(session: Session, as_of: date, weeks: int = 12) -> list[dict[str, Any]]:
    """Payments collected per ISO week (Monday start), oldest first, the last ``weeks`` weeks to ``as_of``."""
    first = as_of - timedelta(days=as_of.weekday()) - timedelta(weeks=weeks - 1)
    effective = func.coalesce(LedgerRow.reversed_kind, LedgerRow.kind)
    per_day = session.execute(
        select(LedgerRow.effective_date, LedgerRow.responsibility, func.sum(LedgerRow.amount_cents))
        .where(effective.in_(PAYMENT_KINDS), LedgerRow.effective_date >= first, LedgerRow.effective_date <= as_of)
        .group_by(LedgerRow.effective_date, LedgerRow.responsibility)).all()
    out = {first + timedelta(weeks=n): {"insurance": 0, "patient": 0} for n in range(weeks)}
    for day, responsibility, cents in per_day:
        if day is None:
            continue
        monday = day - timedelta(days=day.weekday())
        out[monday][responsibility] -= int(cents)
    return [{"week": monday, "insurance": from_cents(v["insurance"]), "patient": from_cents(v["patient"]),
             "total": from_cents(v["insurance"] + v["patient"])} for monday, v in sorted(out.items())]
