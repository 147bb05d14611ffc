"""Front-desk payment pages (server-rendered): record a payment, see its receipt.

The form posts the same ``PostPatientPayment`` as ``POST /api/v1/payments``; each rendered form carries a
fresh ``form_id`` that becomes the source id, so a double submit posts once and shows the same receipt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from api.deps import HubDep, SessionDep
from api.payments import local_bus
from api.routes.ui import new_form_id, page
from api.security import BILLING, SUPERVISOR, Principal, audit, require_page
from router.adapters.orm_payments import PatientPaymentRow
from router.domain.commands import PostPatientPayment
from router.domain.errors import PermanentError
from router.domain.payments import PaymentMethod
from router.payments_queries import receipt

router = APIRouter(include_in_schema=False)
BillingPage = Annotated[Principal, Depends(require_page(BILLING, SUPERVISOR))]
FIELDS = ("account", "amount", "method", "check_number", "bank", "reference", "note")


def _form(request: Request, principal: Principal, form: dict[str, str], error: str = "", status: int = 200) -> Response:
    return page(request, "payments/desk.html", principal, {
        "nav": "payments", "form": form, "form_id": new_form_id(), "methods": [m.value for m in PaymentMethod],
        "flash": error or None, "flash_kind": "error"}, status)


@router.get("/ui/payments/new", response_class=HTMLResponse)
def new_payment(request: Request, principal: BillingPage, account: str = "") -> Response:
    return _form(request, principal, {"account": account, "method": "cash"})


@router.post("/ui/payments", response_class=HTMLResponse)
async def post_payment(request: Request, hub: HubDep, principal: BillingPage) -> Response:
    raw = await request.form()
    form = {k: str(raw.get(k, "")).strip() for k in (*FIELDS, "form_id")}
    if not form["form_id"] or not form["account"]:
        return _form(request, principal, form, "Account is required.", 422)
    try:
        amount = Decimal(form["amount"])
    except InvalidOperation:
        return _form(request, principal, form, "Amount is not a number.", 422)
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        return _form(request, principal, form, "Amount must be positive, in dollars and cents.", 422)
    source_id = f"desk:{form['form_id']}"
    command = PostPatientPayment(source_id, form["account"], amount, form["method"], datetime.now(UTC).date(),
                                 reference=form["reference"], check_number=form["check_number"], bank=form["bank"],
                                 note=form["note"])
    try:
        local_bus(hub).handle(command)
    except PermanentError as exc:  # the reason names the field, never echoes what was typed
        form.pop("note")
        return _form(request, principal, form, f"Not posted: {exc.reason} ({exc.location or 'payment'}).", 422)
    with hub.sessions() as session:
        number = session.scalar(select(PatientPaymentRow.id).where(PatientPaymentRow.source_id == source_id))
    return RedirectResponse(f"/ui/payments/receipts/{number}", status_code=303)


@router.get("/ui/payments/receipts/{number}", response_class=HTMLResponse)
def receipt_page(number: int, request: Request, session: SessionDep, principal: BillingPage) -> Response:
    audit(request, principal, "payment.receipt.view", "payment", str(number))  # before the read: see ``audit``
    found = receipt(session, number)
    if found is None:
        raise HTTPException(404, f"no receipt {number}")
    return page(request, "payments/receipt.html", principal, {"nav": "payments", "r": found})
