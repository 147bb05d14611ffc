"""Account balances and ledger as JSON."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.deps import SessionDep
from router.queries import account_view

router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])


@router.get("/{account}", responses={404: {"description": "no such account"}})
def get_account(account: str, session: SessionDep) -> dict[str, object]:
    view = account_view(session, account)
    if view is None:
        raise HTTPException(404, f"no account {account!r}")
    return view.as_json()
