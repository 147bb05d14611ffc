"""Message trace (read side): from receipt through postings to outbound deliveries, for IT operations.

A query matches a control id (MSH-10, ISA13, Bundle id; ST02 and TRN02 of a remittance), an account number or
a claim key (CLP01 / PV1-19). The answer is metadata only: never a raw message or a payload.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, defer
from sqlalchemy.sql.elements import ColumnElement

from router.adapters.orm import (
    MESSAGE_ARRIVAL,
    AccountRow,
    ClaimKeyRow,
    ClaimRow,
    ExceptionRow,
    LedgerRow,
    MessageRow,
    OutboxRow,
    RemittanceRow,
)
from router.adapters.orm_outbound import DeliveryRow
from router.domain.money import fmt, from_cents

LIMIT = 500


def _at(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _source_of(message: MessageRow) -> str | None:
    """The commands' source id prefix for a stored message (``hl7:{MSH-4}:{MSH-10}``)."""
    if message.format == "hl7v2" and message.control_id:
        return f"hl7:{message.sender}:{message.control_id}"
    return None


def trace(session: Session, query: str, limit: int = LIMIT) -> dict[str, Any]:
    """Everything the hub did with what ``query`` names, each part newest-last, plus one merged timeline."""
    q = query.strip()
    messages = list(session.scalars(
        select(MessageRow).options(defer(MessageRow.raw))
        .where(or_(MessageRow.control_id == q, MessageRow.account == q, MessageRow.claim_key == q))
        .order_by(*MESSAGE_ARRIVAL).limit(limit)))
    remittances = list(session.scalars(select(RemittanceRow).where(or_(
        RemittanceRow.trace_number == q, RemittanceRow.control_number == q, RemittanceRow.source_id == q))
        .order_by(RemittanceRow.id).limit(limit)))
    claim_ids = set(session.scalars(select(ClaimKeyRow.claim_id).where(ClaimKeyRow.key == q)))
    claim_ids |= set(session.scalars(select(ClaimRow.id).where(ClaimRow.key == q)))
    account_id = session.scalar(select(AccountRow.id).where(AccountRow.number == q))

    sources = {s for s in map(_source_of, messages) if s}
    conditions: list[ColumnElement[bool]] = [LedgerRow.source_id.in_(sources)] if sources else []
    conditions += [LedgerRow.source_id.startswith(f"{r.source_id}:", autoescape=True) for r in remittances]
    conditions += [LedgerRow.source_id == r.source_id for r in remittances]
    if claim_ids:
        conditions.append(LedgerRow.claim_id.in_(claim_ids))
    if account_id is not None:
        conditions.append(LedgerRow.account_id == account_id)
    postings: list[Any] = []
    if conditions:
        postings = list(session.execute(
            select(LedgerRow.id, LedgerRow.kind, LedgerRow.responsibility, LedgerRow.amount_cents,
                   LedgerRow.source_id, LedgerRow.posted_at, LedgerRow.trace_number, AccountRow.number,
                   ClaimRow.key)
            .join(AccountRow, AccountRow.id == LedgerRow.account_id)
            .outerjoin(ClaimRow, ClaimRow.id == LedgerRow.claim_id)
            .where(or_(*conditions)).order_by(LedgerRow.id).limit(limit)))

    exception_conditions: list[ColumnElement[bool]] = [ExceptionRow.claim_key == q, ExceptionRow.account == q]
    if remittances:
        exception_conditions.append(ExceptionRow.remittance_id.in_([r.id for r in remittances]))
    exceptions = list(session.scalars(select(ExceptionRow).where(or_(*exception_conditions))
                                      .order_by(ExceptionRow.id).limit(limit)))

    # Outbox rows carry the source id of the command that wrote them (a posting's source, or a prefix of it).
    posted_sources = {p.source_id for p in postings} | sources | {r.source_id for r in remittances}
    outbox_ids: list[int] = []
    if posted_sources:
        outbox_ids = list(session.scalars(select(OutboxRow.id).where(OutboxRow.source_id.in_(posted_sources))
                                          .order_by(OutboxRow.id).limit(limit)))
    deliveries = list(session.scalars(
        select(DeliveryRow).options(defer(DeliveryRow.payload)).where(DeliveryRow.outbox_id.in_(outbox_ids))
        .order_by(DeliveryRow.id).limit(limit))) if outbox_ids else []

    result: dict[str, Any] = {
        "query": q,
        "messages": [{"id": m.id, "received_at": _at(m.received_at), "channel": m.channel, "format": m.format,
                      "type": m.message_type, "sender": m.sender, "control_id": m.control_id, "status": m.status,
                      "error_location": m.error_location, "account": m.account, "claim": m.claim_key,
                      "processed_at": _at(m.processed_at)} for m in messages],
        "remittances": [{"id": r.id, "source_id": r.source_id, "trace_number": r.trace_number,
                         "control_number": r.control_number, "payer": r.payer_id, "status": r.status,
                         "payment_amount": fmt(from_cents(r.payment_cents)), "received_at": _at(r.received_at)}
                        for r in remittances],
        "postings": [{"id": p.id, "kind": p.kind, "responsibility": p.responsibility,
                      "amount": fmt(from_cents(p.amount_cents)), "source_id": p.source_id,
                      "posted_at": _at(p.posted_at), "account": p.number, "claim": p.key} for p in postings],
        "exceptions": [{"id": x.id, "type": x.type, "status": x.status, "claim": x.claim_key, "account": x.account,
                        "amount": fmt(from_cents(x.amount_cents)), "created_at": _at(x.created_at),
                        "resolved_at": _at(x.resolved_at)} for x in exceptions],
        "deliveries": [{"id": d.id, "destination": d.destination, "format": d.format, "event_type": d.event_type,
                        "status": d.status, "attempts": d.attempts, "summary": d.summary,
                        "created_at": _at(d.created_at), "delivered_at": _at(d.delivered_at)} for d in deliveries],
    }
    result["timeline"] = _timeline(result)
    return result


def _timeline(found: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for m in found["messages"]:
        steps.append({"at": m["received_at"], "stage": "received", "ref": f"message {m['id']}",
                      "what": f"{m['format']} {m['type']} {m['control_id']} via {m['channel']}",
                      "status": m["status"]})
    for r in found["remittances"]:
        steps.append({"at": r["received_at"], "stage": "remittance", "ref": r["source_id"],
                      "what": f"trace {r['trace_number']} {r['payment_amount']}", "status": r["status"]})
    for p in found["postings"]:
        steps.append({"at": p["posted_at"], "stage": "posted", "ref": p["source_id"],
                      "what": f"{p['kind']} {p['responsibility']} {p['amount']}", "status": "posted"})
    for x in found["exceptions"]:
        steps.append({"at": x["created_at"], "stage": "exception", "ref": f"exception {x['id']}",
                      "what": f"{x['type']} {x['amount']}", "status": x["status"]})
    for d in found["deliveries"]:
        steps.append({"at": d["delivered_at"] or d["created_at"], "stage": "delivery", "ref": f"delivery {d['id']}",
                      "what": f"{d['format']} to {d['destination']}", "status": d["status"]})
    return sorted(steps, key=lambda s: s["at"] or "")
