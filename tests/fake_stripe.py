"""A local fake of the Stripe API for tests: an HTTP server that honours Idempotency-Key and signs webhooks.

It speaks the SDK's wire format (form-encoded bracket params in, JSON out, 402 ``card_error`` for declines)
for the calls the hub makes: customers, checkout sessions (setup and payment), payment methods, off-session
PaymentIntents, refunds. A request repeated with the same Idempotency-Key and the same parameters gets the
first response again (``Idempotent-Replayed: true``) without doing anything twice; with other parameters it
gets Stripe's 400 ``idempotency_error``. Webhooks are signed as Stripe does: header
``t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``.

Card behaviours, chosen when a card is saved: ``ok`` (visa credit), ``debit``, ``apple_pay``, ``declined``
(insufficient_funds), ``auth_required`` (off-session charge needs 3-D Secure), ``ach`` (processing, then
settles by webhook).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

WEBHOOK_SECRET = "whsec_test_fake"
_ids = itertools.count(1)
_RUN = uuid.uuid4().hex[:8]  # ids stay unique across runs: the PostgreSQL test database persists


def _id(prefix: str) -> str:
    return f"{prefix}_fake{_RUN}{next(_ids):06d}"


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][0][c]=v`` form pairs -> nested dicts/lists, as Stripe reads them."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = parts[i + 1] if not last else None
            container: Any = [] if nxt is not None and nxt.isdigit() else {}
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append(None)
                if last:
                    node[idx] = value
                else:
                    node[idx] = node[idx] if node[idx] is not None else container
                    node = node[idx]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, container)
    return root


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


CARDS = {
    "ok": {"brand": "visa", "last4": "4242", "funding": "credit"},
    "debit": {"brand": "visa", "last4": "5556", "funding": "debit"},
    "apple_pay": {"brand": "mastercard", "last4": "4444", "funding": "credit", "wallet": "apple_pay"},
    "declined": {"brand": "visa", "last4": "9995", "funding": "credit"},
    "auth_required": {"brand": "visa", "last4": "3184", "funding": "credit"},
    "ach": {"brand": "", "last4": "6789", "funding": ""},
}


class FakeStripe:
    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.behaviour: dict[str, str] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[bytes, str]] = []  # (payload, signature) waiting to be delivered
        self.idempotency: dict[str, tuple[str, int, bytes]] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, idempotency key)
        self.charges_by_key: dict[str, int] = defaultdict(int)  # charges actually made per idempotency key
        self.delay: dict[str, float] = {}  # path prefix -> seconds to sleep AFTER doing the work (timeouts)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeStripe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what the patient does on the hosted pages ---------------------------------------------
    def complete_setup(self, session_id: str, behaviour: str = "ok") -> str:
        """The patient enters a card on the hosted setup page: a PaymentMethod and setup_intent.succeeded."""
        session = self.sessions[session_id]
        pm = self._payment_method(behaviour, session["customer"])
        seti = {"id": _id("seti"), "object": "setup_intent", "status": "succeeded", "customer": session["customer"],
                "payment_method": pm, "usage": "off_session", "metadata": session.get("setup_intent_data", {})
                .get("metadata", {})}
        self.emit("setup_intent.succeeded", seti)
        self.emit("checkout.session.completed", {**session, "status": "complete", "setup_intent": seti["id"]})
        return pm

    def complete_checkout(self, session_id: str, behaviour: str = "ok") -> str:
        """The patient pays on the hosted payment page: a PaymentIntent, charge.succeeded and session completed."""
        session = self.sessions[session_id]
        amount = sum(int(li["price_data"]["unit_amount"]) * int(li.get("quantity", 1))
                     for li in session.get("line_items", []))
        pm = self._payment_method(behaviour, session["customer"])
        intent = self._intent(amount, session["customer"], pm, {}, "")
        self.emit("checkout.session.completed", {**session, "status": "complete", "payment_intent": intent["id"]})
        return str(intent["id"])

    def _payment_method(self, behaviour: str, customer: str) -> str:
        pm = _id("pm")
        card = dict(CARDS[behaviour])
        wallet = card.pop("wallet", None)
        obj: dict[str, Any] = {"id": pm, "object": "payment_method", "customer": customer,
                               "type": "us_bank_account" if behaviour == "ach" else "card"}
        if behaviour == "ach":
            obj["us_bank_account"] = {"last4": card["last4"], "bank_name": "STRIPE TEST BANK",
                                      "account_holder_type": "individual"}
        else:
            obj["card"] = {**card, "exp_month": 12, "exp_year": 2030, "wallet": {"type": wallet} if wallet else None}
        self.payment_methods[pm] = obj
        self.behaviour[pm] = behaviour
        return pm

    # -- events ---------------------------------------------------------------------------------
    def emit(self, type_: str, obj: dict[str, Any], *, created: int | None = None) -> tuple[bytes, str]:
        event = {"id": _id("evt"), "object": "event", "type": type_, "created": created or int(time.time()),
                 "api_version": "2025-01-27", "livemode": False, "data": {"object": obj}}
        payload = json.dumps(event).encode()
        signed = (payload, sign(payload))
        self.events.append(signed)
        return signed

    def take_events(self) -> list[tuple[bytes, str]]:
        out, self.events = self.events, []
        return out

    def settle_ach(self, intent_id: str, *, succeed: bool = True) -> None:
        intent = self.intents[intent_id]
        intent["status"] = "succeeded" if succeed else "requires_payment_method"
        self._charge_event(intent, "charge.succeeded" if succeed else "charge.failed")

    def refund_in_dashboard(self, intent_id: str, amount_cents: int) -> str:
        return str(self._refund(intent_id, amount_cents)["id"])

    def dispute(self, intent_id: str, status: str = "needs_response") -> None:
        intent = self.intents[intent_id]
        self.emit("charge.dispute.created" if status == "needs_response" else "charge.dispute.closed", {
            "id": _id("dp"), "object": "dispute", "amount": intent["amount"], "charge": intent["latest_charge"],
            "payment_intent": intent["id"], "status": status, "metadata": {}})

    # -- the API --------------------------------------------------------------------------------
    def _intent(self, amount: int, customer: str, pm: str, metadata: dict[str, Any], key: str) -> dict[str, Any]:
        behaviour = self.behaviour.get(pm, "ok")
        intent = {"id": _id("pi"), "object": "payment_intent", "amount": amount, "currency": "usd",
                  "customer": customer, "payment_method": pm, "metadata": metadata, "latest_charge": _id("ch"),
                  "status": {"ach": "processing", "declined": "requires_payment_method",
                             "auth_required": "requires_payment_method"}.get(behaviour, "succeeded")}
        self.intents[intent["id"]] = intent
        if key:
            self.charges_by_key[key] += 1
        if intent["status"] == "succeeded":
            self._charge_event(intent, "charge.succeeded")
        elif behaviour in ("declined", "auth_required"):
            self._charge_event(intent, "charge.failed")
        return intent

    def _charge_event(self, intent: dict[str, Any], type_: str) -> None:
        pm = self.payment_methods.get(intent["payment_method"], {})
        card = pm.get("card")
        details: dict[str, Any] = {"type": pm.get("type", "card")}
        if card:
            details["card"] = {"brand": card["brand"], "last4": card["last4"], "funding": card["funding"],
                               "wallet": card.get("wallet")}
        behaviour = self.behaviour.get(intent["payment_method"], "ok")
        self.emit(type_, {"id": intent["latest_charge"], "object": "charge", "amount": intent["amount"],
                          "customer": intent["customer"], "payment_intent": intent["id"],
                          "payment_method": intent["payment_method"], "payment_method_details": details,
                          "metadata": intent["metadata"], "status": "succeeded" if type_ == "charge.succeeded"
                          else "failed", "failure_code": None if type_ == "charge.succeeded" else
                          {"auth_required": "authentication_required"}.get(behaviour, "card_declined")})

    def _refund(self, intent_id: str, amount: int) -> dict[str, Any]:
        refund = {"id": _id("re"), "object": "refund", "amount": amount, "payment_intent": intent_id,
                  "charge": self.intents[intent_id]["latest_charge"], "status": "succeeded", "metadata": {}}
        self.refunds[refund["id"]] = refund
        self.emit("refund.created", refund)
        return refund

    def _route(self, method: str, path: str, params: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/customers":
            customer = {"id": _id("cus"), "object": "customer", "metadata": params.get("metadata", {})}
            self.customers[customer["id"]] = customer
            return 200, customer
        if method == "POST" and path == "/v1/checkout/sessions":
            sid = _id("cs")
            session = {"id": sid, "object": "checkout.session", "url": f"{self.url}/pay/{sid}", **params}
            self.sessions[sid] = session
            return 200, session
        if method == "GET" and path.startswith("/v1/payment_methods/"):
            pm = self.payment_methods.get(path.rsplit("/", 1)[1])
            return (200, pm) if pm else (404, _error("invalid_request_error", "resource_missing"))
        if method == "POST" and path == "/v1/payment_intents":
            pm = params.get("payment_method", "")
            if pm not in self.payment_methods:
                return 400, _error("invalid_request_error", "resource_missing")
            intent = self._intent(int(params["amount"]), params["customer"], pm, params.get("metadata", {}), key)
            behaviour = self.behaviour[pm]
            if behaviour == "declined":
                return 402, _error("card_error", "card_declined", "insufficient_funds", intent)
            if behaviour == "auth_required":
                return 402, _error("card_error", "authentication_required", "authentication_required", intent)
            return 200, intent
        if method == "POST" and path == "/v1/refunds":
            intent = self.intents.get(params.get("payment_intent", ""))
            if intent is None:
                return 400, _error("invalid_request_error", "resource_missing")
            return 200, self._refund(intent["id"], int(params.get("amount", intent["amount"])))
        return 404, _error("invalid_request_error", "unknown_path")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path = urlsplit(self.path).path
                key = self.headers.get("Idempotency-Key") or ""
                params = _nest(parse_qsl(body, keep_blank_values=True))
                fingerprint = hashlib.sha256(f"{method} {path} {body}".encode()).hexdigest()
                replayed = False
                with fake.lock:
                    fake.requests.append((method, path, key))
                    if key and key in fake.idempotency:
                        seen, status, payload = fake.idempotency[key]
                        replayed = True
                        if seen != fingerprint:
                            status, payload = 400, json.dumps(_error(
                                "idempotency_error", "idempotency_key_in_use")).encode()
                    else:
                        status, doc = fake._route(method, path, params, key)
                        payload = json.dumps(doc).encode()
                        if key and method == "POST" and status < 500:
                            fake.idempotency[key] = (fingerprint, status, payload)
                delay = next((s for p, s in fake.delay.items() if path.startswith(p)), 0.0)
                if delay and not replayed:
                    fake.delay.clear()  # one slow answer: the retry gets through
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Request-Id", _id("req"))
                if replayed:
                    self.send_header("Idempotent-Replayed", "true")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
                    self.wfile.write(payload)

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

        return Handler


def _error(type_: str, code: str, decline_code: str = "", intent: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "code": code, "message": f"fake stripe: {code}"}
    if decline_code:
        error["decline_code"] = decline_code
    if intent is not None:
        error["payment_intent"] = intent
    return {"error": error}
