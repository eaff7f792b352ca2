"""Secrets stay secret: the API key and the testers' password appear in no log, no `kit status`
output, no state file, and no page the demo serves."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import requests

from tests.helpers import GENTOO, free_port, promote, run_kit, start_kit, stop_promoted

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these


def test_the_api_key_is_in_no_log_status_or_state_file(kit_home: Path) -> None:
    key = f"key-{secrets.token_urlsafe(16)}"
    service = promote(kit_home, KIT_API_KEY=key)
    try:
        seen = [service.output]
        ok = requests.post(
            f"{service.url}/predict",
            json={"records": [GENTOO]},
            headers={"X-API-Key": key},
            timeout=60,
        )
        refused = requests.post(
            f"{service.url}/predict",
            json={"records": [GENTOO]},
            headers={"X-API-Key": key + "x"},
            timeout=60,
        )
        assert (ok.status_code, refused.status_code) == (200, 401)
        seen.append(refused.text)
        for args in (("status",), ("status", "--json"), ("models",)):
            result = run_kit(*args, home=kit_home, KIT_API_KEY=key)
            seen += [result.stdout, result.stderr]
        state = json.loads((kit_home / "state.json").read_text())
        seen += [(kit_home / "state.json").read_text(), Path(state["log"]).read_text()]
        seen += [p.read_text(errors="replace") for p in (kit_home / "logs").glob("*")]
        leaks = [i for i, text in enumerate(seen) if key in text]
        assert not leaks, f"the API key shows in outputs {leaks}"
    finally:
        stop_promoted(service, KIT_API_KEY=key)


def test_the_testers_password_is_in_no_page_or_output_of_the_demo(
    kit_home: Path, tmp_path: Path
) -> None:
    password = f"pw-{secrets.token_urlsafe(16)}"
    for ui in ("gradio", "streamlit"):
        port = free_port()
        log = tmp_path / f"{ui}.log"
        server = start_kit(
            "demo", "--ui", ui, "--port", str(port), home=kit_home, log=log,
            KIT_AUTH=f"tester:{password}",
        )  # fmt: skip
        try:
            url = server.wait_for(r"Demo running at (http://\S+)", timeout=120).group(1)
            pages = [requests.get(url, timeout=30).text]
            if ui == "gradio":
                session = requests.Session()
                login = session.post(
                    f"{url.rstrip('/')}/login",
                    data={"username": "tester", "password": password},
                    timeout=30,
                )
                assert login.status_code == 200, login.text
                pages += [session.get(f"{url.rstrip('/')}/config", timeout=30).text]
                assert "bill_length_mm" in pages[-1], "signed in: the page's config is served"
            else:
                pages += [requests.get(f"{url.rstrip('/')}/_stcore/health", timeout=30).text]
        finally:
            server.stop()
        outputs = [*pages, server.output(), log.read_text(errors="replace")]
        assert not [i for i, text in enumerate(outputs) if password in text], ui
