"""IT operations and audit web pages (server-rendered Jinja2 + htmx): queues, dead letters, message trace,
audit search. Same data as the JSON routes in ``api/routes/ops.py``; forms carry the session's CSRF token."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api import ops
from api.deps import HubDep, SessionDep
from api.security import AUDITOR, BILLING, IT_OPS, SUPERVISOR, Principal, audit, require_page, security_for
from connectors.dead_letters import DeadLetter
from connectors.rabbitmq.parking import NotParked
from router.trace import trace

templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
router = APIRouter(prefix="/ops", include_in_schema=False)
OpsPage = Annotated[Principal, Depends(require_page(IT_OPS, SUPERVISOR))]
TracePage = Annotated[Principal, Depends(require_page(IT_OPS, BILLING, SUPERVISOR))]
AuditorPage = Annotated[Principal, Depends(require_page(AUDITOR))]


def _page(request: Request, name: str, principal: Principal, nav: str, context: dict[str, Any],
          status: int = 200) -> Response:
    return templates.TemplateResponse(request, name, {"user": principal, "csrf_token": principal.csrf_token,
                                                      "nav": nav, **context}, status_code=status)


def _shown(letter: DeadLetter, principal: Principal) -> DeadLetter:
    if principal.may_see_phi:
        return letter
    return DeadLetter(**{**letter.__dict__, "reason": ops.redacted(letter.reason), "body": None})


@router.get("/queues")
def queues_page(request: Request, hub: HubDep, principal: OpsPage, fragment: bool = False) -> Response:
    found, error = ops.queues(hub)
    data = {"mode": "rabbitmq" if hub.settings.amqp_url else "embedded", "error": error, "queues": found}
    if fragment:  # htmx polling replaces the table only
        return templates.TemplateResponse(request, "ops/_queues_table.html", {"data": data})
    return _page(request, "ops/queues.html", principal, "queues", {"data": data})


@router.get("/dlq")
def dlq_page(request: Request, hub: HubDep, principal: OpsPage, done: str | None = None, id: str | None = None,
             outcome: str | None = None, error: str | None = None) -> Response:
    letters = [_shown(d, principal) for d in ops.dead_letters(hub).list(500)]
    flash, kind = None, "ok"
    if done in ("replayed", "discarded") and id:
        flash = f"{done.capitalize()} {id}" + (f": {outcome}" if outcome else "") + "."
    if error:
        flash, kind = error, "error"
    return _page(request, "ops/dlq.html", principal, "dlq", {"letters": letters, "flash": flash,
                                                             "flash_kind": kind})


@router.get("/dlq/{letter_id}")
def dlq_detail_page(letter_id: str, request: Request, hub: HubDep, principal: OpsPage, body: bool = False) -> Response:
    if body and not principal.may_see_phi:
        audit(request, principal, "dlq.show_body", "dead_letter", letter_id, "role may not see PHI", "denied")
        raise HTTPException(403, "the payload may contain PHI; your role may see metadata only")
    try:
        record = ops.recorder(request, principal, "dlq.show_body") if body else None
        letter = ops.dead_letters(hub).find(letter_id, record)
    except NotParked as exc:
        raise HTTPException(404, exc.reason) from exc
    text = None
    if body and letter.body is not None:
        try:
            text = letter.body.decode("utf-8").replace("\r", "\n")
        except UnicodeDecodeError:
            text = base64.b64encode(letter.body).decode()
    return _page(request, "ops/dlq_detail.html", principal, "dlq", {"d": _shown(letter, principal), "body": text})


def _after(done: str, letter_id: str, outcome: str = "") -> RedirectResponse:
    return RedirectResponse("/ops/dlq?" + urlencode({"done": done, "id": letter_id, "outcome": outcome}),
                            status_code=303)


@router.post("/dlq/{letter_id}/replay")
def dlq_replay(letter_id: str, request: Request, hub: HubDep, principal: OpsPage) -> Response:
    try:
        result = ops.dead_letters(hub).replay(letter_id, ops.recorder(request, principal, "dlq.replay"))
    except NotParked as exc:
        return RedirectResponse(f"/ops/dlq?error={quote(exc.reason)}", status_code=303)
    return _after("replayed", letter_id, result.outcome)


@router.post("/dlq/{letter_id}/discard")
def dlq_discard(letter_id: str, request: Request, hub: HubDep, principal: OpsPage) -> Response:
    try:
        ops.dead_letters(hub).discard(letter_id, ops.recorder(request, principal, "dlq.discard"))
    except NotParked as exc:
        return RedirectResponse(f"/ops/dlq?error={quote(exc.reason)}", status_code=303)
    return _after("discarded", letter_id)


@router.get("/trace")
def trace_page(request: Request, session: SessionDep, principal: TracePage, q: str | None = None) -> Response:
    result = None
    if q and q.strip():
        query = q.strip()[:200]
        audit(request, principal, "trace.view", "trace", query)  # before the read: see ``audit``
        result = trace(session, query)
    return _page(request, "ops/trace.html", principal, "trace", {"q": q, "result": result})


@router.get("/audit")
def audit_page(request: Request, principal: AuditorPage, actor: str | None = None, action: str | None = None,
               object_id: str | None = None, outcome: str | None = None, since: datetime | None = None) -> Response:
    f = {"actor": actor or None, "action": action or None, "object_id": object_id or None, "outcome": outcome or None}
    audit(request, principal, "audit.search", "audit_log", f["actor"] or f["object_id"] or "*",
          f"action={f['action'] or ''} outcome={f['outcome'] or ''}")
    found = security_for(request.app).audit_log.search(actor=f["actor"], action=f["action"], object_id=f["object_id"],
                                                       outcome=f["outcome"], since=since, limit=200)
    return _page(request, "ops/audit.html", principal, "audit", {"entries": [r for _, r in found], "f": f})
