"""The API docs' texts, examples and page (app_production/openapi.py), without a server.

The served document and the page in a browser are tested in tests/integration/test_service.py
and tests/e2e/test_api_docs.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app_production.openapi import (
    DocsPage,
    content_security_policy,
    docs_page,
    finish_document,
    refusal_example,
    summary,
    title,
)
from model.schema import Feature, ModelSchema

TEXTS = ModelSchema(
    task="classification",
    classes=[f"c{i}" for i in range(12)],
    features=[
        Feature(name="note", kind="text", default="hello"),
        Feature(name="kind", kind="category", choices=["a"], default="a"),
    ],
)  # no examples: the request example is the defaults
REGRESSION = ModelSchema(
    task="regression",
    target="price",
    features=[Feature(name="area", kind="number")],
    examples=[{"area": 70.0}],
)


def _call(app: DocsPage, method: str, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    # A thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start.get("headers", [])), body


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_texts_without_annotations() -> None:
    assert title("prices", "v3", REGRESSION) == "prices:v3"
    assert summary(REGRESSION) == "Predicts price from 1 feature."
    assert summary(TEXTS) == "Predicts a class (12 classes) from 2 features."
    annotated = REGRESSION.model_copy(update={"title": "Flat prices"})
    assert title("prices", "v3", annotated) == "Flat prices"


def test_refusal_example_is_the_schema_s_own_error() -> None:
    body = refusal_example(REGRESSION)
    assert body["errors"][0]["field"] == "area" and body["errors"][0]["received"] == "70.0"
    no_numbers = refusal_example(TEXTS)  # no number to send as a text: an unknown field
    assert [e["field"] for e in no_numbers["errors"]] == ["no_such_feature"]


def test_finish_document_keeps_bentoml_s_answers_and_sorts_them() -> None:
    document: dict[str, Any] = {
        "info": {"title": "kit_model", "version": "abc", "contact": {"name": "BentoML Team"}},
        "paths": {
            "/predict": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {}}}},
                    "responses": {200: {}, 400: {}, 500: {}},
                }
            }
        },
    }
    done = finish_document(document, name="prices", version="v3", schema=REGRESSION)
    assert done["info"]["title"] == "prices:v3" and "contact" not in done["info"]
    predict = done["paths"]["/predict"]["post"]
    assert list(predict["responses"]) == [200, 400, 413, 415, 422, 500]
    assert predict["requestBody"]["required"] is True
    for code in (400, 413, 415, 422):  # one shape for every refusal: BentoML's 400 replaced
        schema = predict["responses"][code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/InvalidRecords"}, code
    assert "Error" not in done["components"]["schemas"]  # no key: no 401
    assert predict["requestBody"]["content"]["application/json"]["example"] == {
        "records": [{"area": 70.0}]
    }
    assert {"InvalidRecords", "FieldErrorBody"} <= set(done["components"]["schemas"])


def test_page_escapes_the_title_and_its_policy_allows_only_its_own_script() -> None:
    page = docs_page('<script>alert("x")</script>')
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    [inline] = re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in content_security_policy()
    assert "googletagmanager" not in page and "https://" not in page


def test_docs_page_routes() -> None:
    app = DocsPage(_inner, title="prices:v3")
    status, headers, body = _call(app, "GET", "/docs")
    assert status == 200 and headers[b"content-type"].startswith(b"text/html")
    assert b"<title>prices:v3" in body
    assert int(headers[b"content-length"]) == len(body)
    assert b"default-src 'self'" in headers[b"content-security-policy"]
    status, headers, body = _call(app, "HEAD", "/docs")
    assert status == 200 and body == b"" and int(headers[b"content-length"]) > 0
    status, headers, _ = _call(app, "GET", "/")
    assert status == 307 and headers[b"location"] == b"docs"
    for method, path in (("POST", "/"), ("POST", "/docs"), ("GET", "/docs.json")):
        assert _call(app, method, path)[0] == 204, (method, path)


def test_every_post_route_documents_its_refusals_and_the_401_with_a_key() -> None:
    document: dict[str, Any] = {
        "paths": {
            path: {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {}}}},
                    "responses": {"200": {}, "400": {"description": "BentoML's"}, "500": {}},
                }
            }
            for path in ("/predict", "/metadata")
        }
    }
    done = finish_document(document, name="prices", version="v3", schema=REGRESSION, api_key=True)
    for path in ("/predict", "/metadata"):
        responses = done["paths"][path]["post"]["responses"]
        assert [int(code) for code in responses] == [200, 400, 401, 413, 415, 422, 500], path
        assert responses[400]["description"] != "BentoML's"
        unauthorized = responses[401]["content"]["application/json"]
        assert unauthorized["schema"] == {"$ref": "#/components/schemas/Error"}
        assert set(unauthorized["example"]) == {"error"}
    assert "required" not in done["paths"]["/metadata"]["post"]["requestBody"]  # {} or nothing
    assert done["components"]["schemas"]["Error"]["required"] == ["error"]
    example = done["paths"]["/metadata"]["post"]["responses"][422]["content"]["application/json"]
    assert example["example"]["error"] == "the request must be a JSON object"
