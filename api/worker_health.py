"""HTTP probes for ``rcmhub worker`` (api): ``/healthz`` while the process answers, ``/readyz`` while consuming.

Stdlib only: a worker has no FastAPI app, and probes must not depend on the broker or the database.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connectors.rabbitmq.consumer import WorkConsumer

PATHS = ("/healthz", "/readyz")


class WorkerHealth:
    """Serves the probes on ``host:port`` (port 0 picks a free one) from a daemon thread."""

    def __init__(self, consumers: list[WorkConsumer], host: str = "0.0.0.0", port: int = 8081) -> None:
        ready: Callable[[], dict[str, bool]] = lambda: {c.role: c.consuming.is_set() for c in consumers}  # noqa: E731
        self.server = ThreadingHTTPServer((host, port), _handler(ready))
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="rcmhub-health", daemon=True)

    def start(self) -> WorkerHealth:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(ready: Callable[[], dict[str, bool]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the stdlib names the hook
            if self.path == "/healthz":
                self._reply(200, {"status": "ok"})
            elif self.path == "/readyz":
                consuming = ready()
                ok = all(consuming.values())
                self._reply(200 if ok else 503, {"status": "ready" if ok else "not ready", "consuming": consuming})
            else:
                self._reply(404, {"detail": "not found"})

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a probe every few seconds is noise, not news

    return Handler
