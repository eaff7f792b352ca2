"""The service's API docs: the OpenAPI document's texts, examples and answers, and its page.

BentoML's own document is titled with the service's name, versioned with the Bento's build tag
and described by the README of the build folder (the kit's whole README), its request example
is made up from the fields' keywords, and its Swagger page (at `/`) loads Google Tag Manager.
Here instead:

- `finish_document` gives the document the model's title, version and description
  (annotations, else `name:version` and one sentence), the schema's real examples as the request
  example, and every 4xx the service sends (app_production/guards.py): 400 (not JSON), 413, 415
  and 422 with one body, `{"error", "errors": [FieldError...]}`, and 401 (`{"error"}`) when
  the service has an API key; the request body of /predict is required. The 200 answer is the
  contract's Prediction shape, from `model.record_model.predictions_model` (the API's output
  spec). The service applies it in BentoML's `Service.openapi_spec`, so `/docs.json` and the
  Bento's `apis/openapi.yaml` are the same document.
- `DocsPage` serves the Swagger page at `/docs` (and sends `/` there): BentoML's own Swagger
  files from the service, no tag manager, and a Content-Security-Policy that lets the browser
  load nothing from anywhere else (a Markdown image in a description included).

No bentoml import: `kit promote` uses `bento_readme` for the Bento's description.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any

from app_production.guards import ASGIApp, Receive, Scope, Send, refusal, request_error
from model.errors import InvalidInput
from model.record_model import InvalidRecords
from model.schema import ModelSchema, Record

DOCS_PATH = "/docs"
REF_TEMPLATE = "#/components/schemas/{model}"  # where BentoML keeps the document's schemas
_SHOWN_CLASSES = 8  # more classes than this: the sentence counts them instead


def title(name: str, version: str, schema: ModelSchema) -> str:
    """The docs' title: the model's title (annotations), else its `name:version`."""
    return schema.title or f"{name}:{version}"


def summary(schema: ModelSchema) -> str:
    """One sentence of what the model predicts, for a model without a description."""
    count = len(schema.features)
    inputs = f"{count} feature{'s' if count != 1 else ''}"
    if schema.task == "classification":
        classes = schema.classes or []
        shown = ", ".join(classes) if len(classes) <= _SHOWN_CLASSES else f"{len(classes)} classes"
        return f"Predicts {schema.target or 'a class'} ({shown}) from {inputs}."
    return f"Predicts {schema.target or 'a value'} from {inputs}."


def description(name: str, version: str, schema: ModelSchema) -> str:
    """The docs' description (Markdown): the model's description, else one sentence; then
    which model this is and what the two routes answer."""
    about = schema.description.strip() or summary(schema)
    return (
        f"{about}\n\n"
        f"Model `{name}:{version}` ({schema.task}). `POST /predict` answers one prediction per "
        "record, in order, or a 422 naming every bad field; `POST /metadata` names the version "
        "answering now (`kit publish` changes it without a restart); `POST /feedback` saves a "
        "tester's correction of a prediction next to the model (`kit feedback` reads it)."
    )


def bento_readme(name: str, version: str, schema: ModelSchema) -> str:
    """The Bento's description (its README.md): the model's, not the kit's README."""
    return f"# {title(name, version, schema)}\n\n{description(name, version, schema)}\n"


def records_example(schema: ModelSchema) -> list[Record]:
    """The records of the request example: the schema's own examples (else its defaults)."""
    return [dict(record) for record in schema.examples] or [schema.defaults()]


def refusal_example(schema: ModelSchema) -> dict[str, Any]:
    """A real 422 body: what the schema's own validation says about a typical mistake (a number
    sent as a text; for a model without numbers, an unknown field)."""
    record: dict[str, Any] = dict(records_example(schema)[0])
    number = next((f for f in schema.features if f.kind in ("number", "integer")), None)
    if number is not None:
        value = record.get(number.name)
        record[number.name] = str(value if value is not None else 1)
    else:
        record["no_such_feature"] = 1
    try:
        schema.validate_records([record])
    except InvalidInput as exc:
        return {"error": str(exc), "errors": [error.to_json() for error in exc.errors]}
    raise ValueError(f"the schema accepts the refusal example {record}")  # pragma: no cover


_ERROR = "Error"  # the 401's body: {"error": str}
_ERROR_SCHEMA = {
    "type": "object",
    "title": _ERROR,
    "description": "The request was refused; `error` says why",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "Why, for people"}},
}


def _answer(text: str, schema: str, example: dict[str, Any]) -> dict[str, Any]:
    ref = {"$ref": REF_TEMPLATE.format(model=schema)}
    return {
        "description": text,
        "content": {"application/json": {"schema": ref, "example": example}},
    }


def feedback_refusal_example(schema: ModelSchema) -> dict[str, Any]:
    """A real 422 of /feedback: a record, but neither the prediction nor the correct answer."""
    from model.feedback import check_feedback

    body = {"record": records_example(schema)[0], "correct": None}
    try:
        check_feedback(schema, "model", body)
    except InvalidInput as exc:
        return {"error": str(exc), "errors": [error.to_json() for error in exc.errors]}
    raise ValueError("the feedback refusal example was accepted")  # pragma: no cover


def refusals(
    schema: ModelSchema, *, records: bool, api_key: bool, feedback: bool = False
) -> dict[int, dict[str, Any]]:
    """The 4xx answers of a POST route, as the service sends them: `records` for /predict,
    `feedback` for /feedback."""
    bad_request = refusal(request_error("valid JSON (EOF while parsing an object at line 1)"))
    answers = {
        400: _answer(
            "The body is not JSON; nothing was done", InvalidRecords.__name__, bad_request
        ),
        413: _answer(
            "The body is too large (Content-Length, or the chunks read); it was not read",
            InvalidRecords.__name__,
            refusal(request_error("at most 1048576 bytes: send fewer records per request")),
        ),
        415: _answer(
            "The body is not sent as JSON (Content-Type: application/json)",
            InvalidRecords.__name__,
            refusal(request_error("JSON (Content-Type: application/json)", "text/plain")),
        ),
        422: (
            _answer(
                "Invalid records (one error per bad field), or a request that is not "
                '`{"records": [...]}` within the limit (field `(request)`); nothing was predicted',
                InvalidRecords.__name__,
                refusal_example(schema),
            )
            if records
            else _answer(
                "Invalid feedback (one error per bad field: the record, the prediction, the "
                "correct answer); nothing was saved",
                InvalidRecords.__name__,
                feedback_refusal_example(schema),
            )
            if feedback
            else _answer(
                "The body is not a JSON object",
                InvalidRecords.__name__,
                refusal(request_error("a JSON object")),
            )
        ),
    }
    if api_key:
        answers[401] = _answer(
            "API key missing or wrong (X-API-Key header, or Authorization: Bearer)",
            _ERROR,
            {"error": "API key missing: send the service's KIT_API_KEY in the X-API-Key header"},
        )
    return answers


def _components(model: type[InvalidRecords]) -> dict[str, Any]:
    """A model's JSON schema and those it refers to, as OpenAPI components."""
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    found: dict[str, Any] = schema.pop("$defs", {})
    return {**found, model.__name__: schema}


def finish_document(
    document: dict[str, Any],
    *,
    name: str,
    version: str,
    schema: ModelSchema,
    api_key: bool = False,
) -> dict[str, Any]:
    """BentoML's OpenAPI document (as a dict) with the model's texts, the request example and
    the 4xx answers of the POST routes (`refusals`). Changes and returns `document`."""
    document["info"] = {
        "title": title(name, version, schema),
        "version": version,
        "description": description(name, version, schema),
    }
    predict = document["paths"]["/predict"]["post"]
    predict["requestBody"]["required"] = True  # an empty body is a 422: no records
    for media in predict["requestBody"]["content"].values():
        media["example"] = {"records": records_example(schema)}
    if "/feedback" in document["paths"]:
        _require_feedback_fields(document, document["paths"]["/feedback"]["post"], schema)
    for path, item in document["paths"].items():
        operation = item.get("post")
        if operation is None:
            continue
        answers = refusals(
            schema, records=path == "/predict", api_key=api_key, feedback=path == "/feedback"
        )
        responses = {
            code: answer
            for code, answer in operation.get("responses", {}).items()
            if int(code) not in answers
        }
        responses.update(answers)
        operation["responses"] = dict(sorted(responses.items(), key=lambda item: int(item[0])))
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(_components(InvalidRecords))
    if api_key:
        components[_ERROR] = _ERROR_SCHEMA
    return document


FEEDBACK_REQUIRED = ["record", "prediction", "correct"]
FEEDBACK_TEXTS = ("comment", "user", "source")


def _require_feedback_fields(
    document: dict[str, Any], operation: dict[str, Any], schema: ModelSchema
) -> None:
    """/feedback's body: required, its three fields too (the handler's defaults exist only so
    that a missing field gets the kit's own 422, naming it), and a real example."""
    operation["requestBody"]["required"] = True
    record = records_example(schema)[0]
    if schema.task == "classification" and schema.classes:
        example: dict[str, Any] = {
            "prediction": {"label": schema.classes[0], "model_version": "v1"},
            "correct": schema.classes[-1],
        }
    else:
        example = {"prediction": {"value": 1.0, "model_version": "v1"}, "correct": 2.0}
    for media in operation["requestBody"]["content"].values():
        body = media["schema"]
        if "$ref" in body:
            body = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
        body["required"] = FEEDBACK_REQUIRED
        for name in FEEDBACK_TEXTS:  # null means none (BentoML's document drops a null branch)
            text = body["properties"][name]
            nullable = [{k: v for k, v in text.items() if k != "default"}, {"type": "null"}]
            body["properties"][name] = {"anyOf": nullable, "default": text.get("default", "")}
        media["example"] = {"record": record, **example, "comment": "looks like a Gentoo"}


# The page: BentoML's own Swagger UI files (/static_content/, served by the service), no tag
# manager, no stand-alone preset (its top bar loads specs from any URL), no online validator.
_INIT = (
    "window.ui = SwaggerUIBundle({"
    'url: "docs.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null, '
    'presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});'
)
_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{title} · API docs</title>
    <link rel="stylesheet" type="text/css" href="static_content/swagger-ui.css">
    <link rel="icon" type="image/png" href="static_content/favicon-light-32x32.png">
    <style>body {{ margin: 0; background: #fafafa; }}</style>
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="static_content/swagger-ui-bundle.js" charset="utf-8"></script>
    <script>{script}</script>
  </body>
</html>
"""


def content_security_policy(script: str = _INIT) -> str:
    """Everything from the service itself: its files, and the one inline script by its hash.
    Swagger UI sets inline styles and draws some icons as data: URLs."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (
        "default-src 'self'; "
        f"script-src 'self' 'sha256-{digest}'; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "font-src 'self' data:; "
        "connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
    )


def docs_page(page_title: str) -> str:
    return _PAGE.format(title=html.escape(page_title), script=_INIT)


class DocsPage:
    """ASGI middleware: GET /docs is the Swagger page, GET / redirects to it (BentoML's page
    there loads Google Tag Manager). Everything else passes through."""

    def __init__(self, app: ASGIApp, title: str) -> None:
        self.app = app
        self._body = docs_page(title).encode()
        self._headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(self._body)).encode()),
            (b"content-security-policy", content_security_policy().encode()),
            (b"referrer-policy", b"no-referrer"),
            (b"x-content-type-options", b"nosniff"),
            (b"cache-control", b"no-cache"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            if scope["path"] == DOCS_PATH:
                await send({"type": "http.response.start", "status": 200, "headers": self._headers})
                body = b"" if scope["method"] == "HEAD" else self._body
                await send({"type": "http.response.body", "body": body})
                return
            if scope["path"] == "/":
                headers = [(b"location", DOCS_PATH[1:].encode()), (b"content-length", b"0")]
                await send({"type": "http.response.start", "status": 307, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)
