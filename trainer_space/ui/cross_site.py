"""Another site's page never acts as the signed-in visitor.

The session cookie is `SameSite=None` (a Space runs inside huggingface.co's frame), and Gradio's CORS lets any
origin call the app with credentials. So a page on another site that a signed-in visitor opens could call the
API, the MCP server or the tabs' events with the visitor's session. This middleware drops the cookie of any
request whose `Origin` is another site: such a request acts as nobody, unless it sends a token of its own
(`Authorization: Bearer`). The app's own pages (same origin) and programs (no `Origin`) are unaffected.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any


class ForeignPagesActAsNobody:
    """ASGI middleware: no session cookie for requests from another site's page."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket") and from_another_site(scope.get("headers") or []):
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"cookie"]}
        await self.app(scope, receive, send)


def from_another_site(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request comes from a page of another origin than this app's (its hosts: the Host header, a
    proxy's X-Forwarded-Host, and on a Space its SPACE_HOST names)."""
    values = {k.lower(): v.decode("latin-1") for k, v in headers}
    origin = values.get(b"origin")
    if origin is None:
        return False  # not a browser's cross-site call (same-origin GETs and programs send none)
    ours = {h.strip().lower() for h in (values.get(b"host", ""), *values.get(b"x-forwarded-host", "").split(","))}
    ours |= {h.strip().lower() for h in os.environ.get("SPACE_HOST", "").split(",")}
    ours.discard("")
    return urllib.parse.urlparse(origin).netloc.lower() not in ours


def install() -> None:
    """Add the middleware outside Gradio's session middleware (which reads the cookie), wherever the app runs."""
    import gradio.routes

    original = gradio.routes.attach_oauth
    if getattr(original, "_guards_foreign_pages", False):
        return

    def attach_oauth(app: Any) -> None:
        original(app)
        app.add_middleware(ForeignPagesActAsNobody)  # added last: runs first, before the session is read

    attach_oauth._guards_foreign_pages = True  # type: ignore[attr-defined]
    gradio.routes.attach_oauth = attach_oauth
