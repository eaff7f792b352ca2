"""Browser smoke test of the Gradio demo in remote mode: the page calls the promoted service.

`kit demo` runs for the session's `promoted` home (its backend `auto` chooses the service);
the browser only ever talks to the demo on loopback, the demo talks to the service.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import Promoted, ServerProcess, free_port, start_kit, wait_http

MODEL = "penguins:v1"
STARTUP_TIMEOUT_S = 180  # `kit demo` until "Demo running at" (2 shared cores)
# The defaults predict Adelie; a Gentoo proves that the typed values reached the service.
GENTOO = {
    "bill_length_mm": "47.5",
    "bill_depth_mm": "15.0",
    "flipper_length_mm": "217",
    "body_mass_g": "5400",
}

StartRemoteDemo = Callable[..., tuple[ServerProcess, str]]


@pytest.fixture
def start_remote_demo(promoted: Promoted, output_dir: Path) -> Iterator[StartRemoteDemo]:
    """Like `start_demo`, for the promoted home; every server is stopped at teardown."""
    servers: list[ServerProcess] = []

    def start(ui: str, *args: str) -> tuple[ServerProcess, str]:
        server = start_kit(
            "demo",
            "--ui",
            ui,
            "--port",
            str(free_port()),
            *args,
            home=promoted.home,
            log=output_dir / "server.log",
        )
        servers.append(server)
        url = server.wait_for(r"Demo running at (http://\S+)", timeout=STARTUP_TIMEOUT_S).group(1)
        wait_http(url)
        return server, url

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def _choose(page: Page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_gradio_remote_smoke(
    page: Page, start_remote_demo: StartRemoteDemo, promoted: Promoted, output_dir: Path
) -> None:
    server, url = start_remote_demo("gradio")
    assert f"backend remote: {promoted.url}" in server.output()

    page.goto(url)
    header = page.locator("#model-header")
    expect(header).to_contain_text(MODEL)
    # `kit demo` on loopback, not shared: the reader is the owner, who may see the URL.
    expect(header).to_contain_text(f"model service ({MODEL}) at {promoted.url}")

    _choose(page, "island", "Biscoe")
    _choose(page, "sex", "male")
    for name, value in GENTOO.items():
        page.get_by_label(name, exact=True).fill(value)
    page.get_by_role("button", name="Predict", exact=True).click()

    expect(page.locator("#out-label")).to_contain_text("Gentoo")
    expect(page.locator("#out-summary")).to_contain_text(
        re.compile(r"Prediction: Gentoo \(\d+\.\d%\) · answered by version v1")
    )
    shot = output_dir / "gradio-remote.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.is_file() and shot.stat().st_size > 0, f"empty screenshot {shot}"
