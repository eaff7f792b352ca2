"""`kit annotate`: a new version of a model with the user's annotations on its schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scripts.common import HomeOption, app, console, kit_errors, settings_with


@app.command()
def annotate(
    model: Annotated[
        str,
        typer.Argument(
            metavar="NAME[:VERSION]", help="A saved model, by default the latest version of it."
        ),
    ],
    annotations_file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="TOML or YAML: \\[model] title, description; \\[features.NAME] description, "
            "unit, minimum, maximum, required, choices; \\[classes] label = name.",
        ),
    ],
    home: HomeOption = None,
) -> None:
    """Annotate a model without re-importing it: a new version of it.

    The model file is copied byte for byte (same sha256) and the metrics are kept; the new
    version becomes current. Versions are never changed in place.

    Example: kit annotate breast-cancer annotations.toml · kit annotate breast-cancer:v1 more.yaml
    """
    from model.annotations import annotate_model
    from model.artifact import ModelStore
    from scripts.model_commands import note_if_served_differs

    name, _, version = model.partition(":")
    settings = settings_with(home=home)
    with kit_errors(), console.status(f"annotating {model}…"):
        done = annotate_model(ModelStore(settings.home), name, version or None, annotations_file)
    new = done.manifest
    console.print(
        f"[green]✓[/] annotated [bold]{new.name}:{new.version}[/] (now current) from "
        f"{done.source.version}: {done.summary}; model file unchanged "
        f"(sha256 {new.sha256[:12]}…)"
    )
    note_if_served_differs(settings)
