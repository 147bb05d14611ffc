"""OpenAPI completed with the error answers every route can give (api): the domain-error handler's 422 body
(``{"detail", "location"}``, beside FastAPI's validation errors), 503 when a dependency is unavailable and 400
from the URL guard (``api/guards.py``). ``document_errors(app)`` also installs that guard, and the handler
that refuses a caller without the route's role before reporting a malformed request (``api/security.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from api.guards import RejectNul
from api.security import refusal_before_validation

HUB_ERROR = {"title": "HubError", "type": "object", "required": ["detail"],
             "properties": {"detail": {"type": "string"}, "location": {"type": ["string", "null"]}}}
HUB_REF = "#/components/schemas/HubError"
VALIDATION = {"$ref": "#/components/schemas/HTTPValidationError"}
BAD_URL = {"description": "the request is malformed (e.g. a NUL character in the URL)",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HubError"}}}}
UNAVAILABLE = {"description": "a dependency (database, broker, gateway) is unavailable; retry",
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HubError"}}}}


def _widen_422(response: dict[str, Any], validation: bool) -> None:
    """422 is FastAPI's request validation (when the route validates anything), the HubError handler, or a
    route's own declared body: any of them."""
    content = response.setdefault("content", {}).setdefault("application/json", {})
    options: list[dict[str, Any]] = []
    for option in (content.get("schema"), VALIDATION if validation else None, {"$ref": HUB_REF}):
        if option and option not in options:
            options.append(option)
    content["schema"] = options[0] if len(options) == 1 else {"anyOf": options}


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare, on every operation, the 422/503 bodies the HubError handler returns."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
        schema.setdefault("components", {}).setdefault("schemas", {})["HubError"] = HUB_ERROR
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault("503", UNAVAILABLE)
                responses.setdefault("400", BAD_URL)  # api/guards.py: a NUL character in the path or query
                validation = "HTTPValidationError" in schema["components"]["schemas"]
                _widen_422(responses.setdefault("422", {"description": "the request was refused by a domain rule"}),
                           validation)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
    app.add_middleware(RejectNul)
    app.add_exception_handler(RequestValidationError, refusal_before_validation)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, _unrepresentable)  # type: ignore[arg-type]
    # sqlite3 refuses an integer beyond 64 bits while binding it, before SQLAlchemy could wrap it as DataError.
    app.add_exception_handler(OverflowError, _unrepresentable)  # type: ignore[arg-type]


async def _unrepresentable(_request: Request, _exc: DataError | OverflowError) -> JSONResponse:
    """A request value the database cannot hold (an id beyond BIGINT, say) is the caller's error, not a server
    fault; nothing of the value is echoed."""
    return JSONResponse({"detail": "a value in the request cannot be stored or compared (out of range)",
                         "location": None}, status_code=422)
