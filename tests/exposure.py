"""What a demo must not show before sign-in, and how to find every route it answers.

Shared by tests/integration/test_shared_demo.py (on loopback) and test_other_host.py (from a
network namespace)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app_prototype.gradio_app import Launched
    from model.predictor import LocalPredictor


def model_words(predictor: LocalPredictor) -> list[str]:
    """The model, its features and choices, its classes, its titles."""
    info = predictor.info()
    schema = info.model_schema
    words = [info.name, info.title, *schema.feature_names, *(schema.classes or [])]
    if schema.title:
        words.append(schema.title)
    for feature in schema.features:
        words.extend(str(choice) for choice in (feature.choices or []))
    return sorted(set(words))


def leaks(body: str, words: list[str]) -> list[str]:
    """The words that appear in `body` (not as the tail of a longer word)."""
    return [w for w in words if re.search(rf"(?<![A-Za-z]){re.escape(w)}", body)]


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of routes, into included routers (FastAPI includes them lazily)."""
    from starlette.routing import Mount, Route

    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Route):
            yield prefix + route.path, set(route.methods or ())
        elif isinstance(route, Mount):
            yield prefix + route.path + "/x", {"GET"}


def gradio_get_paths(launched: Launched) -> list[str]:
    """Every GET route the demo registers, path parameters filled with a dummy value."""
    paths = {"/", "/manifest.json", "/config", "/gradio_api/info", "/gradio_api/openapi.json"}
    for path, methods in _routes(launched.demo.app.routes):
        if "GET" in methods:
            paths.add(re.sub(r"\{[^}]*\}", "x", path) or "/")
    return sorted(paths)
