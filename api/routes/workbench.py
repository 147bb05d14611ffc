"""The billing workbench as JSON (``/api/v1/workqueue``, ``/api/v1/workbench/accounts``): the same data and
actions as the web pages (``api/routes/ui.py``), for billing roles only; A/R is in ``api/routes/ar.py``.

Actions become workbench commands on the hub's in-process bus (the user waits for the outcome). A client
may send ``form_id`` (or an ``Idempotency-Key`` header): the same id twice posts once. A stale ``version``
is refused with 409 (someone else acted first).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.bootstrap import Hub
from api.deps import HubDep, SessionDep
from api.security import AUTH_RESPONSES, BILLING, SUPERVISOR, Principal, audit, client_address, require
from api.workbench_render import jsonable
from mappings.x12.held_claim import remit_claim_from_raw
from router.bus import Outcome
from router.domain.commands import Command
from router.domain.errors import DomainViolation
from router.domain.ledger import Responsibility
from router.domain.workbench import (
    AcceptDenial,
    Action,
    AddNote,
    AssignException,
    DecideWriteOff,
    MarkForFollowUp,
    MatchException,
    RefundCredit,
    TransferToPatient,
    WriteOff,
)
from router.workqueue import (
    SORTS,
    QueueFilter,
    account_detail,
    exception_detail,
    held_claim_raw,
    pending_approvals,
    work_queue,
)

router = APIRouter(tags=["workbench"])
Billing = Annotated[Principal, Depends(require(BILLING, SUPERVISOR))]
Supervisor = Annotated[Principal, Depends(require(SUPERVISOR))]
FORM_ID = r"^[A-Za-z0-9_-]{8,64}$"
AGE = r"^[0-9]{0,5}$"
AMOUNT = r"^([0-9]{1,10}(\.[0-9]{1,2})?)?$"
Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    404: {"description": "no such exception"},
    409: {"description": "the item changed since the given version (another user acted first)"},
    422: {"description": "the action breaks a rule (amount above the balance, wrong state, ...); detail says why"},
}
TYPES = ("unmatched_claim", "unmatched_line", "charge_mismatch", "unbalanced_remittance", "duplicate",
         "reversal_without_original", "secondary_before_primary", "unlinked_plb", "denial", "credit_balance",
         "not_our_claim", "unknown_status")


class Versioned(BaseModel):
    version: int = Field(ge=1, le=2**31 - 1, description="the item's version the user saw")
    form_id: str | None = Field(default=None, pattern=FORM_ID, description="idempotency key of this submission")


class AssignBody(Versioned):
    assignee: str | None = Field(default=None, max_length=120, description="default: the caller; '' unassigns")


class MatchBody(Versioned):
    claim: str = Field(min_length=1, max_length=64, description="the claim key to post the held claim to")


class WriteOffBody(Versioned):
    amount: Money
    reason: str = Field(min_length=1, max_length=500)
    responsibility: Literal["insurance", "patient"] = "insurance"


class DecisionBody(Versioned):
    approve: bool
    comment: str = Field(default="", max_length=500)


class TransferBody(Versioned):
    amount: Money
    reason: str = Field(default="", max_length=500)


class FollowUpBody(Versioned):
    action: Literal["appeal", "rebill"]
    reason: str = Field(default="", max_length=500)


class RefundBody(Versioned):
    amount: Money
    responsibility: Literal["insurance", "patient"] = "insurance"
    reason: str = Field(default="", max_length=500)


class NoteBody(BaseModel):
    body: str = Field(min_length=1, max_length=4000)
    form_id: str | None = Field(default=None, pattern=FORM_ID)


def queue_filter(status: Annotated[Literal["open", "pending_approval", "resolved", "all"], Query()] = "open",
                 type: Annotated[list[Literal[("", *TYPES)]] | None, Query()] = None,  # type: ignore[valid-type]
                 payer: Annotated[str, Query(max_length=80)] = "",
                 min_age: Annotated[str, Query(pattern=AGE, description="days; empty: any")] = "",
                 max_age: Annotated[str, Query(pattern=AGE, description="days; empty: any")] = "",
                 min_amount: Annotated[str, Query(pattern=AMOUNT, description="e.g. 100.00; empty: any")] = "",
                 max_amount: Annotated[str, Query(pattern=AMOUNT, description="e.g. 100.00; empty: any")] = "",
                 assignee: Annotated[str, Query(max_length=120)] = "",
                 q: Annotated[str, Query(max_length=64)] = "",
                 sort: Annotated[Literal[tuple(SORTS)], Query()] = "oldest",  # type: ignore[valid-type]
                 page: Annotated[int, Query(ge=1, le=100_000)] = 1,
                 per_page: Annotated[int, Query(ge=1, le=500)] = 50) -> QueueFilter:
    # Empty strings mean "any": a plain HTML form (and htmx) sends every field, filled or not.
    return QueueFilter(status, tuple(t for t in type or () if t), payer.strip(),
                       int(min_age) if min_age else None, int(max_age) if max_age else None,
                       Decimal(min_amount) if min_amount else None, Decimal(max_amount) if max_amount else None,
                       assignee.strip(), q.strip(), sort, page, per_page)


Filters = Annotated[QueueFilter, Depends(queue_filter)]


def perform(hub: Hub, command: Command) -> Outcome:
    assert hub.local_bus is not None, "build() always makes the in-process bus"
    return hub.local_bus.handle(command)


def source_id(form_id: str | None, key: str | None = None) -> str:
    return f"wb:{form_id or key or uuid.uuid4().hex}"


def build(kind: str, exception_id: int, body: BaseModel, principal: Principal, origin: str, sid: str,
          session: Any) -> Command:
    """The workbench command for one action (shared by the JSON routes and the web forms)."""
    common: dict[str, Any] = {"source_id": sid, "exception_id": exception_id, "actor": principal.username,
                              "origin": origin}
    data = body.model_dump()
    if kind == "note":
        return AddNote(**common, expected_version=0, body=data["body"])
    common["expected_version"] = data["version"]
    if kind == "assign":
        assignee = principal.username if data["assignee"] is None else data["assignee"]
        return AssignException(**common, assignee=assignee)
    if kind == "match":
        raw = held_claim_raw(session, exception_id)
        if not raw:
            raise DomainViolation(f"exception #{exception_id} holds no remittance claim to match")
        return MatchException(**common, claim_key=data["claim"], remit_claim=remit_claim_from_raw(raw))
    if kind == "accept-denial":
        raw = held_claim_raw(session, exception_id)
        if not raw:
            raise DomainViolation(f"exception #{exception_id} holds no remittance claim to post")
        return AcceptDenial(**common, remit_claim=remit_claim_from_raw(raw))
    if kind == "write-off":
        return WriteOff(**common, amount=data["amount"], reason=data["reason"],
                        responsibility=Responsibility(data["responsibility"]))
    if kind == "transfer":
        return TransferToPatient(**common, amount=data["amount"], reason=data["reason"])
    if kind == "follow-up":
        return MarkForFollowUp(**common, action=Action(data["action"]), reason=data["reason"])
    if kind == "refund":
        return RefundCredit(**common, amount=data["amount"], responsibility=Responsibility(data["responsibility"]),
                            reason=data["reason"])
    raise ValueError(kind)


def _result(hub: Hub, exception_id: int, outcome: Outcome) -> JSONResponse:
    with hub.sessions() as session:
        found = exception_detail(session, exception_id)
    assert found is not None
    return JSONResponse({"id": exception_id, "status": found["status"], "version": found["version"],
                         "duplicate": outcome.duplicate, "events": [type(e).__name__ for e in outcome.events]})


def command_for(hub: Hub, kind: str, exception_id: int, body: BaseModel, principal: Principal, origin: str,
                sid: str) -> Command:
    """Read what the command needs in a short session, closed before the command runs (on SQLite every
    transaction holds the write lock, so a read left open would block the command's own transaction)."""
    with hub.sessions() as session:
        if exception_detail(session, exception_id) is None:
            raise HTTPException(404, f"no exception #{exception_id}")
        return build(kind, exception_id, body, principal, origin, sid, session)


def _act(kind: str, exception_id: int, body: BaseModel, principal: Principal, request: Request, hub: Hub,
         key: str | None) -> JSONResponse:
    command = command_for(hub, kind, exception_id, body, principal, client_address(request),
                          source_id(getattr(body, "form_id", None), key))
    return _result(hub, exception_id, perform(hub, command))


IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=FORM_ID)]


@router.get("/api/v1/workqueue", responses=AUTH_RESPONSES)
def get_queue(session: SessionDep, principal: Billing, f: Filters) -> dict[str, Any]:
    """One page of the exception work queue (``has_next`` says whether another follows)."""
    page = work_queue(session, f)
    return {"items": jsonable(page.items), "page": page.page, "per_page": page.per_page, "has_next": page.has_next}


@router.get("/api/v1/workqueue/approvals", responses=AUTH_RESPONSES)
def get_approvals(session: SessionDep, principal: Billing) -> list[dict[str, Any]]:
    """Write-offs waiting for a billing supervisor."""
    return jsonable(pending_approvals(session))  # type: ignore[no-any-return]


@router.get("/api/v1/workqueue/{exception_id}",
            responses={**AUTH_RESPONSES, 404: {"description": "no such item"}})
def get_item(exception_id: int, request: Request, session: SessionDep, principal: Billing) -> dict[str, Any]:
    """One exception: remittance claim (raw segments), candidates, the claim's ledger, history, notes."""
    audit(request, principal, "exception.view", "exception", str(_id(exception_id)))  # before the read (SQLite)
    found = exception_detail(session, exception_id)
    if found is None:
        raise HTTPException(404, f"no exception #{exception_id}")
    return jsonable(found)  # type: ignore[no-any-return]


def _id(exception_id: int) -> int:
    if not 0 < exception_id < 2**31:
        raise HTTPException(404, f"no exception #{exception_id}")
    return exception_id


@router.post("/api/v1/workqueue/{exception_id}/assign", responses=ACTION_RESPONSES)
def post_assign(exception_id: int, body: AssignBody, request: Request, hub: HubDep, principal: Billing,
                key: IdemKey = None) -> JSONResponse:
    """Claim the item (or give it to ``assignee``)."""
    return _act("assign", _id(exception_id), body, principal, request, hub, key)


@router.post("/api/v1/workqueue/{exception_id}/match", responses=ACTION_RESPONSES)
def post_match(exception_id: int, body: MatchBody, request: Request, hub: HubDep,
               principal: Billing, key: IdemKey = None) -> JSONResponse:
    """Post the held remittance claim to ``claim`` by the automatic posting rules."""
    return _act("match", _id(exception_id), body, principal, request, hub, key)


@router.post("/api/v1/workqueue/{exception_id}/accept-denial", responses=ACTION_RESPONSES)
def post_accept_denial(exception_id: int, body: Versioned, request: Request, hub: HubDep,
                       principal: Billing, key: IdemKey = None) -> JSONResponse:
    """Post a held denial as the payer adjudicated it (no appeal): its payment, CO adjustments and PR to the
    patient post, and the cash it held counts as posted."""
    return _act("accept-denial", _id(exception_id), body, principal, request, hub, key)


@router.post("/api/v1/workqueue/{exception_id}/write-off", responses=ACTION_RESPONSES)
def post_write_off(exception_id: int, body: WriteOffBody, request: Request, hub: HubDep,
                   principal: Billing, key: IdemKey = None) -> JSONResponse:
    """Write off; above the configured threshold the item waits for a supervisor (status pending_approval)."""
    return _act("write-off", _id(exception_id), body, principal, request, hub, key)


@router.post("/api/v1/workqueue/{exception_id}/approvals/{approval_id}", responses=ACTION_RESPONSES)
def post_decision(exception_id: int, approval_id: int, body: DecisionBody, request: Request, hub: HubDep,
                  session: SessionDep, principal: Supervisor, key: IdemKey = None) -> JSONResponse:
    """A billing supervisor approves (posts) or rejects a pending write-off; never their own request."""
    with hub.sessions() as session:
        if exception_detail(session, _id(exception_id)) is None:
            raise HTTPException(404, f"no exception #{exception_id}")
    command = DecideWriteOff(source_id(body.form_id, key), exception_id, body.version, principal.username,
                             _id(approval_id), body.approve, body.comment, origin=client_address(request))
    return _result(hub, exception_id, perform(hub, command))


@router.post("/api/v1/workqueue/{exception_id}/transfer", responses=ACTION_RESPONSES)
def post_transfer(exception_id: int, body: TransferBody, request: Request, hub: HubDep,
                  principal: Billing, key: IdemKey = None) -> JSONResponse:
    """Move ``amount`` of the claim's insurance balance to patient responsibility."""
    return _act("transfer", _id(exception_id), body, principal, request, hub, key)


@router.post("/api/v1/workqueue/{exception_id}/follow-up", responses=ACTION_RESPONSES)
def post_follow_up(exception_id: int, body: FollowUpBody, request: Request, hub: HubDep,
                   principal: Billing, key: IdemKey = None) -> JSONResponse:
    """Mark for appeal or rebill (nothing posts; the outbound side is told)."""
    return _act("follow-up", _id(exception_id), body, principal, request, hub, key)


@router.post("/api/v1/workqueue/{exception_id}/refund", responses=ACTION_RESPONSES)
def post_refund(exception_id: int, body: RefundBody, request: Request, hub: HubDep, principal: Billing,
                key: IdemKey = None) -> JSONResponse:
    """Refund (part of) the claim's credit balance."""
    return _act("refund", _id(exception_id), body, principal, request, hub, key)


@router.post("/api/v1/workqueue/{exception_id}/notes", responses=ACTION_RESPONSES)
def post_note(exception_id: int, body: NoteBody, request: Request, hub: HubDep,
              principal: Billing, key: IdemKey = None) -> JSONResponse:
    """Add a note (no version needed: notes never conflict)."""
    return _act("note", _id(exception_id), body, principal, request, hub, key)


@router.get("/api/v1/workbench/accounts/{account}",
            responses={**AUTH_RESPONSES, 404: {"description": "no such account"}})
def get_account_detail(account: str, request: Request, session: SessionDep,
                       principal: Billing) -> dict[str, Any]:
    """Balances by responsibility and payer, claims with their adjudications, payments, plans, notices, ledger."""
    audit(request, principal, "account.view", "account", account[:64])  # before the read (SQLite)
    found = account_detail(session, account[:64])
    if found is None:
        raise HTTPException(404, "no such account")
    return jsonable(found)  # type: ignore[no-any-return]
