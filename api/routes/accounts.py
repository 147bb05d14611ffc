"""Account balances and ledger as JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request

from api.deps import SessionDep
from api.security import AUTH_RESPONSES, BILLING, SUPERVISOR, Principal, audit, require
from router.queries import account_view

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])


@router.get("/{account}", responses={**AUTH_RESPONSES, 404: {"description": "no such account"}})
def get_account(account: str, session: SessionDep, request: Request,
                principal: Annotated[Principal, Depends(require(BILLING, SUPERVISOR))]) -> dict[str, object]:
    """Balances and ledger of one account (billing roles; the view is audited as a PHI view)."""
    audit(request, principal, "account.view", "account", account)  # before the read: see ``audit``
    view = account_view(session, account)
    if view is None:
        raise HTTPException(404, f"no account {account!r}")
    return view.as_json()
