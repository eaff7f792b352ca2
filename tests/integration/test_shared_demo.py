"""A Gradio demo behind credentials: nothing about the model is readable before signing in.

Gradio's own auth answers 401 on `/config` and the API, but its login page embeds the API
description (feature names, types, choices, defaults) and `/manifest.json` names the model."""

from __future__ import annotations

import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from app_prototype.gradio_app import Launched, launch
from model.predictor import LocalPredictor
from tests.exposure import gradio_get_paths, leaks, model_words
from tests.helpers import GENTOO, free_port, http_get

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these

USER = "tester"
# Open before signing in, about the page, not the model: the theme's CSS the login form is
# styled with, and the startup hook launch() calls itself (it answers true or false).
FOR_LOGIN = {"/gradio_api/theme.css", "/gradio_api/startup-events"}


@pytest.fixture(scope="module")
def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def predictor(trained_home: Path) -> LocalPredictor:
    return LocalPredictor.from_home(trained_home)


@pytest.fixture(scope="module")
def shared(predictor: LocalPredictor, password: str) -> Iterator[Launched]:
    launched = launch(predictor, port=free_port(), auth=(USER, password), say=lambda _: None)
    try:
        yield launched
    finally:
        launched.demo.close()


def test_nothing_about_the_model_is_readable_without_credentials(
    shared: Launched, predictor: LocalPredictor
) -> None:
    secret_words = model_words(predictor)
    assert {"island", "bill_length_mm", "Biscoe", "Gentoo"} <= set(secret_words)
    base = shared.local_url.rstrip("/")
    paths = gradio_get_paths(shared)
    assert len(paths) > 20, paths  # the enumeration found Gradio's routes
    leaked: dict[str, list[str]] = {}
    answered: dict[str, int] = {}
    for path in paths:
        try:
            status, body = http_get(base + path, timeout=3)
        except TimeoutError:  # a stream (server-sent events) was opened for us
            status, body = 0, ""
        answered[path] = status
        if found := leaks(body, secret_words):
            leaked[path] = found
    assert leaked == {}, leaked
    for path in ("/config", "/gradio_api/info", "/gradio_api/openapi.json"):
        assert answered[path] in (401, 403), (path, answered[path])
    api = [p for p in paths if p.startswith(("/gradio_api/", "/config", "/file", "/monitoring"))]
    open_api = {
        p: answered[p] for p in api if answered[p] not in (401, 403, 404) and p not in FOR_LOGIN
    }
    assert open_api == {}, open_api  # the API answers nothing before signing in
    assert answered["/"] == 200  # the login page


def test_the_api_refuses_calls_without_credentials(shared: Launched) -> None:
    base = shared.local_url.rstrip("/")
    for path, body in [
        ("/gradio_api/call/predict", b'{"data": []}'),
        ("/gradio_api/queue/join", b"{}"),
        ("/gradio_api/upload", b""),
    ]:
        request = urllib.request.Request(
            base + path, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status in (401, 403), (path, status)


def test_the_login_page_shows_no_api_description(shared: Launched) -> None:
    status, page = http_get(shared.local_url)
    assert status == 200
    assert "window.gradio_config" in page and '"auth_required":true' in page.replace(" ", "")
    [api_info] = re.findall(r"window\.gradio_api_info = (.*?);</script>", page)
    assert json.loads(api_info) in ({}, None, {"named_endpoints": {}, "unnamed_endpoints": {}})


def test_signing_in_still_works(shared: Launched, password: str) -> None:
    with pytest.raises(Exception, match="credentials"):
        Client(shared.local_url, analytics_enabled=False, verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(
            shared.local_url,
            auth=(USER, "wrong-" + password),
            analytics_enabled=False,
            verbose=False,
        )
    client = Client(shared.local_url, auth=(USER, password), analytics_enabled=False, verbose=False)
    assert client.predict(**GENTOO, api_name="/predict")[2]["label"] == "Gentoo"


def test_signed_in_the_page_describes_the_model(shared: Launched, password: str) -> None:
    """The browser's way: POST the login form, then the page and its config, with the cookie."""
    base = shared.local_url.rstrip("/")
    form = urllib.parse.urlencode({"username": USER, "password": password}).encode()
    with urllib.request.urlopen(urllib.request.Request(base + "/login", data=form)) as answer:
        cookie = "; ".join(c.split(";")[0] for c in answer.headers.get_all("Set-Cookie"))
    for path in ("/", "/config", "/gradio_api/info"):
        request = urllib.request.Request(base + path, headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            assert "bill_length_mm" in response.read().decode(), path


def test_without_auth_on_loopback_the_page_is_unchanged(predictor: LocalPredictor) -> None:
    launched = launch(predictor, port=free_port(), say=lambda _: None)
    try:
        status, page = http_get(launched.local_url)
        assert status == 200 and "bill_length_mm" in page  # the API description, as before
        assert "penguins" in http_get(launched.local_url + "manifest.json")[1]
        assert http_get(launched.local_url + "config")[0] == 200
    finally:
        launched.demo.close()
