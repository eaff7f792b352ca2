"""What every `kit` command shares: the Typer app, consoles, settings, errors, options."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from model.errors import InvalidInput, KitError
from model.settings import Backend, KitSettings, get_settings

EXIT_CODES = (
    "Exit codes: 0 ok · 1 unexpected error · 2 invalid input or usage (including serving beyond "
    "localhost without credentials) · 3 model artifact missing or tampered · 4 model service "
    "unavailable · 5 the service refused the API key · 6 a `kit promote` step failed · 7 the "
    "service refused a published model version."
)

app = typer.Typer(
    help="Prototype-to-production kit for scikit-learn models.\n\n"
    "Start with `kit train` (example model) or `kit import`, then `kit demo`.\n\n" + EXIT_CODES,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, highlight=False, soft_wrap=True)  # no hard wraps: greppable
out = Console(highlight=False, soft_wrap=True)


@contextmanager
def kit_errors() -> Iterator[None]:
    """Turn the kit's errors into one red line and the documented exit code."""
    try:
        yield
    except InvalidInput as exc:
        console.print(f"[bold red]error:[/] invalid input ({len(exc.errors)} problem(s)):")
        for error in exc.errors:
            console.print(f"  record {error.record}: {error.message}", markup=False)
        raise typer.Exit(exc.exit_code) from exc
    except KitError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code) from exc
    except ValueError as exc:  # bad option values (e.g. --auth without ':')
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


def settings_with(**overrides: Any) -> KitSettings:
    """Settings from the environment, with the options given on the command line on top."""
    settings = get_settings()
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Kit folder (models, state). Default: ./.kit or $KIT_HOME."),
]
BackendOption = Annotated[
    Backend,
    typer.Option(
        "--backend",
        "-b",
        help="local: model in-process; remote: the promoted "
        "service; auto: remote if one was promoted, else local.",
    ),
]


def use_kit_bentoml_store(settings: KitSettings) -> None:
    """Point BentoML at the kit's own store; must run before bentoml is imported."""
    os.environ["BENTOML_HOME"] = str(settings.bentoml_home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
