"""Annotations: what a user says about a model that its sample cannot.

A sample shows the kinds of the columns, the categories seen and the usual range of each
number; it cannot say what a column means, its unit, which values are impossible, or what the
class labels stand for. An annotations file says it, in TOML or YAML (chosen by the file's
extension). Every key is optional; for a breast-cancer classifier::

    # annotations.toml
    [model]
    title = "Breast cancer (Wisconsin)"
    description = "Is a breast mass malignant? From 30 measurements of a fine-needle aspirate."

    [features."mean radius"]          # quoted: this feature's name has a space
    description = "Mean distance from the center to points on the perimeter"
    unit = "mm"
    minimum = 0                       # hard limits: values outside are refused
    maximum = 100
    required = true                   # false: a missing value is accepted (the pipeline imputes)

    [features.some_category]
    choices = ["a", "b"]              # categories only: replaces the choices seen in the sample

    [classes]                         # label -> the name the UIs show; predictions keep the label
    "0" = "malignant"
    "1" = "benign"

The same in YAML (``annotations.yaml``)::

    model:
      title: Breast cancer (Wisconsin)
    features:
      mean radius: {description: Mean distance from the center..., unit: mm, minimum: 0}
    classes:
      "0": malignant
      "1": benign

A hard limit (`minimum`/`maximum`) refuses a value; the expected range inferred from the
sample only warns. Unknown keys, features and classes are errors that name them: a typo must
not silently do nothing.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from model.artifact import (
    MODEL_FILE,
    NAME_PATTERN,
    REFERENCE_FILE,
    Manifest,
    ModelStore,
    verify,
)
from model.errors import UsageError
from model.schema import Feature, ModelSchema

FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}
Limit = Annotated[float, Field(allow_inf_nan=False)]
_NOTE = ConfigDict(extra="forbid", strict=True)  # strict: "5" is not a number, 1 not true


class ModelNote(BaseModel):
    """The `[model]` table."""

    model_config = _NOTE

    title: str | None = None
    description: str | None = None


class FeatureNote(BaseModel):
    """One `[features.NAME]` table; its keys are `Feature` fields of the same name."""

    model_config = _NOTE

    description: str | None = None
    unit: str | None = None
    minimum: Limit | None = None
    maximum: Limit | None = None
    required: bool | None = None
    choices: list[str] | None = Field(default=None, min_length=1)


class Annotations(BaseModel):
    """The content of an annotations file (see the module docstring)."""

    model_config = _NOTE

    model: ModelNote = Field(default_factory=ModelNote)
    features: dict[str, FeatureNote] = Field(default_factory=dict)
    classes: dict[str, str] = Field(default_factory=dict)
    _source: str = PrivateAttr(default="the annotations")  # the file's name, for messages

    @property
    def source(self) -> str:
        return self._source

    def summary(self) -> str:
        """What the annotations set, e.g. '3 features described, 2 hard limits, 2 class names'."""
        notes = self.features.values()
        counts = [
            (
                sum(n.description is not None for n in notes),
                "feature described",
                "features described",
            ),
            (sum(n.unit is not None for n in notes), "unit", "units"),
            (
                sum((n.minimum is not None) + (n.maximum is not None) for n in notes),
                "hard limit",
                "hard limits",
            ),
            (sum(n.choices is not None for n in notes), "choice list", "choice lists"),
            (sum(n.required is not None for n in notes), "required flag", "required flags"),
            (len(self.classes), "class name", "class names"),
        ]
        parts = [name for name in ("title", "description") if getattr(self.model, name)]
        parts += [f"{n} {singular if n == 1 else plural}" for n, singular, plural in counts if n]
        return ", ".join(parts) if parts else "nothing"


def _dotted(loc: tuple[int | str, ...]) -> str:
    """('features', 'mean radius', 'unit') -> 'features."mean radius".unit' (TOML's notation)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            text += ("." if text else "") + key
    return text


def _did_you_mean(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _allowed_keys(parent: tuple[int | str, ...]) -> list[str]:
    if not parent:
        return list(Annotations.model_fields)
    return list((ModelNote if parent[0] == "model" else FeatureNote).model_fields)


def _problems(exc: ValidationError, source: str) -> list[str]:
    """Pydantic's errors as sentences that name the key, in the file's own notation."""
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            where = f"in [{_dotted(loc[:-1])}]" if loc[:-1] else "at the top level"
            allowed = _allowed_keys(loc[:-1])
            problems.append(
                f"unknown key {loc[-1]!r} {where} of {source}{_did_you_mean(str(loc[-1]), allowed)}"
                f"; the keys allowed there are {', '.join(allowed)}"
            )
        else:
            # "Input should be a valid number" -> "must be a valid number"
            message = re.sub(r"^(Input|List|Value) should", "must", str(error["msg"]))
            problems.append(f"{_dotted(loc)} in {source} {message}, got {error['input']!r}")
    return problems


def _read(path: Path) -> Any:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UsageError(
            f"annotations file {path} must be TOML or YAML: name it with one of "
            f"{', '.join(FORMATS)}"
        )
    if not path.is_file():
        raise UsageError(f"annotations file {path} does not exist")
    try:
        if kind == "TOML":
            return tomllib.loads(path.read_text(encoding="utf-8"))
        import yaml  # only when a YAML file is given

        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # UnicodeDecodeError, TOMLDecodeError, yaml.YAMLError
        raise UsageError(f"{path} is not valid {kind} ({exc}): fix it and run again") from exc


def load_annotations(path: Path) -> Annotations:
    """Read and check the shape of an annotations file; a `UsageError` names any bad key."""
    data = _read(path)
    if data is None:
        data = {}  # an empty YAML file
    if not isinstance(data, dict):
        raise UsageError(
            f"{path} must hold a table of [model], [features.NAME] and [classes], "
            f"got a {type(data).__name__}"
        )
    for table in ("features", "classes"):  # YAML reads `0:` as an int: labels are texts
        if isinstance(data.get(table), dict):
            data = {**data, table: {str(k): v for k, v in data[table].items()}}
    try:
        annotations = Annotations.model_validate(data)
    except ValidationError as exc:
        raise UsageError("; ".join(_problems(exc, path.name))) from exc
    annotations._source = path.name
    return annotations


def _unknown_names(schema: ModelSchema, annotations: Annotations) -> list[str]:
    source = annotations.source
    problems = []
    for name in annotations.features:
        if name not in schema.feature_names:
            problems.append(
                f"unknown feature {name!r} in {source}{_did_you_mean(name, schema.feature_names)}; "
                f"the model's features are {', '.join(map(repr, schema.feature_names))}"
            )
    if annotations.classes and not schema.classes:
        problems.append(f"[classes] in {source}: a {schema.task} model has no classes; remove it")
    elif unknown := [label for label in annotations.classes if label not in (schema.classes or [])]:
        labels = ", ".join(map(repr, schema.classes or []))
        problems.append(
            f"unknown class {', '.join(map(repr, unknown))} in [classes] of {source}; the "
            f"model's classes (the labels it predicts) are {labels}"
        )
    return problems


def _fit_default(feature: Feature) -> Any:
    """The feature's default, moved inside its hard limits and choices."""
    value = feature.default
    if feature.kind in ("number", "integer"):
        if value is None and not feature.required:
            return None
        integer = feature.kind == "integer"
        value = 0 if value is None else value
        if feature.minimum is not None:
            value = max(value, math.ceil(feature.minimum) if integer else feature.minimum)
        if feature.maximum is not None:
            value = min(value, math.floor(feature.maximum) if integer else feature.maximum)
        return int(value) if integer else float(value)
    if feature.kind == "category" and value not in (feature.choices or []):
        return None if value is None and not feature.required else (feature.choices or [""])[0]
    return value


def _annotate_feature(feature: Feature, note: FeatureNote, source: str) -> Feature | str:
    """The feature with the note applied, or what is wrong with the note."""
    where = f"[features.{_dotted((feature.name,))}] in {source}"
    numeric = feature.kind in ("number", "integer")
    if note.choices is not None and feature.kind != "category":
        return f"{where}: choices are only for categories, and {feature.name!r} is {feature.kind}"
    if (note.minimum is not None or note.maximum is not None) and not numeric:
        return (
            f"{where}: minimum/maximum are only for numbers and integers, and "
            f"{feature.name!r} is {feature.kind}"
        )
    data = {**feature.model_dump(), **note.model_dump(exclude_none=True)}
    low, high = data["minimum"], data["maximum"]
    if low is not None and high is not None and low > high:
        return f"{where}: minimum {low:g} is above maximum {high:g}"
    integer = feature.kind == "integer"
    if integer and low is not None and high is not None and math.ceil(low) > math.floor(high):
        return f"{where}: no integer lies between minimum {low:g} and maximum {high:g}"
    annotated = Feature.model_validate(data)
    return annotated.model_copy(update={"default": _fit_default(annotated)})


def apply_annotations(schema: ModelSchema, annotations: Annotations) -> ModelSchema:
    """A new schema: `schema` with the user's annotations on top (the input is not changed).

    Titles, descriptions, units, `required` and class names are set as written; `choices`
    replace the categories seen in the sample; `minimum`/`maximum` become hard limits. What
    the annotations do not mention is kept, so annotating twice layers the files. The result
    stays consistent: each default is moved inside the new limits and choices, and examples
    that the new schema refuses are dropped (the defaults record is the example when none is
    left), so that the demo and the import's check prediction still work.

    Raises `UsageError` listing every problem at once: features or classes the model does not
    have (with the valid ones), choices on a non-category, limits on a non-number, or
    `minimum > maximum`.
    """
    source = annotations.source
    problems = _unknown_names(schema, annotations)
    features: list[Feature] = []
    for feature in schema.features:
        note = annotations.features.get(feature.name)
        result = feature if note is None else _annotate_feature(feature, note, source)
        if isinstance(result, str):
            problems.append(result)
        else:
            features.append(result)
    if problems:
        raise UsageError("; ".join(problems))
    draft = schema.model_copy(
        update={
            "features": features,
            **annotations.model.model_dump(exclude_none=True),  # title, description
            "class_names": {**schema.class_names, **annotations.classes},
        }
    )
    examples = [dict(e) for e in schema.examples if not draft.validate_record(e)]
    data = {**draft.model_dump(), "examples": examples or [draft.defaults()]}
    try:  # a fresh, fully validated schema: nothing shared with the input
        return ModelSchema.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"the annotations in {source} make the schema invalid: {exc}") from exc


@dataclass(frozen=True)
class AnnotateReport:
    source: Manifest  # the version annotated
    manifest: Manifest  # the new version
    summary: str  # what the annotations set


def annotate_model(store: ModelStore, name: str, version: str | None, path: Path) -> AnnotateReport:
    """A new version of `name` (from `version`, default its latest) with the annotations on
    its schema: the model file (and its reference data) copied byte for byte, the metrics kept;
    it becomes current."""
    annotations = load_annotations(path)
    versions = store.versions(name) if NAME_PATTERN.fullmatch(name) else []  # no '../'
    if not versions:
        known = ", ".join(store.names()) or "none yet"
        raise UsageError(f"no model named {name!r} in {store.models_dir}; the models are {known}")
    version = version or versions[-1]
    if version not in versions:
        raise UsageError(
            f"{name} has no version {version!r}; its versions are {', '.join(versions)}"
        )
    if annotations.summary() == "nothing":
        raise UsageError(f"{path} annotates nothing: add [model], [features.NAME] or [classes]")
    folder = store.path(name, version)
    source = verify(folder)  # never copy a file that changed since it was saved
    reference = folder / REFERENCE_FILE
    manifest = store.save(
        name=name,
        schema=apply_annotations(source.schema_, annotations),
        metrics=dict(source.metrics),
        source="annotate",
        model_file=folder / MODEL_FILE,
        versions=source.versions,  # the libraries the model file was made with
        reference=reference if reference.is_file() else None,  # older artifacts have none
    )
    return AnnotateReport(source=source, manifest=manifest, summary=annotations.summary())
