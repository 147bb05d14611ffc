"""``GET /pay/{token}``: the page a pay-by-link notice opens (api layer).

The signed token carries only an opaque link id. Each visit reads the account's current patient balance
from the ledger and asks the gateway for a fresh checkout session for it, so an old notice never charges a
stale amount and the gateway page never expires under the patient. Responses are HTML for a person: an
altered link is told it is not valid (400), an old one that it expired (410). The token is a bearer secret in
the URL: the pages are ``no-store`` and send no referrer; logs carry the link id, never the token.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from api.bootstrap import Hub
from api.deps import HubDep
from api.notices import link_signer, public_url
from connectors.notify.links import LinkExpired, LinkInvalid, LinkSigner
from connectors.notify.templates import Templates
from connectors.payments.gateway import GatewayRejected, GatewayUnavailable, PaymentGateway
from router.adapters import notice_store as store
from router.domain.money import fmt

log = logging.getLogger(__name__)

router = APIRouter(prefix="/pay", tags=["pay-by-link"])
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
_templates = Templates()


def get_signer(request: Request, hub: HubDep) -> LinkSigner:
    signer: LinkSigner | None = getattr(request.app.state, "pay_link_signer", None)
    if signer is None:
        signer = request.app.state.pay_link_signer = link_signer(hub.settings)
    return signer


def get_gateway(request: Request, hub: HubDep) -> PaymentGateway | None:
    """The payment gateway set on the app (tests, serve) or the hub; None when online payment is not set up."""
    gateway: PaymentGateway | None = getattr(request.app.state, "payment_gateway", None) or getattr(
        hub, "gateway", None)
    return gateway


SignerDep = Annotated[LinkSigner, Depends(get_signer)]
GatewayDep = Annotated[PaymentGateway | None, Depends(get_gateway)]


def _page(hub: Hub, status: int, title: str, message: str = "", **extra: Any) -> HTMLResponse:
    html = _templates.page("pay.html", {"practice": hub.settings.practice_name, "title": title, "message": message,
                                        "checkout_url": "", "amount": "", **extra})
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def customer_ref_for(hub: Hub, gateway: PaymentGateway, account: str) -> str:
    """The gateway customer of the account's guarantor: the one on file, else a new one linked through the bus
    (the gateway knows it only by a random ``hub_ref``)."""
    from router.domain.payment_commands import LinkGatewayCustomer

    with hub.uow_factory() as uow:
        found = uow.payments.customer_of(account)
    if found:
        return str(found)
    hub_ref = uuid.uuid4().hex
    customer_ref = gateway.ensure_customer(guarantor_ref=hub_ref, idempotency_key=f"customer:{hub_ref}")
    # Handled here, not queued: the next visit must find the link (the API process has the database anyway).
    (hub.local_bus or hub.bus).handle(LinkGatewayCustomer(f"paylink:customer:{hub_ref}", account, customer_ref,
                                                          hub_ref))
    with hub.uow_factory() as uow:  # a concurrent first visit may have linked another customer first
        return str(uow.payments.customer_of(account) or customer_ref)


@router.get("/{token}", response_class=HTMLResponse, responses={
    400: {"description": "the link's signature is not valid"}, 404: {"description": "unknown link"},
    410: {"description": "the link has expired"}, 502: {"description": "the gateway refused the checkout"},
    503: {"description": "online payment is not available"}})
def pay(token: str, hub: HubDep, signer: SignerDep, gateway: GatewayDep) -> HTMLResponse:
    try:
        link_id = signer.link_id(token)
    except LinkExpired:
        return _page(hub, 410, "This payment link has expired",
                     "Please use the link in your most recent statement, or call us to pay.")
    except LinkInvalid:
        log.info("pay link rejected: bad signature")
        return _page(hub, 400, "This payment link is not valid", "Please check the link or call us to pay.")
    with hub.sessions() as session:
        found = store.link_account(session, link_id)
        balance = store.patient_balance(session, found[0]) if found else None
    if found is None or balance is None:
        log.info("pay link %s: unknown link id", link_id)
        return _page(hub, 404, "This payment link is not valid", "Please check the link or call us to pay.")
    if balance <= 0:
        return _page(hub, 200, "Nothing is due", "This account has no balance to pay. Thank you.")
    if gateway is None:
        return _page(hub, 503, "Online payment is not available right now", "Please call us to pay.")
    base = f"{public_url(hub.settings).rstrip('/')}/pay/{token}"
    try:
        customer = customer_ref_for(hub, gateway, found[1])
        session_ = gateway.create_checkout_session(
            customer_ref=customer, amount=balance, description="Account balance", success_url=f"{base}/done",
            cancel_url=base, idempotency_key=f"paylink:{link_id}:{uuid.uuid4().hex}")
    except GatewayUnavailable:
        log.warning("pay link %s: gateway unavailable", link_id)
        return _page(hub, 503, "Online payment is not available right now", "Please try again in a few minutes.")
    except GatewayRejected as exc:
        log.warning("pay link %s: gateway refused the checkout session: %s", link_id, type(exc).__name__)
        return _page(hub, 502, "Online payment is not available right now", "Please call us to pay.")
    log.info("pay link %s: checkout session %s", link_id, session_.id)
    return _page(hub, 200, "Pay your balance", checkout_url=session_.url, amount=fmt(balance))


@router.get("/{token}/done", response_class=HTMLResponse)
def done(token: str, hub: HubDep) -> HTMLResponse:
    """Where the gateway sends the patient back; the payment itself is posted from the gateway's webhook."""
    return _page(hub, 200, "Thank you", "Your payment is being processed; a receipt will follow.")
