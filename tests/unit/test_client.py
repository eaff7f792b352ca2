"""`RemotePredictor` against small real HTTP servers on loopback, scripted per test.

Only the model service is replaced (by `http.server`); requests, urllib3's retries, the
sockets and the client's error mapping are the real ones.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from app_production.client import RemotePredictor, Unauthorized
from model.errors import InvalidInput, KitError, ServiceUnavailable
from model.predictor import ModelInfo, Prediction
from model.schema import Feature, ModelSchema
from tests.helpers import closed_port

SCHEMA = ModelSchema(
    task="classification",
    classes=["Adelie", "Chinstrap", "Gentoo"],
    features=[
        Feature(name="island", kind="category", choices=["Biscoe", "Dream", "Torgersen"]),
        Feature(name="bill_length_mm", kind="number", minimum=29, maximum=63, required=False),
        Feature(name="flipper_length_mm", kind="integer", minimum=166, maximum=237),
        Feature(name="sex", kind="category", choices=["female", "male"], required=False),
    ],
    examples=[{"island": "Dream", "bill_length_mm": 39.1, "flipper_length_mm": 181, "sex": "male"}],
)
RECORD = SCHEMA.examples[0]
PREDICTION = {
    "label": "Adelie",
    "probabilities": {"Adelie": 0.9, "Chinstrap": 0.07, "Gentoo": 0.03},
    "model_version": "v3",
}
MANIFEST = {
    "name": "penguins",
    "version": "v3",
    "sha256": "ab" * 32,
    "schema": SCHEMA.model_dump(mode="json"),
    "metrics": {"test_accuracy": 0.97},
    "source": "train",  # fields the client does not use are ignored
}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialised unless bytes
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # read the request, then never answer (until the test ends)
    drop: bool = False  # read the request, then close the connection without answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any


class ScriptedServer:
    """A ThreadingHTTPServer answering POSTs with `replies` in turn (the last one repeats)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.seen: list[Seen] = []
        self.release = threading.Event()  # set at teardown: hanging handlers return
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.seen.append(
                        Seen(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw) if raw else None,
                        )
                    )
                    reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                if reply.hang or reply.drop:
                    if reply.hang:
                        outer.release.wait(10)
                    self.close_connection = True
                    return
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body)
                payload = payload.encode() if isinstance(payload, str) else payload
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # probes (/readyz): the same scripted replies
                self.do_POST()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    """serve(Reply(...), ...) -> a running ScriptedServer; every one is stopped at teardown."""
    servers: list[ScriptedServer] = []

    def start(*replies: Reply) -> ScriptedServer:
        server = ScriptedServer(list(replies))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., RemotePredictor]]:
    """RemotePredictor(...) that is always closed at teardown."""
    made: list[RemotePredictor] = []

    def make(url: str, **kwargs: Any) -> RemotePredictor:
        client = RemotePredictor(url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _invalid_input(records: list[Any]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        SCHEMA.validate_records(records)
    return caught.value


def test_success_returns_predictions_in_the_contract_shape(serve, clients) -> None:
    regression = {"value": 4123.5, "model_version": "v3"}
    server = serve(Reply(200, {"predictions": [PREDICTION, regression]}))
    client = clients(server.url + "/")  # a trailing slash is dropped
    predictions = client.predict([RECORD, {"island": "Biscoe", "flipper_length_mm": 200}])

    assert predictions == [Prediction(**PREDICTION), Prediction(**regression)]
    assert all(isinstance(p, Prediction) for p in predictions)
    assert predictions[0].to_json() == PREDICTION
    assert client.url == server.url
    [post] = server.posts
    assert post.path == "/predict"
    assert post.headers["content-type"] == "application/json"
    assert post.body == {"records": [RECORD, {"island": "Biscoe", "flipper_length_mm": 200}]}


def test_an_answer_outside_the_contract_is_not_accepted_silently(serve, clients) -> None:
    server = serve(Reply(200, {"predictions": [{"label": "Adelie"}]}))  # no model_version
    with pytest.raises(ValueError, match="model_version"):
        clients(server.url).predict([RECORD])


def test_422_field_errors_come_back_identical_to_local_validation(serve, clients) -> None:
    records: list[Any] = [
        {"bill_length_mm": "40", "flipper_length_mm": 181},  # island missing, "40" not a number
        {"island": "Mars", "flipper_length_mm": 181.5, "sex": None},
        {"island": "Dream", "flipper_length_mm": 300, "wings": 2, "bill_length_mm": True},
        ["not", "a", "record"],
    ]
    local = _invalid_input(records)
    assert any(e.missing for e in local.errors)  # the example covers every kind of error
    server = serve(Reply(422, {"errors": [e.to_json() for e in local.errors]}))

    with pytest.raises(InvalidInput) as caught:
        clients(server.url).predict(records)
    remote = caught.value
    assert remote.errors == local.errors
    assert [e.message for e in remote.errors] == [e.message for e in local.errors]
    assert str(remote) == str(local)
    assert remote.exit_code == 2
    assert server.posts[0].body == {"records": records}
    assert len(server.posts) == 1, "a 422 is final: never retried"


def test_another_4xx_is_invalid_input_with_the_services_text(serve, clients) -> None:
    server = serve(Reply(413, {"error": "request body over 1048576 bytes: send fewer records"}))
    with pytest.raises(InvalidInput) as caught:
        clients(server.url).predict([RECORD])
    [error] = caught.value.errors
    assert error.field == "(request)"
    assert "request body over 1048576 bytes" in error.expected
    assert len(server.posts) == 1


def test_a_pydantic_style_400_is_summarised(serve, clients) -> None:
    detail = [{"loc": ["body", "records"], "msg": "List should have at most 1000 items"}]
    server = serve(Reply(400, [{"detail": detail}]))
    with pytest.raises(InvalidInput, match=r"body\.records: List should have at most 1000 items"):
        clients(server.url).predict([RECORD])


def test_401_is_unauthorized_and_names_kit_api_key(serve, clients) -> None:
    server = serve(Reply(401, {"error": "API key missing"}, {"WWW-Authenticate": "ApiKey"}))
    with pytest.raises(Unauthorized) as caught:
        clients(server.url).predict([RECORD])
    assert "KIT_API_KEY" in str(caught.value)
    assert server.url in str(caught.value)
    assert isinstance(caught.value, KitError)
    assert caught.value.exit_code == 5
    assert len(server.posts) == 1


def test_503_is_retried_until_the_service_answers(serve, clients) -> None:
    busy = Reply(503, {"error": "warming up"})
    server = serve(busy, busy, Reply(200, {"predictions": [PREDICTION]}))
    predictions = clients(server.url).predict([RECORD])
    assert predictions == [Prediction(**PREDICTION)]
    assert len(server.posts) == 3
    assert all(p.body == {"records": [RECORD]} for p in server.posts)


def test_429_with_retry_after_zero_is_retried_at_once(serve, clients) -> None:
    server = serve(
        Reply(429, {"error": "overloaded"}, {"Retry-After": "0"}),
        Reply(200, {"predictions": [PREDICTION]}),
    )
    started = time.monotonic()
    predictions = clients(server.url).predict([RECORD])
    assert predictions == [Prediction(**PREDICTION)]
    assert len(server.posts) == 2
    assert time.monotonic() - started < 2


def test_503_for_good_is_service_unavailable_after_the_retries(serve, clients) -> None:
    server = serve(Reply(503, {"error": "model not loaded"}))
    with pytest.raises(ServiceUnavailable) as caught:
        clients(server.url, retries=2).predict([RECORD])
    assert len(server.posts) == 3  # the first try and 2 retries
    assert "503" in str(caught.value)
    assert "model not loaded" in str(caught.value)


def test_500_is_service_unavailable_without_retry(serve, clients) -> None:
    server = serve(Reply(500, b"Internal Server Error", {"Content-Type": "text/plain"}))
    with pytest.raises(ServiceUnavailable) as caught:
        clients(server.url).predict([RECORD])
    message = str(caught.value)
    assert server.url in message
    assert "500" in message
    assert "Internal Server Error" in message
    assert caught.value.exit_code == 4
    assert len(server.posts) == 1


def test_connection_refused_is_service_unavailable_quickly(clients) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = clients(url)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        client.predict([RECORD])
    assert time.monotonic() - started < 5
    assert url in str(caught.value)
    assert "cannot be reached" in str(caught.value)


def test_a_service_that_never_answers_times_out_as_service_unavailable(serve, clients) -> None:
    server = serve(Reply(hang=True))
    client = clients(server.url, timeout=(2.0, 0.3))
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        client.predict([RECORD])
    assert time.monotonic() - started < 3
    assert server.url in str(caught.value)
    assert len(server.posts) == 1, "a read timeout is not retried (read=0)"


def test_a_connection_closed_without_answer_is_service_unavailable(serve, clients) -> None:
    server = serve(Reply(drop=True))
    with pytest.raises(ServiceUnavailable) as caught:
        clients(server.url).predict([RECORD])
    assert server.url in str(caught.value)
    assert len(server.posts) == 1, "Retry(read=0): the POST is not sent again"


def test_a_read_timeout_says_did_not_answer_in_time(serve, clients) -> None:
    server = serve(Reply(hang=True))
    with pytest.raises(ServiceUnavailable, match="did not answer in time"):
        clients(server.url, timeout=(2.0, 0.3)).predict([RECORD])


@pytest.mark.parametrize("api_key", ["s3cret-key", None, ""])
def test_the_api_key_header_is_sent_only_when_given(serve, clients, api_key: str | None) -> None:
    server = serve(Reply(200, {"predictions": [PREDICTION]}))
    client = clients(server.url, api_key=api_key)
    client.predict([RECORD])
    client.predict([RECORD])  # the header stays on the session, call after call
    assert len(server.posts) == 2
    for post in server.posts:
        if api_key:
            assert post.headers["x-api-key"] == api_key
        else:
            assert "x-api-key" not in post.headers
        assert "authorization" not in post.headers


def test_resolve_url_finds_a_service_that_moved(serve, clients) -> None:
    live = serve(Reply(200, {"predictions": [PREDICTION]}))
    dead = f"http://127.0.0.1:{closed_port()}"
    asked: list[str] = []

    def resolve() -> str:
        asked.append("asked")
        return live.url + "/"

    client = clients(dead, resolve_url=resolve)
    assert client.predict([RECORD]) == [Prediction(**PREDICTION)]
    assert client.url == live.url
    assert asked == ["asked"]
    assert len(live.posts) == 1
    client.predict([RECORD])  # the new URL sticks: no more resolving
    assert asked == ["asked"]
    assert len(live.posts) == 2


@pytest.mark.parametrize("resolved", ["same", None])
def test_resolve_url_with_nothing_new_is_service_unavailable(clients, resolved: str | None) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    calls: list[int] = []

    def resolve() -> str | None:
        calls.append(1)
        return dead if resolved == "same" else None

    with pytest.raises(ServiceUnavailable, match="cannot be reached"):
        clients(dead, resolve_url=resolve).predict([RECORD])
    assert calls == [1], "resolved once, not in a loop"


def test_info_maps_the_manifest_and_is_cached(serve, clients) -> None:
    server = serve(Reply(200, MANIFEST))
    client = clients(server.url)
    info = client.info()
    assert info == ModelInfo(
        name="penguins",
        version="v3",
        sha256="ab" * 32,
        model_schema=SCHEMA,
        metrics={"test_accuracy": 0.97},
        backend=f"remote: {server.url}",
    )
    assert info.title == "penguins:v3"
    assert client.info() == info  # a copy naming the URL in use; fetched once
    assert [(p.path, p.body) for p in server.posts] == [("/metadata", {})]


def _proxy_environment(monkeypatch: pytest.MonkeyPatch, proxy: str, no_proxy: str) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    if no_proxy:
        monkeypatch.setenv("NO_PROXY", no_proxy)


@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"], ids=["no NO_PROXY", "NO_PROXY"])
def test_a_loopback_service_is_never_called_through_a_proxy(
    serve, clients, monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    """The kit's own service on this machine: HTTP_PROXY without NO_PROXY must not matter."""
    service = serve(Reply(body={"predictions": [PREDICTION]}))
    proxy = serve(Reply(body={"predictions": [PREDICTION]}))  # a stand-in forward proxy
    _proxy_environment(monkeypatch, proxy.url, no_proxy)
    for url in (service.url, service.url.replace("127.0.0.1", "localhost")):
        assert clients(url).predict([RECORD])[0].label == "Adelie"
    assert len(service.posts) == 2 and not proxy.posts


def test_a_remote_service_is_called_through_the_proxy_read_once(
    serve, clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-loopback URL honours HTTP_PROXY as requests would, read at construction only."""
    proxy = serve(Reply(body={"predictions": [PREDICTION]}))  # a stand-in forward proxy
    _proxy_environment(monkeypatch, proxy.url, "")
    remote = "http://model-service.example:3000"
    client = clients(remote)
    monkeypatch.delenv("HTTP_PROXY")  # a later change of the environment is not seen
    assert client.predict([RECORD])[0].label == "Adelie"
    assert [s.path for s in proxy.posts] == [f"{remote}/predict"]  # absolute form: via proxy


def test_a_remote_service_listed_in_no_proxy_is_called_directly(
    clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{closed_port()}"
    _proxy_environment(monkeypatch, proxy, "model-service.example")
    client = clients("http://model-service.example:3000", retries=0)
    with pytest.raises(ServiceUnavailable) as caught:
        client.predict([RECORD])
    cause = caught.value.__cause__
    assert isinstance(cause, requests.ConnectionError)
    assert not isinstance(cause, requests.exceptions.ProxyError)  # straight to its address


def test_readiness_of_a_loopback_service_ignores_the_proxy(
    serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`is_ready` (kit status, promote's waits, the remote backend) goes straight to loopback."""
    from app_production.state import is_ready

    service = serve(Reply(body="ok"))
    _proxy_environment(monkeypatch, f"http://127.0.0.1:{closed_port()}", "")
    assert is_ready(service.url)
    assert is_ready(service.url.replace("127.0.0.1", "localhost"))
    assert [s.path for s in service.seen] == ["/readyz", "/readyz"]
