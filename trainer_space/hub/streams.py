"""Reads of a job's log and metrics streams, each within one deadline, that end as soon as they are given up.

huggingface_hub reads these server-sent-event streams with blocking HTTP reads that nothing interrupts: a stream
that sends only keep-alives (each one restarts the read timeout) or never ends would hold its thread and its
connection for as long as the Hub keeps it open. So every such read runs in a thread of its own (`StreamRead`),
under a `StreamGuard` that sees every response the read opens (an httpx response hook on huggingface_hub's client,
which only acts in a guarded thread). Giving the read up (its deadline passed, its reader stopped, or its caller
went away: `CALLER_GONE`) shuts the socket of the response being read, which wakes the blocked read at once; the
read then ends with `ReadAbandoned` (huggingface_hub lets it through: it is no HTTP error), any further request it
tries is refused, and its thread ends. Its connection is closed, never handed back to the pool.

`CALLER_GONE` is set by the API layer when a caller goes away (a Gradio disconnect or cancel, an MCP cancel).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar, copy_context
from typing import Any, Generic, TypeVar

import httpx2

from ..errors import TrainerSpaceError

T = TypeVar("T")
READ_THREAD_PREFIX = "hub-read-"
JOIN_S = 2.0  # how long closing a read waits for its thread (it ends at once unless inside a connect or a retry)
POLL_S = 0.2  # how often a waiting reader looks whether its caller went away

# set (to a threading.Event) around the work of a call whose caller may go away; the reads of that call stop when
# it is set. Worker threads started with the call's context see it.
CALLER_GONE: ContextVar[threading.Event | None] = ContextVar("trainer_space_caller_gone", default=None)


class CallerGone(TrainerSpaceError):
    """The caller went away (disconnected, cancelled) while its call was reading: the rest of the work is dropped."""

    title = "Request abandoned"

    def __init__(self) -> None:
        super().__init__("The caller went away before the answer was ready: nothing more is read for it.")


class ReadAbandoned(Exception):
    """Raised inside a read that was given up (never an httpx error, so huggingface_hub neither retries nor
    swallows it)."""


_local = threading.local()  # .guard: the StreamGuard of the read this thread runs


class _Guarded(httpx2.SyncByteStream):
    """A response body read under a guard: a read given up stops at the next chunk (or at once: its socket shut)."""

    def __init__(self, inner: Any, guard: StreamGuard, sock: socket.socket | None) -> None:
        self.inner, self.guard, self.sock = inner, guard, sock

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.inner:
                if self.guard.abandoned.is_set():
                    raise ReadAbandoned()
                yield chunk
        except ReadAbandoned:
            raise
        except Exception:
            if self.guard.abandoned.is_set():  # the socket was shut under it
                raise ReadAbandoned() from None
            raise

    def close(self) -> None:
        with self.guard.lock:  # never handed back to the pool while `abandon` shuts it
            self.guard.open.discard(self)
            self.inner.close()


class StreamGuard:
    """The responses one read has open; `abandon()` shuts their sockets and refuses the read's further requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: set[_Guarded] = set()
        self.abandoned = threading.Event()

    def track(self, response: httpx2.Response) -> None:
        with self.lock:
            if self.abandoned.is_set():
                raise ReadAbandoned()
            network = response.extensions.get("network_stream")
            sock = network.get_extra_info("socket") if network is not None else None
            body = _Guarded(response.stream, self, sock)
            response.stream = body
            self.open.add(body)

    def abandon(self) -> None:
        with self.lock:
            self.abandoned.set()
            for body in self.open:
                if body.sock is not None:
                    with contextlib.suppress(OSError):  # the plain socket's shutdown (TLS or not): wakes a blocked recv
                        socket.socket.shutdown(body.sock, socket.SHUT_RDWR)


def _on_request(request: httpx2.Request) -> None:
    guard = getattr(_local, "guard", None)
    if guard is not None and guard.abandoned.is_set():
        raise ReadAbandoned()


def _on_response(response: httpx2.Response) -> None:
    guard = getattr(_local, "guard", None)
    if guard is not None:
        guard.track(response)


_HOOK_LOCK = threading.Lock()


def _hook_client() -> None:
    """Add the guard's hooks to huggingface_hub's shared client (once per client; they act only in read threads)."""
    from huggingface_hub.utils import get_session

    client = get_session()
    with _HOOK_LOCK:
        hooks = client.event_hooks
        if _on_response not in hooks["response"]:
            client.event_hooks = {"request": [*hooks["request"], _on_request],
                                  "response": [*hooks["response"], _on_response]}  # fmt: skip


def read_abandoned() -> bool:
    """Whether the read running in this thread was given up (a backend polling files checks it between polls)."""
    guard = getattr(_local, "guard", None)
    return guard is not None and guard.abandoned.is_set()


_END = object()


class StreamRead(Generic[T]):
    """The items of `produce()` (a blocking iterator: a log or metrics stream), read in a thread of their own.

    `next(timeout)` gives the next item, or `TIMEOUT` when none came in time (never past the deadline), or `END`
    once the stream has ended (the read's own error is raised). The read is given up when the deadline passes,
    when the caller goes away (`CALLER_GONE`: `CallerGone` is raised), or on `close()`; use it as a context
    manager so that it always is.
    """

    TIMEOUT = object()
    END = _END

    def __init__(self, produce: Callable[[], Iterable[T]], *, name: str, deadline_s: float | None = None) -> None:
        _hook_client()
        self.deadline = time.monotonic() + deadline_s if deadline_s is not None else None
        self.gone = CALLER_GONE.get()
        self.guard = StreamGuard()
        self.items: queue.Queue[Any] = queue.Queue()
        # the reading thread runs in the caller's context: its reads share the request's retry budget (hub/http.py)
        self.thread = threading.Thread(target=copy_context().run, args=(self._run, produce), daemon=True,
                                       name=READ_THREAD_PREFIX + name)  # fmt: skip
        self.thread.start()

    def _run(self, produce: Callable[[], Iterable[T]]) -> None:
        _local.guard = self.guard
        stream: Any = None
        try:
            stream = produce()
            for item in stream:
                if self.guard.abandoned.is_set():
                    return
                self.items.put(item)
            self.items.put(_END)
        except ReadAbandoned:
            pass
        except Exception as err:  # handed to the reader, which raises it
            if not self.guard.abandoned.is_set():
                self.items.put(err)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            _local.guard = None

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def next(self, timeout: float | None = None) -> Any:
        """The next item, `TIMEOUT` or `END` (see the class); `timeout=0` takes what is there without waiting."""
        until = time.monotonic() + timeout if timeout is not None else None
        while True:
            if self.gone is not None and self.gone.is_set():
                self.close()
                raise CallerGone()
            if self.expired:
                return self.TIMEOUT
            try:
                item = self.items.get_nowait()
            except queue.Empty:
                ends = [t - time.monotonic() for t in (until, self.deadline) if t is not None]
                left = min([POLL_S, *ends])
                if left <= 0:
                    return self.TIMEOUT
                try:
                    item = self.items.get(timeout=left)
                except queue.Empty:
                    continue
            if isinstance(item, Exception):
                raise item
            return item

    def close(self) -> None:
        """Give the read up: its connection is shut and its thread ends."""
        self.guard.abandon()
        if self.thread is not threading.current_thread():
            self.thread.join(JOIN_S)

    def __enter__(self) -> StreamRead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_within(
    produce: Callable[[], Iterable[T]], *, name: str, deadline_s: float, max_items: int | None = None
) -> tuple[list[T], bool]:
    """Every item of `produce()` until it ends, `max_items` are read or `deadline_s` seconds pass, whichever comes
    first: (items, whether the stream ended by itself). Raises the read's error, or `CallerGone`."""
    items: list[T] = []
    with StreamRead(produce, name=name, deadline_s=deadline_s) as read:
        while max_items is None or len(items) < max_items:
            item = read.next()
            if item is StreamRead.TIMEOUT:
                return items, False
            if item is StreamRead.END:
                return items, True
            items.append(item)
    return items, False
