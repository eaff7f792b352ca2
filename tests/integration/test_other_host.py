"""Seen from another host: a shared demo answers only its login, the exposed service only its
probes without the key.

The other host is a network namespace this module creates (root and iproute2 are needed), joined
to this machine by a veth pair: this side ADDR = 10.200.X.1, the other 10.200.X.2. Servers bind to
ADDR exactly, never 0.0.0.0, so nothing is exposed to the real network. The other host's client
is tests/other_host_probe.py, run there (`ip netns exec NS python -m tests.other_host_probe
PROBE`, the plan on stdin, what it got as JSON on stdout).

Controls, so that the checks can fail: the namespace does reach ADDR (a plain http.server bound to
it answers), and a demo bound to 127.0.0.1 is not reachable from it.

Figures: test-output/reliability/other_host.json.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.exposure import gradio_get_paths, leaks, model_words
from tests.helpers import (
    GENTOO,
    ROOT,
    Promoted,
    ServerProcess,
    free_port,
    run_kit,
    start_kit,
    stop_promoted,
    write_figures,
)

if TYPE_CHECKING:
    from app_prototype.gradio_app import Launched

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these

PROBE_MODULE = "tests.other_host_probe"  # what the other host runs
NEEDS = "root and iproute2 (`ip netns`, veth): run the reliability tests as root on Linux"
USER = "tester"
PROXY_VARS = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ws_proxy"})
NO_PROXY = {"NO_PROXY": "*", "no_proxy": "*"}  # every client here talks to the link directly
# Open before signing in, about the page, not the model (as in test_shared_demo.py).
FOR_LOGIN = {"/gradio_api/theme.css", "/gradio_api/startup-events"}
API_PREFIXES = ("/gradio_api/", "/config", "/info", "/file", "/monitoring", "/api/", "/run/")
NOT_ANSWERED = (401, 403, 404)
# Streamlit's own HTTP routes (streamlit/web/server/starlette/*_routes.py); the app itself only
# speaks over the WebSocket /_stcore/stream.
STREAMLIT_ROUTES = [
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/manifest.json"),
    ("GET", "/healthz"),
    ("GET", "/_stcore/health"),
    ("GET", "/_stcore/host-config"),
    ("GET", "/_stcore/script-health-check"),
    ("GET", "/_stcore/metrics"),
    ("GET", "/_stcore/agent/openapi.json"),
    ("POST", "/_stcore/agent/interact"),
    ("POST", "/_stcore/agent/mcp"),
    ("GET", "/_stcore/stream"),
    ("PUT", "/_stcore/upload_file/x/y"),
    ("GET", "/media/x"),
    ("GET", "/app/static/x"),
    ("GET", "/component/x/index.html"),
    ("GET", "/static/x"),
    ("GET", "/auth/login"),
    ("GET", "/oauth2callback"),
]
SIGN_IN_ONLY = [
    "heading: Sign in to the demo",
    "text_input: Username",
    "text_input: Password",
    "button: Sign in",
]
STARTUP_TIMEOUT_S = 120
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the other host ---------------------------------------------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def _unused_subnet() -> int:
    """An X for 10.200.X.0/24 that no route or address of this machine uses."""
    seen = _ip("-4", "route").stdout + _ip("-4", "addr").stdout
    used = {int(x) for x in re.findall(r"\b10\.200\.(\d+)\.", seen)}
    free = [x for x in range(1, 255) if x not in used]
    assert free, "every 10.200.X.0/24 is in use on this machine"
    return secrets.choice(free)


@dataclass(frozen=True)
class OtherHost:
    """A network namespace reaching this machine at `addr` (it is `peer` on that link)."""

    namespace: str
    addr: str
    peer: str

    def url(self, port: int, path: str = "/") -> str:
        return f"http://{self.addr}:{port}{path}"

    def probe(self, name: str, plan: dict[str, Any], timeout: float = 180) -> Any:
        """Run probe `name` of this module in the namespace; what it got, decoded."""
        env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS} | NO_PROXY
        command = [sys.executable, "-m", PROBE_MODULE, name]
        result = subprocess.run(
            ["ip", "netns", "exec", self.namespace, *command],
            input=json.dumps(plan),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"probe {name} exited {result.returncode}:\n{result.stderr}")
        return json.loads(result.stdout)

    def get(self, *urls: str) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = self.probe(
            "http", {"requests": [{"method": "GET", "url": u} for u in urls]}
        )
        return answers


@pytest.fixture(scope="module")
def other_host() -> Iterator[OtherHost]:
    """The namespace and its veth pair, always deleted at the end (the pair goes with it)."""
    if shutil.which("ip") is None:
        pytest.fail(f"`ip` not found: this test needs {NEEDS}")
    suffix = secrets.token_hex(3)
    namespace, here, there = f"kit-oh-{suffix}", f"kvh{suffix}", f"kvn{suffix}"
    subnet = _unused_subnet()
    addr, peer = f"10.200.{subnet}.1", f"10.200.{subnet}.2"
    created = _ip("netns", "add", namespace)
    if created.returncode != 0:
        pytest.fail(f"`ip netns add` failed ({created.stderr.strip()}): this test needs {NEEDS}")
    try:
        for step in (
            ["link", "add", here, "type", "veth", "peer", "name", there],
            ["link", "set", there, "netns", namespace],
            ["addr", "add", f"{addr}/24", "dev", here],
            ["link", "set", here, "up"],
            ["-n", namespace, "addr", "add", f"{peer}/24", "dev", there],
            ["-n", namespace, "link", "set", there, "up"],
            ["-n", namespace, "link", "set", "lo", "up"],
        ):
            done = _ip(*step)
            if done.returncode != 0:
                pytest.fail(f"`ip {' '.join(step)}` failed ({done.stderr.strip()}): needs {NEEDS}")
        yield OtherHost(namespace, addr, peer)
    finally:
        _ip("netns", "del", namespace)
        if _ip("link", "show", here).returncode == 0:  # only if the namespace did not take it
            _ip("link", "del", here)


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, Any]]:
    """What each test found, written to test-output/reliability/other_host.json at the end."""
    found: dict[str, Any] = {}
    yield found
    write_figures("other_host", dict(sorted(found.items())))


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def secret_words(trained_home: Path, password: str) -> list[str]:
    """What must not be readable without credentials: the model, its features, choices and
    classes, its titles, and the testers' password."""
    from model.predictor import LocalPredictor

    words = [*model_words(LocalPredictor.from_home(trained_home)), password]
    assert {"island", "bill_length_mm", "Biscoe", "Gentoo", "penguins"} <= set(words)
    return sorted(set(words))


@pytest.fixture(scope="module")
def loopback_demo(trained_home: Path, password: str) -> Iterator[Launched]:
    """The Gradio demo with credentials on 127.0.0.1, in this process: the control that must not
    be reachable from the other host, and the list of routes a Gradio demo registers."""
    from app_prototype.gradio_app import launch
    from model.predictor import LocalPredictor

    predictor = LocalPredictor.from_home(trained_home)
    launched = launch(predictor, port=free_port(), auth=(USER, password), say=lambda _: None)
    try:
        yield launched
    finally:
        launched.demo.close()


def free_port_on(addr: str) -> int:
    with socket.socket() as sock:
        sock.bind((addr, 0))
        return int(sock.getsockname()[1])


def wait_answering(url: str, server: ServerProcess | None = None, timeout: float = 90) -> None:
    """Poll `url` from this machine until it answers anything (a 401 too), with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server is not None and server.proc.poll() is not None:
            raise AssertionError(f"exited {server.proc.returncode}:\n{server.output()}")
        try:
            _DIRECT.open(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def listening(addr: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((addr, port)) == 0


def shown(answer: dict[str, Any]) -> str:
    """An answer as a failure message shows it."""
    if answer["status"] is None:
        return f"no answer: {answer['error']}"
    return f"{answer['status']}: {answer['body'][:300]!r}"


def streamlit_elements(frames: list[dict[str, Any]]) -> list[str]:
    """The elements a Streamlit run drew ("kind: label or text"), in order; spinners and other
    transient elements left out."""
    drawn = []
    for frame in frames:
        element = frame.get("delta", {}).get("new_element", {})
        for kind, props in element.items():
            if isinstance(props, dict) and not kind.endswith("_config"):
                drawn.append(f"{kind}: {props.get('label') or props.get('body') or ''}")
    return drawn


# -- the checks -------------------------------------------------------------------------------


def test_the_other_host_reaches_addr_but_not_a_loopback_demo(
    other_host: OtherHost, loopback_demo: Launched, tmp_path: Path, figures: dict[str, Any]
) -> None:
    (tmp_path / "hello.txt").write_text("from this machine")
    port = free_port_on(other_host.addr)
    plain = ServerProcess(
        [sys.executable, "-m", "http.server", "--bind", other_host.addr, str(port)],
        tmp_path / "http.log",
        env=dict(os.environ),
        cwd=tmp_path,
    )
    try:
        wait_answering(other_host.url(port, "/hello.txt"), plain)
        loopback_port = int(loopback_demo.demo.server_port)
        here = _DIRECT.open(f"http://127.0.0.1:{loopback_port}/", timeout=10)
        assert here.status == 200, "the loopback demo answers on this machine"
        reached, via_addr, via_loopback = other_host.get(
            other_host.url(port, "/hello.txt"),
            other_host.url(loopback_port),
            f"http://127.0.0.1:{loopback_port}/",
        )
    finally:
        plain.stop()
    assert (reached["status"], reached["body"]) == (200, "from this machine"), shown(reached)
    for answer in (via_addr, via_loopback):
        assert answer["status"] is None, shown(answer)
        assert re.search(r"refused|timed out", answer["error"], re.IGNORECASE), answer["error"]
    figures["namespace_reaches_addr"] = True
    figures["loopback_bound_reachable"] = False
    refused = "refused" in via_addr["error"].lower()
    figures["loopback_bound_answer"] = "connection refused" if refused else "timeout"


def test_the_shared_gradio_demo_answers_only_its_login(
    other_host: OtherHost,
    kit_home: Path,
    tmp_path: Path,
    password: str,
    secret_words: list[str],
    loopback_demo: Launched,
    figures: dict[str, Any],
) -> None:
    paths = gradio_get_paths(loopback_demo)
    assert len(paths) > 20, paths  # the enumeration found Gradio's routes
    port = free_port_on(other_host.addr)
    base = other_host.url(port, "").rstrip("/")
    api_calls = [
        ("/gradio_api/call/predict", {"data": list(GENTOO.values())}),
        ("/gradio_api/run/predict", {"data": list(GENTOO.values())}),
        ("/gradio_api/queue/join", {"data": list(GENTOO.values()), "fn_index": 0}),
        ("/gradio_api/upload", {}),
        ("/run/predict", {"data": list(GENTOO.values())}),
    ]
    plan: list[dict[str, Any]] = [{"method": "GET", "url": base + p} for p in paths]
    plan += [{"method": "POST", "url": base + p, "json": body} for p, body in api_calls]
    server = start_kit(
        "demo", "--host", other_host.addr, "--port", str(port),
        "--auth", f"{USER}:{password}", "--backend", "local",
        home=kit_home, log=tmp_path / "gradio.log", NO_PROXY="*", no_proxy="*",
    )  # fmt: skip
    try:
        url = server.wait_for(r"Demo running at (http://\S+)", timeout=STARTUP_TIMEOUT_S).group(1)
        assert url.rstrip("/") == base, server.output()
        wait_answering(url, server)
        answers = other_host.probe("http", {"requests": plan})
        signed_in = other_host.probe(
            "gradio-signin", {"url": url, "user": USER, "password": password, "record": GENTOO}
        )
    finally:
        server.stop()

    answered: dict[str, str] = {}
    for request, answer in zip(plan, answers, strict=True):
        path = request["url"][len(base) :] or "/"
        where = f"{request['method']} {path}"
        if found := leaks(answer["body"], secret_words):
            answered[where] = f"names {found}: {shown(answer)}"
        elif (
            path.startswith(API_PREFIXES)
            and path not in FOR_LOGIN
            and answer["status"] not in NOT_ANSWERED
        ):
            answered[where] = shown(answer)
    assert answered == {}, f"answered the other host without credentials: {answered}"
    root = answers[plan.index({"method": "GET", "url": base + "/"})]
    assert root["status"] == 200 and '"auth_required":true' in root["body"].replace(" ", "")
    for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json"):
        answer = answers[plan.index({"method": "GET", "url": base + path})]
        assert answer["status"] in (401, 403), (path, shown(answer))

    assert "credentials" in signed_in["without_credentials"], signed_in
    assert "Could not login" in signed_in["wrong_password"], signed_in
    assert signed_in["login_status"] == 200, signed_in
    assert signed_in["config_status"] == 200 and "bill_length_mm" in signed_in["config_body"]
    assert signed_in["label"] == "Gentoo", signed_in
    figures["gradio_routes_probed"] = len(plan)
    figures["gradio_answered_without_credentials"] = len(answered)
    figures["gradio_login_page_status"] = root["status"]
    figures["gradio_prediction_with_credentials"] = signed_in["label"]


def test_the_shared_streamlit_demo_answers_only_its_login(
    other_host: OtherHost,
    kit_home: Path,
    tmp_path: Path,
    password: str,
    secret_words: list[str],
    figures: dict[str, Any],
) -> None:
    port = free_port_on(other_host.addr)
    base = other_host.url(port, "").rstrip("/")
    plan = [{"method": method, "url": base + path} for method, path in STREAMLIT_ROUTES]
    server = start_kit(
        "demo", "--ui", "streamlit", "--host", other_host.addr, "--port", str(port),
        "--auth", f"{USER}:{password}", "--backend", "local",
        home=kit_home, log=tmp_path / "streamlit.log", NO_PROXY="*", no_proxy="*",
    )  # fmt: skip
    try:
        url = server.wait_for(r"Demo running at (http://\S+)", timeout=STARTUP_TIMEOUT_S).group(1)
        assert url.rstrip("/") == base, server.output()
        wait_answering(f"{base}/_stcore/health", server)
        answers = other_host.probe("http", {"requests": plan})
        runs = other_host.probe(
            "streamlit",
            {
                "url": f"ws://{other_host.addr}:{port}/_stcore/stream",
                "user": USER,
                "password": password,
                "record": GENTOO,
            },
        )
    finally:
        server.stop()

    answered: dict[str, str] = {}
    for request, answer in zip(plan, answers, strict=True):
        if found := leaks(answer["body"], secret_words):
            answered[f"{request['method']} {request['url'][len(base) :]}"] = f"names {found}"
    for run in ("anonymous", "wrong_password", "second_visitor"):
        frames = runs[run]
        if found := leaks(json.dumps(frames), secret_words):
            answered[f"WebSocket, {run}"] = f"names {found}: {streamlit_elements(frames)}"
    assert answered == {}, f"answered the other host without credentials: {answered}"
    index = answers[0]
    assert index["status"] == 200, shown(index)  # the app's page, which then signs in
    assert streamlit_elements(runs["anonymous"]) == SIGN_IN_ONLY
    assert streamlit_elements(runs["second_visitor"]) == SIGN_IN_ONLY  # per session, not host
    assert streamlit_elements(runs["wrong_password"]) == [
        *SIGN_IN_ONLY,
        "alert: Wrong username or password",
    ]

    signed_in = streamlit_elements(runs["signed_in"])
    assert any("`penguins:v1`" in e for e in signed_in), signed_in
    assert "number_input: bill_length_mm" in signed_in
    predicted = [e for e in streamlit_elements(runs["predicted"]) if "Prediction:" in e]
    assert len(predicted) == 1 and re.fullmatch(
        r"alert: Prediction: Gentoo \(\d+\.\d%\)", predicted[0]
    ), predicted
    figures["streamlit_routes_probed"] = len(plan) + 3  # and 3 runs over the WebSocket
    figures["streamlit_answered_without_credentials"] = len(answered)
    figures["streamlit_elements_without_credentials"] = streamlit_elements(runs["anonymous"])
    figures["streamlit_prediction_with_credentials"] = "Gentoo"


def test_the_exposed_service_needs_its_key_but_not_for_its_probes(
    other_host: OtherHost, kit_home: Path, secret_words: list[str], figures: dict[str, Any]
) -> None:
    port = free_port_on(other_host.addr)
    base = other_host.url(port, "").rstrip("/")
    where = ("promote", "--host", other_host.addr, "--port", str(port))
    refused = run_kit(*where, home=kit_home, timeout=300, NO_PROXY="*", no_proxy="*")
    assert refused.returncode == 2, refused.stderr
    assert "KIT_API_KEY" in refused.stderr, refused.stderr
    assert not listening(other_host.addr, port)
    [nothing] = other_host.get(f"{base}/livez")
    assert nothing["status"] is None, shown(nothing)  # nothing was left listening
    figures["service_without_key_exit"] = refused.returncode
    figures["service_without_key_listening"] = False

    key = secrets.token_urlsafe(24)
    started = run_kit(
        *where, home=kit_home, timeout=300, KIT_API_KEY=key, NO_PROXY="*", no_proxy="*"
    )
    service: Promoted | None = None
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads((kit_home / "state.json").read_text())
        service = Promoted(home=kit_home, url=state["url"], pid=state["pid"], output=started.stderr)
        assert service.url.rstrip("/") == base, state
        records = {"records": [GENTOO]}
        plan: list[dict[str, Any]] = [
            {"method": "POST", "url": f"{base}/predict", "json": records},
            {"method": "POST", "url": f"{base}/predict", "json": records,
             "headers": {"X-API-Key": key + "x"}},
            {"method": "POST", "url": f"{base}/predict", "json": records,
             "headers": {"X-API-Key": key}},
            {"method": "POST", "url": f"{base}/metadata", "json": {}},
            {"method": "GET", "url": f"{base}/livez"},
            {"method": "GET", "url": f"{base}/readyz"},
            {"method": "GET", "url": f"{base}/docs.json"},
            {"method": "GET", "url": f"{base}/metrics"},
        ]  # fmt: skip
        without, wrong, with_key, metadata, livez, readyz, docs, metrics = other_host.probe(
            "http", {"requests": plan}
        )
    finally:
        if service is not None:
            stop_promoted(service, KIT_API_KEY=key)
        else:
            run_kit("stop", home=kit_home, KIT_API_KEY=key)
    [after] = other_host.get(f"{base}/livez")

    assert without["status"] == 401, shown(without)
    assert wrong["status"] == 401, shown(wrong)
    assert metadata["status"] == 401, shown(metadata)
    assert key not in without["body"] + wrong["body"]
    assert with_key["status"] == 200, shown(with_key)
    [prediction] = json.loads(with_key["body"])["predictions"]
    assert prediction["label"] == "Gentoo", prediction
    assert (livez["status"], readyz["status"]) == (200, 200), (shown(livez), shown(readyz))
    assert after["status"] is None, shown(after)  # `kit stop` stopped it
    figures["predict_without_key_status"] = without["status"]
    figures["predict_wrong_key_status"] = wrong["status"]
    figures["metadata_without_key_status"] = metadata["status"]
    figures["predict_with_key_status"] = with_key["status"]
    figures["predict_with_key_label"] = prediction["label"]
    figures["probes_open"] = True
    # Open by design (app_production/guards.py OPEN_PATHS: they describe, never predict).
    figures["described_without_key"] = {
        "/docs.json": docs["status"],
        "/docs.json names the features": bool(leaks(docs["body"], secret_words)),
        "/metrics": metrics["status"],
    }
