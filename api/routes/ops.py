"""IT operations JSON under ``/api/v1/ops`` (queues, dead letters, message trace), the auditors' search under
``/api/v1/audit``, and Prometheus ``/metrics``. Raw payloads only for a role that may see PHI, always audited."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from api import ops
from api.deps import HubDep, SessionDep
from api.routes import ops_pages
from api.security import (
    AUDITOR,
    AUTH_RESPONSES,
    BILLING,
    IT_OPS,
    SUPERVISOR,
    Principal,
    audit,
    require,
    security_for,
)
from connectors.dead_letters import DeadLetter
from connectors.rabbitmq.parking import NotParked
from router.trace import trace

router = APIRouter()
api = APIRouter(prefix="/api/v1/ops", tags=["operations"])
OpsDep = Annotated[Principal, Depends(require(IT_OPS, SUPERVISOR))]
TraceDep = Annotated[Principal, Depends(require(IT_OPS, BILLING, SUPERVISOR))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such dead letter"}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"description": "the broker or database is unavailable"}}


class Queue(BaseModel):
    name: str
    role: str
    kind: str
    depth: int
    ready: int | None
    unacked: int | None
    consumers: int | None
    publish_rate: float | None
    deliver_rate: float | None
    oldest_age_seconds: float | None
    source: str


class Queues(BaseModel):
    mode: str  # embedded or rabbitmq
    error: str | None
    queues: list[Queue]


class DeadLetterOut(BaseModel):
    id: str
    queue: str
    origin: str
    type: str
    reason: str
    attempts: int
    at: datetime | None
    size: int
    source: str
    body: str | None = None  # only for a PHI-permitted role that asked for it
    body_base64: str | None = None


class DeadLetters(BaseModel):
    dead_letters: list[DeadLetterOut]


class Replayed(BaseModel):
    dead_letter: DeadLetterOut
    outcome: str
    detail: str


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    queue: str
    source: str
    outcome: str
    detail: str


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    limit: int
    offset: int


def _out(letter: DeadLetter, principal: Principal, with_body: bool = False) -> DeadLetterOut:
    out = DeadLetterOut(**letter.metadata())
    if not principal.may_see_phi:
        out.reason = ops.redacted(out.reason)
    if with_body and letter.body is not None:
        try:
            out.body = letter.body.decode("utf-8")
        except UnicodeDecodeError:  # poison can be any bytes: keep them exact
            out.body_base64 = base64.b64encode(letter.body).decode()
    return out


@api.get("/queues", response_model=Queues, responses=AUTH_RESPONSES)
def get_queues(hub: HubDep, _principal: OpsDep) -> Queues:
    """Depth, ready/unacked, rates, consumers and oldest-message age per queue (same shape on either bus)."""
    found, error = ops.queues(hub)
    return Queues(mode="rabbitmq" if hub.settings.amqp_url else "embedded", error=error,
                  queues=[Queue(**q.as_json()) for q in found])


@api.get("/dead-letters", response_model=DeadLetters, responses={**AUTH_RESPONSES, **UNAVAILABLE})
def list_dead_letters(hub: HubDep, principal: OpsDep,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> DeadLetters:
    """Metadata only (queue, origin, id, type, reason, attempts, time, size), never a body."""
    return DeadLetters(dead_letters=[_out(d, principal) for d in ops.dead_letters(hub).list(limit)])


@api.get("/dead-letters/{letter_id}", response_model=DeadLetterOut, responses={
    **AUTH_RESPONSES, **NOT_FOUND, **UNAVAILABLE,
    403: {"description": "the body was asked for by a role that may not see PHI, or role/CSRF refused (audited)"}})
def get_dead_letter(letter_id: str, hub: HubDep, request: Request, principal: OpsDep,
                    body: bool = False) -> DeadLetterOut:
    """One dead letter's metadata; with ``body=true`` its payload, for a PHI-permitted role only (audited)."""
    if body and not principal.may_see_phi:
        audit(request, principal, "dlq.show_body", "dead_letter", letter_id, "role may not see PHI", "denied")
        raise HTTPException(403, "the payload may contain PHI; your role may see metadata only")
    source = ops.dead_letters(hub)
    try:
        letter = source.find(letter_id, ops.recorder(request, principal, "dlq.show_body") if body else None)
    except NotParked as exc:
        raise HTTPException(404, exc.reason) from exc
    return _out(letter, principal, with_body=body)


@api.post("/dead-letters/{letter_id}/replay", response_model=Replayed, responses={
    **AUTH_RESPONSES, **NOT_FOUND, **UNAVAILABLE})
def replay_dead_letter(letter_id: str, hub: HubDep, request: Request, principal: OpsDep) -> Replayed:
    """Send it again: to its original work queue (RabbitMQ) or through the intake (embedded). Audited first."""
    try:
        result = ops.dead_letters(hub).replay(letter_id, ops.recorder(request, principal, "dlq.replay"))
    except NotParked as exc:
        raise HTTPException(404, exc.reason) from exc
    return Replayed(dead_letter=_out(result.letter, principal), outcome=result.outcome, detail=result.detail)


@api.post("/dead-letters/{letter_id}/discard", response_model=DeadLetterOut, responses={
    **AUTH_RESPONSES, **NOT_FOUND, **UNAVAILABLE})
def discard_dead_letter(letter_id: str, hub: HubDep, request: Request, principal: OpsDep) -> DeadLetterOut:
    """Give up on it (audited; the audit row keeps who, when, and why it had failed)."""
    try:
        letter = ops.dead_letters(hub).discard(letter_id, ops.recorder(request, principal, "dlq.discard"))
        return _out(letter, principal)
    except NotParked as exc:
        raise HTTPException(404, exc.reason) from exc


@api.get("/trace", responses=AUTH_RESPONSES)
def get_trace(session: SessionDep, request: Request, principal: TraceDep,
              q: Annotated[str, Query(min_length=1, max_length=200, description="control id (MSH-10, ISA13, ST02, "
                                      "TRN02, Bundle id), account number or claim key (CLP01)")],
              limit: Annotated[int, Query(ge=1, le=2000)] = 500) -> dict[str, Any]:
    """Receipt -> postings -> exceptions -> outbound deliveries, with timestamps and statuses (no payloads)."""
    audit(request, principal, "trace.view", "trace", q)  # before the read: see ``audit``
    return trace(session, q, limit)


audit_api = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@audit_api.get("", response_model=AuditPage, responses=AUTH_RESPONSES)
def search_audit(request: Request, principal: Annotated[Principal, Depends(require(AUDITOR))],
                 actor: str | None = None, action: Annotated[str | None, Query(description="exact, or a prefix "
                                                                                      "ending in *")] = None,
                 object_id: str | None = None, object_type: str | None = None, outcome: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> AuditPage:
    """Who did what, when, from where, to which object (newest first). Auditors' searches are audited too."""
    security = security_for(request.app)
    audit(request, principal, "audit.search", "audit_log", actor or object_id or "*",
          f"action={action or ''} type={object_type or ''} outcome={outcome or ''}")
    found = security.audit_log.search(actor=actor, action=action, object_id=object_id, object_type=object_type,
                                      outcome=outcome, since=since, until=until, limit=limit, offset=offset)
    return AuditPage(entries=[AuditEntry(id=i, at=r.at, actor=r.actor, action=r.action, object_type=r.object_type,
                                         object_id=r.message_id, queue=r.queue, source=r.source, outcome=r.outcome,
                                         detail=r.detail) for i, r in found], limit=limit, offset=offset)


metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", response_class=Response, responses={
    200: {"description": "Prometheus text exposition", "content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request) -> Response:
    """Prometheus metrics (no PHI in any label): messages in/out, ACK latency, postings, exceptions, queues."""
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = request.app.state.metrics_registry = ops.registry_for(request.app.state.hub)
    return Response(generate_latest(REGISTRY) + generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


router.include_router(api)
router.include_router(audit_api)
router.include_router(metrics_router)
router.include_router(ops_pages.router)
