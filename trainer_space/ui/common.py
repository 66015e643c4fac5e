"""What every tab shares: the one place where service errors become `gr.Error`, and token handling."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from ..errors import NotSignedIn, TrainerSpaceError

log = logging.getLogger("trainer_space")


def token_of(oauth_token: gr.OAuthToken | None, action: str) -> str:
    """The visitor's token, or NotSignedIn. Never falls back to the Space's own token."""
    token = getattr(oauth_token, "token", None) if oauth_token is not None else None
    if not token:
        raise NotSignedIn(action)
    return token


def optional_token(oauth_token: gr.OAuthToken | None) -> str | None:
    """The visitor's token when signed in (for public reads that work better signed in), else None."""
    token = getattr(oauth_token, "token", None) if oauth_token is not None else None
    return token or None


def ui_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn service errors into `gr.Error` (a message, never a stack trace) at the UI boundary."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TrainerSpaceError as err:
            raise gr.Error(err.message, title=err.title) from None
        except gr.Error:
            raise
        except Exception as err:  # last resort: log the type only (a message may hold user data), show a hint
            log.exception("unexpected error in %s: %s", fn.__name__, type(err).__name__)
            raise gr.Error(
                f"Unexpected error ({type(err).__name__}). Nothing was submitted. Try again; if it persists, "
                "report it on the Space's Community tab.",
                title="Unexpected error",
            ) from None

    return wrapper


def ui_errors_gen(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`ui_errors` for generator handlers (streaming)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            yield from fn(*args, **kwargs)
        except TrainerSpaceError as err:
            raise gr.Error(err.message, title=err.title) from None
        except gr.Error:
            raise
        except Exception as err:
            log.exception("unexpected error in %s: %s", fn.__name__, type(err).__name__)
            raise gr.Error(f"Unexpected error ({type(err).__name__}). Try again.", title="Unexpected error") from None

    return wrapper


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
