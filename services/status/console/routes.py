"""/console/: the console's HTML shell and its static files, behind strict security headers.

The console is static: its pages call the same /api/v1/sync/... routes as any client, with the
token the operator signed in with, so it shows nothing the token could not read with curl.
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
PATH = "/console"

# No inline script or style, nothing from another origin, never framed (clickjacking): an
# injected <img onerror> or <script> would not run even if a text reached the DOM as markup.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def shell(request: Request) -> Response:
    # The pages change with each release: the browser checks back (ETag) instead of keeping an
    # old shell that loads old modules.
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def to_shell(request: Request) -> Response:
    return RedirectResponse(f"{PATH}/", status_code=308)


class _RevalidatedStaticFiles(StaticFiles):
    def file_response(self, *args, **kwargs) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


_SECURED = [Middleware(SecurityHeaders)]

# Full paths at the top level (no inner router), so that request metrics name these routes.
ROUTES = [
    Route(PATH, to_shell, methods=["GET", "HEAD"], middleware=_SECURED),
    Route(f"{PATH}/", shell, methods=["GET", "HEAD"], middleware=_SECURED),
    Mount(f"{PATH}/static", app=_RevalidatedStaticFiles(directory=STATIC_DIR), middleware=_SECURED),
]
