"""What every `kit` command shares: the Typer app, consoles, settings, errors, options.

Importing this (and so `kit --help`) stays cheap: settings (pydantic-settings) and the
frameworks are imported by the commands that use them, when they run.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape

from model.errors import InvalidInput, KitError, UsageError

if TYPE_CHECKING:
    from model.settings import KitSettings

# model.settings.Backend, spelled out here so that parsing options needs no pydantic-settings
# (tests/unit/test_imports.py checks that both say the same).
Backend = Literal["auto", "local", "remote"]

EXIT_CODES = (
    "Exit codes: 0 ok · 1 unexpected error · 2 invalid input or usage (including serving beyond "
    "localhost without credentials) · 3 model artifact missing or tampered · 4 model service "
    "unavailable · 5 the service refused the API key · 6 a `kit promote` or `kit build` step "
    "failed · 7 the service refused a published model version · 8 `kit monitor` found drift "
    "beyond its thresholds."
)


def _before_every_command() -> None:
    """Runs before any command, not for `kit --help`: the frameworks' usage statistics off."""
    from model.settings import disable_telemetry

    disable_telemetry()


app = typer.Typer(
    callback=_before_every_command,
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
    from model.settings import get_settings

    settings = get_settings()
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Kit folder, or $KIT_HOME.", show_default="./.kit"),
]
BackendOption = Annotated[
    Backend,
    typer.Option(
        "--backend",
        "-b",
        help="local: in-process; remote: the promoted service; auto: remote if there is one.",
    ),
]

ChannelOption = Annotated[
    str | None,
    typer.Option(
        "--channel",
        help="The broker every replica follows, nats://HOST:PORT, or $KIT_CHANNEL_URL; "
        "unset: the service `kit promote` started here.",
        show_default=False,
    ),
]


def use_kit_bentoml_store(settings: KitSettings) -> None:
    """Point BentoML at the kit's own store; must run before bentoml is imported."""
    os.environ["BENTOML_HOME"] = str(settings.bentoml_home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (0.0.0.0 and :: included)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_in_use(port: int) -> KitError:
    """The one-line error of a --port that something else listens on (exit code 2)."""
    return UsageError(f"port {port} is in use: choose another, or omit --port to take a free one")


def one_line_paragraphs(text: str) -> str:
    """A docstring as Typer's rich help needs it: each paragraph on one line. Typer keeps every
    line break, so docstrings wrapped in the source came out ragged in a narrower terminal."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def readable_help(kit: typer.Typer) -> None:
    """Unwrap the help of every command registered on `kit` (see `one_line_paragraphs`)."""
    for command in kit.registered_commands:
        text = command.help or inspect.getdoc(command.callback) or ""
        command.help = one_line_paragraphs(text)
