"""Sign-in off Spaces: with a Hugging Face token, on a page of the app itself.

On a Space, Gradio's real OAuth routes sign the visitor in. Elsewhere Gradio would mock them with the machine's own
token (and warn that "your machine must be logged in"). Here "Sign in" opens a small page of the app where the
visitor pastes a token; it is checked with Hugging Face (whoami) and kept in this browser's session only (Gradio's
signed session cookie, 8 hours; never written to disk, never logged). A developer may set `TRAINER_SPACE_LOCAL_TOKEN`
to skip the page; a token Hugging Face refuses is said on the page, never ignored. The machine's `HF_TOKEN` or saved
login is never used.
"""

from __future__ import annotations

import html
import os
import secrets
import time
import urllib.parse
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from ..errors import TOKENS_URL, InvalidToken, TrainerSpaceError
from ..hub.session import HubSession
from ..settings import on_a_space

LOCAL_TOKEN_ENV = "TRAINER_SPACE_LOCAL_TOKEN"
SESSION_S = 8 * 3600


def install() -> None:
    """Replace Gradio's local OAuth mock with the token sign-in above. No-op on Spaces."""
    if on_a_space():
        return
    import gradio.oauth

    gradio.oauth._add_mocked_oauth_routes = add_routes
    if not gradio.oauth.OAUTH_CLIENT_SECRET:  # the session cookie now holds a token: sign it with a secret of this run
        gradio.oauth.OAUTH_CLIENT_SECRET = secrets.token_hex(32)


def sign_in(token: str) -> tuple[dict[str, Any] | None, str]:
    """The session's `oauth_info` for a token Hugging Face accepts, else (None, what went wrong)."""
    token = token.strip()
    if not token:
        return None, "Paste a token first."
    if len(token) > 512 or any(c.isspace() for c in token):
        return None, "That is not a Hugging Face token (they look like hf_ followed by letters and digits)."
    try:
        me = HubSession(token).visitor
    except InvalidToken:
        return None, (
            "Hugging Face refused this token (401): it is mistyped, revoked or expired. Create a new one at "
            f"{TOKENS_URL}."
        )
    except TrainerSpaceError as err:  # the Hub unreachable, rate limits: say so, the visitor may try again
        return None, err.message
    now = int(time.time())
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": SESSION_S,
        "id_token": "local",
        "scope": "openid profile",
        "expires_at": now + SESSION_S,
        "userinfo": {
            "sub": me.name, "name": me.fullname or me.name, "preferred_username": me.name, "profile": "",
            "picture": me.avatar_url, "website": "", "aud": "local", "auth_time": now, "nonce": "local", "iat": now,
            "exp": now + SESSION_S, "iss": "local",
        },
    }, ""  # fmt: skip


def safe_target(target: str | None) -> str:
    """A path of this app to go back to (never another site: scheme and host are dropped)."""
    parsed = urllib.parse.urlparse(target or "/")
    out = "/" + (parsed.path or "").lstrip("/\\")
    return out + (f"?{parsed.query}" if parsed.query else "") + (f"#{parsed.fragment}" if parsed.fragment else "")


def form_page(target: str, error: str = "") -> str:
    """The sign-in page: what to paste, where to get it, what happens to it."""
    error_html = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - TRL Trainer</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; color: #1f2937; }}
h1 {{ font-size: 1.4rem; }} label {{ display: block; font-weight: 600; margin: 1.2rem 0 .4rem; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .6rem; font-size: 1rem;
  border: 1px solid #9ca3af; border-radius: 6px; }}
button {{ margin-top: 1rem; padding: .6rem 1.2rem; font-size: 1rem; border: 0; border-radius: 6px;
  background: #f97316; color: white; cursor: pointer; }}
.error {{ background: #fee2e2; color: #991b1b; padding: .7rem; border-radius: 6px; }}
.small {{ color: #4b5563; font-size: .9rem; }}
</style></head>
<body><main>
<h1>Sign in with a Hugging Face token</h1>
<p>This app runs on your own machine, so it signs you in with an access token instead of the Hugging Face sign-in
page. Create one at <a href="{TOKENS_URL}" target="_blank" rel="noopener">huggingface.co/settings/tokens</a>:
a <b>write</b> token, or a fine-grained one with <i>write access to your repos</i> and <i>start and manage Jobs</i>
(to run jobs on Hugging Face and push models).</p>
{error_html}
<form method="post" action="/login/huggingface">
<input type="hidden" name="_target_url" value="{html.escape(target)}">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="off" placeholder="hf_..." required autofocus>
<button type="submit">Sign in</button>
</form>
<p class="small">The token is checked with Hugging Face and kept in this browser's session for 8 hours; it is never
written to disk or to a log. Sign out forgets it. Developers can skip this page by starting the app with
<code>{LOCAL_TOKEN_ENV}</code> set. <a href="{html.escape(target)}">Back to the app</a> (signed out: training on
this machine works without a token).</p>
</main></body></html>"""


def add_routes(app: Any) -> None:
    """`/login/huggingface` (the page, or straight in with `TRAINER_SPACE_LOCAL_TOKEN`), its form, `/logout`."""

    @app.get("/login/huggingface")
    async def login_page(request: Request):
        target = safe_target(request.query_params.get("_target_url"))
        token = os.environ.get(LOCAL_TOKEN_ENV, "").strip()
        if not token:
            return HTMLResponse(form_page(target))
        info, error = await run_in_threadpool(sign_in, token)
        if info is None:
            return HTMLResponse(form_page(target, f"{LOCAL_TOKEN_ENV} was not accepted. {error}"), status_code=401)
        request.session["oauth_info"] = info
        return RedirectResponse(target)

    @app.post("/login/huggingface")
    async def login_form(request: Request):
        if not _same_origin(request):
            return HTMLResponse("Sign-in must come from this app's own page.", status_code=403)
        form = await request.form()
        target = safe_target(str(form.get("_target_url") or "/"))
        info, error = await run_in_threadpool(sign_in, str(form.get("token") or ""))
        if info is None:
            return HTMLResponse(form_page(target, error), status_code=401)
        request.session["oauth_info"] = info
        return RedirectResponse(target, status_code=303)

    @app.get("/login/callback")
    async def callback(request: Request):
        return RedirectResponse(safe_target(request.query_params.get("_target_url")))

    @app.get("/logout")
    async def logout(request: Request):
        request.session.pop("oauth_info", None)
        return RedirectResponse(safe_target(request.query_params.get("_target_url")))


def _same_origin(request: Any) -> bool:
    """A form post from this app's own page (no other site may sign a browser in with its token)."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    if not origin:
        return True  # not a browser (curl, tests): nothing to protect against
    return urllib.parse.urlparse(origin).netloc == request.headers.get("host", "")
