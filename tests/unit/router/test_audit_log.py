"""The audit log is append-only in the database itself, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.bootstrap import Hub
from router.adapters.audit import AuditLog, AuditRecord


def test_audit_records_are_appended_and_can_be_neither_updated_nor_deleted(hub: Hub, uid: str) -> None:
    log = AuditLog(hub.sessions)
    log.append(AuditRecord("alice", "dlq.discard", f"m-{uid}", "rcmhub.router.parking", "reason=DecodeError"))
    log.append(AuditRecord("bob", "dlq.replay", f"m-{uid}", "rcmhub.router.parking"))
    assert [(r.actor, r.action) for r in log.for_message(f"m-{uid}")] == [("alice", "dlq.discard"),
                                                                            ("bob", "dlq.replay")]
    for sql in ("UPDATE audit_log SET actor = 'mallory' WHERE message_id = :m",
                "DELETE FROM audit_log WHERE message_id = :m"):
        with pytest.raises(DBAPIError, match="append-only"), hub.engine.begin() as conn:
            conn.execute(text(sql), {"m": f"m-{uid}"})
    assert len(log.for_message(f"m-{uid}")) == 2
