"""What every tab shares: the one place where service errors become `gr.Error`, and token handling."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

import gradio as gr

from ..errors import TrainerSpaceError
from ..hub.session import HubSession
from ..jobs.preflight import Check

log = logging.getLogger("trainer_space")


def session_for(oauth_token: gr.OAuthToken | None, action: str) -> HubSession:
    """A Hub session with the visitor's token, or NotSignedIn ("Sign in with Hugging Face to <action>").

    Never falls back to the Space's own token.
    """
    return HubSession.signed_in(_token(oauth_token), action)


def reader_for(oauth_token: gr.OAuthToken | None) -> HubSession:
    """A Hub session for reads: the visitor's token when signed in (gated and private data), anonymous otherwise."""
    return HubSession(_token(oauth_token))


def is_signed_in(oauth_token: gr.OAuthToken | None) -> bool:
    return _token(oauth_token) is not None


def _token(oauth_token: gr.OAuthToken | None) -> str | None:
    token = getattr(oauth_token, "token", None) if oauth_token is not None else None
    return token if isinstance(token, str) and token else None


def _as_gr_error(err: Exception, fn: Callable[..., Any]) -> gr.Error:
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, TrainerSpaceError):
        return gr.Error(err.message, title=err.title)
    # last resort: log the type only (a message may hold user data), show a hint
    log.exception("unexpected error in %s: %s", fn.__name__, type(err).__name__)
    return gr.Error(
        f"Unexpected error ({type(err).__name__}). Nothing was submitted. Try again; if it persists, "
        "report it on the Space's Community tab.",
        title="Unexpected error",
    )


def ui_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn service errors into `gr.Error` (a message, never a stack trace) at the UI boundary."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _as_gr_error(err, fn) from None

    return wrapper


def ui_errors_gen(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`ui_errors` for generator handlers (streaming)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            yield from fn(*args, **kwargs)
        except Exception as err:
            raise _as_gr_error(err, fn) from None

    return wrapper


CHECK_ICONS = {"ok": "✓", "warn": "⚠", "error": "✗"}


def checks_markdown(checks: Iterable[Check]) -> list[str]:
    """Pre-flight checks as Markdown list items."""
    return [f"- {CHECK_ICONS[c.status.value]} **{c.name}**: {c.message}" for c in checks]
