"""A local demo EMR (connectors): an MLLP listener that ACKs DFTs and a small FHIR server, both in-process.

``rcmhub demo`` starts it and configures itself as its destination, so a new user sees results flow back
without any EMR. The FHIR side stores resources in memory and honours ``If-None-Exist`` (conditional
create) and ``PUT Type?identifier=`` (conditional update), as a real FHIR server does. Not for production.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.mllp import MllpServer, MllpServerThread
from mappings.hl7v2.ack import AckCode, build_ack, read_header
from mappings.hl7v2.er7 import parse


class FhirStore:
    """Resources by type and id, looked up by ``identifier=system|value``; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.creates = Counter[str]()
        self.updates = Counter[str]()

    def find(self, kind: str, identifier: str) -> dict[str, Any] | None:
        system, _, value = identifier.partition("|")
        for resource in self.resources.get(kind, {}).values():
            for ident in resource.get("identifier", []):
                if ident.get("value") == value and (not system or ident.get("system") == system):
                    return resource
        return None

    def create(self, kind: str, body: dict[str, Any], condition: str | None) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if condition:
                found = self.find(kind, parse_qs(condition).get("identifier", [""])[0])
                if found is not None:
                    return 200, found
            body["id"] = uuid.uuid4().hex[:16]
            self.resources.setdefault(kind, {})[body["id"]] = body
            self.creates[kind] += 1
            return 201, body

    def update(self, kind: str, identifier: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            found = self.find(kind, identifier)
            body["id"] = found["id"] if found else uuid.uuid4().hex[:16]
            self.resources.setdefault(kind, {})[body["id"]] = body
            self.updates[kind] += 1
            return (200 if found else 201), body


def _handler(store: FhirStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # the demo's output stays clean; bodies are never logged

        def _body(self) -> dict[str, Any]:
            data: dict[str, Any] = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            return data

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            kind = urlsplit(self.path).path.strip("/").split("/")[-1]
            self._reply(*store.create(kind, self._body(), self.headers.get("If-None-Exist")))

        def do_PUT(self) -> None:
            url = urlsplit(self.path)
            kind = url.path.strip("/").split("/")[-1]
            identifier = parse_qs(url.query).get("identifier", [""])[0]
            self._reply(*store.update(kind, identifier, self._body()))

    return Handler


class DemoSink:
    """MLLP + FHIR demo EMR on ephemeral local ports; ``messages`` counts distinct MSH-10 received."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.fhir = FhirStore()
        self.received: dict[str, int] = {}  # MSH-10 -> FT1 rows
        self._lock = threading.Lock()
        self.http = ThreadingHTTPServer((host, 0), _handler(self.fhir))
        self.http.daemon_threads = True
        self._http_thread = threading.Thread(target=self.http.serve_forever, name="demo-fhir", daemon=True)
        self.mllp: MllpServerThread | None = None

    async def _on_message(self, payload: bytes, peer: str) -> bytes:
        message = parse(payload)
        with self._lock:
            self.received[message.control_id] = len(message.all("FT1"))
        return build_ack(read_header(payload), AckCode.AA)

    def start(self) -> DemoSink:
        self._http_thread.start()
        self.mllp = MllpServer(self._on_message, host=self.host, port=0).run_in_thread()
        return self

    @property
    def mllp_port(self) -> int:
        assert self.mllp is not None
        return self.mllp.port

    @property
    def fhir_url(self) -> str:
        return f"http://{self.host}:{self.http.server_address[1]}/fhir"

    def stop(self) -> None:
        if self.mllp is not None:
            self.mllp.stop()
        self.http.shutdown()
        self.http.server_close()
