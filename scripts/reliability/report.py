"""`make reliability`: gather the figures the reliability tests wrote into one report.

Each test of the suite (`pytest -m reliability`) writes what it measured to
test-output/reliability/<name>.json; this script writes reliability.json (all of them) and
reliability.md (one table row per figure, with the machine) into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

FIGURES = Path("test-output/reliability")
TITLES = {
    "fuzz": "Bad input, fuzzed (schemathesis against /docs.json)",
    "worker_killed": "Worker killed (kill -9) while 8 callers run",
    "model_refused": "`kit serve` of a model the service refuses",
    "supervisor_killed": "Supervisor killed: `kit status`, `kit stop`, promote again",
    "soak": "64 callers for 60 s through RemotePredictor (the UI's client)",
    "hostile_clients": "Big and slow bodies (50 MB, 1 M records, chunked, slow-loris) "
    "beside a normal caller",
    "tampered": "Tampered model file on every load path (a pickle that leaves a marker)",
    "other_host": "Access from another host (a network namespace)",
    "publish_under_load": "Publish and rollback under a steady stream of requests",
    "replicas_publish_under_load": "Publish and rollback across three replicas (a NATS broker)",
    "replicas_broker_restart": "The broker killed and restarted mid-stream; a late replica",
    "prediction_log_full_disk": "The prediction log's disk full (a real 512 KiB filesystem)",
    "batch_resumed": "A batch killed (kill -9) mid-job and run again",
}


def _scalars(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _scalars(value, f"{name}.")
        elif isinstance(value, bool | int | float | str):
            rows.append((name, value))
    return rows


def machine() -> str:
    return f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def render(figures: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# What it survives: figures of the last `make reliability`",
        "",
        f"Machine: {machine()}",
        "",
    ]
    for name, data in sorted(figures.items()):
        lines += [f"## {TITLES.get(name, name)}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in _scalars(data)]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=Path, default=FIGURES)
    parser.add_argument("--out", type=Path, default=Path("scripts/reliability/results"))
    args = parser.parse_args()
    figures = {p.stem: json.loads(p.read_text()) for p in sorted(args.figures.glob("*.json"))}
    if not figures:
        raise SystemExit(f"no figures in {args.figures}: run `pytest -m reliability` first")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reliability.json").write_text(
        json.dumps({"machine": machine(), **figures}, indent=2)
    )
    (args.out / "reliability.md").write_text(render(figures))
    print(f"wrote {args.out / 'reliability.md'} ({len(figures)} parts)")


if __name__ == "__main__":
    main()
