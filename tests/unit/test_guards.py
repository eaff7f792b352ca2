"""`ApiKeyGuard` and `BodyLimit`, driven as plain ASGI: hand-made scope, receive and send."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from app_production.guards import OPEN_PATHS, ApiKeyGuard, BodyLimit

KEY = "k3y-0f-the-service"
LIMIT = 100


@dataclass
class Inner:
    """The protected app: records what reached it, reads the whole body, answers 200."""

    read_body: bool = True
    scopes: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(dict(scope))
        body = b""
        if self.read_body:
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
        self.bodies.append(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"inner:" + body})

    @property
    def called(self) -> int:
        return len(self.scopes)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    receive_calls: int  # how many times the app pulled a body chunk

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: Any,
    path: str = "/predict",
    method: str = "POST",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    chunks: list[bytes] | None = None,
    scope_type: str = "http",
) -> Response:
    """Run one request through `app`; `chunks` are the body's http.request messages."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    scope = {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 3000),
    }
    parts = list(chunks if chunks is not None else [b""])
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        if pulled <= len(messages):
            return messages[pulled - 1]
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, f"expected exactly one response start, got {sent}"
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    response_headers: dict[str, str] = {}
    for key, value in starts[0]["headers"]:
        name = key.decode("latin-1").lower()
        assert name not in response_headers, f"duplicate response header {name}"
        response_headers[name] = value.decode("latin-1")
    return Response(starts[0]["status"], response_headers, body, pulled)


JSON = {"content-type": "application/json"}


# --- ApiKeyGuard -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_open_paths_need_no_key(path: str, method: str) -> None:
    inner = Inner()
    response = call(ApiKeyGuard(inner, KEY), path=path, method=method)
    assert response.status == 200
    assert inner.called == 1
    assert path in OPEN_PATHS


def test_static_content_of_the_docs_ui_needs_no_key() -> None:
    inner = Inner()
    response = call(ApiKeyGuard(inner, KEY), path="/static_content/swagger-ui.css", method="GET")
    assert response.status == 200
    assert inner.called == 1


@pytest.mark.parametrize("path", ["/predict", "/metadata", "/livez/", "/predict/../livez"])
def test_a_request_without_key_is_refused_with_401(path: str) -> None:
    inner = Inner()
    response = call(ApiKeyGuard(inner, KEY), path=path, headers=JSON, chunks=[b"{}"])
    assert response.status == 401
    assert inner.called == 0
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == "ApiKey"
    assert int(response.headers["content-length"]) == len(response.body)
    error = response.json()["error"]
    assert "X-API-Key" in error
    assert "missing" in error
    assert "KIT_API_KEY" in error
    assert KEY not in response.body.decode()


@pytest.mark.parametrize(
    "given",
    [
        "not-the-key",
        "",
        KEY[:-1],  # a prefix of the right key
        KEY[:1],
        KEY + "x",  # the right key and more
        KEY.upper(),
        f" {KEY}",
    ],
)
def test_a_wrong_key_is_refused_with_401(given: str) -> None:
    inner = Inner()
    response = call(ApiKeyGuard(inner, KEY), headers={"X-API-Key": given, **JSON})
    assert response.status == 401
    assert inner.called == 0
    assert response.headers["www-authenticate"] == "ApiKey"
    error = response.json()["error"]
    assert "wrong" in error
    assert "X-API-Key" in error


@pytest.mark.parametrize("header_name", ["x-api-key", "X-API-Key", "X-Api-Key"])
def test_the_right_key_in_x_api_key_passes(header_name: str) -> None:
    inner = Inner()
    response = call(
        ApiKeyGuard(inner, KEY), headers=[(header_name, KEY), *JSON.items()], chunks=[b"{}"]
    )
    assert response.status == 200
    assert response.body == b"inner:{}"
    assert inner.called == 1
    assert inner.bodies == [b"{}"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_right_key_as_bearer_token_passes(scheme: str) -> None:
    inner = Inner()
    response = call(ApiKeyGuard(inner, KEY), headers={"Authorization": f"{scheme} {KEY}"})
    assert response.status == 200
    assert inner.called == 1


@pytest.mark.parametrize(
    "authorization", [f"Bearer {KEY[:-2]}", f"Basic {KEY}", KEY, "Bearer ", f"Bearer  {KEY}"]
)
def test_a_wrong_or_malformed_authorization_is_refused(authorization: str) -> None:
    inner = Inner()
    response = call(ApiKeyGuard(inner, KEY), headers={"Authorization": authorization})
    assert response.status == 401
    assert inner.called == 0


def test_options_preflight_passes_without_key() -> None:
    inner = Inner()
    response = call(ApiKeyGuard(inner, KEY), method="OPTIONS", path="/predict")
    assert response.status == 200
    assert inner.called == 1


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
def test_non_http_scopes_pass_through(scope_type: str) -> None:
    received: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        received.append(scope["type"])
        await send({"type": "http.response.start", "status": 204, "headers": []})

    response = call(ApiKeyGuard(inner, KEY), path="/predict", scope_type=scope_type)
    assert received == [scope_type]
    assert response.status == 204


# --- BodyLimit -------------------------------------------------------------------------------


def test_content_length_over_the_limit_is_refused_before_reading() -> None:
    inner = Inner()
    body = b"x" * (LIMIT + 1)
    response = call(
        BodyLimit(inner, LIMIT),
        headers={**JSON, "content-length": str(len(body))},
        chunks=[body],
    )
    assert response.status == 413
    assert inner.called == 0
    assert response.receive_calls == 0, "the body must not be read"
    assert response.headers["content-type"] == "application/json"
    assert str(LIMIT) in response.json()["error"]


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", ""])
def test_a_malformed_content_length_is_refused(length: str) -> None:
    inner = Inner()
    response = call(BodyLimit(inner, LIMIT), headers={**JSON, "content-length": length})
    assert response.status == 413
    assert inner.called == 0


def test_a_chunked_body_over_the_limit_is_refused_while_streaming() -> None:
    inner = Inner()
    chunks = [b"a" * 40, b"b" * 40, b"c" * 40, b"d" * 40]  # no Content-Length
    response = call(BodyLimit(inner, LIMIT), headers=JSON, chunks=chunks)
    assert response.status == 413
    assert str(LIMIT) in response.json()["error"]
    assert inner.bodies == [], "the inner app must never see the (partial) body"
    assert response.receive_calls == 3, "reading stops at the chunk that crosses the limit"


@pytest.mark.parametrize(
    ("chunks", "with_length"),
    [
        ([b'{"records": []}'], True),
        ([b"x" * LIMIT], True),  # exactly at the limit
        ([b"x" * 30, b"y" * 30, b"z" * 40], False),  # chunked, exactly at the limit
        ([b""], False),
    ],
)
def test_a_body_within_the_limit_reaches_the_inner_app_whole(
    chunks: list[bytes], with_length: bool
) -> None:
    inner = Inner()
    body = b"".join(chunks)
    headers = {**JSON, **({"content-length": str(len(body))} if with_length else {})}
    response = call(BodyLimit(inner, LIMIT), headers=headers, chunks=chunks)
    assert response.status == 200
    assert inner.bodies == [body]
    assert response.body == b"inner:" + body


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_post_with_a_non_json_content_type_is_refused_with_415(content_type: str) -> None:
    inner = Inner()
    response = call(BodyLimit(inner, LIMIT), headers={"content-type": content_type}, chunks=[b"{}"])
    assert response.status == 415
    assert inner.called == 0
    assert response.receive_calls == 0
    error = response.json()["error"]
    assert "application/json" in error
    assert content_type in error


@pytest.mark.parametrize(
    "headers",
    [{"content-type": "application/json; charset=utf-8"}, {"Content-Type": "application/json"}, {}],
)
def test_json_content_types_and_a_missing_one_pass(headers: dict[str, str]) -> None:
    inner = Inner()
    response = call(BodyLimit(inner, LIMIT), headers=headers, chunks=[b"{}"])
    assert response.status == 200
    assert inner.bodies == [b"{}"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_other_methods_are_untouched(method: str) -> None:
    inner = Inner()
    big = b"x" * (LIMIT * 3)
    response = call(
        BodyLimit(inner, LIMIT),
        method=method,
        path="/livez",
        headers={"content-type": "text/plain", "content-length": str(len(big))},
        chunks=[big],
    )
    assert response.status == 200
    assert inner.bodies == [big]


def test_guards_stacked_key_outside_size() -> None:
    """Key outside, size inside: an unauthenticated huge body is refused by the key check."""
    inner = Inner()
    app = ApiKeyGuard(BodyLimit(inner, LIMIT), KEY)
    huge = {**JSON, "content-length": str(LIMIT * 10)}
    assert call(app, headers=huge).status == 401
    assert call(app, headers={**huge, "x-api-key": KEY}).status == 413
    ok = call(app, headers={**JSON, "x-api-key": KEY}, chunks=[b"{}"])
    assert ok.status == 200
    assert inner.bodies == [b"{}"]
