"""Another site's page never acts as the signed-in visitor, nor reads a credentialed answer.

The session cookie is `SameSite=None` (a Space runs inside huggingface.co's frame), and Gradio's CORS answers any
origin with `Access-Control-Allow-Credentials: true`. So a page on another site that a signed-in visitor opens
could call the API, the MCP server or the tabs' events with the visitor's session, and read the answers. This
middleware, outside Gradio's session and CORS middlewares:

* drops the session cookie of any request from a page of another origin: it acts as nobody, unless it sends a
  token of its own (`Authorization: Bearer`);
* removes `Access-Control-Allow-Credentials` from the answers to such requests (the preflight included), so that a
  browser never lets another origin read a credentialed answer. Uncredentialed calls (the embedded web component,
  programs) are unaffected.

"Another origin" is decided only from what a browser sets and a page cannot forge: `Sec-Fetch-Site` (`cross-site`
or `same-site` outside a navigation), and `Origin` compared with the app's own origins: the `Host` the browser sent,
`SPACE_HOST` on a Space, and `TRAINER_SPACE_PUBLIC_ORIGIN` behind a proxy that rewrites `Host`. Never forwarded
headers (`X-Forwarded-Host`, `Forwarded`): a page may set those on its own requests. Programs (no `Origin`, no
`Sec-Fetch-Site`) and top-level navigations (the OAuth callback) keep their session.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..settings import get_settings

log = logging.getLogger("trainer_space")
ACTS_FOR_ANOTHER_SITE = frozenset({"cross-site", "same-site"})  # Sec-Fetch-Site values of another origin's page
_WARNED: set[str] = set()


class ForeignPagesActAsNobody:
    """ASGI middleware: no session cookie for requests from another site's page, no credentialed CORS for them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") not in ("http", "websocket") or not from_another_site(scope.get("headers") or []):
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"cookie"]}

        async def no_credentials(message: dict) -> None:
            if message.get("type") == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"access-control-allow-credentials"]  # fmt: skip
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, no_credentials)


def public_origins() -> set[str]:
    """The app's configured public origins: `TRAINER_SPACE_PUBLIC_ORIGIN` and, on a Space, `https://` + each
    `SPACE_HOST` name."""
    space = {f"https://{h.strip().lower()}" for h in os.environ.get("SPACE_HOST", "").split(",") if h.strip()}
    return set(get_settings().public_origins) | space


def from_another_site(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the request comes from a page of another origin than this app's (see the module's docstring)."""
    values = {k.lower(): v.decode("latin-1").strip().lower() for k, v in headers}
    fetch_site, origin = values.get(b"sec-fetch-site"), values.get(b"origin")
    if fetch_site in ACTS_FOR_ANOTHER_SITE and values.get(b"sec-fetch-mode") != "navigate":
        return True  # the browser itself says so
    if origin is None:
        return False  # not a browser's cross-origin call (same-origin GETs, navigations and programs send none)
    host = values.get(b"host", "")
    ours = public_origins() | ({f"http://{host}", f"https://{host}"} if host else set())
    if origin in ours:
        return False
    if fetch_site == "same-origin" and origin not in _WARNED:  # the browser says ours: Host was rewritten by a proxy
        _WARNED.add(origin)
        log.warning("requests from %s are treated as another site's: set TRAINER_SPACE_PUBLIC_ORIGIN to it", origin)
    return True


def install() -> None:
    """Add the middleware outside Gradio's session and CORS middlewares (it reads the cookie first and sees the
    CORS headers last), wherever the app runs."""
    import gradio.routes

    original = gradio.routes.attach_oauth
    if getattr(original, "_guards_foreign_pages", False):
        return

    def attach_oauth(app: Any) -> None:
        original(app)
        app.add_middleware(ForeignPagesActAsNobody)  # added last: runs first, before the session is read

    attach_oauth._guards_foreign_pages = True  # type: ignore[attr-defined]
    gradio.routes.attach_oauth = attach_oauth
