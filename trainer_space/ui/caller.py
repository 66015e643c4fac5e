"""When a caller goes away, its reads stop: a Gradio cancel or disconnect, an MCP cancel.

Gradio runs a plain function in a worker thread that nothing can stop, and a cancel waits for it. An endpoint
that reads a job's logs or metrics is served instead by `abandonable(fn)`: an async function that runs `fn` in a
worker thread with `CALLER_GONE` set in its context (`hub/streams.py`), and sets it when its task is cancelled
(Gradio's `/cancel`, gradio_client's `job.cancel()`, an MCP cancel) or when Gradio marks its event dead because
the caller's connection closed. The reads under way then give their connection and thread back at once, and the
rest of the work is dropped (`CallerGone`).

Gradio's MCP server (stateless streamable HTTP) cancels a tool call when its client goes away (the call's HTTP
stream closes), but then waits for the queued job's answer in a thread a cancel cannot reach, leaving the job
running: `cancel_mcp_calls_with_their_job()` makes that cancel the Gradio job behind the tool call. (A
`notifications/cancelled` alone reaches nothing: a stateless server sees it in a session of its own.)
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import weakref
from collections.abc import Callable
from typing import Any

import anyio
import gradio as gr

from ..hub.streams import CALLER_GONE

WATCH_S = 0.25  # how often a call looks whether its caller is still there
WORKERS = 40  # threads for these calls, apart from anyio's shared pool (which MCP calls waiting for answers hold)
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def _workers() -> anyio.CapacityLimiter:
    """This event loop's pool (each app served in this process has its own loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _LIMITERS:
        _LIMITERS[loop] = anyio.CapacityLimiter(WORKERS)
    return _LIMITERS[loop]


def caller_left(request: gr.Request | None) -> bool:
    """Whether Gradio has marked the event of `request` dead (its caller's connection closed). Gradio has no public
    word for it: its queue's events are read, and anything unexpected there counts as "still there"."""
    inner = getattr(request, "request", None) if request is not None else None
    if inner is None:
        return False
    try:
        queue = inner.app.get_blocks()._queue
        for job in queue.active_jobs:
            for event in job or ():
                if event.request is inner:
                    return not event.alive
    except Exception:  # another Gradio: the deadline still bounds every read
        return False
    return False


def abandonable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (a sync endpoint) as an async endpoint whose reads stop when its caller goes away (see the module)."""
    signature = inspect.signature(fn)
    # Gradio hands a `gr.Request` to a positional parameter annotated with it: the last one here
    request_param = inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request
    )
    served = signature.replace(parameters=[*signature.parameters.values(), request_param])

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = served.bind(*args, **kwargs)
        request = bound.arguments.pop("request", None)
        gone = threading.Event()
        context = contextvars.copy_context()
        context.run(CALLER_GONE.set, gone)
        call = functools.partial(context.run, fn, *bound.args, **bound.kwargs)
        work = asyncio.ensure_future(anyio.to_thread.run_sync(call, abandon_on_cancel=True, limiter=_workers()))
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=WATCH_S)
                if not work.done() and caller_left(request):
                    gone.set()
            return work.result()
        except asyncio.CancelledError:
            gone.set()  # the worker's reads stop now; its answer (or its CallerGone) goes nowhere
            work.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise

    wrapper.__signature__ = served  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**getattr(fn, "__annotations__", {}), "request": gr.Request}
    return wrapper


def cancel_mcp_calls_with_their_job() -> None:
    """An MCP cancel of a queued tool call cancels the Gradio job that serves it (Gradio's MCP server waits for the
    job's result in a thread that a cancel cannot reach, and leaves the job running)."""
    from anyio.to_thread import run_sync
    from gradio.mcp import GradioMCPServer

    waiting = getattr(GradioMCPServer, "_execute_tool_without_progress", None)
    with_progress = getattr(GradioMCPServer, "_execute_tool_with_progress", None)
    if waiting is None or with_progress is None or getattr(waiting, "_cancels_job", False):
        return  # another Gradio (its calls still end by their deadlines), or done already

    def cancel(job: Any) -> None:
        if not job.done():
            threading.Thread(target=job.cancel, daemon=True, name="mcp-cancel").start()

    async def without_progress(self: Any, job: Any) -> list[Any]:
        try:
            return [await run_sync(job.result, abandon_on_cancel=True)]
        except asyncio.CancelledError:
            cancel(job)
            raise

    async def progress(self: Any, job: Any, progress_token: Any) -> Any:
        try:
            return await with_progress(self, job, progress_token)
        except asyncio.CancelledError:
            cancel(job)
            raise

    without_progress._cancels_job = True  # type: ignore[attr-defined]
    GradioMCPServer._execute_tool_without_progress = without_progress  # type: ignore[method-assign]
    GradioMCPServer._execute_tool_with_progress = progress  # type: ignore[method-assign]
