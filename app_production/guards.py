"""ASGI middleware for the service: an API key, and a request-size limit read before the body.

BentoML has no body limit of its own: without this a 50 MB request is parsed in full.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Always open: probes, metrics, the OpenAPI document and its UI (they describe, never predict).
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/", "/docs"})
API_KEY_HEADER = "x-api-key"


async def _reply(
    send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class ApiKeyGuard:
    """Every request but OPEN_PATHS and CORS preflights needs `X-API-Key` (or a Bearer token)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or scope["method"] == "OPTIONS"
            or scope["path"].startswith("/static_content/")
        ):
            return await self.app(scope, receive, send)
        given = _header(scope, API_KEY_HEADER.encode())
        if given is None:
            bearer = _header(scope, b"authorization") or ""
            given = bearer[7:] if bearer.lower().startswith("bearer ") else None
        if given is None or not hmac.compare_digest(given.encode(), self._key):
            what = "missing" if given is None else "wrong"
            return await _reply(
                send,
                401,
                f"API key {what}: send the service's KIT_API_KEY in the X-API-Key header",
                [(b"www-authenticate", b"ApiKey")],
            )
        return await self.app(scope, receive, send)


class BodyLimit:
    """Refuse oversized POST bodies: 413 by Content-Length before reading anything; without a
    Content-Length (chunked), the body is read here up to the limit, never further. 415 for
    anything but JSON."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        content_type = (_header(scope, b"content-type") or "application/json").split(";")[0]
        content_type = content_type.strip().lower()  # media types are case-insensitive
        if content_type != "application/json":
            return await _reply(
                send, 415, f"send JSON (Content-Type: application/json), not {content_type}"
            )
        length = _header(scope, b"content-length")
        too_big = f"request body over {self.max_bytes} bytes: send fewer records per request"
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                return await _reply(send, 413, too_big)
            return await self.app(scope, receive, send)
        body = bytearray()
        while True:  # chunked: buffer up to the limit (the app would read it all anyway)
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await _reply(send, 413, too_big)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: disconnect notices

        await self.app(scope, replay, send)
