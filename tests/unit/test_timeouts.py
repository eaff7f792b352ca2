"""The request timeout that forgets each request when it ends (app_production/timeouts.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app_production import timeouts
from app_production.timeouts import TimeoutMiddleware

Message = dict[str, Any]


async def _answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _call(middleware: Any) -> tuple[list[Message], int]:
    """One HTTP request through `middleware`; returns what was sent and the live timers left."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware({"type": "http", "path": "/predict", "method": "POST"}, receive, send)
    loop = asyncio.get_running_loop()
    live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    return sent, len(live)


def test_an_answered_request_leaves_no_timer_behind() -> None:
    sent, live_timers = asyncio.run(_call(TimeoutMiddleware(_answer, timeout=30)))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert live_timers == 0


def test_bentomls_own_middleware_still_keeps_its_timer() -> None:
    """Why the replacement exists; when this fails, BentoML fixed it: drop timeouts.py."""
    from bentoml._internal.server.http import traffic

    original = traffic.TimeoutMiddleware
    if original is TimeoutMiddleware:  # swapped in this process already (the service module)
        original = timeouts.replaced
    _, live_timers = asyncio.run(_call(original(_answer, timeout=30)))
    assert live_timers == 1


def test_a_slow_handler_gets_bentomls_504_in_time() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(10)

    async def main() -> tuple[list[Message], float]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        sent, _ = await _call(TimeoutMiddleware(slow, timeout=0.05))
        return sent, loop.time() - began

    sent, seconds = asyncio.run(main())
    assert sent[0]["status"] == 504
    assert json.loads(sent[1]["body"]) == {
        "error": "Not able to process the request in 0.05 seconds"
    }
    assert seconds < 2


def test_a_handler_failing_before_answering_fails_at_once_not_at_the_timeout() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("handler bug")

    async def main() -> float:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(RuntimeError, match="handler bug"):
            await _call(TimeoutMiddleware(broken, timeout=30))
        return loop.time() - began

    assert asyncio.run(main()) < 1


def test_install_swaps_the_class_only_for_the_version_it_was_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bentoml._internal.server.http import traffic

    monkeypatch.setattr(traffic, "TimeoutMiddleware", traffic.TimeoutMiddleware)  # restored after
    monkeypatch.setattr(timeouts, "version", lambda _: "9.9.9")
    with pytest.raises(RuntimeError, match=r"written for bentoml 1\.4\.39, not 9\.9\.9"):
        timeouts.install()
    monkeypatch.setattr(timeouts, "version", lambda _: timeouts.WRITTEN_FOR)
    timeouts.install()
    assert traffic.TimeoutMiddleware is TimeoutMiddleware
