"""What every tab shares: the one place where service errors become `gr.Error`, token handling, redaction of
everything that leaves the app, and the per-visitor limit on work in flight."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..errors import Busy, InvalidInput, TrainerSpaceError, hide_paths, redact, redact_data
from ..hub.cache import visitor_key
from ..hub.http import request_budget
from ..hub.session import HubSession
from ..jobs.backends import LOCAL
from ..jobs.preflight import Check
from ..jobs.spec import TEMPLATES_DIR, load_template
from ..jobs.training import push_choice as training_push_choice
from ..settings import get_settings
from ..steps import reporting

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


def bearer_token(authorization: Any) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    if not isinstance(authorization, str):
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value and " " not in value else None


def caller_token(oauth_token: gr.OAuthToken | None, authorization: str | None) -> gr.OAuthToken | None:
    """The caller's token: the `Authorization: Bearer` header of an API or MCP call when it sends one (a token the
    caller names explicitly wins over a browser session it happens to carry), else the signed-in visitor's (the
    app's session, or gradio_client's `oauth_token=`). Never the Space's own token."""
    token = bearer_token(authorization)
    if token:
        return gr.OAuthToken(token=token, scope="", expires_at=0)
    return oauth_token if _token(oauth_token) is not None else None


def _token_in(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The caller's token among a handler's arguments, as `caller_token` picks it: the `authorization` header of an
    API endpoint when it holds a Bearer token, else a `gr.OAuthToken` (signed-in visitors)."""
    index = _header_index(fn)
    header = kwargs.get("authorization", args[index] if index is not None and index < len(args) else None)
    signed_in = next((v for v in (*args, *kwargs.values()) if isinstance(v, gr.OAuthToken)), None)
    return _token(caller_token(signed_in, header))


@functools.cache
def _header_index(fn: Callable[..., Any]) -> int | None:
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    return names.index("authorization") if "authorization" in names else None


# ---------------------------------------------------------------------------------------------- errors
def shown_message(text: str, token: str | None) -> str:
    """An error message as the visitor reads it: no token; on a Space, no server path either (off Spaces, with
    the Local backend, the paths are the visitor's own files and the message must name them)."""
    text = redact(text, token)
    return text if get_settings().local_enabled else hide_paths(text)


def _as_gr_error(err: Exception, fn: Callable[..., Any], token: str | None) -> gr.Error:
    """The visitor's message (no token, no stack trace); the log gets one line for an expected error, a (redacted)
    traceback only for an unexpected one. Gradio is told not to print its own traceback either way."""
    name = getattr(fn, "__name__", "handler")
    if isinstance(err, gr.Error):
        message = shown_message(str(err.message), token)
        log.warning("%s refused: %s", name, message)
        return gr.Error(message, title=err.title, print_exception=False)
    if isinstance(err, TrainerSpaceError):
        message = shown_message(err.message, token)
        log.warning("%s refused: %s: %s", name, err.title, message)
        return gr.Error(message, title=err.title, print_exception=False)
    # last resort: log the type and a redacted traceback (a message may hold user data), show a hint
    log.error("unexpected error in %s: %s", name, type(err).__name__, exc_info=err)
    return gr.Error(
        f"Unexpected error ({type(err).__name__}). Nothing was submitted. Try again; if it persists, "
        "report it on the Space's Community tab.",
        title="Unexpected error",
        print_exception=False,
    )


def scrub(value: Any, token: str | None) -> Any:
    """A handler's result with every token-shaped string (and the visitor's own token) replaced by `hf_***`.

    JSON-like data is walked; tables (pandas) are mapped cell by cell; anything else (components, state objects)
    is left as it is: its text comes from sources redacted already (log lines, errors).
    """
    if isinstance(value, dict) and not isinstance(value, gr.components.Component):
        return {k: scrub(v, token) for k, v in value.items()}
    if hasattr(value, "map") and hasattr(value, "columns"):  # a pandas DataFrame
        return value.map(lambda cell: redact(cell, token) if isinstance(cell, str) else cell)
    if isinstance(value, (str, list, tuple)):
        return redact_data(value, token)
    return value


# Work is split by kind, each kind with its own Gradio concurrency group (`concurrency_id`) and limit, so that slow
# Hub answers in one kind never hold up another: quick Jobs API reads and cancels ("hub"), dataset inspections
# ("inspect"), plans and submissions with their estimate and tokenizer ("plan"), token counting, CPU-bound
# ("tokens"), and log streams ("logs", in ui/jobs_tab.py). Every Hub call is bounded in time (hub/http.py), so a
# slot is never held longer than a call's budget; a visitor has at most a few calls in flight (ui/common.py).
CONCURRENCY = {"hub": 32, "inspect": 16, "plan": 12, "tokens": 3, "logs": 20}
DEFAULT_CONCURRENCY = 8  # the cheap UI events (mapping edits, carrying values between tabs)
# the part of each pool that all signed-out visitors together may hold at once (more are refused at once): a flood of
# anonymous calls (inspections of a dataset whose viewer hangs, estimates of a model whose repo hangs) cannot take
# the slots signed-in visitors need; the "hub" and "logs" kinds need a token anyway (refused at once without)
ANONYMOUS_SHARE = {"hub": 8, "inspect": 4, "plan": 3, "tokens": 1, "logs": 0}
KIND_NAMES = {"hub": "Hub requests", "inspect": "dataset inspections", "plan": "plans and estimates",
              "tokens": "token counts", "logs": "log streams"}  # fmt: skip


def concurrency(kind: str) -> dict:
    """The event options of one kind of work: `fn.click(..., **concurrency("hub"))`."""
    return {"concurrency_id": kind, "concurrency_limit": CONCURRENCY[kind]}


# ---------------------------------------------------------------------------------------------- per visitor
class VisitorGate:
    """At most `per_visitor` calls in flight for one visitor (anonymous visitors share `anonymous`); more are
    refused at once, so that one visitor's flood (or slow Hub answers for one token) cannot take every worker."""

    def __init__(self, what: str, per_visitor: int, anonymous: int) -> None:
        self.what, self.per_visitor, self.anonymous = what, per_visitor, anonymous
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, token: str | None) -> str:
        key = visitor_key(token)
        limit = self.per_visitor if token else self.anonymous
        with self._lock:
            if self._in_flight.get(key, 0) >= limit:
                who = "You already have" if token else "Signed-out visitors already have"
                share = "" if token else " (their share of this Space; sign in to use your own)"
                raise Busy(f"{who} {limit} {self.what} in progress{share}.")
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return key

    def leave(self, key: str) -> None:
        with self._lock:
            left = self._in_flight.get(key, 1) - 1
            if left:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._in_flight.values())


REQUESTS = VisitorGate("requests", per_visitor=6, anonymous=24)
STREAMS = VisitorGate("log streams", per_visitor=6, anonymous=0)  # a job open in two tabs: logs and usage each
# per kind of work, signed-out visitors' share of its pool (signed-in visitors are bounded by REQUESTS alone)
SHARES = {kind: VisitorGate(KIND_NAMES[kind], per_visitor=CONCURRENCY[kind], anonymous=n)
          for kind, n in ANONYMOUS_SHARE.items()}  # fmt: skip


def _acts_for_a_visitor(fn: Callable[..., Any]) -> bool:
    """Whether a handler takes the visitor's token (it may call the Hub): those count against the visitor's limit;
    the others (mapping edits, carrying values between tabs) are quick and local."""
    try:
        parameters = inspect.signature(fn).parameters
        return "oauth_token" in parameters or "authorization" in parameters
    except (TypeError, ValueError):
        return False


def ui_errors(fn: Callable[..., Any], *, kind: str | None = None) -> Callable[..., Any]:
    """The UI boundary of a handler: a per-visitor limit (handlers that act for a visitor), signed-out visitors'
    share of the pool of its `kind` of work (`concurrency(kind)`), one retry budget for all its Hub reads
    (`hub/http.py`), results scrubbed of tokens, service errors turned into `gr.Error` (a message, never a stack
    trace)."""
    gated = _acts_for_a_visitor(fn)
    share = SHARES[kind] if kind is not None and gated else None

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _token_in(fn, args, kwargs)
        try:
            key = REQUESTS.enter(token) if gated else None
            shared = None
            try:
                shared = share.enter(None) if share is not None and token is None else None
                with request_budget():  # one retry budget for all the Hub reads of this request
                    return scrub(fn(*args, **kwargs), token)
            finally:
                if shared is not None:
                    share.leave(shared)
                if key is not None:
                    REQUESTS.leave(key)
        except Exception as err:
            raise _as_gr_error(err, fn, token) from None

    return wrapper


def ui_errors_gen(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`ui_errors` for generator handlers (streaming), with their own per-visitor limit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _token_in(fn, args, kwargs)
        try:
            key = STREAMS.enter(token) if token else None
            try:
                for update in fn(*args, **kwargs):
                    yield scrub(update, token)
            finally:
                if key is not None:
                    STREAMS.leave(key)
        except Exception as err:
            raise _as_gr_error(err, fn, token) from None

    return wrapper


# ---------------------------------------------------------------------------------------------- the app's log
_FACTORY_INSTALLED = threading.Event()


def install_log_redaction() -> None:
    """Every log record of the process (ours, Gradio's, huggingface_hub's) is redacted when it is made: its message,
    and the text of its traceback."""
    if _FACTORY_INSTALLED.is_set():
        return
    previous = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: keep it as it came
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(formatter.formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _FACTORY_INSTALLED.set()


CHECK_ICONS = {"ok": "✓", "warn": "⚠", "error": "✗"}


def checks_markdown(checks: Iterable[Check]) -> list[str]:
    """Pre-flight checks as Markdown list items."""
    return [f"- {CHECK_ICONS[c.status.value]} **{c.name}**: {c.message}" for c in checks]


# ---------------------------------------------------------------------------------------------- paid submissions
@dataclass
class Confirmation:
    """The second step of a paid Submit: the worst case shown, then "Yes, start it" or "Cancel"."""

    row: gr.Row
    text: gr.Markdown
    yes: gr.Button
    no: gr.Button
    pending: gr.State  # the exact config the visitor is confirming (resolved, with the cap they saw)

    def ask(self, what: str, plan: Any) -> dict[Any, Any]:
        """Step one's updates for a plan (`.failed`, `.config`, `.cost`, `.checks`): the question with the worst case,
        or nothing to confirm when a check failed. What is confirmed is what is submitted: the resolved config, with
        the cap the visitor saw (and their confirmation of any unfinished jobs)."""
        if plan.failed:
            return self.done()
        pending = plan.config.to_json() | {"max_cost_usd": plan.cost.cap_usd, "allow_many_running": True}
        return {
            self.row: gr.Row(visible=True),
            self.text: confirm_markdown(what, plan.cost.to_json(), plan.checks),
            self.pending: pending,
        }

    def done(self) -> dict[Any, Any]:
        return {self.row: gr.Row(visible=False), self.pending: None}

    @staticmethod
    def confirmed(pending: dict | None, button: str) -> dict:
        if not pending:
            raise InvalidInput(f"Nothing to confirm: press {button} first.")
        return pending


def confirmation_row(what: str) -> Confirmation:
    with gr.Row(visible=False, equal_height=True, elem_id=f"confirm-{what}") as row:
        text = gr.Markdown()
        yes = gr.Button("Yes, start it", variant="primary", scale=0, min_width=160)
        no = gr.Button("Cancel", scale=0, min_width=120)
    pending = gr.State(None)
    no.click(lambda: (gr.Row(visible=False), None), None, [row, pending], api_visibility="private")
    return Confirmation(row, text, yes, no, pending)


def confirm_markdown(what: str, cost: dict[str, Any], checks: Iterable[Check]) -> str:
    """ "Start this job? It can cost at most $X ..." with the running-jobs warning when there is one."""
    estimate = cost.get("estimate_usd")
    lines = [
        f"**Start this {what}?** It can cost at most **${cost['worst_case_usd']:,.2f}**: timeout "
        f"{cost['timeout_s'] // 60} min x ${cost['usd_per_hour']:,.2f}/h on {cost['flavor']}"
        + (f" (estimate ${estimate:,.2f})" if estimate is not None else "")
        + ". Billed per minute to the job's namespace, only while it runs."
    ]
    lines += [f"⚠ {c.message}" for c in checks if c.name == "running jobs" and c.status.value == "warn"]
    lines += [c.message for c in checks if c.name == "total cost"]
    return "\n\n".join(lines)


# ---------------------------------------------------------------------------------------------- progress
def steps_to(progress: gr.Progress, expected: int = 8) -> Any:
    """Show the service layer's named steps ("reading the model", ...) in Gradio's status tracker, as a bar over
    about `expected` steps (Gradio shows a step's description only beside a bar)."""
    done = [0]

    def show(description: str) -> None:
        done[0] += 1
        total = max(expected, done[0] + 1)
        progress((done[0], total), desc=description[:1].upper() + description[1:] + "…", unit="steps")

    return reporting(show)


def while_busy(trigger: Callable[..., Any], buttons: list[gr.Button], fn: Callable[..., Any], inputs: Any,
               outputs: Any, *, trigger_mode: str | None = None, **kwargs: Any) -> Any:  # fmt: skip
    """`trigger(fn, inputs, outputs)` with `buttons` disabled until it ends (with or without an error), so a visitor
    sees the action is under way and cannot start it twice. Returns the event of `fn`, for chaining.

    The buttons come back on success and on failure alike: Gradio's page runs a `.then()` step only after a success
    (an error dispatches `.failure()` steps alone), so both are wired."""

    def disabled() -> dict[Any, Any]:  # by component: one button is one output, never a list shown as its label
        return {b: gr.update(interactive=False) for b in buttons}

    def enabled() -> dict[Any, Any]:
        return {b: gr.update(interactive=True) for b in buttons}

    quick = {"queue": False, "show_progress": "hidden", "api_visibility": "private"}
    start = trigger(disabled, None, buttons, **quick, **({"trigger_mode": trigger_mode} if trigger_mode else {}))
    event = start.then(fn, inputs, outputs, api_visibility="private", **kwargs)
    event.success(enabled, None, buttons, **quick)
    event.failure(enabled, None, buttons, **quick)
    return event


def template_download(name: str) -> None:
    """The exact job template, to download beside the reproduce commands, with the sha256 the job checks."""
    template = load_template(name)
    gr.Markdown(
        f"The job runs the app's template `{name}` unchanged (sha256 `{template.sha256}`, checked by the job). "
        "Download it next to where you run these commands:"
    )
    gr.DownloadButton(f"Download {name}", value=str(TEMPLATES_DIR / name), size="sm", elem_classes="template-file")


# ---------------------------------------------------------------------------------------------- pushing to the Hub
def push_choice(backend: str | None, oauth_token: gr.OAuthToken | None = None) -> dict[str, Any]:
    """The "Push to the Hub" checkbox for where the job runs and who is signed in (`training.push_choice`): always on
    (and fixed) for Hugging Face Jobs, whose disk is gone when they end; off, fixed and explained on this machine
    when nobody is signed in; the visitor's choice otherwise."""
    backend = backend or get_settings().default_backend
    choice = training_push_choice(reader_for(oauth_token), backend)
    if backend != LOCAL:
        return gr.update(value=True, interactive=False, info=choice.note)
    if not choice.available:
        return gr.update(value=False, interactive=False, info=choice.note)
    return gr.update(interactive=True, info=choice.note)


def wire_push_choice(backend: gr.Radio, push: gr.Checkbox) -> None:
    """Keep a tab's push checkbox true to its backend and the visitor's sign-in (on load and on every change)."""
    options = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
    gr.on([backend.change, gr.context.Context.root_block.load], push_choice, [backend], [push], **options)
