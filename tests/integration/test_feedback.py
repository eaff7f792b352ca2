"""Testers' feedback, end to end: "Wrong? Tell us" in both UIs (Gradio through gradio_client,
Streamlit through AppTest), the service's POST /feedback (a real `kit promote`), a UI calling
the service, the service down, and `kit feedback` / `kit feedback export` on the real file."""

from __future__ import annotations

import csv
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import streamlit as st
from streamlit.testing.v1 import AppTest

from app_production.client import RemoteFeedback, RemotePredictor
from app_prototype.gradio_app import Launched, launch
from model.errors import ServiceUnavailable
from model.feedback import Feedback, FeedbackStore
from model.predictor import LocalPredictor
from tests.helpers import (
    GENTOO,
    ROOT,
    Promoted,
    free_port,
    gradio_client,
    promote,
    run_kit,
    stop_promoted,
)

APP = ROOT / "scripts" / "streamlit_page.py"


@pytest.fixture
def predictor(trained_home: Path) -> LocalPredictor:
    return LocalPredictor.from_home(trained_home)


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "feedback.sqlite")


def _launch(predictor: Any, store: Any, **options: Any) -> Launched:
    return launch(predictor, port=free_port(), say=lambda _: None, feedback=store, **options)


def test_gradio_saves_a_correction_with_the_prediction_and_the_tester(
    predictor: LocalPredictor, store: FeedbackStore
) -> None:
    password = secrets.token_urlsafe(12)
    app = _launch(predictor, store, auth=("ana", password))
    try:
        client = gradio_client(app.local_url, auth=("ana", password))
        _, _, raw = client.predict(**GENTOO, api_name="/predict")
        said = client.predict(
            **GENTOO,
            prediction=raw,
            correct="Chinstrap",
            comment="bill too long",
            api_name="/feedback",
        )
        assert said.startswith("Thank you") and "v1" in said
        with pytest.raises(Exception, match="Emperor") as not_a_class:  # Gradio's own check
            client.predict(
                **GENTOO, prediction=raw, correct="Emperor", comment="", api_name="/feedback"
            )
        no_class = client.predict(
            **GENTOO, prediction=raw, correct=None, comment="", api_name="/feedback"
        )
        nothing_shown = client.predict(
            **GENTOO, prediction={}, correct="Adelie", comment="", api_name="/feedback"
        )
    finally:
        app.demo.close()
    assert "Adelie" in str(not_a_class.value) and "Gentoo" in str(not_a_class.value)
    assert no_class.startswith("Feedback not saved") and "Adelie, Chinstrap, Gentoo" in no_class
    assert nothing_shown.startswith("Predict first")
    (row,) = store.rows()  # the refused ones saved nothing
    assert (row.model, row.version, row.correct, row.user) == ("penguins", "v1", "Chinstrap", "ana")
    assert row.record == predictor.info().model_schema.complete(GENTOO)
    assert row.prediction == raw and row.comment == "bill too long" and row.source == "gradio"


@pytest.fixture
def _fresh_streamlit(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> Iterator[None]:
    for name in ("KIT_BACKEND", "KIT_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KIT_HOME", str(trained_home))
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def _streamlit(predictor: Any, sink: Any) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.session_state["predictor"] = predictor
    at.session_state["feedback"] = sink
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _click(at: AppTest, label: str) -> None:
    (button,) = [b for b in at.button if b.label == label]
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]


class DownSink:
    """A sink whose service is down (what RemoteFeedback raises then)."""

    def save(self, feedback: Feedback) -> int:
        raise ServiceUnavailable("model service at http://127.0.0.1:9 cannot be reached")


@pytest.mark.usefixtures("_fresh_streamlit")
def test_streamlit_saves_a_correction_under_the_prediction_shown(
    predictor: LocalPredictor, store: FeedbackStore
) -> None:
    at = _streamlit(predictor, store)
    assert "Send feedback" not in [b.label for b in at.button]  # nothing predicted yet
    _click(at, "Predict")
    shown = at.success[0].value
    at.selectbox(key="fb_correct").select("Chinstrap")
    at.text_area(key="fb_comment").input("looks like a chinstrap")
    _click(at, "Send feedback")
    assert any(s.value.startswith("Thank you") for s in at.success)
    assert at.success[0].value == shown  # the prediction stays in view (no new call needed)
    (row,) = store.rows()
    schema = predictor.info().model_schema
    assert row.record == schema.complete(schema.defaults()) and row.correct == "Chinstrap"
    assert row.comment == "looks like a chinstrap" and row.source == "streamlit"
    assert row.prediction["model_version"] == "v1"


@pytest.mark.usefixtures("_fresh_streamlit")
def test_streamlit_keeps_the_form_when_feedback_cannot_be_saved(predictor: LocalPredictor) -> None:
    at = _streamlit(predictor, DownSink())
    _click(at, "Predict")
    at.selectbox(key="fb_correct").select("Gentoo")
    at.text_area(key="fb_comment").input("keep me")
    _click(at, "Send feedback")
    assert any("could not be saved" in e.value for e in at.error)
    assert at.text_area(key="fb_comment").value == "keep me"
    assert at.selectbox(key="fb_correct").value == "Gentoo"


@pytest.fixture(scope="module")
def served(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Promoted]:
    """`kit promote` of the example, with an API key: POST /feedback is guarded like /predict."""
    import shutil

    home = tmp_path_factory.mktemp("feedback") / "kit"
    shutil.copytree(trained_home, home)
    service = promote(home, KIT_API_KEY="feedback-test-key")
    try:
        yield service
    finally:
        stop_promoted(service, KIT_API_KEY="feedback-test-key")


def test_the_service_saves_feedback_next_to_the_model_and_guards_the_route(
    served: Promoted, predictor: LocalPredictor
) -> None:
    url, key = f"{served.url}/feedback", {"X-API-Key": "feedback-test-key"}
    prediction = predictor.predict([GENTOO])[0].to_json()
    body = {"record": GENTOO, "prediction": prediction, "correct": "Adelie", "user": "bo"}
    assert requests.post(url, json=body, timeout=10).status_code == 401
    saved = requests.post(url, json=body, headers=key, timeout=10)
    assert saved.status_code == 200, saved.text
    assert saved.json()["model"] == "penguins" and saved.json()["version"] == "v1"
    refused = requests.post(url, json={**body, "correct": "Emperor"}, headers=key, timeout=10)
    assert refused.status_code == 422
    (error,) = refused.json()["errors"]
    assert error["field"] == "correct" and error["received"] == "Emperor"
    empty = requests.post(url, json={}, headers=key, timeout=10)
    assert empty.status_code == 422
    assert {e["field"] for e in empty.json()["errors"]} == {"record", "prediction", "correct"}
    rows = FeedbackStore(served.home / "feedback.sqlite").rows()
    assert [(r.correct, r.user, r.source) for r in rows][-1] == ("Adelie", "bo", "api")
    # null texts mean "none", and the document says so (the fuzz test found it said string)
    nulls = {**body, "user": None, "comment": None, "source": None}
    assert requests.post(url, json=nulls, headers=key, timeout=10).status_code == 200
    assert FeedbackStore(served.home / "feedback.sqlite").rows()[-1].user == ""
    document = requests.get(f"{served.url}/docs.json", timeout=10).json()
    request = document["paths"]["/feedback"]["post"]["requestBody"]["content"]
    properties = request["application/json"]["schema"]["properties"]
    for name in ("user", "comment", "source"):
        assert {"type": "null"} in properties[name].get("anyOf", []), (name, properties[name])


def test_a_ui_calling_the_service_sends_feedback_there(
    served: Promoted, predictor: LocalPredictor
) -> None:
    remote = RemotePredictor(served.url, api_key="feedback-test-key")
    app = _launch(remote, RemoteFeedback(remote))
    try:
        client = gradio_client(app.local_url)
        _, _, raw = client.predict(**GENTOO, api_name="/predict")
        said = client.predict(
            **GENTOO, prediction=raw, correct="Gentoo", comment="right", api_name="/feedback"
        )
    finally:
        app.demo.close()
        remote.close()
    assert said.startswith("Thank you")
    row = FeedbackStore(served.home / "feedback.sqlite").rows()[-1]  # on the service's side
    assert (row.correct, row.comment, row.source) == ("Gentoo", "right", "gradio")
    assert not row.wrong  # a confirmation


def test_a_ui_whose_service_is_down_says_feedback_was_not_saved(predictor: LocalPredictor) -> None:
    down = RemotePredictor(f"http://127.0.0.1:{free_port()}", retries=0)
    app = _launch(predictor, RemoteFeedback(down))  # predicts locally, sends to a closed port
    try:
        client = gradio_client(app.local_url)
        _, _, raw = client.predict(**GENTOO, api_name="/predict")
        said = client.predict(
            **GENTOO, prediction=raw, correct="Adelie", comment="x", api_name="/feedback"
        )
    finally:
        app.demo.close()
        down.close()
    assert said.startswith("Feedback could not be saved: the model service is unavailable")


def test_kit_feedback_summarises_and_exports_training_rows(
    kit_home: Path, predictor: LocalPredictor, tmp_path: Path
) -> None:
    empty = run_kit("feedback", home=kit_home, check=True)
    assert "no feedback on penguins yet" in empty.stderr
    store = FeedbackStore(kit_home / "feedback.sqlite")
    schema = predictor.info().model_schema
    prediction = predictor.predict([GENTOO])[0].to_json()
    for correct, comment in (("Adelie", "short bill"), ("Gentoo", ""), ("Adelie", "")):
        store.save(
            Feedback("penguins", "v1", schema.complete(GENTOO), prediction, correct, comment)
        )
    shown = run_kit("feedback", home=kit_home, check=True).stdout
    assert "penguins:v1 · 3 feedback · 67% marked wrong" in shown
    assert "short bill" in shown
    summary = json.loads(run_kit("feedback", "--json", home=kit_home, check=True).stdout)
    assert summary[0]["confusion"] == {"Gentoo": {"Adelie": 2, "Gentoo": 1}}

    out = tmp_path / "corrections.csv"
    run_kit("feedback", "export", "--out", str(out), home=kit_home, check=True)
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [*schema.feature_names, schema.target or "target"]
    assert [r[schema.target or "target"] for r in rows] == ["Adelie", "Gentoo", "Adelie"]
    assert rows[0]["island"] == "Biscoe" and float(rows[0]["bill_length_mm"]) == 47.5
    folder = run_kit("feedback", "export", "--out", str(tmp_path), home=kit_home)
    assert folder.returncode == 2 and "is a folder" in folder.stderr
