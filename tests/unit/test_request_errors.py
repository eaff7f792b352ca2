"""Errors about the whole request: their sentence (model/errors.py), BentoML's 400s in the
kit's shape (`RequestErrors`, app_production/guards.py), and the client reading them back."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from app_production.client import _field_errors, _request_error
from app_production.guards import RequestErrors, refusal, request_error
from model.errors import REQUEST, FieldError, InvalidInput
from tests.unit.test_guards import JSON, call

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these


def test_a_request_error_reads_as_a_sentence_without_a_feature_name() -> None:
    error = FieldError(0, REQUEST, "at most 1000 records (send fewer per request)", 1001)
    assert (
        error.message
        == "the request must be at most 1000 records (send fewer per request), got 1001"
    )
    assert "feature" not in error.message and "(request)" not in error.message
    assert (
        str(InvalidInput([request_error("a JSON object")])) == "the request must be a JSON object"
    )


def _bentoml(status: int, body: Any) -> Any:
    """An inner app answering like BentoML: `status` with `body` as JSON, in two chunks."""
    encoded = json.dumps(body).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(encoded)),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": encoded[:5], "more_body": True})
        await send({"type": "http.response.body", "body": encoded[5:]})

    return app


def _pydantic(*details: dict[str, Any]) -> dict[str, Any]:
    return {"error": f"{len(details)} validation error for Input", "detail": list(details)}


CASES = {
    "not-json": (
        {
            "type": "json_invalid",
            "loc": [],
            "msg": "Invalid JSON: expected value at line 1 column 1",
        },
        400,
        "the request must be valid JSON (expected value at line 1 column 1)",
    ),
    "not-an-object": (
        {"type": "model_type", "loc": [], "msg": "Input should be an object"},
        422,
        "the request must be a JSON object",
    ),
    "no-records": (
        {"type": "missing", "loc": ["records"], "msg": "Field required"},
        422,
        'the request must be a JSON object with a "records" list',
    ),
    "records-not-a-list": (
        {"type": "list_type", "loc": ["records"], "msg": "Input should be a valid array"},
        422,
        'the request must be a JSON object whose "records" is a list of records',
    ),
    "too-many": (
        {
            "type": "too_long",
            "loc": ["records"],
            "msg": "List should have at most 1000 items after validation, not 1001",
        },
        422,
        "the request must be at most 1000 records (send fewer per request), got 1001",
    ),
    "other": (
        {"type": "weird", "loc": ["records", 0], "msg": "Something"},
        422,
        "the request must be valid at records.0 (Something)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bentoml_s_400_gets_the_kit_s_body(case: str) -> None:
    detail, status, message = CASES[case]
    response = call(RequestErrors(_bentoml(400, _pydantic(detail))), headers=JSON)
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.body)
    body = response.json()
    assert set(body) == {"error", "errors"} and body["error"] == message
    [error] = body["errors"]
    assert error["field"] == REQUEST and error["message"] == message


def test_a_bentoml_exception_list_body_gets_the_kit_s_shape() -> None:
    response = call(
        RequestErrors(_bentoml(415, [{"error": "pickle is not allowed"}])), headers=JSON
    )
    assert response.status == 415  # 415 is BodyLimit's own: passed through as it is
    response = call(RequestErrors(_bentoml(404, [{"error": "nothing here"}])), headers=JSON)
    assert response.status == 404 and response.json() == {"error": "nothing here", "errors": []}


@pytest.mark.parametrize("status", [200, 401, 413, 422, 500])
def test_other_answers_pass_through_untouched(status: int) -> None:
    body = {"predictions": []} if status == 200 else {"error": "x", "errors": []}
    response = call(RequestErrors(_bentoml(status, body)), headers=JSON)
    assert (response.status, response.json()) == (status, body)
    get = call(RequestErrors(_bentoml(400, _pydantic())), method="GET")
    assert get.status == 400  # only POSTs are rewritten


def _response(status: int, body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


def test_the_client_reads_the_kit_s_4xx_errors_back() -> None:
    sent = refusal(request_error("JSON (Content-Type: application/json)", "text/plain"))
    [error] = _field_errors(_response(415, sent))
    assert error == FieldError(0, REQUEST, "JSON (Content-Type: application/json)", "text/plain")
    assert _field_errors(_response(400, [{"error": "BentoML's"}])) == []
    foreign = _request_error(_response(413, {"error": "request body over 100 bytes"}))
    assert (
        foreign.message
        == "the request must be accepted by the service (413: request body over 100 bytes)"
    )
    ours = _request_error(_response(400, {"error": "the request must be valid JSON"}))
    assert ours.message == "the request must be valid JSON"
