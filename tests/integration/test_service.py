"""`kit promote` and the BentoML service, end to end over HTTP on loopback.

Read-only checks share the session's `promoted` service; tests that promote, replace, stop or
break a service use their own kit home (a copy of the trained one) and always stop what they
started. Nothing here asserts on speed: the machine is shared.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import psutil
import pytest
import requests

from app_production.state import ServiceState, is_our_service, stop_service
from tests.helpers import (
    GENTOO,
    Promoted,
    free_port,
    promote,
    run_kit,
    service_leftovers,
    services_of_home,
    stop_promoted,
)

STEPS = [
    "verify artifact",
    "save to the BentoML model store",
    "build the Bento",
    "start the service",
    "wait for /readyz",
    "parity check (local vs remote)",
    "record the endpoint",
]
TIMEOUT = 60  # seconds, for one HTTP call on a busy machine
JSON = {"Content-Type": "application/json"}


# --- helpers -------------------------------------------------------------------------------


def _post(url: str, payload: Any = None, *, data: Any = None, **headers: str) -> requests.Response:
    """POST JSON (or raw `data`) to the service; no retries, generous timeout."""
    if data is None:
        data = json.dumps(payload)
    return requests.post(url, data=data, headers={**JSON, **headers}, timeout=TIMEOUT)


def _predict(url: str, records: list[Any], **headers: str) -> requests.Response:
    return _post(f"{url}/predict", {"records": records}, **headers)


def _state(home: Path) -> dict[str, Any]:
    return json.loads((home / "state.json").read_text())


def _serving_port(port: int) -> list[int]:
    """Pids of `bentoml serve` processes started for `port` (by their command line)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "bentoml" in " ".join(command) and str(port) in command and "--port" in command:
            found.append(process.pid)
    return found


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_port_closed(port: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _port_open(port):
            return True
        time.sleep(0.2)
    return False


def _step_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("✓", "✗"))]


def _stop_home(home: Path, **env: str) -> None:
    """Teardown: `kit stop` for `home` (and check its group is gone) if it has a service."""
    if not (home / "state.json").exists():
        return
    state = _state(home)
    stop_promoted(Promoted(home, state["url"], state["pid"], ""), **env)


def _assert_serving(url: str, version: str, **headers: str) -> None:
    response = _predict(url, [GENTOO], **headers)
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert (prediction["label"], prediction["model_version"]) == ("Gentoo", version)


def _field_names(response: requests.Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _bounds(document: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    """A property's own keywords merged with those of its non-null anyOf branch."""
    prop = _resolve(document, prop)
    merged = dict(prop)
    for branch in prop.get("anyOf", []):
        branch = _resolve(document, branch)
        if branch.get("type") != "null":
            merged.update(branch)
    return merged


# --- kit promote from a clean state, then kit stop -----------------------------------------


def test_promote_from_a_clean_state_then_stop(kit_home: Path) -> None:
    port = free_port()
    result = run_kit("promote", "--port", str(port), home=kit_home, timeout=300)
    try:
        assert result.returncode == 0, result.stderr
        lines = _step_lines(result.stderr)
        assert len(lines) == len(STEPS), result.stderr
        for line, title in zip(lines, STEPS, strict=True):
            assert line.startswith(f"✓ {title}: "), line
        parity = re.search(r"(\d+) records \((\d+) with warnings, identical\)", lines[5])
        assert parity and 0 < int(parity.group(2)) < int(parity.group(1)), lines[5]
        url = f"http://127.0.0.1:{port}"
        assert f"API: {url}/predict" in result.stderr
        assert f"docs: {url}/docs" in result.stderr
        assert "next: kit demo" in result.stderr

        state = _state(kit_home)
        assert state["url"] == url and state["port"] == port and state["host"] == "127.0.0.1"
        assert state["model"] == "penguins:v1" and not state["api_key_required"]
        assert is_our_service(state["pid"])
        assert Path(state["log"]).is_file()
        for private in (kit_home / "state.json", Path(state["channel"]), Path(state["log"])):
            assert private.stat().st_mode & 0o777 == 0o600, private  # owner only (issue 11)

        dockerfile = re.search(r"Dockerfile: (\S+)\)", result.stderr)
        assert dockerfile, result.stderr
        text = Path(dockerfile.group(1)).read_text()
        assert "FROM " in text and "bentoml" in text.lower()
        bento = Path(dockerfile.group(1)).parents[2]
        assert (bento / "bento.yaml").is_file()
        assert (bento / "src" / "app_production" / "service.py").is_file()

        status = run_kit("status", "--json", home=kit_home, check=True)
        report = json.loads(status.stdout)
        assert report["backend"] == "remote"
        service = report["service"]
        assert service["url"] == url and service["ready"] is True and service["running"] is True
        assert service["model_in_store"] == service["model_in_service"] == "penguins:v1"
        assert service["problem"] == ""
        _assert_serving(url, "v1")
    finally:
        _stop_home(kit_home)

    assert not (kit_home / "state.json").exists()
    assert _wait_port_closed(port), f"port {port} still accepts connections after `kit stop`"
    assert not service_leftovers(state["pid"], state["service_id"])
    again = run_kit("stop", home=kit_home)
    assert again.returncode == 0 and "no promoted service" in again.stderr
    status = run_kit("status", "--json", home=kit_home, check=True)
    assert json.loads(status.stdout)["backend"] == "local"


def test_stop_with_nothing_promoted_exits_0(kit_home: Path) -> None:
    result = run_kit("stop", home=kit_home)
    assert result.returncode == 0, result.stderr
    assert "no promoted service to stop" in result.stderr


# --- read-only checks of the session's service ---------------------------------------------


def test_openapi_lists_predict_with_the_schema_fields(promoted: Promoted) -> None:
    response = requests.get(f"{promoted.url}/docs.json", timeout=TIMEOUT)
    assert response.status_code == 200
    document = response.json()
    assert "/predict" in document["paths"] and "post" in document["paths"]["/predict"]
    assert "/metadata" in document["paths"]
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    records = _resolve(document, _resolve(document, body["schema"])["properties"]["records"])
    assert records["type"] == "array" and records["maxItems"] == 1000
    record = _resolve(document, records["items"])
    manifest = json.loads((promoted.home / "models/penguins/v1/manifest.json").read_text())
    features = {f["name"]: f for f in manifest["schema"]["features"]}
    assert list(record["properties"]) == list(features)
    assert record["required"] == ["island"]
    assert record.get("additionalProperties") is False
    # The example pipeline encodes unseen islands: known ones are examples, not an enum.
    island = _bounds(document, record["properties"]["island"])
    assert "enum" not in island and island["examples"] == ["Biscoe", "Dream", "Torgersen"]
    assert "known categories: Biscoe, Dream, Torgersen (others: a warning)" in island["description"]
    bill = _bounds(document, record["properties"]["bill_length_mm"])
    assert "minimum" not in bill and "maximum" not in bill, "a sample's range is no hard limit"
    assert "expected range 29–63 (seen in the sample" in bill["description"]
    for name, feature in features.items():
        prop = _bounds(document, record["properties"][name])
        assert (prop.get("minimum"), prop.get("maximum")) == (
            feature["minimum"],
            feature["maximum"],
        )
        if feature["choices"] and not feature["allow_unknown"]:
            assert prop["enum"] == feature["choices"]


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/docs.json"])
def test_probes_and_metrics_answer(promoted: Promoted, path: str) -> None:
    response = requests.get(f"{promoted.url}{path}", timeout=TIMEOUT)
    assert response.status_code == 200
    if path == "/metrics":
        assert response.headers["content-type"].startswith("text/plain")
        assert "# TYPE " in response.text and "# HELP " in response.text
        assert "bentoml_" in response.text


def test_metrics_count_warnings_per_field(promoted: Promoted) -> None:
    def warned(field: str) -> float:
        text = requests.get(f"{promoted.url}/metrics", timeout=TIMEOUT).text
        line = f'kit_prediction_warnings_total{{field="{field}"}}'
        values = [float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)]
        return sum(values)

    before = warned("bill_depth_mm")
    unusual = {**GENTOO, "bill_depth_mm": 99.0}
    response = _predict(promoted.url, [unusual, GENTOO, unusual])
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert [("warnings" in p) for p in predictions] == [True, False, True]
    assert predictions[0]["warnings"][0].startswith("bill_depth_mm 99 is outside the range")
    assert warned("bill_depth_mm") == before + 2


def test_predict_gentoo(promoted: Promoted) -> None:
    response = _predict(promoted.url, [GENTOO])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"predictions"}
    [prediction] = body["predictions"]
    assert set(prediction) == {"label", "probabilities", "model_version"}
    assert prediction["label"] == "Gentoo" and prediction["model_version"] == "v1"
    assert set(prediction["probabilities"]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_metadata_is_the_artifact_manifest(promoted: Promoted) -> None:
    response = _post(f"{promoted.url}/metadata", {})
    assert response.status_code == 200
    served = response.json()
    manifest = json.loads((promoted.home / "models/penguins/v1/manifest.json").read_text())
    assert (served["name"], served["version"], served["sha256"]) == (
        manifest["name"],
        manifest["version"],
        manifest["sha256"],
    )
    assert served["schema"] == manifest["schema"] and served["metrics"] == manifest["metrics"]


@pytest.mark.reliability
def test_listens_on_loopback_only_by_default(promoted: Promoted) -> None:
    port = urlsplit(promoted.url).port
    leader = psutil.Process(promoted.pid)
    pids = {leader.pid, *(p.pid for p in leader.children(recursive=True))}
    listening = [
        c
        for c in psutil.net_connections(kind="tcp")
        if c.pid in pids and c.status == psutil.CONN_LISTEN
    ]
    assert any(c.laddr.port == port for c in listening), listening
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening


# --- the API docs: Swagger at /docs, the model's own texts, the shapes of the answers -------


def _document(url: str) -> dict[str, Any]:
    response = requests.get(f"{url}/docs.json", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _manifest(home: Path, name: str = "penguins", version: str = "v1") -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(
        (home / f"models/{name}/{version}/manifest.json").read_text()
    )
    return manifest


def _predict_responses(document: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = document["paths"]["/predict"]["post"]["responses"]
    return {str(status): answer for status, answer in responses.items()}


def _documented_prediction(document: dict[str, Any]) -> dict[str, Any]:
    """The schema of one item of `predictions` in the documented 200 answer of /predict."""
    ok = _predict_responses(document)["200"]["content"]["application/json"]["schema"]
    predictions = _resolve(document, _resolve(document, ok)["properties"]["predictions"])
    return _resolve(document, predictions["items"])


def _assets(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)


def test_docs_serves_swagger_from_the_service_itself(promoted: Promoted) -> None:
    """The advertised /docs is the Swagger page; it names only the service's own assets, says
    so to the browser (Content-Security-Policy) and has no tag manager."""
    response = requests.get(f"{promoted.url}/docs", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "googletagmanager" not in page.lower()
    assert "<title>penguins:v1" in page
    assets = _assets(page)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    for asset in assets:
        url = urljoin(response.url, asset)
        assert url.startswith(f"{promoted.url}/"), asset
        assert requests.get(url, timeout=TIMEOUT).status_code == 200, url
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert "https:" not in policy and "*" not in policy


def test_root_redirects_to_the_docs(promoted: Promoted) -> None:
    """BentoML's own page at / loads Google Tag Manager: / leads to /docs instead."""
    response = requests.get(f"{promoted.url}/", timeout=TIMEOUT)
    assert response.history and response.history[0].status_code in (302, 307, 308)
    assert response.url == f"{promoted.url}/docs" and response.status_code == 200
    assert "googletagmanager" not in response.text.lower()


def test_openapi_info_names_the_model(promoted: Promoted) -> None:
    """Not the Bento's name and build tag with the kit's whole README: the model's name and
    version, and (without annotations) one sentence of what it predicts."""
    info = _document(promoted.url)["info"]
    assert info["title"] == "penguins:v1"
    assert info["version"] == "v1"
    description = info["description"]
    assert description.splitlines()[0] == (
        "Predicts species (Adelie, Chinstrap, Gentoo) from 6 features."
    )
    assert "starter-kit" not in description and "BentoML" not in description
    assert len(description) < 600, description
    assert "contact" not in info


def test_openapi_request_example_is_the_schema_examples(promoted: Promoted) -> None:
    document = _document(promoted.url)
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    examples = _manifest(promoted.home)["schema"]["examples"]
    assert examples and body["example"] == {"records": examples}
    response = _predict(promoted.url, body["example"]["records"])
    assert response.status_code == 200, response.text


def test_openapi_documents_the_prediction_shape(promoted: Promoted) -> None:
    document = _document(promoted.url)
    prediction = _documented_prediction(document)
    props = prediction["properties"]
    assert set(props) == {"label", "probabilities", "model_version", "warnings"}
    assert set(prediction["required"]) == {"label", "probabilities", "model_version"}
    classes = _manifest(promoted.home)["schema"]["classes"]
    assert _bounds(document, props["label"])["enum"] == classes
    probabilities = _resolve(document, props["probabilities"])
    assert probabilities["type"] == "object" and list(probabilities["properties"]) == classes
    assert set(probabilities["required"]) == set(classes)
    warnings = _resolve(document, props["warnings"])
    assert warnings["type"] == "array" and warnings["items"] == {"type": "string"}
    assert "additionalProp1" not in json.dumps(_predict_responses(document)["200"])
    # a real answer, with warnings, has exactly the documented fields
    response = _predict(promoted.url, [{**GENTOO, "bill_depth_mm": 99.0}, GENTOO])
    for answer in response.json()["predictions"]:
        assert set(prediction["required"]) <= set(answer) <= set(props), answer
        assert list(answer["probabilities"]) == classes


def test_openapi_documents_the_422_field_errors(promoted: Promoted) -> None:
    document = _document(promoted.url)
    refused = _predict_responses(document)["422"]["content"]["application/json"]
    body = _resolve(document, refused["schema"])
    assert set(body["properties"]) == {"error", "errors"} == set(body["required"])
    field_error = _resolve(document, _resolve(document, body["properties"]["errors"])["items"])
    fields = {"record", "field", "expected", "received", "missing", "message"}
    assert set(field_error["properties"]) == fields
    assert set(field_error["required"]) == fields
    # the documented example is what the service answers, and so is a real refusal
    example = refused["example"]
    assert set(example) == {"error", "errors"} and example["errors"]
    assert all(set(error) == fields for error in example["errors"])
    answer = _post(f"{promoted.url}/predict", data='{"records": [{"island": 3}]}')
    assert answer.status_code == 422
    assert set(answer.json()) == {"error", "errors"}
    assert all(set(error) == fields for error in answer.json()["errors"])


REGRESSOR_NOTES = """\
[model]
title = "Penguin body mass"
description = "How heavy is a penguin? From its species, island, sex and measurements."
"""


@pytest.fixture(scope="module")
def annotated_regressor(
    regression_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Promoted]:
    """The imported regressor with a title and a description (`kit annotate`), promoted."""
    home = tmp_path_factory.mktemp("annotated-regressor") / "kit"
    shutil.copytree(regression_home, home)
    notes = home.parent / "annotations.toml"
    notes.write_text(REGRESSOR_NOTES)
    run_kit("annotate", "body-mass", str(notes), home=home, check=True)
    service = promote(home)
    try:
        yield service
    finally:
        stop_promoted(service)


def test_regression_docs_use_the_annotations(annotated_regressor: Promoted) -> None:
    url = annotated_regressor.url
    document = _document(url)
    info = document["info"]
    assert (info["title"], info["version"]) == ("Penguin body mass", "v2")
    assert info["description"].startswith("How heavy is a penguin? From its species")
    assert "body-mass:v2" in info["description"]
    prediction = _documented_prediction(document)
    assert set(prediction["properties"]) == {"value", "model_version", "warnings"}
    assert set(prediction["required"]) == {"value", "model_version"}
    assert _resolve(document, prediction["properties"]["value"])["type"] == "number"
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    records = body["example"]["records"]
    assert records == _manifest(annotated_regressor.home, "body-mass", "v2")["schema"]["examples"]
    response = _predict(url, records)
    assert response.status_code == 200, response.text
    for answer in response.json()["predictions"]:
        assert {"value", "model_version"} <= set(answer) <= set(prediction["properties"])
    page = requests.get(f"{url}/docs", timeout=TIMEOUT).text
    assert "<title>Penguin body mass" in page


def test_the_bento_describes_the_model_not_the_kit(annotated_regressor: Promoted) -> None:
    """The Bento's README (its description) and its apis/openapi.yaml are the model's."""
    dockerfile = re.search(r"Dockerfile: (\S+)\)", annotated_regressor.output)
    assert dockerfile, annotated_regressor.output
    bento = Path(dockerfile.group(1)).parents[2]
    readme = (bento / "README.md").read_text()
    assert readme.startswith("# Penguin body mass"), readme[:300]
    assert "How heavy is a penguin?" in readme and "starter-kit" not in readme
    spec = (bento / "apis" / "openapi.yaml").read_text()
    assert "title: Penguin body mass" in spec and "starter-kit" not in spec


# --- bad input: strict, a 4xx naming the field, never a 500 --------------------------------

BAD_FIELDS = {
    # case: (the field the 422 must name, the record as raw JSON: literals Python would not send)
    "string-for-number": ("bill_length_mm", '{"island": "Dream", "bill_length_mm": "40"}'),
    "false-for-number": ("bill_depth_mm", '{"island": "Dream", "bill_depth_mm": false}'),
    "true-for-integer": ("body_mass_g", '{"island": "Dream", "body_mass_g": true}'),
    "nan-literal": ("bill_length_mm", '{"island": "Dream", "bill_length_mm": NaN}'),
    "infinity-literal": ("bill_depth_mm", '{"island": "Dream", "bill_depth_mm": Infinity}'),
    "minus-infinity-literal": ("body_mass_g", '{"island": "Dream", "body_mass_g": -Infinity}'),
    "overflowing-number": ("bill_length_mm", '{"island": "Dream", "bill_length_mm": 1e400}'),
    "unknown-field": ("wings", '{"island": "Dream", "wings": 2}'),
    "number-for-category": ("island", '{"island": 3}'),
    "missing-required": ("island", '{"bill_length_mm": 40.0}'),
    "fraction-for-integer": ("flipper_length_mm", '{"island": "Dream", "flipper_length_mm": 1.5}'),
}


@pytest.mark.reliability
@pytest.mark.parametrize("case", list(BAD_FIELDS))
def test_bad_field_is_a_422_naming_it(promoted: Promoted, case: str) -> None:
    field, record = BAD_FIELDS[case]
    response = _post(f"{promoted.url}/predict", data='{"records": [' + record + "]}")
    assert response.status_code == 422, response.text
    assert field in _field_names(response)
    assert field in response.json()["error"]


BAD_REQUESTS = {
    "malformed-json": '{"records": [',
    "not-json": "island=Dream",
    "empty-body": "",
    "null-body": "null",
    "list-body": "[]",
    "no-records-key": "{}",
    "records-not-a-list": '{"records": {"island": "Dream"}}',
    "records-null": '{"records": null}',
    "non-object-record": '{"records": [5]}',
    "invalid-utf8": b'{"records": [{"island": "\xff\xfe"}]}',
}


@pytest.mark.reliability
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_a_4xx_never_a_500(promoted: Promoted, case: str) -> None:
    response = _post(f"{promoted.url}/predict", data=BAD_REQUESTS[case])
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


@pytest.mark.reliability
def test_too_many_records_is_refused(promoted: Promoted) -> None:
    at_limit = _predict(promoted.url, [GENTOO] * 1000)
    assert at_limit.status_code == 200
    assert len(at_limit.json()["predictions"]) == 1000
    over = _predict(promoted.url, [GENTOO] * 1001)
    assert 400 <= over.status_code < 500, over.text
    assert "1000" in over.text


def _raw_request(url: str, head: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """Send a request line, headers and (part of) a body; read the answer that comes back."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = ["POST /predict HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in head.items()]
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)  # a timeout here means the server waited for the body
            if not chunk:
                break
            answer += chunk
        # the rest of the answer, if any
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    return int(answer.split(b" ", 2)[1]), answer


@pytest.mark.reliability
def test_body_over_the_limit_is_refused_before_it_is_read(promoted: Promoted) -> None:
    """Content-Length over 1 MiB: 413 although only 1 KiB was sent (the body is never read),
    and the service answers normally afterwards."""
    status, answer = _raw_request(
        promoted.url,
        {"Content-Type": "application/json", "Content-Length": str(100 << 20)},
        b'{"records": [' + b" " * 1000,
    )
    assert status == 413, answer
    assert b"fewer records" in answer
    big = json.dumps({"records": [{**GENTOO, "pad": "x" * 2000}] * 600}).encode()
    assert len(big) > 1 << 20
    response = _post(f"{promoted.url}/predict", data=big)
    assert response.status_code == 413, response.text
    _assert_serving(promoted.url, "v1")


@pytest.mark.reliability
def test_chunked_body_over_the_limit_is_a_413(promoted: Promoted) -> None:
    """No Content-Length (Transfer-Encoding: chunked): refused while streaming, still a 413."""
    big = json.dumps({"records": [GENTOO] * 9000}).encode()
    assert len(big) > 1 << 20

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    response = requests.post(
        f"{promoted.url}/predict", data=chunks(), headers=JSON, timeout=TIMEOUT
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 413, (response.status_code, response.text)
    _assert_serving(promoted.url, "v1")


def test_small_chunked_body_is_served(promoted: Promoted) -> None:
    body = json.dumps({"records": [GENTOO]}).encode()
    response = requests.post(
        f"{promoted.url}/predict", data=iter([body]), headers=JSON, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label"] == "Gentoo"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
@pytest.mark.reliability
def test_other_content_types_are_a_415(promoted: Promoted, content_type: str) -> None:
    response = _post(
        f"{promoted.url}/predict", {"records": [GENTOO]}, **{"Content-Type": content_type}
    )
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json "]
)
def test_json_content_type_variants_are_accepted(promoted: Promoted, content_type: str) -> None:
    """Media types are case-insensitive (RFC 9110 §8.3.1)."""
    response = _post(
        f"{promoted.url}/predict", {"records": [GENTOO]}, **{"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text


def test_cli_remote_predict_names_a_nan_field(promoted: Promoted) -> None:
    """`kit predict` reads JSON with Python's json (NaN is accepted there): with the remote
    backend the answer must be the same field error as with the local one, exit 2."""
    record = '{"island": "Dream", "bill_length_mm": NaN}'
    local = run_kit("predict", "--backend", "local", "--json", record, home=promoted.home)
    assert local.returncode == 2 and "bill_length_mm" in local.stderr
    remote = run_kit("predict", "--backend", "remote", "--json", record, home=promoted.home)
    assert remote.returncode == 2, remote.stderr
    assert "Traceback" not in remote.stderr
    assert "feature 'bill_length_mm' must be" in remote.stderr


# --- API key -------------------------------------------------------------------------------


@pytest.mark.reliability
def test_api_key(kit_home: Path) -> None:
    key = secrets.token_urlsafe()
    port = free_port()
    result = run_kit("promote", "--port", str(port), home=kit_home, timeout=300, KIT_API_KEY=key)
    try:
        assert result.returncode == 0, result.stderr
        assert key not in result.stdout and key not in result.stderr
        state = _state(kit_home)
        url = state["url"]
        assert state["api_key_required"] is True

        for route, payload in (("/predict", {"records": [GENTOO]}), ("/metadata", {})):
            missing = _post(f"{url}{route}", payload)
            assert missing.status_code == 401
            assert "X-API-Key" in missing.json()["error"] and "missing" in missing.json()["error"]
            wrong = _post(f"{url}{route}", payload, **{"X-API-Key": key + "x"})
            assert wrong.status_code == 401 and "wrong" in wrong.json()["error"]
            assert _post(f"{url}{route}", payload, **{"X-API-Key": ""}).status_code == 401
            right = _post(f"{url}{route}", payload, **{"X-API-Key": key})
            assert right.status_code == 200, right.text
            bearer = _post(f"{url}{route}", payload, Authorization=f"Bearer {key}")
            assert bearer.status_code == 200, bearer.text
        _assert_serving(url, "v1", **{"X-API-Key": key})
        for path in ("/livez", "/readyz", "/metrics", "/docs", "/docs.json", "/"):
            assert requests.get(f"{url}{path}", timeout=TIMEOUT).status_code == 200, path

        record = json.dumps(GENTOO)
        ok = run_kit(
            "predict", "--backend", "remote", "--json", record, home=kit_home, KIT_API_KEY=key
        )
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["label"] == "Gentoo"
        refused = run_kit("predict", "--backend", "remote", "--json", record, home=kit_home)
        assert refused.returncode == 5, refused.stderr
        assert "KIT_API_KEY" in refused.stderr and ok.stdout and not refused.stdout

        status = run_kit("status", "--json", home=kit_home, check=True, KIT_API_KEY=key)
        assert key not in status.stdout + status.stderr
        service = json.loads(status.stdout)["service"]
        assert service["api_key_required"] is True
        assert service["model_in_service"] == "penguins:v1"

        assert key not in Path(state["log"]).read_text(errors="replace")
        assert key not in (kit_home / "state.json").read_text()
        leaks = [
            str(path)
            for path in kit_home.rglob("*")
            if path.is_file()
            and path.stat().st_size < 5 << 20
            and key.encode() in path.read_bytes()
        ]
        assert not leaks, f"the API key is written in {leaks}"
    finally:
        _stop_home(kit_home, KIT_API_KEY=key)


@pytest.mark.reliability
@pytest.mark.parametrize("key", [None, "", "  "], ids=["unset", "empty", "blank"])
def test_all_interfaces_without_a_key_is_refused_before_anything_starts(
    kit_home: Path, key: str | None
) -> None:
    port = free_port()
    env = {} if key is None else {"KIT_API_KEY": key}  # KIT_API_KEY= is no key (issue 11)
    result = run_kit("promote", "--host", "0.0.0.0", "--port", str(port), home=kit_home, **env)
    try:
        assert "KIT_API_KEY" in result.stderr and "0.0.0.0" in result.stderr
        assert not _step_lines(result.stderr)  # not even the first step ran
        assert not (kit_home / "state.json").exists()
        assert not (kit_home / "bentoml").exists() and not (kit_home / "logs").exists()
        assert not _serving_port(port) and not _port_open(port)
        assert result.returncode == 2, result.stderr  # documented: 2 = serving beyond localhost
    finally:
        _stop_home(kit_home)


# --- promote again: no downtime, then the new version serves --------------------------------


class _Poller(threading.Thread):
    """POST /predict to the old URL every 50 ms until state.json names another service."""

    def __init__(self, home: Path, url: str, pid: int) -> None:
        super().__init__(daemon=True)
        self.home, self.url, self.pid = home, url, pid
        self.successes = 0
        self.failures: list[str] = []
        self.switched = threading.Event()
        self.stop = threading.Event()

    def _switched(self) -> bool:
        try:
            return bool(_state(self.home)["pid"] != self.pid)
        except (OSError, ValueError, KeyError):
            return False

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            if self._switched():
                self.switched.set()
                return
            try:
                response = session.post(
                    f"{self.url}/predict",
                    json={"records": [GENTOO]},
                    timeout=TIMEOUT,
                )
                ok = response.status_code == 200 and (
                    response.json()["predictions"][0]["model_version"] == "v1"
                )
                problem = f"{response.status_code} {response.text[:200]}"
            except (requests.RequestException, ValueError, KeyError) as exc:
                ok, problem = False, repr(exc)
            if ok:
                self.successes += 1
            elif self._switched():  # the old one was stopped after the switch: expected
                self.switched.set()
                return
            else:
                self.failures.append(problem)
            time.sleep(0.05)


def test_promote_again_replaces_the_service_without_downtime(kit_home: Path) -> None:
    first = promote(kit_home)
    first_state = json.loads((kit_home / "state.json").read_text())
    old_port = urlsplit(first.url).port
    assert old_port is not None
    try:
        run_kit("train", home=kit_home, check=True)  # penguins:v2 becomes current
        poller = _Poller(kit_home, first.url, first.pid)
        poller.start()
        try:
            second = run_kit("promote", "--port", str(free_port()), home=kit_home, timeout=300)
        finally:
            poller.stop.set()
            poller.join(timeout=TIMEOUT + 5)
        assert second.returncode == 0, second.stderr
        assert poller.switched.is_set(), "the poller never saw the new state.json"
        assert poller.failures == [], poller.failures
        assert poller.successes > 0

        state = _state(kit_home)
        assert state["url"] != first.url and state["pid"] != first.pid
        assert state["model"] == "penguins:v2"
        assert f"replaced penguins:v1 at {first.url}" in second.stderr
        first_id = first_state["service_id"]
        assert not service_leftovers(first.pid, first_id), "the old service is still alive"
        assert not psutil.pid_exists(first.pid) or not is_our_service(first.pid)
        assert _wait_port_closed(old_port)

        _assert_serving(state["url"], "v2")
        metadata = _post(f"{state['url']}/metadata", {}).json()
        assert metadata["version"] == "v2"
        report = json.loads(run_kit("status", "--json", home=kit_home, check=True).stdout)
        assert report["service"]["model_in_store"] == "penguins:v2"
        assert report["service"]["model_in_service"] == "penguins:v2"
    finally:
        _stop_home(kit_home)
        if is_our_service(first.pid):  # only if the switch did not happen
            stop_service(ServiceState(**first_state))


# --- a failing promote leaves nothing half-started ------------------------------------------


@pytest.fixture(scope="module")
def serving(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Promoted]:
    """A home with a service promoted, that failing promotes must leave serving."""
    import shutil

    home = tmp_path_factory.mktemp("serving") / "kit"
    shutil.copytree(trained_home, home)
    service = promote(home)
    try:
        yield service
    finally:
        stop_promoted(service)


def _assert_previous_intact(serving: Promoted, state_before: str) -> None:
    assert (serving.home / "state.json").read_text() == state_before
    assert is_our_service(serving.pid)
    _assert_serving(serving.url, "v1")


def test_promote_on_a_taken_port_fails_before_starting(serving: Promoted) -> None:
    before = (serving.home / "state.json").read_text()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_kit("promote", "--port", str(port), home=serving.home, timeout=300)
        assert result.returncode != 0
        assert f"port {port} is in use" in result.stderr
        assert not _step_lines(result.stderr)  # refused before the first step
        assert not _serving_port(port)
    _assert_previous_intact(serving, before)


def test_promote_that_cannot_get_ready_stops_what_it_started(serving: Promoted) -> None:
    """The port is bound (not listening): the pre-check passes, `bentoml serve` cannot bind
    and exits. The readiness step fails, names itself, and nothing of the new run is left."""
    before = (serving.home / "state.json").read_text()
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        result = run_kit("promote", "--port", str(port), home=serving.home, timeout=300)
        assert result.returncode == 6, result.stderr
        lines = _step_lines(result.stderr)
        assert lines[-1].startswith("✗ wait for /readyz"), result.stderr
        assert [line[2:].split(":")[0] for line in lines[:-1]] == STEPS[:4]
        assert "exited before it was ready" in result.stderr
        started = re.search(r"start the service: \S+ \(pid (\d+)", result.stderr)
        assert started, result.stderr
        assert not service_leftovers(int(started.group(1)), "")
        serving_id = _state(serving.home)["service_id"]
        assert services_of_home(serving.home) == {serving_id}, "the failed run left processes"
        assert not _serving_port(port)
    _assert_previous_intact(serving, before)


@pytest.mark.reliability
def test_tampered_artifact_fails_at_verify(serving: Promoted) -> None:
    before = (serving.home / "state.json").read_text()
    model = serving.home / "models/penguins/v1/model.joblib"
    original = model.read_bytes()
    port = free_port()
    try:
        model.write_bytes(original + b"\0")
        result = run_kit("promote", "--port", str(port), home=serving.home, timeout=300)
    finally:
        model.write_bytes(original)
    assert result.returncode == 3, result.stderr
    lines = _step_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("✗ verify artifact"), result.stderr
    assert "sha256" in result.stderr and "changed since it was saved" in result.stderr
    assert not _serving_port(port) and not _port_open(port)
    _assert_previous_intact(serving, before)
