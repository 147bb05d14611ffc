"""Remittance intake (raw X12 835 over HTTP), remittance cash totals and the exception queue as JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from api.deps import HubDep, SessionDep
from mappings.detect import Format, detect_format
from router.queries import exceptions_list, remittances_list

router = APIRouter(tags=["remittances"])

X12_BODY = Body(media_type="application/edi-x12", description="One X12 835 interchange (ISA ... IEA)")


@router.post("/remittances", status_code=200, responses={
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


@router.get("/api/v1/remittances")
def list_remittances(session: SessionDep, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, object]]:
    """Each remittance with posted + held + PLB effect = payment (BPR02)."""
    return remittances_list(session, limit)


@router.get("/api/v1/exceptions")
def list_exceptions(session: SessionDep, status: Annotated[str, Query(pattern="^(open|resolved|all)$")] = "open",
                    limit: Annotated[int, Query(ge=1, le=5000)] = 500, claim: str | None = None,
                    account: str | None = None) -> list[dict[str, object]]:
    return exceptions_list(session, None if status == "all" else status, limit, claim=claim, account=account)
