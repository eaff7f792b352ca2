"""A wall in front of a Gradio app launched with `auth`: before signing in, only the login.

Gradio's own auth refuses `/config` and the API calls without its session cookie, but its
login page embeds the whole API description (`window.gradio_api_info`: feature names, types,
choices, defaults, examples), and `/manifest.json`, `/logout` and `/gradio_api/runs` answer
too. This ASGI middleware answers a request without a valid session cookie itself: the login
page rendered without the API description, a manifest that names no model, the static files
the login form needs, and 401 for everything else. Signed in, requests reach Gradio untouched;
an app without auth is not affected at all (loopback `kit demo`).

Installed before launch: `demo.launch(app_kwargs=login_wall_kwargs())` (Gradio passes them to
its FastAPI app, which builds the middleware; the app itself is `scope["app"]`)."""

from __future__ import annotations

from typing import Any

from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

# What the login form itself loads (Gradio's frontend build, its theme and fonts), and the
# login and logout routes. Nothing here depends on the model.
OPEN_PATHS = frozenset(
    {
        "/login",
        "/login/",
        "/logout",
        "/favicon.ico",
        "/theme.css",
        "/gradio_api/theme.css",
        "/robots.txt",
        "/gradio_api/startup-events",  # launch() calls it itself, without a cookie
    }
)
OPEN_PREFIXES = ("/assets/", "/static/", "/svelte/")
LOGIN_PAGES = frozenset({"/", ""})
# The API description the login page embeds: an API without endpoints (the page reloads once
# signed in, with Gradio's own). Empty rather than absent, or the page asks for /info (a 401).
NO_API: dict[str, Any] = {"named_endpoints": {}, "unnamed_endpoints": {}}
NOT_SIGNED_IN = {"detail": {"error": "Not authenticated", "auth_message": None}}


def login_wall_kwargs() -> dict[str, Any]:
    """`app_kwargs` for `Blocks.launch`: a fresh dict each time (Gradio changes it)."""
    return {"middleware": [Middleware(LoginWall)]}


def signed_in(app: Any, scope: Scope) -> bool:
    """Whether the request carries the session cookie of a signed-in user (as routes.py checks:
    `access-token-<cookie_id>` or its `-unsecure-` twin, a key of `app.tokens`)."""
    cookies = HTTPConnection(scope).cookies
    cookie_id = getattr(app, "cookie_id", None)
    tokens = getattr(app, "tokens", {})
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        token = cookies.get(name)
        if token and token in tokens:
            return True
    return False


class LoginWall:
    """Pure ASGI middleware (streams and server-sent events pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gradio = scope.get("app")
        if (
            scope["type"] not in ("http", "websocket")
            or gradio is None
            or getattr(gradio, "auth", None) is None  # no credentials asked: nothing to wall
            or getattr(gradio, "auth_dependency", None) is not None  # someone else's auth
            or signed_in(gradio, scope)
        ):
            await self.app(scope, receive, send)
            return
        path = _path(scope)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        method = scope["method"]
        if path in LOGIN_PAGES and method in ("GET", "HEAD"):
            response: Response = login_page(gradio, Request(scope, receive))
        elif path == "/manifest.json" and method in ("GET", "HEAD"):
            response = JSONResponse(
                {"name": "Sign in", "icons": [], "start_url": "./", "display": "standalone"},
                media_type="application/manifest+json",
            )
        elif path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        else:
            response = JSONResponse(NOT_SIGNED_IN, status_code=401)
        await response(scope, receive, send)


def _path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


def login_page(gradio: Any, request: Request) -> Response:
    """Gradio's own page in its login state (the config Gradio gives it before sign-in), but
    without the API description it embeds next to that config."""
    from gradio import route_utils
    from gradio.routes import templates

    blocks = gradio.get_blocks()
    root = route_utils.get_root_url(
        request=request,
        route_path="/",
        root_path=gradio.root_path or request.scope.get("root_path") or blocks.custom_mount_path,
    )
    config = {
        "auth_required": True,
        "auth_message": blocks.auth_message,
        "space_id": blocks.space_id,
        "root": root,
        "page": {"": {"layout": {}}},
        "pages": [""],
        "components": [],
        "dependencies": [],
        "current_page": "",
    }
    template = "frontend/share.html" if blocks.share else "frontend/index.html"
    page: Response = templates.TemplateResponse(
        request=request,
        name=template,
        context={"base_url": "./", "config": config, "gradio_api_info": NO_API},
    )
    return page
