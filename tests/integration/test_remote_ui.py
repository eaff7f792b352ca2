"""The same demo UIs in *remote* mode: after `kit promote`, Gradio and Streamlit call the service.

Read-only tests share the session's `promoted` service. The fault-isolation tests promote their
own service (in a private copy of the trained home) on a port they choose, stop it under a
running UI, bring it back, and check that the UI survived without a restart.
Expected predictions come from `RemotePredictor` / `LocalPredictor` (parity, not fixed numbers).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pytest
import requests
import streamlit as st
from gradio_client import Client
from streamlit.testing.v1 import AppTest

from app_production.client import RemotePredictor
from app_production.state import is_ready
from model.predictor import LocalPredictor, Prediction
from model.schema import ModelSchema, Record
from tests.helpers import (
    GENTOO,
    OUTPUT_ROOT,
    ROOT,
    Promoted,
    ServerProcess,
    declare_limits,
    free_port,
    http_get,
    run_kit,
    start_kit,
    wait_http,
)

STREAMLIT_APP = ROOT / "scripts" / "streamlit_page.py"  # what `kit demo --ui streamlit` runs
MODEL = "penguins:v1"
DEMO_STARTUP_S = 180  # `kit demo` until "Demo running at" (2 shared cores: be generous)
PROMOTE_TIMEOUT_S = 400  # verify, store, build the Bento, start, /readyz, parity
PREDICT_TIMEOUT_S = 90  # one prediction through the UI: must end (answer or error), never hang
UNAVAILABLE = "Model service unavailable"


# -- shared helpers ---------------------------------------------------------------------------


def _client(url: str) -> Client:
    return Client(url, analytics_enabled=False, verbose=False)


def predict_via_gradio(client: Client, record: Record = GENTOO) -> tuple[Any, str, Any]:
    """One prediction through the Gradio UI, bounded in time (a hung call fails the test)."""
    job = client.submit(**record, api_name="/predict")
    return tuple(job.result(timeout=PREDICT_TIMEOUT_S))


def start_gradio(home: Path, log: Path, *args: str) -> tuple[ServerProcess, str]:
    """`kit demo --ui gradio --port <free> ARGS` for `home`; (server, url) once it answers."""
    server = start_kit(
        "demo", "--ui", "gradio", "--port", str(free_port()), *args, home=home, log=log
    )
    try:
        url = server.wait_for(r"Demo running at (http://\S+)", timeout=DEMO_STARTUP_S).group(1)
        wait_http(url)
    except BaseException:
        server.stop()
        raise
    return server, url


def assert_alive(server: ServerProcess, url: str) -> None:
    assert server.proc.poll() is None, f"the UI process exited:\n{server.output()}"
    assert http_get(url)[0] == 200, "the UI page no longer answers"


def assert_same_prediction(raw: dict[str, Any], expected: Prediction) -> None:
    assert raw["label"] == expected.label
    assert raw["model_version"] == expected.model_version
    assert raw["probabilities"] == pytest.approx(expected.probabilities, abs=1e-9)


# -- Gradio against the session's promoted service --------------------------------------------


@pytest.fixture(scope="module")
def gradio_remote(promoted: Promoted) -> Iterator[tuple[ServerProcess, str]]:
    """`kit demo --backend auto` for the promoted home: auto must choose the service."""
    log = OUTPUT_ROOT / "test_remote_ui" / "gradio-auto.log"
    server, url = start_gradio(promoted.home, log, "--backend", "auto")
    try:
        yield server, url
    finally:
        server.stop()


def test_gradio_auto_backend_chooses_the_promoted_service(
    gradio_remote: tuple[ServerProcess, str], promoted: Promoted
) -> None:
    server, url = gradio_remote
    assert promoted.url.startswith("http://127.0.0.1:")
    startup = server.output()
    assert f"model {MODEL}" in startup
    assert f"backend remote: {promoted.url}" in startup, startup

    status, config = http_get(url + "config")
    assert status == 200
    # Served on loopback and not shared: the reader is the owner, who may see the URL.
    assert f"model service ({MODEL}) at {promoted.url}" in config
    assert MODEL in config
    assert "local: model in this process" not in config


def test_gradio_remote_predicts_like_the_service_and_the_local_model(
    gradio_remote: tuple[ServerProcess, str], promoted: Promoted
) -> None:
    _, url = gradio_remote
    label, summary, raw = predict_via_gradio(_client(url))

    remote = RemotePredictor(promoted.url)
    try:
        over_http = remote.predict([GENTOO])[0]
    finally:
        remote.close()
    local = LocalPredictor.from_home(promoted.home).predict([GENTOO])[0]

    assert raw == over_http.to_json()
    assert_same_prediction(raw, local)
    assert label["label"] == local.label == "Gentoo"
    shown = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert shown == pytest.approx(local.probabilities, abs=1e-9)
    assert "Gentoo" in summary and "`v1`" in summary


def test_gradio_remote_invalid_input_names_the_field(
    gradio_remote: tuple[ServerProcess, str],
) -> None:
    """The schema's validator runs in the UI before any call to the service."""
    _, url = gradio_remote
    bad = {**GENTOO, "flipper_length_mm": 181.5}
    with pytest.raises(Exception, match="failed validation") as caught:
        predict_via_gradio(_client(url), bad)
    message = str(caught.value)
    assert "'flipper_length_mm' must be an integer, got 181.5" in message
    assert "island" not in message and UNAVAILABLE not in message


def test_gradio_remote_shows_the_services_warnings(
    gradio_remote: tuple[ServerProcess, str], promoted: Promoted
) -> None:
    _, url = gradio_remote
    unusual = {**GENTOO, "bill_length_mm": 612}
    _, summary, raw = predict_via_gradio(_client(url), unusual)
    [local] = LocalPredictor.from_home(promoted.home).predict([unusual])
    assert local.warnings and raw["warnings"] == local.warnings
    assert_same_prediction(raw, local)
    assert local.warnings[0] in summary


# -- Streamlit (AppTest, in this process) against the session's promoted service --------------


@pytest.fixture(autouse=True)
def _fresh_streamlit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No predictor cached by an earlier test, and none of the developer's KIT_ settings."""
    for name in ("KIT_HOME", "KIT_BACKEND", "KIT_AUTH", "KIT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def start_streamlit(monkeypatch: pytest.MonkeyPatch, home: Path, **env: str) -> AppTest:
    monkeypatch.setenv("KIT_HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(STREAMLIT_APP), default_timeout=30)
    at.run(timeout=PREDICT_TIMEOUT_S)  # the first run loads the model metadata
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def set_inputs(at: AppTest, schema: ModelSchema, record: Record) -> None:
    for feature in schema.features:
        value = record[feature.name]
        widget = at.selectbox if feature.kind == "category" else at.number_input
        if feature.kind == "category":
            widget(key=f"in_{feature.name}").select(value)
        else:
            widget(key=f"in_{feature.name}").set_value(value)


def click_predict(at: AppTest) -> None:
    buttons = [b for b in at.button if b.label == "Predict"]
    assert len(buttons) == 1, [b.label for b in at.button]
    buttons[0].click().run(timeout=PREDICT_TIMEOUT_S)
    assert not at.exception, [e.value for e in at.exception]


def chart_data(at: AppTest) -> dict[str, float]:
    """The data behind the one probability bar chart."""
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1, f"expected one chart, found {len(charts)}"
    proto = charts[0].proto
    raw = proto.datasets[0].data.data if proto.datasets else proto.data.data
    table = pa.ipc.open_stream(io.BytesIO(raw)).read_all()
    return dict(zip(table["class"].to_pylist(), table["probability"].to_pylist(), strict=True))


def assert_streamlit_shows(at: AppTest, expected: Prediction) -> None:
    assert not at.error, [e.value for e in at.error]
    assert expected.label is not None and expected.probabilities is not None
    confidence = expected.probabilities[expected.label]
    assert [s.value for s in at.success] == [f"Prediction: {expected.label} ({confidence:.1%})"]
    assert chart_data(at) == pytest.approx(expected.probabilities, abs=1e-9)
    versions = [c.value for c in at.caption if c.value.startswith("answered by")]
    assert versions == [f"answered by model version {expected.model_version}"]
    assert_same_prediction(json.loads(at.json[0].value), expected)


def test_streamlit_auto_backend_shows_the_service_and_predicts_like_the_local_model(
    monkeypatch: pytest.MonkeyPatch, promoted: Promoted
) -> None:
    local = LocalPredictor.from_home(promoted.home)
    at = start_streamlit(monkeypatch, promoted.home)  # KIT_BACKEND unset: auto

    header = at.markdown[0].value
    assert f"`{MODEL}`" in header
    # AppTest sets no server address (Streamlit would then bind every interface): a tester's
    # view, which names the service and its model, not its URL.
    assert f"Backend: **model service ({MODEL})**" in header
    assert promoted.url not in header

    set_inputs(at, local.schema, GENTOO)
    click_predict(at)
    expected = local.predict([GENTOO])[0]
    assert expected.label == "Gentoo"
    assert_streamlit_shows(at, expected)


def test_streamlit_remote_shows_the_services_warnings(
    monkeypatch: pytest.MonkeyPatch, promoted: Promoted
) -> None:
    at = start_streamlit(monkeypatch, promoted.home, KIT_BACKEND="remote")
    at.number_input(key="in_bill_length_mm").set_value(612)
    click_predict(at)

    assert not at.error, [e.value for e in at.error]
    assert at.success
    [warning] = [w.value for w in at.warning]
    assert warning.startswith("bill_length_mm 612 is outside the range seen in the sample")


# -- Fault isolation: a service of the test's own, stopped and brought back under a UI ---------


@dataclass
class OwnService:
    """`kit promote` / `kit stop` for a private kit home; every service started is remembered
    with its whole process tree (BentoML's worker runs in a session of its own, outside the
    supervisor's process group)."""

    home: Path
    log: Path
    trees: dict[int, list[psutil.Process]] = field(default_factory=dict)

    def promote(self, *args: str) -> dict[str, Any]:
        result = run_kit("promote", *args, home=self.home, timeout=PROMOTE_TIMEOUT_S)
        with self.log.open("a") as out:
            out.write(f"$ kit promote {' '.join(args)}\n{result.stdout}{result.stderr}\n")
        state = self.state()
        if state is not None and state["pid"] not in self.trees:
            self.trees[state["pid"]] = _tree(state["pid"])
        assert result.returncode == 0, f"kit promote exited {result.returncode}:\n{result.stderr}"
        assert state is not None
        assert is_ready(state["url"])
        assert len(self.trees[state["pid"]]) >= 2, "expected a supervisor and its worker"
        return state

    def stop(self) -> None:
        result = run_kit("stop", home=self.home, check=True)
        with self.log.open("a") as out:
            out.write(f"$ kit stop\n{result.stdout}{result.stderr}\n")
        assert self.state() is None

    def state(self) -> dict[str, Any] | None:
        path = self.home / "state.json"
        return json.loads(path.read_text()) if path.exists() else None

    def alive(self, state: dict[str, Any]) -> list[psutil.Process]:
        """The processes of that service (supervisor and workers) still running."""
        return [p for p in self.trees.get(state["pid"], []) if _running(p)]

    def freeze(self, state: dict[str, Any]) -> None:
        for process in self.alive(state):
            process.suspend()

    def thaw(self, state: dict[str, Any]) -> None:
        for process in self.alive(state):
            process.resume()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _running(process: psutil.Process) -> bool:
    try:  # is_running() also compares the start time: a recycled pid is not ours
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def own_service(kit_home: Path, output_dir: Path) -> Iterator[OwnService]:
    """At teardown: `kit stop`, then no process of any service this test started is left."""
    service = OwnService(kit_home, output_dir / "service-commands.log")
    try:
        yield service
    finally:
        for pid in service.trees:
            service.thaw({"pid": pid})  # a frozen service could not even take its SIGTERM
        if service.state() is not None:
            run_kit("stop", home=kit_home)
        leftovers = [p for pid in service.trees for p in service.alive({"pid": pid})]
        for process in leftovers:  # started by this test's `kit promote`: ended by their pid
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        assert not leftovers, f"service processes left running: {leftovers}"


def test_gradio_ui_survives_a_stopped_service_and_recovers_on_the_same_port(
    own_service: OwnService, output_dir: Path
) -> None:
    port = free_port()
    first = own_service.promote("--port", str(port))
    assert first["url"] == f"http://127.0.0.1:{port}"
    server, url = start_gradio(own_service.home, output_dir / "demo.log", "--backend", "remote")
    try:
        ui_pid = server.proc.pid
        client = _client(url)
        local = LocalPredictor.from_home(own_service.home).predict([GENTOO])[0]
        assert_same_prediction(predict_via_gradio(client)[2], local)

        own_service.stop()
        assert not own_service.alive(first) and not is_ready(first["url"])
        assert_alive(server, url)  # the UI does not depend on the service to stay up

        with pytest.raises(Exception, match=UNAVAILABLE) as caught:
            predict_via_gradio(client)
        assert first["url"] in str(caught.value), str(caught.value)
        assert "`kit status`" in str(caught.value) and "`kit promote`" in str(caught.value)
        assert_alive(server, url)

        second = own_service.promote("--port", str(port))
        assert second["url"] == first["url"] and second["pid"] != first["pid"]
        _, summary, raw = predict_via_gradio(client)  # same client, same UI: no restart
        assert_same_prediction(raw, local)
        assert "Gentoo" in summary
        assert server.proc.pid == ui_pid
        assert_alive(server, url)
    finally:
        server.stop()


def test_gradio_ui_follows_a_service_replaced_on_another_port(
    own_service: OwnService, output_dir: Path
) -> None:
    """`kit promote` again without --port: a new service on another port replaces the old one;
    the running UI finds it through the state file after its first connection failure."""
    port = free_port()
    first = own_service.promote("--port", str(port))
    server, url = start_gradio(own_service.home, output_dir / "demo.log", "--backend", "remote")
    try:
        ui_pid = server.proc.pid
        client = _client(url)
        local = LocalPredictor.from_home(own_service.home).predict([GENTOO])[0]
        assert_same_prediction(predict_via_gradio(client)[2], local)

        second = own_service.promote()  # no --port: the first free port from 3000
        assert second["port"] != port and second["pid"] != first["pid"]
        assert not own_service.alive(first), "the replaced service is still running"
        assert not is_ready(first["url"])

        _, summary, raw = predict_via_gradio(client)
        assert_same_prediction(raw, local)
        assert "Gentoo" in summary
        assert server.proc.pid == ui_pid
        assert_alive(server, url)
    finally:
        server.stop()


def test_streamlit_remote_invalid_value_names_the_field_from_the_service_422(
    monkeypatch: pytest.MonkeyPatch, own_service: OwnService
) -> None:
    """The Streamlit page does not validate by itself: the field error is the service's 422
    (for a hard limit the user declared: values outside the sample's range are predicted)."""
    declare_limits(own_service.home)
    served = own_service.promote("--port", str(free_port()))
    answers: list[tuple[str, int]] = []
    send = requests.adapters.HTTPAdapter.send

    def recording_send(self: Any, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        response = send(self, request, **kwargs)
        if request.method == "POST":
            answers.append((str(request.url), response.status_code))
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recording_send)
    at = start_streamlit(monkeypatch, own_service.home, KIT_BACKEND="remote")
    at.number_input(key="in_bill_length_mm").set_value(612)
    answers.clear()
    click_predict(at)

    messages = [e.value for e in at.error]
    assert len(messages) == 1, messages
    assert messages[0].startswith("Invalid input: feature 'bill_length_mm' must be")
    assert "between 10 and 100" in messages[0] and "612" in messages[0]
    assert not at.success and not at.get("vega_lite_chart")
    assert answers == [(f"{served['url']}/predict", 422)]


def test_streamlit_ui_survives_a_stopped_service_and_recovers_on_the_same_port(
    own_service: OwnService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One AppTest session throughout: stop → an error in the page, promote → predictions again."""
    port = free_port()
    first = own_service.promote("--port", str(port))
    local = LocalPredictor.from_home(own_service.home)
    expected = local.predict([GENTOO])[0]

    get_option = st.get_option  # as `kit demo` serves it: on loopback, for the owner
    monkeypatch.setattr(
        st, "get_option", lambda key: "127.0.0.1" if key == "server.address" else get_option(key)
    )
    at = start_streamlit(monkeypatch, own_service.home, KIT_BACKEND="remote")
    assert f"Backend: **model service ({MODEL}) at {first['url']}**" in at.markdown[0].value
    set_inputs(at, local.schema, GENTOO)
    click_predict(at)
    assert_streamlit_shows(at, expected)

    own_service.stop()
    click_predict(at)  # no exception (checked), just a message in the page
    messages = [e.value for e in at.error]
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"{UNAVAILABLE}: "), messages[0]
    assert first["url"] in messages[0]
    assert "`kit status`" in messages[0] and "`kit promote`" in messages[0]  # what to do
    assert not at.success and not at.get("vega_lite_chart")
    assert f"`{MODEL}`" in at.markdown[0].value  # the page itself is still drawn
    assert "Predict" in [b.label for b in at.button]

    second = own_service.promote("--port", str(port))
    assert second["url"] == first["url"]
    click_predict(at)
    assert_streamlit_shows(at, expected)


def test_gradio_ui_answers_with_an_error_when_the_service_freezes(
    own_service: OwnService, output_dir: Path
) -> None:
    """A service that accepts connections but never answers (SIGSTOP): the prediction ends with
    an error instead of hanging, the UI works again once the service resumes, and the error
    says what happened (a timeout, not an unreachable service)."""
    port = free_port()
    state = own_service.promote("--port", str(port))
    server, url = start_gradio(own_service.home, output_dir / "demo.log", "--backend", "remote")
    try:
        client = _client(url)
        local = LocalPredictor.from_home(own_service.home).predict([GENTOO])[0]
        assert_same_prediction(predict_via_gradio(client)[2], local)

        own_service.freeze(state)  # SIGSTOP to the supervisor and its worker
        try:
            with pytest.raises(Exception, match=UNAVAILABLE) as caught:
                predict_via_gradio(client)  # bounded: PREDICT_TIMEOUT_S > the client's 30 s
            assert_alive(server, url)
        finally:
            own_service.thaw(state)

        assert_same_prediction(predict_via_gradio(client)[2], local)
        assert_alive(server, url)
    finally:
        server.stop()
    # Last, so that the checks above still run: the message must name the timeout.
    message = str(caught.value)
    assert f"model service at {state['url']} did not answer in time" in message, message
