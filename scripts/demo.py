"""`kit demo`: start the Gradio UI in this process, or the Streamlit UI as a child process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from app_prototype.sharing import lan_urls, require_auth_if_exposed
from model.errors import KitError
from model.settings import KitSettings
from scripts.common import port_in_use, port_is_free

# The page script: it composes the Predictor and hands it to app_prototype/streamlit_app.py.
STREAMLIT_APP = Path(__file__).resolve().parent / "streamlit_page.py"
STREAMLIT_PORT = 8501
STARTUP_TIMEOUT_S = 60.0
# What ends the kit besides Ctrl-C (KeyboardInterrupt): `kill`, a closed terminal, SIGQUIT.
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def free_port(start: int, host: str = "127.0.0.1") -> int:
    """The first port from `start` on that nothing listens on."""
    for port in range(start, start + 100):
        with socket.socket() as sock:
            if sock.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) != 0:  # noqa: S104
                return port
    raise KitError(f"no free port between {start} and {start + 99}: pass --port")


def run_demo(
    ui: str,
    settings: KitSettings,
    *,
    host: str,
    port: int | None,
    share: bool,
    share_server: str | None,
    auth: tuple[str, str] | None,
    say: Callable[[str], None],
) -> int:
    require_auth_if_exposed(host, share, auth)
    bound = settings.lan_host if share and ui == "streamlit" else host
    if port is not None and not port_is_free(bound, port):
        raise port_in_use(port)  # one line, exit 2: not the framework's traceback
    if ui == "streamlit":
        if share_server:
            raise KitError("--share-server is a Gradio option; Streamlit shares on the LAN")
        return _run_streamlit(
            settings, host=settings.lan_host if share else host, port=port, auth=auth, say=say
        )
    return _run_gradio(
        settings, host=host, port=port, share=share, share_server=share_server, auth=auth, say=say
    )


def _run_gradio(
    settings: KitSettings,
    *,
    host: str,
    port: int | None,
    share: bool,
    share_server: str | None,
    auth: tuple[str, str] | None,
    say: Callable[[str], None],
) -> int:
    from app_production.backends import open_feedback, open_predictor
    from app_prototype.gradio_app import launch

    bypass_proxy_for(host, settings.lan_host if share else host)
    predictor = open_predictor(settings.backend, settings)
    info = predictor.info()
    say(f"model {info.title} · backend {info.backend} · starting Gradio…")
    launched = launch(
        predictor,
        host=host,
        port=port,
        auth=auth,
        share=share,
        share_server=share_server,
        lan_host=settings.lan_host,
        say=say,
        feedback=open_feedback(predictor, settings),
    )
    say(f"Demo running at {launched.local_url} (Ctrl-C to stop)")
    for url in launched.lan:
        say(f"On your network: {url}")
    try:
        launched.demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        launched.demo.close()
    return 0


def _run_streamlit(
    settings: KitSettings,
    *,
    host: str,
    port: int | None,
    auth: tuple[str, str] | None,
    say: Callable[[str], None],
) -> int:
    from app_production.backends import open_predictor

    info = open_predictor(settings.backend, settings).info()  # fail here, clearly, not in the page
    port = port or free_port(STREAMLIT_PORT, host)
    env = {
        **os.environ,
        "KIT_HOME": str(settings.home),
        "KIT_BACKEND": settings.backend,
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    env.pop("KIT_AUTH", None)
    if auth:
        env["KIT_AUTH"] = f"{auth[0]}:{auth[1]}"  # via the environment, never the command line
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(STREAMLIT_APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]
    say(f"model {info.title} · backend {info.backend} · starting Streamlit…")
    end_child_on_signals()  # SIGTERM, SIGHUP: through the `finally` below, child included
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        local = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
        _wait_healthy(f"{local}/_stcore/health", child)
        say(f"Demo running at {local}/ (Ctrl-C to stop)")
        if host not in ("127.0.0.1", "localhost"):
            for url in lan_urls(port, host):
                say(f"On your network: {url}")
        return child.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def bypass_proxy_for(*hosts: str) -> None:
    """Add loopback and the demo's own addresses to NO_PROXY, for Gradio: its launch() checks
    the app it started over HTTP (httpx), which an HTTP_PROXY without NO_PROXY would send to
    the proxy, failing the start."""
    existing = [
        h.strip() for n in ("NO_PROXY", "no_proxy") for h in os.environ.get(n, "").split(",")
    ]
    wildcards = {"0.0.0.0", "::"}  # noqa: S104 - bind-all addresses, not hosts to call
    wanted = [*existing, "localhost", "127.0.0.1", "::1", *(h for h in hosts if h not in wildcards)]
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(
        dict.fromkeys(h for h in wanted if h)
    )


def end_child_on_signals() -> None:
    """Make SIGTERM, SIGHUP (a closed terminal) and SIGQUIT end the kit through `finally`
    blocks, as Ctrl-C does, so that a child process is stopped rather than left serving with
    parent 1. The exit code stays the conventional 128 + signal number."""

    def stop(signum: int, frame: FrameType | None) -> None:
        for caught in TERMINATING_SIGNALS:
            signal.signal(caught, signal.SIG_IGN)  # the clean-up runs once, uninterrupted
        raise SystemExit(128 + signum)

    for signum in TERMINATING_SIGNALS:
        signal.signal(signum, stop)


def _wait_healthy(url: str, child: subprocess.Popen[bytes]) -> None:
    from app_production.state import http_get

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise KitError(f"Streamlit exited with code {child.returncode} before it was ready")
        try:
            with http_get(url, timeout=2) as response:  # loopback: never through a proxy
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise KitError(f"Streamlit did not answer {url} within {STARTUP_TIMEOUT_S:.0f} s")
