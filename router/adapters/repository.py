"""Repositories: translate domain dataclasses to and from rows, inside one session (adapter layer)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Integer, Table, column, func, select, values
from sqlalchemy.orm import Session

from router.adapters.bulk import COPY_NEW_FROM, copy_new_rows, insert_from, insert_new, insert_rows, one_of
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
        if create:
            return self.ids_for([number])[number]
        row_id = self.session.scalar(select(AccountRow.id).where(AccountRow.number == number))
        if row_id is not None:
            self._ids[number] = row_id
        return row_id

    def ids_for(self, numbers: Iterable[str]) -> dict[str, int]:
        """Ids of these accounts, creating the missing ones: one SELECT and at most one INSERT for all."""
        wanted = set(numbers)
        missing = sorted(wanted.difference(self._ids))
        if missing:
            self._ids.update(_pairs(self.session.execute(
                select(AccountRow.number, AccountRow.id).where(one_of(self.session, AccountRow.number, missing)))))
            new = [{"number": n, "created_at": utcnow()} for n in missing if n not in self._ids]
            if new:
                # ON CONFLICT: a concurrent creator of the same number is not an error; re-read what it wrote.
                stmt = insert_from(self.session, cast(Table, AccountRow.__table__), new)
                inserted = _pairs(self.session.execute(stmt.on_conflict_do_nothing(index_elements=["number"])
                                                       .returning(AccountRow.number, AccountRow.id)))
                self._ids.update(inserted)
                if len(inserted) < len(new):
                    self._ids.update(_pairs(self.session.execute(select(AccountRow.number, AccountRow.id).where(
                        AccountRow.number.in_([n for n in missing if n not in self._ids])))))
        return {n: self._ids[n] for n in wanted}

    def remember(self, ids: dict[str, int]) -> None:
        """Prime the number -> id cache from a bulk load, so later lookups cost no round trip."""
        self._ids.update(ids)

    def forget(self) -> None:
        """Drop the cache (after a savepoint rollback undid rows it may name)."""
        self._ids.clear()

    def number_for(self, account_id: int) -> str:
        return self.session.execute(select(AccountRow.number).where(AccountRow.id == account_id)).scalar_one()

    def upsert_patient(self, account: str, patient: Patient) -> int:
        return self.upsert_patients([(account, patient)])[patient.mrn]

    def upsert_patients(self, items: Sequence[tuple[str, Patient]]) -> dict[str, int]:
        """Create or update patients by MRN (in order: a later item wins, an empty name or birth date keeps
        what is on file) in one upsert. Returns MRN -> patient id."""
        merged: dict[str, dict[str, object]] = {}
        ids = self.ids_for(account for account, _ in items)
        for account, p in items:
            was = merged.get(p.mrn, {})
            merged[p.mrn] = {"mrn": p.mrn, "account_id": ids[account], "family": p.family or was.get("family", ""),
                             "given": p.given or was.get("given", ""),
                             "birth_date": p.birth_date or was.get("birth_date")}
        if not merged:
            return {}
        stmt = insert_from(self.session, cast(Table, PatientRow.__table__), list(merged.values()))
        keep = {c: func.coalesce(func.nullif(stmt.excluded[c], ""), PatientRow.__table__.c[c])
                for c in ("family", "given")}
        stmt = stmt.on_conflict_do_update(index_elements=["mrn"], set_={
            "account_id": stmt.excluded.account_id, **keep,
            "birth_date": func.coalesce(stmt.excluded.birth_date, PatientRow.__table__.c.birth_date)})
        return _pairs(self.session.execute(stmt.returning(PatientRow.mrn, PatientRow.id)))

    def upsert_coverage(self, account: str, coverage: Coverage) -> None:
        self.upsert_coverages([(account, coverage)])

    def upsert_coverages(self, items: Sequence[tuple[str, Coverage]]) -> None:
        """Create or replace coverages by (account, sequence) in one upsert; a later item wins."""
        ids = self.ids_for(account for account, _ in items)
        rows = {(ids[a], c.sequence): {"account_id": ids[a], "sequence": c.sequence, "payer_id": c.payer_id,
                                       "payer_name": c.payer_name, "member_id": c.member_id,
                                       "group_number": c.group_number, "plan": c.plan} for a, c in items}
        if not rows:
            return
        stmt = insert_from(self.session, cast(Table, CoverageRow.__table__), list(rows.values()))
        stmt = stmt.on_conflict_do_update(index_elements=["account_id", "sequence"], set_={
            c: stmt.excluded[c] for c in ("payer_id", "payer_name", "member_id", "group_number", "plan")})
        self.session.execute(stmt)

    def with_coverage(self, accounts: Iterable[str]) -> set[str]:
        """Which of these accounts have at least one coverage on file."""
        ids = {v: k for k, v in self.ids_for(accounts).items()}
        found = self.session.scalars(select(CoverageRow.account_id)
                                     .where(one_of(self.session, CoverageRow.account_id, ids)).distinct())
        return {ids[i] for i in found}

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

    def get_or_create_many(self, items: Sequence[tuple[str, str, int | None]]) -> tuple[dict[str, int], set[str]]:
        """Claim ids for (key, account, patient id) items, creating missing claims (the first item of a key
        gives its patient), and the keys created. A key on file under another account is a ``DomainViolation``."""
        accounts = self.accounts.ids_for(account for _, account, _ in items)
        keys = sorted({key for key, _, _ in items})
        found = {key: (claim_id, owner) for key, claim_id, owner in self.session.execute(
            select(ClaimKeyRow.key, ClaimRow.id, ClaimRow.account_id).join(ClaimRow)
            .where(one_of(self.session, ClaimKeyRow.key, keys)))}
        new: dict[str, dict[str, object]] = {}
        for key, account, patient_id in items:
            if key in found and found[key][1] != accounts[account]:
                raise DomainViolation(f"claim key {key!r} belongs to another account")
            if key in new and new[key]["account_id"] != accounts[account]:
                raise DomainViolation(f"claim key {key!r} belongs to another account")
            if key not in found and key not in new:
                new[key] = {"key": key, "account_id": accounts[account], "patient_id": patient_id,
                            "created_at": utcnow()}
        created: dict[str, int] = _pairs(self.session.execute(
            insert_from(self.session, cast(Table, ClaimRow.__table__), list(new.values()))
            .returning(ClaimRow.key, ClaimRow.id))) if new else {}
        insert_new(self.session, cast(Table, ClaimKeyRow.__table__),
                   [{"key": k, "claim_id": i, "normalized": normalize_pcn(k)} for k, i in created.items()])
        self._ids.update({k: v[0] for k, v in found.items()} | created)
        return {key: self._ids[key] for key in keys}, set(created)

    def last_line_nos(self, claim_ids: Iterable[int]) -> dict[int, int]:
        """The highest line number on file per claim (claims without lines are absent)."""
        claim_ids = set(claim_ids)
        if not claim_ids:
            return {}
        # One max() per claim id from a VALUES list: an index probe each, whatever the table statistics say
        # (``WHERE claim_id IN (...) GROUP BY`` is planned as a full scan when they are stale or missing).
        wanted = values(column("id", Integer), name="wanted").data([(i,) for i in sorted(claim_ids)]).cte("wanted")
        last = select(func.max(ChargeLineRow.line_no)).where(ChargeLineRow.claim_id == wanted.c.id).scalar_subquery()
        return {i: n for i, n in self.session.execute(select(wanted.c.id, last)) if n is not None}

    def add_lines(self, lines: Sequence[tuple[int, ChargeLine, str]]) -> None:
        """(claim id, numbered line, ledger entry key) each; the entry keys are new by construction."""
        insert_new(self.session, cast(Table, ChargeLineRow.__table__), [
            {"claim_id": claim_id, "line_no": line.line_no, "service_date": line.service_date, "code": line.code,
             "modifiers": ":".join(line.modifiers), "units": str(line.units), "amount_cents": to_cents(line.amount),
             "line_control": line.line_control, "description": line.description,
             "diagnoses": ":".join(line.diagnoses), "performer": line.performer, "entry_key": key}
            for claim_id, line, key in lines])

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
        if self.session.get_bind().dialect.name != "postgresql" or len(entries) < COPY_NEW_FROM:
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

    def digests_of(self, source_ids: Iterable[str]) -> dict[str, str]:
        """source id -> digest for those already handled."""
        return _pairs(self.session.execute(
            select(InboxRow.source_id, InboxRow.digest)
            .where(one_of(self.session, InboxRow.source_id, set(source_ids)))))

    def add(self, source_id: str, command: str, digest: str) -> None:
        self.add_many([(source_id, command, digest)])

    def add_many(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """(source id, command type, digest) each; a source id on file already is a concurrent handler of the
        same command (``ConcurrencyConflict``: the bus re-checks and finds the duplicate)."""
        insert_new(self.session, cast(Table, InboxRow.__table__),
                   [{"source_id": s, "command": c, "digest": d} for s, c, d in rows])


class OutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """Each row: (event type, source id, JSON payload)."""
        insert_new(self.session, cast(Table, OutboxRow.__table__),
                   [{"event_type": t, "source_id": s, "payload": p} for t, s, p in rows])


def _pairs(rows: Iterable[Any]) -> dict[Any, Any]:
    """Two-column rows as a dict (a ``Result`` has ``keys()``: ``dict(result)`` would take it for a mapping)."""
    return {k: v for k, v in rows}


_LEDGER_FIELDS = ("account_id", "claim_id", "line_no", "kind", "responsibility", "amount_cents", "source_id",
                  "idempotency_key", "reverses", "reversed_kind", "effective_date", "payer", "coverage_seq",
                  "trace_number", "payer_claim_number", "group_code", "reason_code", "memo")
