"""Workbench persistence (adapter layer): the optimistic lock on an exception, its claim and balances, its
history, notes and write-off approvals, and the audit row written in the same transaction as the action.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from router.adapters.orm import (
    AccountRow,
    AuditRow,
    ClaimKeyRow,
    ClaimRow,
    ExceptionRow,
    LedgerRow,
    RemitClaimRow,
    RemittanceRow,
    utcnow,
)
from router.adapters.orm_workbench import ExceptionActionRow, ExceptionNoteRow, WriteOffApprovalRow
from router.domain.errors import DomainViolation
from router.domain.ledger import Responsibility
from router.domain.money import from_cents, to_cents
from router.domain.workbench import StaleItem


@dataclass(frozen=True)
class ClaimRef:
    id: int
    key: str
    account: str


class WorkbenchRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock(self, exception_id: int, expected_version: int, **changes: Any) -> ExceptionRow:
        """Bump the version from ``expected_version`` (and apply ``changes``) or refuse: the optimistic lock.

        One conditional UPDATE: of two concurrent users holding the same version, the second finds 0 rows
        (PostgreSQL re-checks the WHERE after the first commits; SQLite admits one writer at a time).
        """
        result = self.session.execute(
            update(ExceptionRow).where(ExceptionRow.id == exception_id, ExceptionRow.version == expected_version)
            .values(version=ExceptionRow.version + 1, **changes).execution_options(synchronize_session=False))
        if not isinstance(result, CursorResult) or result.rowcount != 1:
            current = self.session.scalar(select(ExceptionRow.version).where(ExceptionRow.id == exception_id))
            if current is None:
                raise DomainViolation(f"no exception #{exception_id}")
            raise StaleItem(f"exception #{exception_id} changed since you opened it (version {expected_version}, "
                            f"now {current}): reload it", location=f"exception #{exception_id}")
        return self.get(exception_id)

    def get(self, exception_id: int) -> ExceptionRow:
        row = self.session.execute(select(ExceptionRow).where(ExceptionRow.id == exception_id)
                                   .execution_options(populate_existing=True)).scalar_one_or_none()
        if row is None:
            raise DomainViolation(f"no exception #{exception_id}")
        return row

    def remit_claim(self, row: ExceptionRow) -> RemitClaimRow | None:
        return self.session.get(RemitClaimRow, row.remit_claim_id) if row.remit_claim_id else None

    def remittance(self, row: ExceptionRow) -> RemittanceRow | None:
        return self.session.get(RemittanceRow, row.remittance_id) if row.remittance_id else None

    def claim_for(self, row: ExceptionRow) -> ClaimRef | None:
        """The stored claim an exception concerns: the matched claim of its remittance claim, else its CLP01."""
        remit_claim = self.remit_claim(row)
        claim_id = remit_claim.claim_id if remit_claim else None
        if claim_id is None and row.claim_key:
            claim_id = self.session.scalar(select(ClaimKeyRow.claim_id).where(ClaimKeyRow.key == row.claim_key))
        return self.claim_by_id(claim_id) if claim_id is not None else None

    def claim_by_key(self, key: str) -> ClaimRef | None:
        claim_id = self.session.scalar(select(ClaimKeyRow.claim_id).where(ClaimKeyRow.key == key))
        return self.claim_by_id(claim_id) if claim_id is not None else None

    def claim_by_id(self, claim_id: int) -> ClaimRef:
        key, number = self.session.execute(select(ClaimRow.key, AccountRow.number)
                                           .join(AccountRow, AccountRow.id == ClaimRow.account_id)
                                           .where(ClaimRow.id == claim_id)).one()
        return ClaimRef(claim_id, key, number)

    def claim_balance(self, claim_id: int, responsibility: Responsibility) -> Decimal:
        cents = self.session.scalar(select(func.coalesce(func.sum(LedgerRow.amount_cents), 0)).where(
            LedgerRow.claim_id == claim_id, LedgerRow.responsibility == responsibility.value))
        return from_cents(int(cents or 0))

    # -- history, notes, approvals, audit -----------------------------------------------------------------
    def record(self, exception_id: int, source_id: str, action: str, actor: str, amount: Decimal = Decimal(0),
               detail: str = "", origin: str = "") -> None:
        """The item's history row and the audit row, in the action's own transaction (both or neither)."""
        self.session.add(ExceptionActionRow(exception_id=exception_id, source_id=source_id, action=action,
                                            actor=actor, amount_cents=to_cents(amount), detail=detail))
        # The audit detail names the action and amount only: notes and reasons may carry PHI.
        self.session.add(AuditRow(actor=actor, action=f"exception.{action}", message_id=str(exception_id),
                                  queue="", detail=f"amount={amount}" if amount else "", object_type="exception",
                                  source=origin[:64], outcome="ok"))

    def add_note(self, exception_id: int, source_id: str, author: str, body: str) -> None:
        self.session.add(ExceptionNoteRow(exception_id=exception_id, source_id=source_id, author=author, body=body))

    def add_approval(self, exception_id: int, source_id: str, amount: Decimal, responsibility: Responsibility,
                     reason: str, requested_by: str) -> WriteOffApprovalRow:
        row = WriteOffApprovalRow(exception_id=exception_id, source_id=source_id, amount_cents=to_cents(amount),
                                  responsibility=responsibility.value, reason=reason, requested_by=requested_by,
                                  status="pending", comment="")
        self.session.add(row)
        self.session.flush()
        return row

    def approval(self, approval_id: int) -> WriteOffApprovalRow | None:
        return self.session.get(WriteOffApprovalRow, approval_id)

    def decide(self, row: WriteOffApprovalRow, status: str, by: str, comment: str, at: datetime | None = None) -> None:
        row.status, row.decided_by, row.comment, row.decided_at = status, by, comment, at or utcnow()
