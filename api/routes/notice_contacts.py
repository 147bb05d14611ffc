"""Contact preferences and notices of an account, for billing staff (api layer).

``GET``/``PUT /api/v1/accounts/{account}/contact`` read and set where notices go and what the patient opted
out of (both audited: the addresses are PHI); ``GET /api/v1/accounts/{account}/notices`` lists what was sent,
on which channel, with what outcome, never the addresses.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field

from api.deps import HubDep
from api.security import AUTH_RESPONSES, BILLING, SUPERVISOR, Principal, audit, require
from router.adapters import notice_store as store

router = APIRouter(prefix="/api/v1/accounts", tags=["notices"])
Staff = Annotated[Principal, Depends(require(BILLING, SUPERVISOR))]
Account = Annotated[str, Path(min_length=1, max_length=64)]  # accounts.number
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such account (or no contact on file)"}}


class ContactBody(BaseModel):
    """Where an account's notices go. Opt-outs win over preference; an empty address turns a channel off."""

    email: str = Field(default="", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str = Field(default="", max_length=16, pattern=r"^$|^\+[1-9][0-9]{6,14}$")  # E.164
    preferred: Literal["email", "sms", "both"] = "both"
    email_opt_out: bool = False
    sms_opt_out: bool = False


@router.get("/{account}/contact", responses={**AUTH_RESPONSES, **NOT_FOUND})
def get_contact(account: Account, hub: HubDep, request: Request, principal: Staff) -> ContactBody:
    audit(request, principal, "contact.view", "account", account)  # before the read (SQLite write lock)
    with hub.sessions() as session:
        account_id = store.account_id(session, account)
        found = store.contact(session, account_id) if account_id is not None else None
    if found is None:
        raise HTTPException(404, f"no contact preferences for account {account!r}")
    return ContactBody.model_validate(asdict(found))


@router.put("/{account}/contact", responses={**AUTH_RESPONSES, **NOT_FOUND})
def put_contact(account: Account, body: ContactBody, hub: HubDep, request: Request, principal: Staff) -> ContactBody:
    """Create or replace the account's contact preferences (audited in the same transaction)."""
    with hub.sessions.begin() as session:
        if store.account_id(session, account) is None:
            raise HTTPException(404, f"no account {account!r}")
        store.set_contact(session, account, store.Contact(body.email, body.phone, body.email_opt_out,
                                                          body.sms_opt_out, body.preferred))
        audit(request, principal, "contact.update", "account", account,
              detail=f"preferred={body.preferred} email_opt_out={body.email_opt_out} "
                     f"sms_opt_out={body.sms_opt_out}", session=session)
    return body


@router.get("/{account}/notices", responses=AUTH_RESPONSES)
def list_notices(account: Account, hub: HubDep, request: Request, principal: Staff) -> list[dict[str, object]]:
    audit(request, principal, "notices.view", "account", account)
    with hub.sessions() as session:
        return store.notices_for(session, account=account)
