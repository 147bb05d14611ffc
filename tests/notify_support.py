"""Local peers for notice tests: a real SMTP server (aiosmtpd), a fake Twilio-compatible SMS provider and a
fake payment gateway that records checkout sessions. Nothing here reaches the internet."""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

from connectors.payments.gateway import CheckoutSession, GatewayUnavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MailSink:
    """aiosmtpd handler: keeps every delivered message; refuses recipients listed in ``refuse``."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


@contextmanager
def smtp_server(**smtp_options: Any) -> Iterator[tuple[MailSink, int]]:
    """aiosmtpd on a free port; ``smtp_options`` go to its SMTP class (tls_context, require_starttls, ...)."""
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, **smtp_options)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass
class FakeTwilio:
    """Twilio's Messages API as far as the hub uses it: basic auth, form body, 201 with a sid; error JSON with
    Twilio's ``code`` for unsubscribed numbers (21610); ``fail_next`` answers 503 that many times first."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-token"
    unsubscribed: set[str] = field(default_factory=set)
    fail_next: int = 0
    messages: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, number: str) -> list[dict[str, str]]:
        with self.lock:
            return [m for m in self.messages if m["To"] == number]


@contextmanager
def sms_provider(given: FakeTwilio | None = None) -> Iterator[tuple[FakeTwilio, str]]:
    fake = given or FakeTwilio()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            with fake.lock:
                fake.requests += 1
                failing = fake.fail_next > 0
                fake.fail_next -= 1 if failing else 0
            expected = "Basic " + base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
            if self.path != f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json":
                return self._answer(404, {"code": 20404, "message": "not found", "status": 404})
            if self.headers.get("Authorization") != expected:
                return self._answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
            if failing:
                return self._answer(503, {"code": 20500, "message": "unavailable", "status": 503})
            if "To" not in form or "Body" not in form or not ("From" in form or "MessagingServiceSid" in form):
                return self._answer(400, {"code": 21604, "message": "missing parameter", "status": 400})
            if form["To"] in fake.unsubscribed:
                return self._answer(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                                          "status": 400})
            sid = "SM" + uuid.uuid4().hex
            with fake.lock:
                fake.messages.append({**form, "sid": sid})
            return self._answer(201, {"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class FakeCheckoutGateway:
    """The two gateway calls the pay page makes; sessions are recorded with their arguments."""

    customers: dict[str, str] = field(default_factory=dict)  # guarantor_ref -> customer id
    sessions: list[dict[str, object]] = field(default_factory=list)
    down: bool = False

    def ensure_customer(self, *, guarantor_ref: str, idempotency_key: str) -> str:
        return self.customers.setdefault(guarantor_ref, "cus_" + uuid.uuid4().hex[:14])

    def create_checkout_session(self, *, customer_ref: str, amount: Decimal, description: str, success_url: str,
                                cancel_url: str, idempotency_key: str) -> CheckoutSession:
        if self.down:
            raise GatewayUnavailable("gateway timed out")
        session_id = "cs_test_" + uuid.uuid4().hex
        self.sessions.append({"id": session_id, "customer_ref": customer_ref, "amount": amount,
                              "description": description, "success_url": success_url, "cancel_url": cancel_url,
                              "idempotency_key": idempotency_key})
        return CheckoutSession(session_id, f"https://checkout.example.test/c/pay/{session_id}")
