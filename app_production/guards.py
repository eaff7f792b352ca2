"""ASGI middleware for the service: an API key, a request-size limit read before the body, and
the kit's own error body for the requests BentoML refuses.

BentoML has no body limit of its own: without this a 50 MB request is parsed in full. Its own
400s (a body that is not JSON, not an object, without a `records` list, too many records) carry
pydantic's `detail` list, and its OpenAPI document says `detail` is a string: `RequestErrors`
answers them with the kit's 422 shape instead, so every 4xx the service sends is documented
(app_production/openapi.py): `{"error": str, "errors": [FieldError...]}`, field `(request)` for
an error about the whole request; a 401 is `{"error": str}`.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from model.errors import REQUEST, FieldError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Always open: probes, metrics, the OpenAPI document and its UI (they describe, never predict).
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/", "/docs"})
API_KEY_HEADER = "x-api-key"


def refusal(*errors: FieldError) -> dict[str, Any]:
    """The kit's 4xx body (the 422 shape): every error in one line, and each one."""
    return {"error": "; ".join(e.message for e in errors), "errors": [e.to_json() for e in errors]}


def request_error(expected: str, received: Any = None) -> FieldError:
    """An error about the request as a whole: "the request must be {expected}[, got ...]"."""
    return FieldError(0, REQUEST, expected, received)


async def _reply(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    encoded = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(encoded)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": encoded})


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
            error = f"API key {what}: send the service's KIT_API_KEY in the X-API-Key header"
            return await _reply(send, 401, {"error": error}, [(b"www-authenticate", b"ApiKey")])
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
            error = request_error("JSON (Content-Type: application/json)", content_type)
            return await _reply(send, 415, refusal(error))
        length = _header(scope, b"content-length")
        too_big = refusal(
            request_error(f"at most {self.max_bytes} bytes: send fewer records per request")
        )
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


# BentoML's 400 for a body its pydantic input model refuses, one entry per error: {"type",
# "loc", "msg"} (no input). What the request must be instead, by (first loc, type).
_JSON_INVALID = "json_invalid"
_EXPECTED = {
    ("", "model_type"): "a JSON object",
    ("records", "missing"): 'a JSON object with a "records" list',
    ("records", "list_type"): 'a JSON object whose "records" is a list of records',
}
_TOO_LONG = re.compile(r"at most (\d+) items.*?not (\d+)")


def _from_pydantic(detail: dict[str, Any]) -> FieldError:
    kind, loc = str(detail.get("type", "")), detail.get("loc") or []
    message = str(detail.get("msg", "")).removeprefix("Invalid JSON: ")
    if kind == _JSON_INVALID:
        return request_error(f"valid JSON ({message})")
    if kind == "too_long" and (found := _TOO_LONG.search(message)):
        return request_error(f"at most {found[1]} records (send fewer per request)", int(found[2]))
    expected = _EXPECTED.get((str(loc[0]) if loc else "", kind))
    where = ".".join(map(str, loc)) or "body"
    return request_error(expected or f"valid at {where} ({message})")


def _kit_body(status: int, body: Any) -> tuple[int, dict[str, Any]] | None:
    """BentoML's own 4xx body in the kit's shape (and its status), or None if it is ours."""
    if isinstance(body, dict) and isinstance(body.get("detail"), list) and status == 400:
        errors = [_from_pydantic(d) for d in body["detail"] if isinstance(d, dict)]
        if errors:
            bad_json = any(d.get("type") == _JSON_INVALID for d in body["detail"])
            return (400 if bad_json else 422), refusal(*errors)
    if isinstance(body, list):  # BentoMLException with a 4xx code: [{"error": "..."}]
        texts = [str(item.get("error")) for item in body if isinstance(item, dict)]
        return status, {"error": "; ".join(texts) or "request refused", "errors": []}
    if isinstance(body, dict) and "errors" not in body and status != 401:
        return status, {"error": str(body.get("error") or body.get("detail") or body), "errors": []}
    return None


class RequestErrors:
    """The kit's error body for BentoML's own 4xx answers to POSTs: a body that is not JSON is a
    400, JSON that is not `{"records": [...]}` (at most the limit) a 422, both with the 422
    shape (`refusal`). Other answers pass through untouched, unbuffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if 400 <= status < 500 and status not in (401, 413, 415, 422):
                    start = message  # BentoML's: hold it until the body is whole
                    return
                return await send(message)
            if start is None or message["type"] != "http.response.body":
                return await send(message)
            chunks.append(bytes(message.get("body", b"")))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            try:
                found = _kit_body(int(start["status"]), json.loads(body))
            except ValueError:
                found = None
            if found is None:
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            status, kit = found
            encoded = json.dumps(kit).encode()
            headers = [
                (key, value)
                for key, value in start.get("headers", [])
                if bytes(key).lower() not in (b"content-length", b"content-type")
            ]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(encoded)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": encoded})

        await self.app(scope, receive, rewrite)
