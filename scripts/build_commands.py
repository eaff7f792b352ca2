"""`kit build`: an OCI image of the promoted service (`bentoml containerize`), or of the demo UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from scripts.common import HomeOption, app, console, kit_errors, out, settings_with

if TYPE_CHECKING:
    from app_production.images import BuiltImage


@app.command()
def build(
    tag: Annotated[
        str | None,
        typer.Option(
            "--tag",
            "-t",
            help="Image reference.",
            show_default="localhost/kit/<model>-service:<version>, or <model>-<ui>",
        ),
    ] = None,
    backend: Annotated[
        Literal["buildah", "podman", "docker"] | None,
        typer.Option("--backend", help="Image builder.", show_default="buildah, podman, docker"),
    ] = None,
    ui: Annotated[
        Literal["gradio", "streamlit"] | None,
        typer.Option("--ui", help="Build the demo UI's image (gradio or streamlit) instead."),
    ] = None,
    base_from_debian: Annotated[
        bool,
        typer.Option(
            "--base-from-debian",
            help="Make the python:3.11-slim stand-in from Debian packages without trying to "
            "pull it (root, debootstrap).",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Build an OCI image of the promoted model's service: `bentoml containerize` of the Bento
    that `kit promote` built, so the model is inside. It runs as user bentoml (uid 1034) and
    refuses to start without KIT_API_KEY.

    --ui gradio|streamlit: an image of the same demo UI with the remote backend, reading
    KIT_SERVICE_URL, KIT_API_KEY and KIT_AUTH (required: it listens on 0.0.0.0) from the
    environment; user kit (uid 1035). The model is not in it.

    Both start FROM python:3.11-slim; when it cannot be pulled, a stand-in made from Debian
    packages takes its name. The kit's podman/buildah settings and image storage live in
    <home>/containers/.

    Examples: kit build · kit build --ui gradio · kit build --tag registry.example.com/penguins:v1
    """
    from app_production.images import build_image
    from scripts.common import use_kit_bentoml_store
    from scripts.service_commands import StepPrinter

    settings = settings_with(home=home)
    with kit_errors():
        use_kit_bentoml_store(settings)
        built = build_image(
            settings,
            StepPrinter(),
            ui=ui,
            tag=tag,
            backend=backend,
            base_from_debian=base_from_debian,
        )
    out.print(built.reference, markup=False)  # stdout: the image, for scripts
    for line in next_steps(built, ui):
        console.print(line, markup=False)


def next_steps(built: BuiltImage, ui: str | None) -> list[str]:
    """How to run and push the image (host network: the service on loopback, the UI beside it)."""
    runner, image = built.builder.runner, built.reference
    lines = []
    if built.builder.env:
        exports = " ".join(f"{name}={value}" for name, value in built.builder.env.items())
        lines.append(f"the image is in the kit's podman storage; first: export {exports}")
    if ui is None:
        run = f"-e KIT_API_KEY {image} serve --host 127.0.0.1 --port 3000"
    else:
        run = f"-e KIT_SERVICE_URL=http://127.0.0.1:3000 -e KIT_API_KEY -e KIT_AUTH {image}"
    lines.append(f"run:  {runner} run --rm --network host {run}")
    name = image.rsplit("/", 1)[-1]
    if runner == "podman":
        lines.append(f"push: podman push {image} REGISTRY/{name}")
    else:
        lines.append(f"push: docker tag {image} REGISTRY/{name} && docker push REGISTRY/{name}")
    return lines
