"""Choose the Predictor behind a UI or the CLI: the model in-process, or the promoted service."""

from __future__ import annotations

import json
from typing import Any

from model.errors import ServiceUnavailable
from model.predictor import LocalPredictor, Predictor
from model.settings import Backend, KitSettings


def promoted_service(settings: KitSettings) -> dict[str, Any] | None:
    """What `kit promote` recorded about the running service, or None if nothing was promoted."""
    try:
        state: dict[str, Any] = json.loads(settings.state_file.read_text())
    except FileNotFoundError:
        return None
    return state if state.get("url") else None


def open_predictor(backend: Backend, settings: KitSettings) -> Predictor:
    """`local`: the current artifact in-process. `remote`: the promoted service.
    `auto`: remote when a service was promoted, else local."""
    service = promoted_service(settings)
    if backend == "local" or (backend == "auto" and service is None):
        return LocalPredictor.from_home(settings.home)
    if service is None:
        raise ServiceUnavailable(
            "no model service has been promoted yet: run `kit promote` first, "
            "or use --backend local to run the model in-process"
        )
    raise ServiceUnavailable(
        f"the promoted service at {service['url']} cannot be used: this version of the kit has "
        "no remote client yet; use --backend local"
    )
