"""FHIR R4 intake over REST: ``POST /fhir/Bundle``, ``POST /fhir/{type}`` for the intake types, and
``GET /fhir/metadata``. Thin: decoding is mappings.fhir, dispatch is connectors.fhir_intake."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from api.deps import HubDep
from api.security import AUTH_RESPONSES, EMR_SYSTEM, require
from connectors.fhir_intake import receive_fhir, reply_of
from mappings.fhir.inbound import INTAKE_TYPES, REMITTANCE_HINT, REMITTANCE_TYPES
from mappings.fhir.outcome import capability_statement, error_outcome
from mappings.fhir.wire import MEDIA_TYPE
from router.domain.errors import UnsupportedMessage

FHIR_JSON = MEDIA_TYPE
ACCEPTED_MEDIA = frozenset({FHIR_JSON, "application/json"})
_BODY = {"requestBody": {"required": True, "content": {m: {"schema": {"type": "object"}} for m in ACCEPTED_MEDIA}}}
_OO = {"content": {FHIR_JSON: {"schema": {"type": "object"}}}}
router = APIRouter(prefix="/fhir", tags=["fhir"])


def _fhir(body: dict[str, Any], status: int) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


async def _body(request: Request) -> bytes | JSONResponse:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ACCEPTED_MEDIA:
        return _fhir(error_outcome(UnsupportedMessage(
            f"content type {media or 'none'!r} is not accepted (application/fhir+json, application/json)",
            location="Content-Type")), 415)
    return await request.body()


_RESOURCE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "a resend (nothing new posted), or context only (Encounter)", **_OO},
    201: {"description": "posted (a remittance that does not balance is quarantined); OperationOutcome says what",
          **_OO},
    400: {"description": "not JSON (OperationOutcome)", **_OO},
    415: {"description": "content type other than application/fhir+json or application/json", **_OO},
    422: {"description": "invalid or unpostable resource; OperationOutcome names the element", **_OO},
    503: {"description": "a dependency is unavailable; retry"},
    **AUTH_RESPONSES,
}
EMR_ONLY = [Depends(require(EMR_SYSTEM))]  # intake is for EMR systems' tokens; /fhir/metadata stays public


def _resource_route(resource_type: str) -> None:
    async def create(request: Request, hub: HubDep) -> JSONResponse:
        body = await _body(request)
        if isinstance(body, JSONResponse):
            return body
        status, reply = reply_of(receive_fhir(hub.bus, body, resource_type))
        return _fhir(reply, status)

    create.__name__ = f"create_{resource_type.lower()}"
    router.add_api_route(f"/{resource_type}", create, methods=["POST"], status_code=201, dependencies=EMR_ONLY,
                         responses=_RESOURCE_RESPONSES, openapi_extra=_BODY,
                         summary=f"Post a {resource_type} (FHIR R4)", response_class=JSONResponse)


for _type in INTAKE_TYPES:
    _resource_route(_type)


@router.post("/Bundle", openapi_extra=_BODY, response_class=JSONResponse, dependencies=EMR_ONLY, responses={
    **AUTH_RESPONSES,
    200: {"description": "transaction-response or batch-response Bundle with per-entry status", **_OO},
    400: {"description": "not JSON (OperationOutcome)", **_OO},
    415: {"description": "content type other than application/fhir+json or application/json", **_OO},
    422: {"description": "not a transaction/batch/message Bundle, or a transaction entry failed", **_OO},
    503: {"description": "a dependency is unavailable; retry"}})
async def post_bundle(request: Request, hub: HubDep) -> JSONResponse:
    """Process a transaction (all validated before any posting), batch or message Bundle."""
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    status, reply = reply_of(receive_fhir(hub.bus, body, "Bundle"))
    return _fhir(reply, status)


@router.get("/metadata", response_class=JSONResponse, responses={200: {"description": "CapabilityStatement", **_OO}})
def metadata(request: Request) -> JSONResponse:
    return _fhir(capability_statement(request.app.version, date.today().isoformat()), 200)


@router.post("/{resource_type}", response_class=JSONResponse, include_in_schema=True, dependencies=EMR_ONLY,
             responses={**AUTH_RESPONSES,
    404: {"description": "not a resource type this server takes (OperationOutcome)", **_OO},
    422: {"description": "PaymentReconciliation: post its ClaimResponses or the X12 835 (OperationOutcome)", **_OO}})
def other_type(resource_type: str) -> JSONResponse:
    """Any other type: say where it goes instead of a bare 404 (answered without reading the body)."""
    if resource_type in REMITTANCE_TYPES:
        return _fhir(error_outcome(UnsupportedMessage(f"{resource_type} {REMITTANCE_HINT}",
                                                      location="resourceType")), 422)
    return _fhir(error_outcome(UnsupportedMessage(
        f"{resource_type!r} is not taken here (accepted: {', '.join(INTAKE_TYPES)}, Bundle); see /fhir/metadata",
        location="resourceType")), 404)
