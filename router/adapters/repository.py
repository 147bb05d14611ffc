"""Repositories: translate domain dataclasses to and from rows, inside one session (adapter layer)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from router.adapters.bulk import COPY_FROM, copy_new_rows, insert_rows
from router.adapters.orm import (
    AccountRow,
    AppointmentRow,
    ChargeLineRow,
    ClaimKeyRow,
    ClaimRow,
    CoverageRow,
    InboxRow,
    LedgerRow,
    OutboxRow,
    PatientRow,
    utcnow,
)
from router.domain.errors import ConcurrencyConflict, DomainViolation
from router.domain.ledger import EntryKind, LedgerEntry, Responsibility
from router.domain.matching import normalize_pcn
from router.domain.model import ChargeLine, Claim, Coverage, Patient
from router.domain.money import from_cents, to_cents


class AccountRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._ids: dict[str, int] = {}

    def id_for(self, number: str, *, create: bool = True) -> int | None:
        if number in self._ids:
            return self._ids[number]
        row_id = self.session.scalar(select(AccountRow.id).where(AccountRow.number == number))
        if row_id is None and create:
            row = AccountRow(number=number)
            self.session.add(row)
            self.session.flush()
            row_id = row.id
        if row_id is not None:
            self._ids[number] = row_id
        return row_id

    def remember(self, ids: dict[str, int]) -> None:
        """Prime the number -> id cache from a bulk load, so later lookups cost no round trip."""
        self._ids.update(ids)

    def forget(self) -> None:
        """Drop the cache (after a savepoint rollback undid rows it may name)."""
        self._ids.clear()

    def number_for(self, account_id: int) -> str:
        return self.session.execute(select(AccountRow.number).where(AccountRow.id == account_id)).scalar_one()

    def upsert_patient(self, account: str, patient: Patient) -> int:
        row = self.session.scalar(select(PatientRow).where(PatientRow.mrn == patient.mrn))
        if row is None:
            row = PatientRow(mrn=patient.mrn)
            self.session.add(row)
        row.account_id = self.id_for(account)
        row.family, row.given = patient.family or row.family or "", patient.given or row.given or ""
        row.birth_date = patient.birth_date or row.birth_date
        self.session.flush()
        return row.id

    def upsert_coverage(self, account: str, coverage: Coverage) -> None:
        account_id = self.id_for(account)
        row = self.session.scalar(select(CoverageRow).where(
            CoverageRow.account_id == account_id, CoverageRow.sequence == coverage.sequence))
        if row is None:
            row = CoverageRow(account_id=account_id, sequence=coverage.sequence)
            self.session.add(row)
        row.payer_id, row.payer_name = coverage.payer_id, coverage.payer_name
        row.member_id, row.group_number, row.plan = coverage.member_id, coverage.group_number, coverage.plan

    def set_guarantor(self, account: str, guarantor: str) -> None:
        row = self.session.get_one(AccountRow, self.id_for(account))
        row.guarantor = guarantor

    def remove_coverages_except(self, account: str, sequences: set[int]) -> None:
        for row in self.session.scalars(select(CoverageRow).where(CoverageRow.account_id == self.id_for(account))):
            if row.sequence not in sequences:
                self.session.delete(row)

    def upsert_appointment(self, appointment_id: str, account: str, patient_id: int | None,
                           fields: dict[str, object]) -> None:
        row = self.session.scalar(select(AppointmentRow).where(AppointmentRow.external_id == appointment_id))
        if row is None:
            row = AppointmentRow(external_id=appointment_id)
            self.session.add(row)
        row.account_id = self.id_for(account)  # type: ignore[assignment]
        row.patient_id = patient_id if patient_id is not None else row.patient_id
        for name, value in fields.items():
            setattr(row, name, value)
        row.updated_at = utcnow()

    def coverages(self, account: str) -> list[Coverage]:
        rows = self.session.scalars(select(CoverageRow).join(AccountRow).where(
            AccountRow.number == account).order_by(CoverageRow.sequence))
        return [Coverage(r.sequence, r.payer_id, r.payer_name, r.member_id, r.group_number, r.plan)
                for r in rows]


class ClaimRepository:
    def __init__(self, session: Session, accounts: AccountRepository) -> None:
        self.session = session
        self.accounts = accounts
        self._ids: dict[str, int] = {}

    def id_for(self, key: str) -> int | None:
        if key not in self._ids:
            found = self.session.scalar(select(ClaimKeyRow.claim_id).where(ClaimKeyRow.key == key))
            if found is None:
                return None
            self._ids[key] = found
        return self._ids[key]

    def remember(self, ids: dict[str, int]) -> None:
        """Prime the key -> id cache from a bulk load, so later lookups cost no round trip."""
        self._ids.update(ids)

    def forget(self) -> None:
        """Drop the cache (after a savepoint rollback undid rows it may name)."""
        self._ids.clear()

    def get_or_create(self, key: str, account: str, patient_id: int | None) -> int:
        claim_id = self.id_for(key)
        if claim_id is not None:
            owner = self.session.execute(select(ClaimRow.account_id).where(ClaimRow.id == claim_id)).scalar_one()
            if owner != self.accounts.id_for(account, create=False):
                raise DomainViolation(f"claim key {key!r} belongs to another account")
        if claim_id is None:
            row = ClaimRow(key=key, account_id=self.accounts.id_for(account), patient_id=patient_id)
            self.session.add(row)
            self.session.flush()
            self.session.add(ClaimKeyRow(key=key, claim_id=row.id, normalized=normalize_pcn(key)))
            claim_id = self._ids[key] = row.id
        return claim_id

    def next_line_no(self, claim_id: int) -> int:
        rows = self.session.scalars(select(ChargeLineRow.line_no).where(ChargeLineRow.claim_id == claim_id))
        return max(rows, default=0) + 1

    def add_line(self, claim_id: int, line: ChargeLine, entry_key: str) -> None:
        self.session.add(ChargeLineRow(
            claim_id=claim_id, line_no=line.line_no, service_date=line.service_date, code=line.code,
            modifiers=":".join(line.modifiers), units=str(line.units), amount_cents=to_cents(line.amount),
            line_control=line.line_control, description=line.description,
            diagnoses=":".join(line.diagnoses), performer=line.performer, entry_key=entry_key))

    def get(self, key: str) -> Claim | None:
        claim_id = self.id_for(key)
        if claim_id is None:
            return None
        row = self.session.get_one(ClaimRow, claim_id)
        lines = self.session.scalars(select(ChargeLineRow).where(ChargeLineRow.claim_id == claim_id)
                                     .order_by(ChargeLineRow.line_no))
        mrn = self.session.scalar(select(PatientRow.mrn).where(PatientRow.id == row.patient_id))
        return Claim(key=row.key, account=self.accounts.number_for(row.account_id), patient_mrn=mrn, lines=tuple(
            ChargeLine(line_no=r.line_no, service_date=r.service_date, code=r.code, amount=from_cents(r.amount_cents),
                       units=Decimal(r.units), modifiers=tuple(filter(None, r.modifiers.split(":"))),
                       line_control=r.line_control, description=r.description,
                       diagnoses=tuple(filter(None, r.diagnoses.split(":"))), performer=r.performer)
            for r in lines))


class LedgerRepository:
    def __init__(self, session: Session, accounts: AccountRepository, claims: ClaimRepository) -> None:
        self.session = session
        self.accounts = accounts
        self.claims = claims

    def append(self, entries: Sequence[LedgerEntry]) -> int:
        """Insert entries; an idempotency key already present is skipped. Returns rows inserted.

        ``ON CONFLICT DO NOTHING ... RETURNING`` tells inserted rows apart on both dialects
        (psycopg 3 reports rowcount -1 for ON CONFLICT inserts, so rowcount cannot be used).
        """
        if not entries:
            return 0
        values = [self._row(e) for e in entries]
        table = cast(Table, LedgerRow.__table__)
        return len(insert_rows(self.session, table, values, ["id"], conflict=["idempotency_key"]))

    def append_new(self, entries: Sequence[LedgerEntry]) -> None:
        """Insert entries whose idempotency keys are new by construction (derived from a source id the inbox
        has not seen, e.g. a remittance's legs). On PostgreSQL many go straight through COPY
        (``bulk.copy_new_rows``); a key that exists anyway means a concurrent writer: ``ConcurrencyConflict``."""
        if self.session.get_bind().dialect.name != "postgresql" or len(entries) < COPY_FROM:
            if self.append(entries) != len(entries):
                raise ConcurrencyConflict("a concurrent transaction posted the same ledger keys")
            return
        now = utcnow()
        # Built before the COPY opens: resolving an id may query, and the connection is busy during a COPY.
        rows = [(*self._values(e), now) for e in entries]
        copy_new_rows(self.session, cast(Table, LedgerRow.__table__), [*_LEDGER_FIELDS, "posted_at"], rows)

    def _row(self, e: LedgerEntry) -> dict[str, object]:
        return dict(zip(_LEDGER_FIELDS, self._values(e), strict=True))

    def _values(self, e: LedgerEntry) -> tuple[object, ...]:
        """Column values in ``_LEDGER_FIELDS`` order."""
        return (self.accounts.id_for(e.account), self.claims.id_for(e.claim) if e.claim else None, e.charge_line,
                e.kind.value, e.responsibility.value, to_cents(e.amount), e.source_id, e.idempotency_key,
                e.reverses, e.reversed_kind.value if e.reversed_kind else None, e.effective_date, e.payer,
                e.coverage_seq, e.trace_number, e.payer_claim_number, e.group_code, e.reason_code, e.memo)

    def get(self, idempotency_key: str) -> LedgerEntry | None:
        row = self.session.scalar(select(LedgerRow).where(LedgerRow.idempotency_key == idempotency_key))
        return self._entry(row) if row else None

    def is_reversed(self, idempotency_key: str) -> bool:
        return self.session.scalar(select(LedgerRow.id).where(LedgerRow.reverses == idempotency_key)) is not None

    def for_account(self, account: str) -> list[LedgerEntry]:
        rows = self.session.scalars(select(LedgerRow).join(AccountRow).where(AccountRow.number == account)
                                    .order_by(LedgerRow.id))
        return [self._entry(r) for r in rows]

    def _entry(self, r: LedgerRow) -> LedgerEntry:
        claim = self.session.scalar(select(ClaimRow.key).where(ClaimRow.id == r.claim_id)) if r.claim_id else None
        return LedgerEntry(
            account=self.accounts.number_for(r.account_id), kind=EntryKind(r.kind),
            responsibility=Responsibility(r.responsibility), amount=from_cents(r.amount_cents),
            idempotency_key=r.idempotency_key, source_id=r.source_id, claim=claim, charge_line=r.line_no,
            effective_date=r.effective_date, reverses=r.reverses,
            reversed_kind=EntryKind(r.reversed_kind) if r.reversed_kind else None, payer=r.payer,
            coverage_seq=r.coverage_seq, trace_number=r.trace_number, payer_claim_number=r.payer_claim_number,
            group_code=r.group_code, reason_code=r.reason_code, memo=r.memo)


class InboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def digest_of(self, source_id: str) -> str | None:
        return self.session.scalar(select(InboxRow.digest).where(InboxRow.source_id == source_id))

    def add(self, source_id: str, command: str, digest: str) -> None:
        self.session.add(InboxRow(source_id=source_id, command=command, digest=digest))


class OutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Each row: (event type, source id, JSON payload)."""
        self.session.add_all(OutboxRow(event_type=t, source_id=s, payload=p) for t, s, p in rows)


_LEDGER_FIELDS = ("account_id", "claim_id", "line_no", "kind", "responsibility", "amount_cents", "source_id",
                  "idempotency_key", "reverses", "reversed_kind", "effective_date", "payer", "coverage_seq",
                  "trace_number", "payer_claim_number", "group_code", "reason_code", "memo")
