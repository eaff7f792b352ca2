"""The production service: the promoted model behind a BentoML HTTP API.

Started by `kit promote` (in the background) or `kit serve` (in the foreground, as a container
runs it). Which model it serves comes from `KIT_MODEL_TAG` (e.g. `penguins:v1`), a tag of the
BentoML model store into which `kit promote` copied the artifact and its manifest.

Routes: POST /predict {"records": [...]} -> {"predictions": [...]} (the contract's Prediction
shape, with its warnings; /metrics counts them per field as `kit_prediction_warnings_total`);
POST /metadata -> name, version, sha256, schema, metrics; POST /feedback {"record", "prediction",
"correct", "comment"?, "user"?} saves a tester's correction next to the model. /livez, /readyz,
/metrics, the OpenAPI document at /docs.json and its Swagger page at /docs (`/` redirects
there) stay open; with KIT_API_KEY set every other route needs it. The docs are the model's:
its title, version and description, its examples, the answers' real shapes, and a page that
loads nothing from anywhere but the service (app_production/openapi.py).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import bentoml
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.responses import JSONResponse

from app_production import supervision, timeouts
from app_production.batching import GreedyBatcher
from app_production.follower import Follower, replica_id
from app_production.guards import ApiKeyGuard, BodyLimit, RequestErrors
from app_production.openapi import DocsPage, finish_document, title
from model.errors import InvalidInput
from model.feedback import MAX_COMMENT, MAX_USER, FeedbackStore
from model.outputs import finite_output, non_finite_errors
from model.record_model import predictions_model, record_model
from model.schema import SCHEMA_FORMAT, ModelSchema, upgrade_schema

if TYPE_CHECKING:
    from app_production.prediction_log import PredictionLog
    from model.predictor import LocalPredictor

# A container listens beyond loopback (`kit build` sets KIT_REQUIRE_API_KEY=true in the image):
# there, as `kit serve --host` does, no key means no start, with the reason on one line.
_TRUE = ("1", "true", "yes", "on")
if os.environ.get("KIT_REQUIRE_API_KEY", "").strip().lower() in _TRUE and not (
    os.environ.get("KIT_API_KEY", "").strip()
):
    print(
        "error: refusing to start: KIT_REQUIRE_API_KEY is set (this service listens beyond "
        "loopback) but KIT_API_KEY is empty: pass the key in the environment "
        "(e.g. `podman run -e KIT_API_KEY ...`)",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(2)

MODEL_TAG = os.environ.get("KIT_MODEL_TAG", "")
if not MODEL_TAG:
    raise RuntimeError(
        "KIT_MODEL_TAG is not set: start the service with `kit promote` or `kit serve`"
    )
MANIFEST: dict[str, Any] = json.loads(bentoml.models.get(MODEL_TAG).info.metadata["manifest"])
MANIFEST["schema"] = upgrade_schema(MANIFEST["schema"], int(MANIFEST.get("format_version", 1)))
MANIFEST["format_version"] = SCHEMA_FORMAT  # an artifact saved by an older kit reads as today
SCHEMA = ModelSchema.model_validate(MANIFEST["schema"])
MAX_RECORDS = int(os.environ.get("KIT_MAX_RECORDS", "1000"))
timeouts.install()  # BentoML's request timeout keeps every request alive for 30 s
supervision.install()  # a killed worker is noticed in 0.5 s, not 10 s
MAX_BODY_BYTES = int(os.environ.get("KIT_MAX_BODY_BYTES", str(1 << 20)))


def prediction_log() -> PredictionLog | None:
    """KIT_PREDICTION_LOG: a folder (`kit promote` passes the kit home's), or `on` for one
    next to BentoML's store; off by default. KIT_PREDICTION_LOG_SAMPLE: the share logged."""
    given = os.environ.get("KIT_PREDICTION_LOG", "").strip()
    if given.lower() in ("", "off", "false", "0", "no"):
        return None
    from app_production.prediction_log import PredictionLog  # only then: it needs orjson

    home = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")
    folder = home / "prediction-log" if given.lower() in ("on", "true", "1", "yes") else Path(given)
    sample = float(os.environ.get("KIT_PREDICTION_LOG_SAMPLE", "") or 1.0)
    log = PredictionLog(folder, sample=sample)
    atexit.register(log.close)  # what is queued is written before the worker exits
    return log


def feedback_db() -> Path:
    """KIT_FEEDBACK_DB (`kit promote` sets the kit home's), else next to BentoML's store: in a
    container that is its /tmp, so mount a volume there, or set KIT_FEEDBACK_DB to one."""
    given = os.environ.get("KIT_FEEDBACK_DB", "").strip()
    home = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")
    return Path(given) if given else home / "kit-feedback.sqlite"


# Validation is the schema's own (the same field errors as in-process); the OpenAPI document
# shows the generated record model: the real features with their bounds and choices.
Records = Annotated[
    list[Any],  # not list[dict]: a non-object record gets the schema's own 422 too
    Field(max_length=MAX_RECORDS),
    WithJsonSchema(
        {
            "type": "array",
            "items": record_model(SCHEMA).model_json_schema(),
            "maxItems": MAX_RECORDS,
            "description": f"Records of model {MANIFEST['name']}:{MANIFEST['version']}",
        }
    ),
]


# POST /feedback's fields, as documented: the record model, the prediction's JSON (it names its
# version), a class of the model or a number. Validation is check_feedback's (each bad field).
_CORRECT = {"enum": SCHEMA.classes} if SCHEMA.classes else {"type": "number"}
FeedbackRecord = Annotated[Any, WithJsonSchema(record_model(SCHEMA).model_json_schema())]
FeedbackPrediction = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "object",
            "required": ["model_version"],
            "properties": {"model_version": {"type": "string", "minLength": 1}},
            "description": "The prediction the tester saw, as /predict answered it",
        }
    ),
]
FeedbackCorrect = Annotated[Any, WithJsonSchema({**_CORRECT, "description": "The right answer"})]

# Texts that may also be null or left out (openapi._require_feedback_fields documents that).
FeedbackText = Annotated[Any, WithJsonSchema({"type": "string", "maxLength": MAX_USER})]
FeedbackComment = Annotated[Any, WithJsonSchema({"type": "string", "maxLength": MAX_COMMENT})]


# {"predictions": [...]}: the contract's Prediction shape for this model (label and
# probabilities, or value; model_version; warnings), for the OpenAPI document.
PredictOutput = predictions_model(SCHEMA)


class MetadataOutput(BaseModel):
    """The manifest of the served model (for the OpenAPI document)."""

    model_config = ConfigDict(extra="allow")
    name: str
    version: str
    sha256: str


class FeedbackOutput(BaseModel):
    """The feedback row saved (for the OpenAPI document)."""

    id: int
    model: str
    version: str


class DocumentedService(bentoml.Service):  # type: ignore[misc]
    """BentoML's service with the model's OpenAPI document (`app_production.openapi`): the one
    hook that both /docs.json and the Bento's apis/openapi.yaml read."""

    @property
    def openapi_spec(self) -> Any:
        from bentoml._internal.service.openapi.specification import OpenAPISpecification
        from bentoml._internal.utils.cattr import bentoml_cattr

        document = finish_document(
            super().openapi_spec.asdict(),
            name=MANIFEST["name"],
            version=MANIFEST["version"],
            schema=SCHEMA,
            api_key=bool(os.environ.get("KIT_API_KEY", "").strip()),  # then 401s are documented
        )
        return bentoml_cattr.structure(document, OpenAPISpecification)


@bentoml.service(
    name="kit_model",
    service_class=DocumentedService,
    workers=2,  # one serves, one waits ready behind it (supervision.ServingLock)
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": "/predict,/metadata"},
)
class ModelService:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)  # class-level: `bentoml build` packs it

    def __init__(self) -> None:
        # prometheus_client only now: the worker has set its multiprocess folder (NOTES-bentoml)
        from prometheus_client import Counter

        self.warned = Counter(
            "kit_prediction_warnings",
            "Predicted values outside the range seen in the sample (or unseen categories)",
            ["field"],
        )
        self.serving = supervision.ServingLock()
        serves_now = self.serving.try_acquire()
        try:
            self.predictor = self._load(Path(bentoml.models.get(MODEL_TAG).path))
        except Exception as exc:  # restarting would fail the same way, forever: stop the server
            supervision.refuse_to_serve(f"model {MODEL_TAG} cannot be served: {exc}")
            raise
        if not serves_now:
            self.serving.wait()  # the standby: loaded, takes over when the serving worker dies
        self.manifest: dict[str, Any] = MANIFEST
        self.batcher: GreedyBatcher[dict[str, Any], dict[str, Any]] = GreedyBatcher(self._run)
        self.follower = self._follow_channel()
        self.feedback_store = FeedbackStore(feedback_db())
        self.prediction_log = prediction_log()
        gc.collect()
        gc.freeze()  # the imports' objects leave the collector's work: shorter pauses

    def _follow_channel(self) -> Follower[LocalPredictor] | None:
        """Model versions published as data: a broker (KIT_CHANNEL_URL, every replica) or the
        file `kit promote` made (KIT_CHANNEL, one machine)."""
        from app_production.channel_protocol import check_address, open_channel
        from model.errors import UsageError

        address = os.environ.get("KIT_CHANNEL_URL", "").strip() or os.environ.get("KIT_CHANNEL")
        if not address:
            return None
        try:
            check_address(address)
        except UsageError as exc:  # a wrong address would fail at every restart: stop
            supervision.refuse_to_serve(f"KIT_CHANNEL_URL: {exc}")
            raise
        cache = Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml") / "kit-channel"
        follower = Follower(
            lambda: open_channel(address, MANIFEST["name"]),
            replica_id(),
            MODEL_TAG,
            self._load,
            self._swap,
            cache,
        )
        follower.check()  # a version published before this start is served at once
        follower.start()
        atexit.register(follower.stop)  # the report is withdrawn (else it expires or dies)
        return follower

    def _load(self, folder: Path) -> LocalPredictor:
        """A model version from its folder: sha256 verified before unpickling, warmed up."""
        from model.predictor import LocalPredictor

        predictor = LocalPredictor(folder)
        if not predictor.schema.same_inputs(SCHEMA):  # texts and expected ranges may differ
            tag = f"{predictor.manifest.name}:{predictor.manifest.version}"
            raise ValueError(
                f"{tag} takes other inputs than the served model: its API and UI would "
                "change, so serve it with `kit promote`, not by publishing"
            )
        predictor.predict_valid(SCHEMA.validate_records(SCHEMA.examples or [SCHEMA.defaults()]))
        return predictor

    def _swap(self, tag: str, predictor: LocalPredictor) -> None:
        self.predictor = predictor  # one assignment: each batch reads it once
        self.manifest = json.loads(predictor.manifest.model_dump_json_file())

    def _run(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        predictor = self.predictor  # the whole batch is answered by one version
        predictions = predictor.predict_valid(rows)
        for prediction in predictions:
            for message in prediction.warnings or ():
                self.warned.labels(field=message.split(" ", 1)[0]).inc()
        return [p.to_json() for p in predictions]

    # The handlers return ready JSON responses (the contract's exact shape, errors with their
    # own status); output_spec describes them in the OpenAPI document.
    @bentoml.api(route="/predict", output_spec=PredictOutput)  # type: ignore[untyped-decorator]
    async def predict(self, records: Records) -> Any:
        """Predict records; 422 with one error per bad field (nothing is predicted then)."""
        began = time.perf_counter()
        try:
            clean = SCHEMA.validate_records(records)
        except InvalidInput as exc:
            errors = [error.to_json() for error in exc.errors]
            return JSONResponse({"error": str(exc), "errors": errors}, status_code=422)
        predictions = await self.batcher.submit(clean) if clean else []
        unusable = [
            (i, clean[i])
            for i, p in enumerate(predictions)
            if not finite_output(p.get("value"), p.get("probabilities"))
        ]
        if unusable:  # the model answered infinity or NaN: no prediction to give (as local)
            refused = InvalidInput(non_finite_errors(SCHEMA, unusable))
            body = {"error": str(refused), "errors": [e.to_json() for e in refused.errors]}
            return JSONResponse(body, status_code=422)
        if self.prediction_log is not None:  # queued only: written by the log's own thread
            self._log(clean, predictions, (time.perf_counter() - began) * 1000)
        return JSONResponse({"predictions": predictions})

    def _log(
        self, records: list[dict[str, Any]], predictions: list[dict[str, Any]], latency_ms: float
    ) -> None:
        from app_production.prediction_log import LoggedPrediction

        assert self.prediction_log is not None
        now, name = time.time(), MANIFEST["name"]
        self.prediction_log.submit(
            [
                LoggedPrediction(
                    now, name, p["model_version"], latency_ms, r, p, p.get("warnings") or []
                )
                for r, p in zip(records, predictions, strict=True)
            ]
        )

    @bentoml.api(route="/feedback", output_spec=FeedbackOutput)  # type: ignore[untyped-decorator]
    def feedback(
        self,
        record: FeedbackRecord = None,
        prediction: FeedbackPrediction = None,
        correct: FeedbackCorrect = None,
        comment: FeedbackComment = "",
        user: FeedbackText = "",
        source: FeedbackText = "",
    ) -> Any:
        """A tester's correction of a prediction ("Wrong? Tell us" in a UI that calls this
        service), saved next to the model; 422 naming every bad field (nothing is saved)."""
        from model.feedback import check_feedback

        source = "api" if source in ("", None) else source
        body = {"record": record, "prediction": prediction, "correct": correct}
        body |= {"comment": comment, "user": user, "source": source}
        try:
            row = check_feedback(SCHEMA, MANIFEST["name"], body)
        except InvalidInput as exc:
            errors = [error.to_json() for error in exc.errors]
            return JSONResponse({"error": str(exc), "errors": errors}, status_code=422)
        saved = self.feedback_store.save(row)
        return JSONResponse({"id": saved, "model": row.model, "version": row.version})

    @bentoml.api(route="/metadata", output_spec=MetadataOutput)  # type: ignore[untyped-decorator]
    def metadata(self) -> Any:
        """The served model: name, version, sha256, schema, metrics, library versions; and the
        last published version this service refused, if any, with the reason."""
        refused = self.follower.refused if self.follower else None
        logged = self.prediction_log.stats() if self.prediction_log else None
        return JSONResponse({**self.manifest, "refused": refused, "prediction_log": logged})


# Added last = outermost: the key is checked before the body is read. Innermost: BentoML's own
# 400s (not JSON, no `records` list, too many records) get the kit's error body (guards.py).
ModelService.add_asgi_middleware(RequestErrors)  # type: ignore[attr-defined]
ModelService.add_asgi_middleware(  # type: ignore[attr-defined]
    DocsPage, title=title(MANIFEST["name"], MANIFEST["version"], SCHEMA)
)
ModelService.add_asgi_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)  # type: ignore[attr-defined]
if (api_key := os.environ.get("KIT_API_KEY", "")).strip():  # blank is no key (as in settings)
    ModelService.add_asgi_middleware(ApiKeyGuard, api_key=api_key)  # type: ignore[attr-defined]
