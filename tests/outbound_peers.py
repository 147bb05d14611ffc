"""EMR peers for outbound delivery tests, built with other code than the hub's own.

``Hl7Peer``: python-hl7's asyncio MLLP server (``hl7.mllp``), parsing with python-hl7 and acknowledging with
its ``create_ack``. ``FhirPeer``: a small stdlib HTTP server that stores resources and honours
``If-None-Exist`` (conditional create) and ``PUT Type?identifier=`` (conditional update). Both book a
message once per stable id (MSH-10 / identifier) the way an EMR dedupes, count every arrival, and play a
script of faults for the next requests.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hl7
from hl7.mllp import start_hl7_server


class Hl7Peer:
    """Script actions, one per arriving message (then ``AA``): ``AA``, ``AE``, ``AR``, ``close`` (books the
    message, writes half an ACK and hangs up), ``silent`` (books it and never answers)."""

    def __init__(self, script: list[str] | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.script = list(script or [])
        self.ssl_context = ssl_context
        self.booked: dict[str, hl7.Message] = {}  # MSH-10 -> message, once
        self.arrivals: list[str] = []
        self.acks = Counter[str]()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="hl7-peer")

    def start(self) -> Hl7Peer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(start_hl7_server(self._client, "127.0.0.1", 0,
                                                                       ssl=self.ssl_context))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _client(self, reader: Any, writer: Any) -> None:
        try:
            while True:
                message = await reader.readmessage()
                control = str(message.segment("MSH")(10))
                with self.lock:
                    self.arrivals.append(control)
                    action = self.script.pop(0) if self.script else "AA"
                    if action in ("AA", "close", "silent"):
                        self.booked.setdefault(control, message)
                    self.acks[action] += 1
                if action == "close":
                    writer.write(b"\x0bMSH|^~\\&|PEER")
                    await writer.drain()
                    writer.close()
                    return
                if action == "silent":
                    await asyncio.sleep(3600)
                writer.writemessage(message.create_ack(action))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return

    def ft1_total(self, account: str) -> Decimal:
        """Sum of FT1-11 over the booked messages of one account (PID-18)."""
        total = Decimal("0.00")
        with self.lock:
            for message in self.booked.values():
                if str(message.segment("PID")(18)) != account:
                    continue
                for segment in message.segments("FT1"):
                    total += Decimal(str(segment(11)).split("&")[0])
        return total

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks(self.loop) if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        self.loop.call_soon_threadsafe(lambda: self.loop.create_task(close()))
        self._thread.join(5)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that timed out and hung up (the "slow" fault) is expected here


class FhirPeer:
    """Script entries for the next requests (then normal service): ``(status, headers)`` answered without
    storing, or ``("slow", seconds)`` - store, wait past the client's timeout, then answer."""

    def __init__(self, script: list[tuple[Any, Any]] | None = None) -> None:
        self.script = list(script or [])
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[tuple[float, str, str, int]] = []  # (time, method, path, status)
        self.lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fhir-peer")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def start(self) -> FhirPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.resources.get(kind, {}).values())

    def _find(self, kind: str, identifier: str) -> dict[str, Any] | None:
        system, _, value = identifier.partition("|")
        for resource in self.resources.get(kind, {}).values():
            if any(i.get("system") == system and i.get("value") == value for i in resource.get("identifier", [])):
                return resource
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any] | None = None,
                        headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body or {}, default=str).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                with peer.lock:
                    peer.requests.append((time.monotonic(), self.command, urlsplit(self.path).path, status))

            def _handle(self) -> None:
                url = urlsplit(self.path)
                kind = url.path.rstrip("/").split("/")[-1]
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))), parse_float=Decimal)
                with peer.lock:
                    step = peer.script.pop(0) if peer.script else None
                if step is not None and step[0] != "slow":
                    self._answer(int(step[0]), {"resourceType": "OperationOutcome"}, step[1])
                    return
                with peer.lock:
                    if self.command == "PUT":
                        identifier = parse_qs(url.query)["identifier"][0]
                        found = peer._find(kind, identifier)
                        body["id"] = found["id"] if found else uuid.uuid4().hex
                        status = 200 if found else 201
                    else:
                        condition = parse_qs(self.headers.get("If-None-Exist", "")).get("identifier", [""])[0]
                        found = peer._find(kind, condition) if condition else None
                        if found is not None:
                            status, body = 200, found
                        else:
                            body["id"], status = uuid.uuid4().hex, 201
                    peer.resources.setdefault(kind, {})[body["id"]] = body
                if step is not None:
                    time.sleep(float(step[1]))
                self._answer(status, body, None)

            do_POST = _handle
            do_PUT = _handle

        return Handler
