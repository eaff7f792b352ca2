"""Browser fixtures: Debian's Chromium driven by Playwright, against real `kit demo` servers.

Every page lives in a fresh context whose requests may only go to loopback: anything else
(telemetry, web fonts, CDNs) is aborted, recorded, and fails the test at teardown. Chromium's
own resolver maps every other host name to nowhere as a second line of defence.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Route,
    ViewportSize,
    WebSocket,
    expect,
    sync_playwright,
)

from tests.helpers import ServerProcess, free_port, start_kit, wait_http
from tests.wide_model import make_cancer_home

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Without EXCLUDE 127.0.0.1, MAP * also breaks IP literals (ERR_NAME_NOT_RESOLVED).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Tall: Streamlit scrolls an inner container, so a full-page screenshot is only the viewport.
VIEWPORT: ViewportSize = {"width": 1280, "height": 1400}
STARTUP_TIMEOUT_S = 120  # `kit demo` until "Demo running at" (Gradio takes 8-15 s here)
ACTION_TIMEOUT_MS = 30_000
NAVIGATION_TIMEOUT_MS = 60_000

expect.set_options(timeout=ACTION_TIMEOUT_MS)

DemoServer = tuple[ServerProcess, str]
_FAILURE_SHOT = "failure.png"


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob") or parts.hostname in LOCAL_HOSTS


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context; at teardown, asserts that nothing tried to leave loopback."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    attempted: list[str] = []

    def only_loopback(route: Route) -> None:
        request = route.request
        if _is_local(request.url):
            route.continue_()
        else:
            attempted.append(f"{request.method} {request.url}")
            route.abort("blockedbyclient")

    def note_websocket(socket: WebSocket) -> None:
        if not _is_local(socket.url):
            attempted.append(f"WEBSOCKET {socket.url}")

    # The context's route also covers popups and workers, which a page's route would not.
    context.route("**/*", only_loopback)
    page = context.new_page()
    page.on("websocket", note_websocket)
    try:
        yield page
    finally:
        context.close()
    assert not attempted, "the page tried to reach beyond loopback:\n" + "\n".join(attempted)


@pytest.fixture(scope="session")
def cancer_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kit home with a wide model: 30 numeric features (breast cancer), imported."""
    return make_cancer_home(tmp_path_factory.mktemp("cancer"))


@pytest.fixture
def start_demo(kit_home: Path, output_dir: Path) -> Iterator[Callable[..., DemoServer]]:
    """`start_demo("gradio", *more_args, home=None)` -> (server, url), for `home` (default: a
    copy of the trained penguins home); every server is stopped at teardown.

    The server's output goes to test-output/<test>/server.log.
    """
    servers: list[ServerProcess] = []

    def start(ui: str, *args: str, home: Path | None = None) -> DemoServer:
        server = start_kit(
            "demo",
            "--ui",
            ui,
            "--port",
            str(free_port()),
            *args,
            home=home or kit_home,
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed browser test, screenshot the page while its server still runs."""
    report = yield
    if report.when == "call" and report.failed:
        page = getattr(item, "funcargs", {}).get("page")
        folder = getattr(item, "funcargs", {}).get("output_dir")
        if page is not None and folder is not None:
            try:
                page.screenshot(path=str(folder / _FAILURE_SHOT), full_page=True)
            except Exception as exc:  # a dead page must not hide the real failure
                report.sections.append(("failure screenshot", f"not taken: {exc}"))
            else:
                report.sections.append(("failure screenshot", str(folder / _FAILURE_SHOT)))
    return report
