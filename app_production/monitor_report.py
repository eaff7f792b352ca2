"""`kit monitor`: the prediction log against each logged version's reference data, as a report.

`build_report` reads the log (`app_production.prediction_log.read_log`), keeps the current
model's rows, and compares each logged version's records with the reference data saved in its
artifact (`model.drift.compare`); `render_html` makes one self-contained HTML page of it (plots
as inline PNGs, no script, nothing fetched); `MonitorReport.to_json` is the same as data.
"""

from __future__ import annotations

import base64
import io
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from model.artifact import MANIFEST_FILE, Manifest, ModelStore
from model.drift import (
    DriftReport,
    FeatureDrift,
    Latency,
    PredictionSummary,
    Thresholds,
    compare,
    latency,
    summarize_predictions,
)
from model.errors import UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LOG_HINT = "is the service logging? KIT_PREDICTION_LOG=on"


def parse_since(text: str, now: float | None = None) -> tuple[float, str]:
    """'1h', '30m', '2d' (ago) or an ISO time (UTC unless it has an offset) -> (epoch seconds,
    how to say it: 'in the last 1h' / 'since 2026-12-01T08:00:00+00:00')."""
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match:
        return now - float(match[1]) * UNITS[match[2]], f"in the last {text.strip()}"
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since must be a duration like 30m, 1h, 2d or an ISO time like "
            f"2026-12-01T08:00, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp(), f"since {moment.isoformat()}"


@dataclass
class VersionReport:
    """One logged version of the model: its rows, their drift, its answers and latency."""

    model: str
    version: str
    rows: int
    drift: DriftReport | None  # None: the version has no reference data
    predictions: PredictionSummary
    latency: Latency | None
    reference: pd.DataFrame | None = field(default=None, repr=False)  # for the plots only
    current: pd.DataFrame | None = field(default=None, repr=False)
    values: list[float] = field(default_factory=list, repr=False)  # a regressor's answers


@dataclass
class MonitorReport:
    model: str
    log_dir: str
    window: str  # "in the last 1h"
    since: float | None
    until: float
    rows: int
    first_ts: float
    last_ts: float
    thresholds: Thresholds
    versions: list[VersionReport]
    notes: list[str] = field(default_factory=list)

    def ranked(self) -> list[tuple[str, FeatureDrift]]:
        """(version, feature) of every compared version, the most drifted first."""
        pairs = [(v.version, f) for v in self.versions if v.drift for f in v.drift.features]
        return sorted(pairs, key=lambda p: (p[1].verdict != "drift", -p[1].score))

    @property
    def drifted(self) -> list[str]:
        """The drifted features, the most drifted first (once each, across versions)."""
        return list(dict.fromkeys(f.name for _, f in self.ranked() if f.verdict == "drift"))

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "log_dir": self.log_dir,
            "window": self.window,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "first": _iso(self.first_ts),
            "last": _iso(self.last_ts),
            "rows": self.rows,
            "thresholds": asdict(self.thresholds),
            "drifted": self.drifted,
            "versions": [
                {
                    "version": v.version,
                    "rows": v.rows,
                    "drift": None
                    if v.drift is None
                    else {
                        "drifted": v.drift.drifted,
                        "n_reference": v.drift.n_reference,
                        "not_measured": v.drift.not_measured,
                        "features": [asdict(f) for f in v.drift.features],
                    },
                    "predictions": asdict(v.predictions),
                    "latency_ms": None if v.latency is None else asdict(v.latency),
                }
                for v in self.versions
            ],
            "notes": self.notes,
        }


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def build_report(
    store: ModelStore,
    log_dir: Path,
    *,
    since: float | None,
    window: str,
    thresholds: Thresholds,
) -> MonitorReport:
    """The current model's logged rows (ts >= since) against each version's reference.

    UsageError (exit 2): no rows in the window, or no logged version has reference data.
    """
    from app_production.prediction_log import read_log  # sqlite only: cheap, but not for --help

    name = Manifest.from_file(store.current() / MANIFEST_FILE).name
    until = time.time()
    entries = read_log(log_dir, since=since)
    if not entries:
        raise UsageError(f"no predictions logged {window} under {log_dir}: {LOG_HINT}")
    ours = [e for e in entries if e.model == name]
    notes = []
    if others := sorted({e.model for e in entries} - {name}):
        notes.append(
            f"{len(entries) - len(ours)} row(s) of other models ({', '.join(others)}) were left "
            f"out: the report is about the current model, {name}"
        )
    if not ours:
        raise UsageError(
            f"no predictions of {name} logged {window} under {log_dir} (only of "
            f"{', '.join(others)}): `kit use` the model to monitor, or {LOG_HINT}"
        )
    by_version: dict[str, list[Any]] = {}
    for entry in ours:
        by_version.setdefault(entry.version, []).append(entry)
    versions = [
        _version_report(store, name, version, rows, thresholds, notes)
        for version, rows in sorted(by_version.items(), key=lambda kv: _version_key(kv[0]))
    ]
    if all(v.drift is None for v in versions):
        missing = ", ".join(f"{name}:{v.version}" for v in versions)
        raise UsageError(
            f"no reference data for {missing}: train or import it again with this kit "
            "(`kit train`, `kit import ... --sample`), which keeps its inputs for `kit monitor`"
        )
    return MonitorReport(
        model=name,
        log_dir=str(log_dir),
        window=window,
        since=since,
        until=until,
        rows=len(ours),
        first_ts=ours[0].ts,
        last_ts=ours[-1].ts,
        thresholds=thresholds,
        versions=versions,
        notes=notes,
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version[1:]) if version[1:].isdigit() else 0, version)


def _version_report(
    store: ModelStore,
    name: str,
    version: str,
    entries: list[Any],
    thresholds: Thresholds,
    notes: list[str],
) -> VersionReport:
    answers = [e.prediction for e in entries]
    values = [float(a["value"]) for a in answers if isinstance(a.get("value"), int | float)]
    report = VersionReport(
        model=name,
        version=version,
        rows=len(entries),
        drift=None,
        predictions=summarize_predictions(answers),
        latency=latency([float(e.latency_ms) for e in entries]),
        values=values,
    )
    manifest_path = store.path(name, version) / MANIFEST_FILE
    reference = store.reference(name, version) if manifest_path.is_file() else None
    if reference is None:
        notes.append(
            f"no reference data for {name}:{version}: its {len(entries)} row(s) were not "
            "compared; train or import it again with this kit"
        )
        return report
    schema = Manifest.from_file(manifest_path).schema_
    current = pd.DataFrame.from_records([e.record for e in entries])
    report.drift = compare(schema, reference, current, thresholds)
    report.reference, report.current = reference, current
    return report


# --- the HTML page -----------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.drift { color: #b00020; font-weight: bold; } .watch { color: #a05a00; }
.ok { color: #1b7f3b; } .too-few-rows { color: #666; font-style: italic; }
figure { display: inline-block; margin: 0.5em; } img { max-width: 520px; }
"""


def _png(figure: Figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _feature_plot(feature: FeatureDrift, version: VersionReport) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(5.2, 3.0), dpi=90)
    if feature.kind == "numeric" and version.reference is not None and version.current is not None:
        ref = pd.to_numeric(version.reference[feature.name], errors="coerce").dropna()
        column = version.current.get(feature.name, pd.Series(dtype=float))
        cur = pd.to_numeric(column, errors="coerce").dropna()
        both = np.concatenate([ref.to_numpy(float), cur.to_numpy(float)])
        bins = [float(e) for e in np.histogram_bin_edges(both, bins=30)] if len(both) else 10
        axis.hist(ref, bins=bins, density=True, alpha=0.5, label="reference", color="#4c72b0")
        axis.hist(cur, bins=bins, density=True, alpha=0.5, label="current", color="#dd8452")
        axis.set_ylabel("density")
        bounds = [b for b in feature.expected_range or () if b is not None]
        for i, bound in enumerate(bounds):
            label = "expected range" if i == 0 else None
            axis.axvline(bound, color="black", linestyle=":", linewidth=1, label=label)
    else:
        x = np.arange(len(feature.buckets))
        axis.bar(x - 0.2, [b.reference for b in feature.buckets], 0.4, label="reference")
        axis.bar(x + 0.2, [b.current for b in feature.buckets], 0.4, label="current")
        axis.set_xticks(x, [b.label for b in feature.buckets], rotation=30, fontsize=7)
        axis.set_ylabel("share")
    axis.set_title(f"{feature.name} ({version.version}): PSI {feature.score:.3f}", fontsize=9)
    axis.legend(fontsize=7)
    return _png(figure)


def _predictions_plot(versions: list[VersionReport]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(6.5, 3.0), dpi=90)
    classes = sorted({c for v in versions for c in v.predictions.shares})
    if classes:
        x, width = np.arange(len(classes)), 0.8 / len(versions)
        for i, v in enumerate(versions):
            shares = [v.predictions.shares.get(c, 0.0) for c in classes]
            axis.bar(x + i * width - 0.4 + width / 2, shares, width, label=v.version)
        axis.set_xticks(x, classes, fontsize=8)
        axis.set_ylabel("share of predictions")
    elif any(v.values for v in versions):
        for v in versions:
            axis.hist(v.values, bins=30, alpha=0.5, label=v.version)
        axis.set_ylabel("predictions")
    else:
        plt.close(figure)
        return None
    axis.set_title("predictions per version", fontsize=9)
    axis.legend(fontsize=7)
    return _png(figure)


def _cells(row: list[Any]) -> str:
    out = []
    for cell in row:
        if isinstance(cell, float):
            out.append(f'<td class="num">{cell:.3f}</td>')
        else:
            out.append(f"<td>{escape(str(cell))}</td>")
    return "<tr>" + "".join(out) + "</tr>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{''.join(_cells(r) for r in rows)}</table>"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render_html(report: MonitorReport) -> str:
    """The report as one self-contained page (inline PNGs and CSS; no script, no URL)."""
    t = report.thresholds
    parts = [
        f"<h1>kit monitor: {escape(report.model)}</h1>",
        f"<p>{report.rows} logged prediction(s) {escape(report.window)} "
        f"({_iso(report.first_ts)} to {_iso(report.last_ts)}; read at {_iso(report.until)}) "
        f"from <code>{escape(report.log_dir)}</code>.</p>",
        f"<p>Thresholds: drift at PSI &gt; {t.psi:g} (watch &gt; {t.psi_watch:g}) or more than "
        f"{t.out_of_range:.1%} of values out of the expected range or unseen; at least "
        f"{t.min_rows} rows per feature.</p>",
    ]
    if report.drifted:
        parts.append(f'<p class="drift">Drifted: {escape(", ".join(report.drifted))}</p>')
    else:
        parts.append('<p class="ok">No drift beyond the thresholds.</p>')
    parts += [f"<p><em>note:</em> {escape(note)}</p>" for note in report.notes]
    rows = [
        [
            v,
            f.name,
            f.kind,
            f.score,
            _rate(f.out_of_range_rate),
            _rate(f.unseen_rate),
            _rate(f.missing_rate),
            f.n_current,
            f.verdict,
        ]
        for v, f in report.ranked()
    ]
    header = ["version", "feature", "kind", "score (PSI)", "out of range", "unseen", "missing",
              "rows", "verdict"]  # fmt: skip
    table = _table(header, rows)
    for verdict in ("drift", "watch", "ok", "too few rows"):  # colour the verdict cells
        css = verdict.replace(" ", "-")
        table = table.replace(f"<td>{verdict}</td>", f'<td class="{css}">{verdict}</td>')
    parts += ["<h2>Summary</h2>", table]
    parts.append("<h2>Predictions and latency per version</h2>")
    if plot := _predictions_plot(report.versions):
        parts.append(f'<figure><img src="{plot}" alt="predictions per version"></figure>')
    parts.append(
        _table(
            ["version", "rows", "predictions", "p50 ms", "p95 ms", "p99 ms"],
            [
                [v.version, v.rows, _answers(v.predictions)]
                + ([v.latency.p50, v.latency.p95, v.latency.p99] if v.latency else ["-"] * 3)
                for v in report.versions
            ],
        )
    )
    for version in report.versions:
        if version.drift is None:
            continue
        parts.append(
            f"<h2>Features of {escape(report.model)}:{escape(version.version)}</h2>"
            f"<p>{version.rows} current row(s) against {version.drift.n_reference} reference "
            "row(s).</p>"
        )
        if version.drift.not_measured:
            parts.append(
                f"<p>Not measured (free text): {escape(', '.join(version.drift.not_measured))}</p>"
            )
        for feature in version.drift.features:
            why = "; ".join(feature.reasons) or feature.verdict
            parts.append(
                f'<figure><img src="{_feature_plot(feature, version)}" '
                f'alt="{escape(feature.name)}"><figcaption>{escape(feature.name)}: '
                f"{escape(why)}</figcaption></figure>"
            )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>kit monitor: {escape(report.model)}</title><style>{STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def _answers(summary: PredictionSummary) -> str:
    if summary.shares:
        return ", ".join(f"{label} {share:.1%}" for label, share in summary.shares.items())
    return ", ".join(f"{name} {value:.4g}" for name, value in summary.quantiles.items()) or "-"
