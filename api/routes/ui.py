"""The billing workbench web pages (server-rendered Jinja2 + htmx): work queue, exception detail with its
actions, accounts, A/R with inline SVG charts. Forms post the same commands as the JSON routes
(``api/routes/workbench.py``); each rendered form carries a fresh ``form_id`` so a double submit posts once,
and the item's ``version`` so a stale decision is refused (shown as a message, the page reloaded).

``install(app)`` adds both routers, the static files and the 409 mapping for stale items.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from api.deps import HubDep, SessionDep
from api.routes import ar as ar_routes
from api.routes import workbench as wb
from api.security import BILLING, SUPERVISOR, Principal, audit, client_address, require_page
from api.workbench_render import bar_chart, readable_claim
from router.ar import BUCKETS, aging, cash_per_week, kpis
from router.domain.errors import HubError, PermanentError
from router.domain.money import fmt
from router.domain.workbench import DecideWriteOff, StaleItem
from router.workqueue import SORTS, account_detail, exception_detail, pending_approvals, queue_payers, work_queue

HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["money"] = lambda v: "" if v is None else fmt(Decimal(v))
templates.env.filters["day"] = lambda v: "" if v is None else f"{v:%Y-%m-%d}"
templates.env.filters["when"] = lambda v: "" if v is None else f"{v:%Y-%m-%d %H:%M}"
templates.env.filters["label"] = lambda v: str(v or "").replace("_", " ")

router = APIRouter(include_in_schema=False)
BillingPage = Annotated[Principal, Depends(require_page(BILLING, SUPERVISOR))]
SupervisorPage = Annotated[Principal, Depends(require_page(SUPERVISOR))]
BODIES: dict[str, type[BaseModel]] = {
    "assign": wb.AssignBody, "match": wb.MatchBody, "accept-denial": wb.Versioned, "write-off": wb.WriteOffBody,
    "transfer": wb.TransferBody,
    "follow-up": wb.FollowUpBody, "refund": wb.RefundBody, "note": wb.NoteBody,
}
DONE = {"assign": "Item claimed.", "match": "Matched and posted.", "write-off": "Write-off recorded.",
        "accept-denial": "Denial accepted and posted as adjudicated.",
        "transfer": "Transferred to patient responsibility.", "follow-up": "Marked for follow-up.",
        "refund": "Refund posted.", "note": "Note added.", "approved": "Write-off approved and posted.",
        "rejected": "Write-off rejected; the item is open again."}


def page(request: Request, name: str, principal: Principal, context: dict[str, Any], status: int = 200) -> Response:
    return templates.TemplateResponse(request, name, {"user": principal, "csrf_token": principal.csrf_token,
                                                      **context}, status_code=status)


def new_form_id() -> str:
    return uuid.uuid4().hex


@router.get("/ui", response_class=HTMLResponse)
def ui_home() -> RedirectResponse:
    return RedirectResponse("/ui/workqueue", status_code=303)


@router.get("/ui/workqueue", response_class=HTMLResponse)
def ui_queue(request: Request, session: SessionDep, principal: BillingPage, f: wb.Filters) -> Response:
    result = work_queue(session, f)
    approvals = pending_approvals(session) if principal.has(SUPERVISOR) else []
    query = request.url.query
    return page(request, "workbench/queue.html", principal, {
        "nav": "workqueue", "page": result, "f": f, "types": wb.TYPES, "payers": queue_payers(session),
        "sorts": list(SORTS), "approvals": approvals, "query": query,
        "prev_url": _page_url(request, f.page - 1) if f.page > 1 else None,
        "next_url": _page_url(request, f.page + 1) if result.has_next else None})


def _page_url(request: Request, n: int) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"] + [("page", str(n))]
    return "/ui/workqueue?" + "&".join(f"{k}={v}" for k, v in params)


def _detail(request: Request, session: Any, principal: Principal, exception_id: int, *, flash: str | None = None,
            flash_kind: str = "ok", status: int = 200) -> Response:
    session.rollback()  # end any read transaction first: on SQLite it would hold the write lock
    audit(request, principal, "exception.view", "exception", str(exception_id))
    found = exception_detail(session, exception_id)
    if found is None:
        raise HTTPException(404, f"no exception #{exception_id}")
    claim = readable_claim(found["remit_claim"]["raw"]) if found["remit_claim"] else None
    balance = sum((e["amount"] for e in found["claim_ledger"] if e["responsibility"] == "insurance"), Decimal(0))
    return page(request, "workbench/exception.html", principal, {
        "nav": "workqueue", "x": found, "claim": claim, "form_id": new_form_id(), "flash": flash,
        "flash_kind": flash_kind, "insurance_balance": balance,
        "patient_balance": sum((e["amount"] for e in found["claim_ledger"] if e["responsibility"] == "patient"),
                               Decimal(0)),
        "can_approve": principal.has(SUPERVISOR)}, status)


@router.get("/ui/exceptions/{exception_id}", response_class=HTMLResponse)
def ui_exception(exception_id: int, request: Request, session: SessionDep, principal: BillingPage,
                 done: str | None = None) -> Response:
    return _detail(request, session, principal, wb._id(exception_id), flash=DONE.get(done or ""))


@router.post("/ui/exceptions/{exception_id}/approvals/{approval_id}", response_class=HTMLResponse)
async def ui_decide(exception_id: int, approval_id: int, request: Request, hub: HubDep, session: SessionDep,
                    principal: SupervisorPage) -> Response:
    form = dict((await request.form()).items())
    try:
        body = wb.DecisionBody.model_validate({**form, "approve": form.get("decision") == "approve"})
        command = DecideWriteOff(wb.source_id(body.form_id), wb._id(exception_id), body.version,
                                    principal.username, wb._id(approval_id), body.approve, body.comment,
                                    origin=client_address(request))
        wb.perform(hub, command)
    except (ValidationError, HubError) as exc:
        return _failed(request, session, principal, exception_id, exc)
    outcome = "approved" if body.approve else "rejected"
    return RedirectResponse(f"/ui/exceptions/{exception_id}?done={outcome}", status_code=303)


@router.post("/ui/exceptions/{exception_id}/{kind}", response_class=HTMLResponse)
async def ui_act(exception_id: int, kind: str, request: Request, hub: HubDep, session: SessionDep,
                 principal: BillingPage) -> Response:
    if kind not in BODIES:
        raise HTTPException(404, f"no action {kind!r}")
    form = {k: v for k, v in (await request.form()).items() if k != "csrf_token"}
    if kind == "assign" and "assignee" not in form:
        form["assignee"] = principal.username
    try:
        body = BODIES[kind].model_validate({k: v for k, v in form.items() if v != "" or k == "assignee"})
        command = wb.command_for(hub, kind, wb._id(exception_id), body, principal, client_address(request),
                                 wb.source_id(getattr(body, "form_id", None)))
        wb.perform(hub, command)
    except (ValidationError, HubError) as exc:
        return _failed(request, session, principal, exception_id, exc)
    return RedirectResponse(f"/ui/exceptions/{exception_id}?done={kind}", status_code=303)


def _failed(request: Request, session: Any, principal: Principal, exception_id: int, exc: Exception) -> Response:
    if isinstance(exc, ValidationError):
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _detail(request, session, principal, exception_id, flash=message, flash_kind="error", status=422)
    assert isinstance(exc, HubError)
    status = 409 if isinstance(exc, StaleItem) else 422 if isinstance(exc, PermanentError) else 503
    return _detail(request, session, principal, exception_id, flash=exc.reason, flash_kind="error", status=status)


@router.get("/ui/accounts", response_class=HTMLResponse)
def ui_accounts(request: Request, principal: BillingPage, q: str = "") -> Response:
    if q.strip():
        return RedirectResponse(f"/ui/accounts/{q.strip()[:64]}", status_code=303)
    return page(request, "workbench/accounts.html", principal, {"nav": "accounts"})


@router.get("/ui/accounts/{account}", response_class=HTMLResponse)
def ui_account(account: str, request: Request, session: SessionDep, principal: BillingPage) -> Response:
    audit(request, principal, "account.view", "account", account[:64])  # before the read (SQLite)
    found = account_detail(session, account[:64])
    if found is None:
        return page(request, "workbench/accounts.html", principal,
                    {"nav": "accounts", "flash": "No such account.", "flash_kind": "error"}, 404)
    return page(request, "workbench/account.html", principal, {"nav": "accounts", "a": found})


@router.get("/ui/ar", response_class=HTMLResponse)
def ui_ar(request: Request, session: SessionDep, principal: BillingPage, as_of: date | None = None,
          days: int = 90) -> Response:
    when = ar_routes._as_of(as_of)
    days = min(max(days, 1), 3660)
    report = aging(session, when, 200)
    totals = [sum((r.buckets[i] for r in report["by_payer"]), Decimal(0)) + report["patient_buckets"][i]
              for i in range(len(BUCKETS))]
    cash = cash_per_week(session, when)
    return page(request, "workbench/ar.html", principal, {
        "nav": "ar", "as_of": when, "days": days, "aging": report, "k": kpis(session, when, days),
        "buckets": BUCKETS, "cash": cash,
        "aging_chart": bar_chart("A/R by age (insurance and patient)", BUCKETS, totals),
        "cash_chart": bar_chart("Cash collected per week", [f"{c['week']:%m-%d}" for c in cash],
                                [c["total"] for c in cash], colors=("#1b6ac9",))})


def _stale(_request: Request, exc: StaleItem) -> JSONResponse:
    return JSONResponse({"detail": exc.reason, "location": exc.location}, status_code=409)


def install(app: FastAPI) -> None:
    """Mount the workbench: JSON routes, pages, static files (htmx, CSS) and the 409 for stale items."""
    app.include_router(wb.router)
    app.include_router(ar_routes.router)
    app.include_router(router)
    if not any(getattr(r, "path", None) == "/static" for r in app.routes):
        app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(StaleItem, _stale)  # type: ignore[arg-type]
