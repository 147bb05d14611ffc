"""Request guards that apply to every route (api): a NUL character in the path or query string is refused
with 400 before any route runs — no identifier contains one, and PostgreSQL text cannot hold it (the query
would fail as a server error instead of answering the caller)."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

NUL_BODY = json.dumps({"detail": "the request contains a NUL character", "location": "URL"}).encode()


class RejectNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope.get("path", "").encode()
            query = scope.get("query_string", b"")
            if b"\x00" in unquote_to_bytes(raw) or b"\x00" in unquote_to_bytes(query) or "\x00" in scope["path"]:
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(NUL_BODY)).encode())]})
                await send({"type": "http.response.body", "body": NUL_BODY})
                return
        await self.app(scope, receive, send)
