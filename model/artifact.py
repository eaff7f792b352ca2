"""The one artifact format: `model.joblib` + `manifest.json`, verified before unpickling.

Layout under the kit's home folder::

    models/<name>/<version>/model.joblib       the fitted estimator or Pipeline
    models/<name>/<version>/manifest.json      `Manifest` below
    models/<name>/<version>/reference.parquet  inputs the model was made from (a sample), for
                                               `kit monitor`; absent from older artifacts
    current.json                             {"name": ..., "version": ...}: the model in use
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
from pydantic import BaseModel, ConfigDict

from model.errors import ArtifactError
from model.schema import SCHEMA_FORMAT, ModelSchema, upgrade_schema

if TYPE_CHECKING:
    import pandas as pd

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
# Data only (never unpickled), so outside the manifest's sha256. Absent from older artifacts.
REFERENCE_FILE = "reference.parquet"
REFERENCE_ROWS = 5_000  # at most; a larger sample is drawn down with REFERENCE_SEED
REFERENCE_SEED = 0
FORMAT_VERSION = SCHEMA_FORMAT  # 2: inferred bounds are an expected range, not hard limits
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ModelVersionWarning(UserWarning):
    """The model was saved with other library versions than the ones installed."""


class Manifest(BaseModel):
    """What is known about one saved model; written next to it as manifest.json."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = FORMAT_VERSION
    name: str
    version: str
    sha256: str
    created_at: str
    source: str  # "train", "import" or "annotate"
    estimator: str
    versions: dict[str, str]  # python, scikit-learn, joblib
    metrics: dict[str, float]
    schema_: ModelSchema

    def model_dump_json_file(self) -> str:
        data = self.model_dump(mode="json")
        data["schema"] = data.pop("schema_")
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """A manifest as written in manifest.json (any format version: older ones upgraded)."""
        data = dict(data)
        data["schema_"] = upgrade_schema(data.pop("schema"), int(data.get("format_version", 1)))
        data["format_version"] = FORMAT_VERSION
        return cls.model_validate(data)

    @classmethod
    def from_file(cls, path: Path) -> Manifest:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError as exc:
            raise ArtifactError(f"no manifest at {path}: train or import a model first") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(
                f"manifest {path} is not valid ({exc}): re-import the model"
            ) from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import sklearn  # here, not at the top: `verify` and the CLI's fast paths never need it

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ArtifactError(
            f"model name {name!r} is not valid: use lowercase letters, digits, '-' or '_' "
            "(at most 63 characters, starting with a letter or digit), e.g. 'penguins'"
        )
    return name


class ModelStore:
    """The versioned artifacts under `<home>/models`, and which one is current."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.models_dir = home / "models"
        self.current_file = home / "current.json"

    def versions(self, name: str) -> list[str]:
        folder = self.models_dir / name
        found = (
            [p.name for p in folder.iterdir() if (p / MANIFEST_FILE).exists()]
            if folder.is_dir()
            else []
        )
        return sorted(found, key=lambda v: int(v[1:]) if v[1:].isdigit() else 0)

    def names(self) -> list[str]:
        """The models with at least one saved version, sorted by name."""
        if not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.iterdir() if self.versions(p.name))

    def next_version(self, name: str) -> str:
        existing = self.versions(name)
        return f"v{int(existing[-1][1:]) + 1}" if existing else "v1"

    def path(self, name: str, version: str) -> Path:
        return self.models_dir / name / version

    def save(
        self,
        *,
        name: str,
        schema: ModelSchema,
        metrics: dict[str, float],
        source: str,
        estimator: Any = None,
        model_file: Path | None = None,
        make_current: bool = True,
        versions: dict[str, str] | None = None,
        reference: pd.DataFrame | Path | None = None,
    ) -> Manifest:
        """Write a new version: the estimator (or a user's joblib file, copied byte for byte).

        `versions`: the libraries the model file was made with, when not the installed ones
        (`kit annotate` copies an older version's file). `reference`: the model's inputs it was
        made from (the schema's columns are kept, at most REFERENCE_ROWS rows), or an older
        version's reference file, copied; `kit monitor` compares production inputs with it.
        """
        check_name(name)
        if reference is not None and not isinstance(reference, Path):
            reference = reference_inputs(reference, schema)  # checked before anything is written
        version = self.next_version(name)
        folder = self.path(name, version)
        folder.mkdir(parents=True)
        target = folder / MODEL_FILE
        if model_file is not None:
            shutil.copyfile(model_file, target)
            if estimator is None:
                estimator = joblib.load(target)
        else:
            joblib.dump(estimator, target)
        if reference is not None:  # before the manifest: a version exists once that is written
            write_reference(reference, schema, folder / REFERENCE_FILE)
        manifest = Manifest(
            name=name,
            version=version,
            sha256=sha256_of(target),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            source=source,
            estimator=describe_estimator(estimator),
            versions=versions or library_versions(),
            metrics=metrics,
            schema_=schema,
        )
        (folder / MANIFEST_FILE).write_text(manifest.model_dump_json_file())
        if make_current:
            self.set_current(name, version)
        return manifest

    def reference(self, name: str, version: str) -> pd.DataFrame | None:
        """The reference inputs of a version; None for one saved without (before `kit monitor`
        existed, or with no sample)."""
        path = self.path(name, version) / REFERENCE_FILE
        if not path.is_file():
            return None
        import pandas as pd

        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow's errors have no common base worth naming
            raise ArtifactError(
                f"reference data {path} is not readable ({type(exc).__name__}: {exc}): train or "
                "import the model again"
            ) from exc

    def set_current(self, name: str, version: str) -> None:
        if not (self.path(name, version) / MANIFEST_FILE).exists():
            raise ArtifactError(f"no model {name}:{version} under {self.models_dir}")
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.current_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"name": name, "version": version}) + "\n")
        tmp.replace(self.current_file)  # atomic: readers see the old or the new pointer

    def current(self) -> Path:
        """Folder of the current model; a clear error if there is none yet."""
        try:
            pointer = json.loads(self.current_file.read_text())
            return self.path(str(pointer["name"]), str(pointer["version"]))
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"no model yet in {self.home}: run `kit train` (example model) or "
                "`kit import MODEL.joblib --sample DATA.csv`"
            ) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(
                f"{self.current_file} is damaged ({exc}): run `kit train` or `kit import` again"
            ) from exc


def reference_inputs(data: pd.DataFrame, schema: ModelSchema) -> pd.DataFrame:
    """The schema's input columns of `data`, in order, at most REFERENCE_ROWS rows."""
    missing = [name for name in schema.feature_names if name not in data.columns]
    if missing:
        raise ArtifactError(
            f"the reference data lacks the model's inputs {missing}: give the sample's columns"
        )
    frame = data[schema.feature_names]
    if len(frame) > REFERENCE_ROWS:
        frame = frame.sample(n=REFERENCE_ROWS, random_state=REFERENCE_SEED)
    return frame.reset_index(drop=True)


class ReferenceWarning(UserWarning):
    """The reference data could not be kept: the model is saved, `kit monitor` cannot use it."""


def write_reference(reference: pd.DataFrame | Path, schema: ModelSchema, path: Path) -> None:
    """The reference inputs as parquet (data only, nothing to unpickle), or a file copied.

    Monitoring data must never fail a save: a column parquet cannot hold as is (mixed types)
    is kept as text; if that fails too, a ReferenceWarning says so and the file is left out.
    """
    if isinstance(reference, Path):
        shutil.copyfile(reference, path)
        return
    frame = reference_inputs(reference, schema)
    try:
        frame.to_parquet(path, index=False)
        return
    except Exception:  # pyarrow's ArrowTypeError/ArrowInvalid on a mixed object column
        mixed = {c: "string" for c in frame.columns if frame[c].dtype == object}
    try:
        frame.astype(mixed).to_parquet(path, index=False)
    except Exception as exc:  # no parquet engine installed, or a column beyond repair
        path.unlink(missing_ok=True)
        warnings.warn(
            f"the reference data was not kept ({type(exc).__name__}: {exc}): `kit monitor` "
            "cannot compare production inputs with this version",
            ReferenceWarning,
            stacklevel=3,
        )


def describe_estimator(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return "Pipeline(" + " -> ".join(type(step).__name__ for _, step in steps) + ")"
    return type(estimator).__name__


def verify(folder: Path) -> Manifest:
    """Read the manifest and check the model file's sha256 against it (no unpickling)."""
    manifest = Manifest.from_file(folder / MANIFEST_FILE)
    model_path = folder / MODEL_FILE
    if not model_path.exists():
        raise ArtifactError(f"model file {model_path} is missing: retrain or re-import the model")
    actual = sha256_of(model_path)
    if actual != manifest.sha256:
        raise ArtifactError(
            f"model file {model_path} changed since it was saved (sha256 {actual[:12]}… is not "
            f"{manifest.sha256[:12]}… from the manifest): it was not loaded. Retrain or re-import "
            "the model; never edit an artifact in place"
        )
    return manifest


def load(folder: Path) -> tuple[Any, Manifest]:
    """Verify, then unpickle. Warns (ModelVersionWarning) if scikit-learn versions differ."""
    import sklearn

    manifest = verify(folder)
    saved = manifest.versions.get("scikit-learn")
    if saved and saved != sklearn.__version__:
        warnings.warn(
            f"model {manifest.name}:{manifest.version} was saved with scikit-learn {saved} but "
            f"{sklearn.__version__} is installed: predictions may differ or fail. Retrain the "
            f"model, or install scikit-learn=={saved}",
            ModelVersionWarning,
            stacklevel=2,
        )
    with warnings.catch_warnings():
        # sklearn's own InconsistentVersionWarning repeats ours above, once per sub-estimator
        warnings.filterwarnings("ignore", message="Trying to unpickle estimator")
        return joblib.load(folder / MODEL_FILE), manifest
