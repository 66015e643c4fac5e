"""Named steps of long actions ("reading the model", "counting tokens", ...), for whoever shows progress.

The service layer calls `step(...)` as it goes; the UI wraps a handler in `reporting(callback)` (Gradio's
`gr.Progress`); with no reporter (the API, tests) a step costs nothing. A context variable keeps visitors apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar

_REPORTER: ContextVar[Callable[[str], None] | None] = ContextVar("trainer_space_step_reporter", default=None)


def step(description: str) -> None:
    """Say what the current action is doing now."""
    reporter = _REPORTER.get()
    if reporter is not None:
        with suppress(Exception):  # showing progress must never break the action
            reporter(description)


@contextmanager
def reporting(callback: Callable[[str], None]) -> Iterator[None]:
    """Send the steps of the code inside to `callback`."""
    token = _REPORTER.set(callback)
    try:
        yield
    finally:
        _REPORTER.reset(token)
