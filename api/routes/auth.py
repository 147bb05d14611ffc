"""Staff login and logout (JSON under ``/api/v1/auth`` and the ``/login`` form page), and who am I."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.security import (
    AUTH_RESPONSES,
    SESSION_COOKIE,
    LoginFailed,
    MaybePrincipal,
    Principal,
    client_address,
    cookie_secure,
    require,
    require_page,
    security_for,
)

router = APIRouter(tags=["auth"])
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
PRELOGIN_COOKIE = "rcmhub_login_csrf"  # double-submit token for the login form itself (login CSRF)


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    username: str
    roles: list[str]
    kind: str
    may_see_phi: bool
    csrf_token: str | None = None


def _me(principal: Principal) -> Me:
    return Me(username=principal.username, roles=sorted(principal.roles), kind=principal.kind,
              may_see_phi=principal.may_see_phi, csrf_token=principal.csrf_token)


def _set_session(request: Request, response: Response, cookie: str) -> None:
    security = security_for(request.app)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(security.policy.session_lifetime.total_seconds()),
                        httponly=True, samesite="strict", secure=cookie_secure(request, security.policy), path="/")


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "//host" or "https://..." would make the login form an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.post("/api/v1/auth/login", response_model=Me, responses={
    401: {"description": "invalid user name or password, or the account is locked (audited)"}})
async def login(request: Request, body: Credentials) -> Response:
    """Open a staff session: sets the ``rcmhub_session`` cookie; send ``csrf_token`` as ``X-CSRF-Token`` on writes."""
    security = security_for(request.app)
    try:
        principal, cookie = await run_in_threadpool(security.login, body.username, body.password,
                                                    client_address(request))
    except LoginFailed as exc:
        return JSONResponse({"detail": str(exc)}, status_code=401)
    response = JSONResponse(_me(principal).model_dump())
    _set_session(request, response, cookie)
    return response


@router.post("/api/v1/auth/logout", status_code=204, responses={**AUTH_RESPONSES, 204: {"description": "ended"}})
async def logout(request: Request, principal: Annotated[Principal, Depends(require())]) -> Response:
    response = Response(status_code=204)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and principal.kind == "user":
        await run_in_threadpool(security_for(request.app).logout, cookie, principal, client_address(request))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/api/v1/auth/me", response_model=Me, responses=AUTH_RESPONSES)
def me(principal: Annotated[Principal, Depends(require())]) -> Me:
    return _me(principal)


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, principal: MaybePrincipal, next: str | None = None,
               error: str | None = None) -> Response:
    if principal is not None and principal.kind == "user" and not error:
        return RedirectResponse(_safe_next(next), status_code=303)
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(request, "auth/login.html", {
        "next": _safe_next(next), "form_token": token, "error": error}, status_code=401 if error else 200)
    response.set_cookie(PRELOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=cookie_secure(request, security_for(request.app).policy), path="/login")
    return response


@router.post("/login", include_in_schema=False)
async def login_form(request: Request, username: Annotated[str, Form(max_length=120)],
                     password: Annotated[str, Form(max_length=1024)], form_token: Annotated[str, Form()] = "",
                     next: Annotated[str, Form()] = "/") -> Response:
    expected = request.cookies.get(PRELOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, form_token):
        return RedirectResponse("/login?error=expired", status_code=303)
    security = security_for(request.app)
    try:
        _principal, cookie = await run_in_threadpool(security.login, username, password, client_address(request))
    except LoginFailed:
        return RedirectResponse("/login?error=invalid", status_code=303)
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_session(request, response, cookie)
    response.delete_cookie(PRELOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", include_in_schema=False)
async def logout_form(request: Request, principal: Annotated[Principal, Depends(require_page())]) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and principal.kind == "user":
        await run_in_threadpool(security_for(request.app).logout, cookie, principal, client_address(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
