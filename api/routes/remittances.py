"""Remittance intake (raw X12 835 over HTTP), remittance cash totals and the exception queue as JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse

from api.deps import HubDep, SessionDep
from api.security import AUTH_RESPONSES, BILLING, EMR_SYSTEM, SUPERVISOR, Principal, audit, require
from mappings.detect import Format, detect_format
from router.queries import exceptions_list, remittances_list

router = APIRouter(tags=["remittances"])
BillingDep = Annotated[Principal, Depends(require(BILLING, SUPERVISOR))]

X12_BODY = Body(media_type="application/edi-x12", description="One X12 835 interchange (ISA ... IEA)")


@router.post("/remittances", status_code=200, dependencies=[Depends(require(EMR_SYSTEM))], responses={
    **AUTH_RESPONSES,
    200: {"description": "every transaction set processed; per-set status and the 999"},
    400: {"description": "not X12, or a transaction set was rejected; the body says where"},
})
def post_remittance(hub: HubDep, body: Annotated[bytes, X12_BODY]) -> JSONResponse:
    if detect_format(body) is not Format.X12:
        return JSONResponse({"detail": "the body is not an X12 interchange (it must start with ISA)",
                             "location": "byte 0"}, status_code=400)
    report = hub.intake.ingest(body, "http")
    payload = {**report.as_json(), "ack999": report.ack}
    return JSONResponse(payload, status_code=400 if report.rejected else 200)


@router.get("/api/v1/remittances", responses=AUTH_RESPONSES)
def list_remittances(session: SessionDep, _principal: BillingDep,
                     limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, object]]:
    """Each remittance with posted + held + PLB effect = payment (BPR02)."""
    return remittances_list(session, limit)


@router.get("/api/v1/exceptions", responses=AUTH_RESPONSES)
def list_exceptions(session: SessionDep, request: Request, principal: BillingDep,
                    status: Annotated[str, Query(pattern="^(open|resolved|all)$")] = "open",
                    limit: Annotated[int, Query(ge=1, le=5000)] = 500, claim: str | None = None,
                    account: str | None = None) -> list[dict[str, object]]:
    audit(request, principal, "exceptions.list", "account" if account else "claim" if claim else "exceptions",
          account or claim or "*", f"status={status}")  # before the read: see ``audit``
    return exceptions_list(session, None if status == "all" else status, limit, claim=claim, account=account)
