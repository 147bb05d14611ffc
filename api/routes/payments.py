"""Patient payments API: front-desk payments and receipts, refunds, consent, card on file, plans, webhook.

Staff routes take billing roles (refunds: a supervisor); every write takes an ``Idempotency-Key`` header that
becomes the command's source id, so a double-click or a retried request posts once. The Stripe webhook is
authenticated by its signature alone (verified on the raw body, with a time tolerance).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.deps import HubDep, SessionDep
from api.payments import local_bus, payment_gateway
from api.security import AUDITOR, AUTH_RESPONSES, BILLING, SUPERVISOR, Principal, audit, require
from connectors.payments.gateway import PaymentGateway, WebhookRejected
from connectors.payments.webhooks import WebhookProcessor
from router.adapters.orm_payments import PatientPaymentRow
from router.domain.commands import PostPatientPayment
from router.domain.errors import DomainViolation
from router.domain.payment_commands import CreatePaymentPlan, RecordConsent, RefundPatientPayment, RevokeConsent
from router.domain.payments import GATEWAY_METHODS, ConsentScope, PaymentMethod
from router.payments_queries import cards_on_file, consents, gateway_events, plan_view, receipt

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])
webhooks = APIRouter(prefix="/api/v1/payments/webhooks", tags=["payments"])
Billing = Annotated[Principal, Depends(require(BILLING, SUPERVISOR))]
Supervisor = Annotated[Principal, Depends(require(SUPERVISOR))]
Reader = Annotated[Principal, Depends(require(BILLING, SUPERVISOR, AUDITOR))]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=8, max_length=100,
                                       description="a fresh random key per intended action")]


def get_gateway(request: Request, hub: HubDep) -> PaymentGateway:
    gateway: PaymentGateway | None = getattr(request.app.state, "payment_gateway", None)
    if gateway is None:
        gateway = request.app.state.payment_gateway = payment_gateway(hub.settings)
    if gateway is None:
        raise HTTPException(503, "online payments are not configured (RCMHUB_STRIPE_API_KEY)")
    return gateway


Gateway = Annotated[PaymentGateway, Depends(get_gateway)]


class PaymentIn(BaseModel):
    account: str = Field(min_length=1, max_length=64)
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    method: PaymentMethod
    received_on: date | None = None
    check_number: str = Field(default="", max_length=40)
    bank: str = Field(default="", max_length=120)
    reference: str = Field(default="", max_length=80)
    note: str = Field(default="", max_length=2000)


class RefundIn(BaseModel):
    amount: Decimal | None = Field(default=None, gt=0, max_digits=12, decimal_places=2)
    reason: str = Field(default="", max_length=500)


class ConsentIn(BaseModel):
    granted_by: str = Field(min_length=1, max_length=200)
    channel: str = Field(pattern="^(in_person|phone|portal|paper)$")
    scope: ConsentScope
    text_version: str = Field(min_length=1, max_length=40)


class RevokeIn(BaseModel):
    revoked_by: str = Field(min_length=1, max_length=200)


class PlanIn(BaseModel):
    account: str = Field(min_length=1, max_length=64)
    total: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    installments: int = Field(ge=1, le=120)
    frequency: str = Field(pattern="^(weekly|biweekly|monthly)$")
    first_due: date
    payment_method: str = Field(min_length=1, max_length=255)


class CheckoutIn(BaseModel):
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    success_url: str = Field(min_length=1, max_length=500)
    cancel_url: str = Field(min_length=1, max_length=500)


class SetupIn(BaseModel):
    success_url: str = Field(min_length=1, max_length=500)
    cancel_url: str = Field(min_length=1, max_length=500)


@router.post("", status_code=201, responses={**AUTH_RESPONSES, 200: {"description": "already posted (same key)"},
                                             422: {"description": "invalid payment; the body says which field"}})
def record_payment(body: PaymentIn, hub: HubDep, session: SessionDep, _p: Billing,
                   key: IdempotencyKey) -> JSONResponse:
    """Record a payment taken at the front desk (cash, check, or a card/wallet/ACH already run on a terminal)."""
    outcome = local_bus(hub).handle(PostPatientPayment(
        f"desk:{key}", body.account, body.amount, body.method.value, body.received_on or datetime.now(UTC).date(),
        reference=body.reference, check_number=body.check_number, bank=body.bank, note=body.note))
    number = _receipt_number(session, f"desk:{key}")
    return JSONResponse(receipt(session, number), status_code=200 if outcome.duplicate else 201)


def _receipt_number(session: SessionDep, source_id: str) -> int:
    session.expire_all()
    found = session.scalar(select(PatientPaymentRow.id).where(PatientPaymentRow.source_id == source_id))
    if found is None:
        raise HTTPException(404, "no payment under that key")
    return found


@router.get("/receipts/{number}", responses={**AUTH_RESPONSES, 404: {"description": "no such receipt"}})
def get_receipt(number: int, request: Request, session: SessionDep, principal: Reader) -> dict[str, object]:
    audit(request, principal, "payment.receipt.view", "payment", str(number))
    found = receipt(session, number)
    if found is None:
        raise HTTPException(404, f"no receipt {number}")
    return found


@router.post("/receipts/{number}/refund", responses={**AUTH_RESPONSES, 404: {"description": "no such receipt"}})
def refund(number: int, body: RefundIn, hub: HubDep, session: SessionDep, request: Request, principal: Supervisor,
           key: IdempotencyKey) -> dict[str, object]:
    """Give money back: through the gateway for a gateway payment, else in cash/check; the ledger reverses it."""
    audit(request, principal, "payment.refund", "payment", str(number))  # before any read: see ``audit``
    with hub.sessions() as reading:  # closed before the bus writes (SQLite: one writer at a time)
        paid = receipt(reading, number)
    if paid is None:
        raise HTTPException(404, f"no receipt {number}")
    refund_ref = ""
    amount = body.amount
    if paid["gateway_payment_ref"] and PaymentMethod(str(paid["method"])) in GATEWAY_METHODS:
        left = Decimal(str(paid["amount"])) - Decimal(str(paid["refunded"]))
        gateway = get_gateway(request, hub)
        done = gateway.refund(payment_ref=str(paid["gateway_payment_ref"]), amount=amount or left,
                              idempotency_key=f"rcmhub:refund:{key}")
        refund_ref, amount = done.refund_ref, done.amount
    local_bus(hub).handle(RefundPatientPayment(f"refund:{key}", str(paid["account"]), str(paid["source_id"]), amount,
                                               datetime.now(UTC).date(), body.reason, refund_ref=refund_ref))
    session.expire_all()
    return receipt(session, number) or {}


@router.post("/accounts/{account}/consents", status_code=201, responses=AUTH_RESPONSES)
def add_consent(account: str, body: ConsentIn, hub: HubDep, session: SessionDep, _p: Billing,
                key: IdempotencyKey) -> list[dict[str, object]]:
    local_bus(hub).handle(RecordConsent(f"consent:{key}", account, body.granted_by, datetime.now(UTC), body.channel,
                                        body.scope.value, body.text_version))
    return consents(session, account)


@router.post("/accounts/{account}/consents/{consent_id}/revoke", responses=AUTH_RESPONSES)
def revoke_consent(account: str, consent_id: int, body: RevokeIn, hub: HubDep, session: SessionDep, _p: Billing,
                   key: IdempotencyKey) -> list[dict[str, object]]:
    """Withdraw a consent: the cards it covered are no longer charged, plans using them stop autopay."""
    local_bus(hub).handle(RevokeConsent(f"revoke:{key}", account, consent_id, body.revoked_by, datetime.now(UTC)))
    return consents(session, account)


@router.get("/accounts/{account}/consents", responses=AUTH_RESPONSES)
def list_consents(account: str, session: SessionDep, _p: Reader) -> list[dict[str, object]]:
    return consents(session, account)


@router.get("/accounts/{account}/cards", responses=AUTH_RESPONSES)
def list_cards(account: str, session: SessionDep, _p: Reader) -> list[dict[str, object]]:
    """Cards on file: gateway ids, brand, last4 and expiry only."""
    return cards_on_file(session, account)


@router.post("/accounts/{account}/card-setup", responses={**AUTH_RESPONSES, 503: {"description": "no gateway"}})
def card_setup(account: str, body: SetupIn, hub: HubDep, _p: Billing, gateway: Gateway,
               key: IdempotencyKey) -> dict[str, str]:
    """A hosted gateway page where the patient saves a card (SetupIntent); the hub never sees the number."""
    from api.routes.pay import customer_ref_for

    with hub.uow_factory() as uow:
        if uow.payments.live_consent(account, ConsentScope.CARD_ON_FILE.value) is None:
            raise DomainViolation("record the patient's card-on-file consent first", location="consent")
    customer = customer_ref_for(hub, gateway, account)
    page = gateway.create_setup_session(customer_ref=customer, success_url=body.success_url,
                                        cancel_url=body.cancel_url, idempotency_key=f"rcmhub:setup:{key}")
    return {"id": page.id, "url": page.url}


@router.post("/accounts/{account}/checkout", responses={**AUTH_RESPONSES, 503: {"description": "no gateway"}})
def checkout(account: str, body: CheckoutIn, hub: HubDep, _p: Billing, gateway: Gateway,
             key: IdempotencyKey) -> dict[str, str]:
    """A hosted payment page for a card-not-present payment (phone, online); posted from the gateway's webhook."""
    from api.routes.pay import customer_ref_for

    customer = customer_ref_for(hub, gateway, account)
    page = gateway.create_checkout_session(customer_ref=customer, amount=body.amount, description="Patient payment",
                                           success_url=body.success_url, cancel_url=body.cancel_url,
                                           idempotency_key=f"rcmhub:checkout:{key}")
    return {"id": page.id, "url": page.url}


@router.post("/plans", status_code=201, responses=AUTH_RESPONSES)
def create_plan(body: PlanIn, hub: HubDep, session: SessionDep, _p: Billing, key: IdempotencyKey) -> dict[str, object]:
    """A payment plan charged automatically to a card on file (needs a live plan_autopay consent)."""
    plan_ref = f"pl_{uuid.uuid5(uuid.NAMESPACE_URL, f'rcmhub:plan:{key}').hex}"
    local_bus(hub).handle(CreatePaymentPlan(f"plan:{key}", body.account, plan_ref, body.total, body.installments,
                                            body.frequency, body.first_due, body.payment_method))
    return plan_view(session, plan_ref) or {}


@router.get("/plans/{plan_ref}", responses={**AUTH_RESPONSES, 404: {"description": "no such plan"}})
def get_plan(plan_ref: str, session: SessionDep, _p: Reader) -> dict[str, object]:
    found = plan_view(session, plan_ref)
    if found is None:
        raise HTTPException(404, "no such plan")
    return found


@router.get("/gateway-events", responses=AUTH_RESPONSES)
def list_gateway_events(session: SessionDep, _p: Reader, status: str | None = None) -> list[dict[str, object]]:
    """Gateway webhooks received and what became of them (``status=failed``: kept, needing staff)."""
    return gateway_events(session, status)


@webhooks.post("/stripe", responses={400: {"description": "signature missing, forged or stale"},
                                     503: {"description": "try again later (the gateway will)"}})
async def stripe_webhook(request: Request, hub: HubDep, gateway: Gateway,
                         signature: Annotated[str, Header(alias="Stripe-Signature")] = "") -> JSONResponse:
    """Stripe's webhook: verified on the raw body, posted once per event and once per payment."""
    payload = await request.body()
    processor = WebhookProcessor(gateway, hub.sessions, local_bus(hub))
    try:
        result = await run_in_threadpool(processor.handle, payload, signature)
    except WebhookRejected as exc:
        return JSONResponse({"detail": exc.reason, "location": exc.location}, status_code=400)
    return JSONResponse({"event": result.event_id, "status": result.status, "detail": result.detail or None})
