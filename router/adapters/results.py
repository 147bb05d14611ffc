"""Read the reconciled record behind an event (adapter layer): ledger entries, remittance claims, PLB rows.

Outbound deliveries are built from these rows only, so what an EMR receives is what the ledger holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from router.adapters.orm import (
    AccountRow,
    ChargeLineRow,
    ClaimRow,
    LedgerRow,
    PatientRow,
    PracticeLedgerRow,
    RemitClaimRow,
    RemittanceRow,
)
from router.adapters.remittances import chunks, decode_remarks
from router.domain.ledger import CHARGE_KINDS, Balances, EntryKind, Responsibility
from router.domain.money import from_cents
from router.domain.results import AccountResult, ClaimResult, PlbResult, PostedEntry, RemittanceResult, Result

_COLUMNS = (LedgerRow.id, LedgerRow.account_id, LedgerRow.claim_id, LedgerRow.line_no, LedgerRow.kind,
            LedgerRow.responsibility, LedgerRow.amount_cents, LedgerRow.idempotency_key, LedgerRow.source_id,
            LedgerRow.effective_date, LedgerRow.reverses, LedgerRow.reversed_kind, LedgerRow.payer,
            LedgerRow.coverage_seq, LedgerRow.trace_number, LedgerRow.payer_claim_number, LedgerRow.group_code,
            LedgerRow.reason_code, LedgerRow.memo, ClaimRow.key)


def event_result(session: Session, event_type: str, source_id: str) -> Result:
    """What ``source_id`` posted: every ledger entry of it (and of its remittance claims, ``{sid}:{n}``)."""
    remittance = remittance_result(session, source_id)
    if remittance is not None:
        return Result(event_type, source_id, remittance.payee_id, remittance.accounts, remittance)
    rows = _ledger_rows(session, [LedgerRow.source_id == source_id])
    return Result(event_type, source_id, "", _accounts(session, rows))


def remittance_result(session: Session, source_id: str) -> RemittanceResult | None:
    remit = session.scalar(select(RemittanceRow).where(RemittanceRow.source_id == source_id))
    if remit is None:
        return None
    claim_rows = session.execute(
        select(RemitClaimRow.seq, RemitClaimRow.pcn, RemitClaimRow.status, RemitClaimRow.charge_cents,
               RemitClaimRow.paid_cents, RemitClaimRow.payer_claim_number, RemitClaimRow.outcome, ClaimRow.key,
               AccountRow.number, RemitClaimRow.remarks)
        .outerjoin(ClaimRow, ClaimRow.id == RemitClaimRow.claim_id)
        .outerjoin(AccountRow, AccountRow.id == ClaimRow.account_id)
        .where(RemitClaimRow.remittance_id == remit.id).order_by(RemitClaimRow.seq)).all()
    rows: list[Sequence[Any]] = []
    for part in chunks([f"{source_id}:{r[0]}" for r in claim_rows]):
        rows += _ledger_rows(session, [LedgerRow.source_id.in_(part)])
    accounts = _accounts(session, rows)
    # Remittance entry keys belong to their claim's source id ``{sid}:{n}`` (see posting.post_claim).
    source_by_key = {r[7]: r[8] for r in rows}
    by_source: dict[str, list[PostedEntry]] = defaultdict(list)
    for result in accounts:
        for entry in result.entries:
            by_source[source_by_key[entry.key]].append(entry)
    claims: list[ClaimResult] = []
    for seq, pcn, status, charge, paid, number, outcome, key, account, remarks in claim_rows:
        claim_remarks, line_remarks = decode_remarks(remarks)
        claims.append(ClaimResult(
            seq=seq, pcn=pcn, status=status, charge=from_cents(charge), paid=from_cents(paid),
            payer_claim_number=number, outcome=outcome, claim_key=key, account=account,
            entries=tuple(by_source.get(f"{source_id}:{seq}", ())), remarks=claim_remarks, line_remarks=line_remarks))
    plb = tuple(PlbResult(code, ref, from_cents(cents), key) for code, ref, cents, key in session.execute(
        select(PracticeLedgerRow.code, PracticeLedgerRow.reference, PracticeLedgerRow.amount_cents, ClaimRow.key)
        .outerjoin(ClaimRow, ClaimRow.id == PracticeLedgerRow.claim_id)
        .where(PracticeLedgerRow.remittance_id == remit.id).order_by(PracticeLedgerRow.id)))
    return RemittanceResult(
        source_id=source_id, payer_id=remit.payer_id, payer_name=remit.payer_name, payee_id=remit.payee_id,
        payee_name=remit.payee_name, trace_number=remit.trace_number, payment_amount=from_cents(remit.payment_cents),
        payment_method=remit.method, payment_date=remit.payment_date, status=remit.status, claims=tuple(claims),
        plb=plb, accounts=accounts)


def _ledger_rows(session: Session, where: Iterable[Any]) -> list[Sequence[Any]]:
    query = select(*_COLUMNS).outerjoin(ClaimRow, ClaimRow.id == LedgerRow.claim_id)
    return list(session.execute(query.where(*where).order_by(LedgerRow.id)).all())


def _accounts(session: Session, rows: Sequence[Sequence[Any]]) -> tuple[AccountResult, ...]:
    """Group ledger rows per account (in posting order) with balances as of the last of them."""
    if not rows:
        return ()
    lines = _charge_lines(session, {(r[2], r[3]) for r in rows if r[2] is not None and r[3] is not None})
    grouped: dict[int, list[Sequence[Any]]] = defaultdict(list)
    for r in rows:
        grouped[r[1]].append(r)
    numbers = dict(session.execute(select(AccountRow.id, AccountRow.number).where(AccountRow.id.in_(grouped))).all())
    mrns: dict[int, str] = {}
    for account_id, mrn in session.execute(select(PatientRow.account_id, PatientRow.mrn)
                                           .where(PatientRow.account_id.in_(grouped)).order_by(PatientRow.id)):
        if account_id is not None:
            mrns.setdefault(account_id, mrn)
    results = []
    for account_id, account_rows in grouped.items():
        entries = tuple(_entry(r, lines.get((r[2], r[3]))) for r in account_rows)
        results.append(AccountResult(numbers[account_id], mrns.get(account_id, ""), entries,
                                     balances_upto(session, account_id, max(r[0] for r in account_rows))))
    return tuple(sorted(results, key=lambda a: a.account))


def _entry(r: Sequence[Any], line: tuple[str, str, int] | None) -> PostedEntry:
    (_, _, _, line_no, kind, responsibility, cents, key, _, when, reverses, reversed_kind, payer, seq, trace,
     payer_claim, group, reason, memo, claim) = r
    return PostedEntry(
        key=key, kind=EntryKind(kind), responsibility=Responsibility(responsibility), amount=from_cents(cents),
        claim=claim, charge_line=line_no, charge_key=line[0] if line else None, procedure=line[1] if line else "",
        line_charge=from_cents(line[2]) if line else None, effective_date=when, reverses=reverses,
        reversed_kind=EntryKind(reversed_kind) if reversed_kind else None, payer=payer, coverage_seq=seq,
        trace_number=trace, payer_claim_number=payer_claim, group_code=group, reason_code=reason, memo=memo)


def _charge_lines(session: Session, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], tuple[str, str, int]]:
    """(claim id, line no) -> (charge entry key, procedure code, billed cents)."""
    found: dict[tuple[int, int], tuple[str, str, int]] = {}
    c = ChargeLineRow
    for part in chunks(sorted({claim for claim, _ in wanted})):
        for claim_id, line_no, key, code, cents in session.execute(
                select(c.claim_id, c.line_no, c.entry_key, c.code, c.amount_cents).where(c.claim_id.in_(part))):
            if (claim_id, line_no) in wanted:
                found[(claim_id, line_no)] = (key, code, cents)
    return found


def balances_upto(session: Session, account_id: int, last_entry_id: int) -> Balances:
    """The account's balances right after entry ``last_entry_id`` (later postings excluded)."""
    effective = func.coalesce(LedgerRow.reversed_kind, LedgerRow.kind)
    row = session.execute(select(
        func.coalesce(func.sum(case((effective.in_([k.value for k in CHARGE_KINDS]), LedgerRow.amount_cents),
                                    else_=0)), 0),
        func.coalesce(func.sum(case((LedgerRow.responsibility == Responsibility.INSURANCE.value,
                                     LedgerRow.amount_cents), else_=0)), 0),
        func.coalesce(func.sum(case((LedgerRow.responsibility == Responsibility.PATIENT.value,
                                     LedgerRow.amount_cents), else_=0)), 0),
    ).where(LedgerRow.account_id == account_id, LedgerRow.id <= last_entry_id)).one()
    return Balances(charges=from_cents(int(row[0])), insurance=from_cents(int(row[1])),
                    patient=from_cents(int(row[2])))


def event_scope(session: Session, source_id: str) -> tuple[str, set[str]]:
    """(facility, accounts) an event touched, by cheap indexed reads: lets a filtered destination skip the
    full read of a result it will not take (a 10,000-claim remittance costs seconds to read back)."""
    remit = session.execute(select(RemittanceRow.id, RemittanceRow.payee_id)
                            .where(RemittanceRow.source_id == source_id)).first()
    if remit is not None:
        # Two indexed steps, not one join: without planner statistics (a fresh bulk load) PostgreSQL chose
        # sequential scans of claims and accounts for the join (~30 ms an event on the test database).
        claim_ids = sorted({i for i in session.scalars(select(RemitClaimRow.claim_id).where(
            RemitClaimRow.remittance_id == remit[0])) if i is not None})
        accounts: set[str] = set()
        for part in chunks(claim_ids):
            accounts.update(session.scalars(select(AccountRow.number)
                                            .join(ClaimRow, ClaimRow.account_id == AccountRow.id)
                                            .where(ClaimRow.id.in_(part))))
        return remit[1], accounts
    return "", set(session.scalars(select(AccountRow.number).distinct()
                                   .join(LedgerRow, LedgerRow.account_id == AccountRow.id)
                                   .where(LedgerRow.source_id == source_id)))
