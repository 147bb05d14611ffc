"""HTTP access log without PHI: method, the matched route's *template*, status and duration.

uvicorn's own access log writes the request path and query string, which carry account numbers, claim
numbers and search terms (``/ui/accounts/{number}``, ``?q=``): ``serve`` turns it off and installs this.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

log = logging.getLogger("rcmhub.access")


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def _access(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", None) or "(no route)"
            log.info("%s %s %d %.1f ms", request.method, template, status, (time.perf_counter() - started) * 1000)
