"""FastAPI application factory: one router per resource, domain errors mapped to HTTP once."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api import access_log
from api.bootstrap import Hub
from api.openapi import document_errors
from api.routes import accounts, fhir, health, pay, remittances, ui
from api.routes import auth as auth_routes
from api.routes import notice_contacts as notice_contact_routes
from api.routes import ops as ops_routes
from api.routes import payment_pages as payment_page_routes
from api.routes import payments as payment_routes
from router.domain.errors import HubError, PermanentError


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(title="rcmhub", version="0.1.0")
    app.state.hub = hub
    app.include_router(health.router)
    app.include_router(accounts.router)
    app.include_router(notice_contact_routes.router)
    app.include_router(fhir.router)
    app.include_router(remittances.router)
    app.include_router(pay.router)
    app.include_router(auth_routes.router)
    ui.install(app)  # billing workbench: pages, /api/v1/workqueue|ar, static files
    app.include_router(ops_routes.router)
    app.include_router(payment_routes.router)
    app.include_router(payment_routes.webhooks)
    app.include_router(payment_page_routes.router)  # front-desk payment form and receipts

    @app.exception_handler(HubError)
    async def _hub_error(_request: Request, exc: HubError) -> JSONResponse:
        status = 422 if isinstance(exc, PermanentError) else 503
        return JSONResponse({"detail": exc.reason, "location": exc.location}, status_code=status)

    document_errors(app)
    access_log.install(app)  # route templates, never paths or query strings (PHI)
    return app
