"""A request timeout that forgets each request when it ends (BentoML's keeps it for 30 s).

BentoML 1.4's `TimeoutMiddleware` schedules a timer per request and never cancels it: every
answered request's timer and future stay on the event loop for `traffic.timeout` seconds.
Under load that is tens of thousands of live objects for the garbage collector to walk; `kit
bench` saw throughput fall by a third and p99 rise from 28 to 80 ms over consecutive runs.
This one cancels the timer when the request ends and otherwise behaves the same: 504 with the
same body when the handler has not started answering in time. It also stops waiting as soon
as the handler fails without answering, instead of at the timeout.

`install()` swaps it in by module attribute (BentoML imports the class when it builds the
app); it checks the BentoML version it was written for.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WRITTEN_FOR = "1.4.39"
replaced: Any = None  # BentoML's class, once `install()` swapped it out


class TimeoutMiddleware:
    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        answering: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(self.timeout, _expire, answering)

        async def watched_send(message: Message) -> None:
            if not answering.done():
                answering.set_result(None)
            await send(message)

        def handler_done(_: object) -> None:  # failed or returned without answering
            if not answering.done():
                answering.set_result(None)

        handler = asyncio.ensure_future(self.app(scope, receive, watched_send))
        handler.add_done_callback(handler_done)
        try:
            await answering
        except TimeoutError:
            if handler.cancel():
                body = {"error": f"Not able to process the request in {self.timeout} seconds"}
                await JSONResponse(body, status_code=504)(scope, receive, send)
        else:
            await handler
        finally:
            timer.cancel()  # the point of this class: nothing outlives the request


def _expire(answering: asyncio.Future[None]) -> None:
    if not answering.done():
        answering.set_exception(TimeoutError())


def install() -> None:
    """Use this middleware for BentoML's `traffic.timeout` (call before the app is built)."""
    from bentoml._internal.server.http import traffic

    installed = version("bentoml")
    if installed != WRITTEN_FOR:
        raise RuntimeError(
            f"app_production/timeouts.py was written for bentoml {WRITTEN_FOR}, not "
            f"{installed}: check that BentoML still leaks its timers, then update WRITTEN_FOR"
        )
    traffic_module: Any = traffic
    if traffic_module.TimeoutMiddleware is not TimeoutMiddleware:
        global replaced
        replaced = traffic_module.TimeoutMiddleware
    traffic_module.TimeoutMiddleware = TimeoutMiddleware
