"""Every HTTP call the app makes to the Hub and to the dataset viewer: bounded in time, reads retried.

huggingface_hub 2.4 sends everything through one shared `httpx2.Client`, built by a factory that
`huggingface_hub.set_client_factory` replaces. Ours wraps the real transport so that, whatever the caller passes:

* every request has connect, read, write and pool timeouts (huggingface_hub's own client has none, and several
  of its calls pass `timeout=None`, which would mean "wait forever");
* idempotent reads (GET, HEAD) that fail with a network error, a timeout, 429 or 5xx are retried with exponential
  backoff and jitter, honouring `Retry-After`, within a retry budget (`TRAINER_SPACE_RETRY_BUDGET`): the time spent
  on failed attempts and on waits. When the next wait would pass the budget, `RetryBudgetExhausted` is raised at
  once (huggingface_hub's own retry loop does not catch it, so it cannot add its own minutes of waiting on top);
* the budget is one per request of the app (`request_budget()`, entered by the UI boundary for every handler and
  API call): all the reads of the request, retries included, share it, and once it is spent the request's further
  reads fail at once, with the failure that spent it. A request's reads are so bounded by about the budget plus
  one read timeout, however many it makes (outside a request, each read has a budget of its own);
* a host that cannot be connected to at all (no DNS, nothing listening: offline, or the Hub down) is tried
  `CONNECT_ATTEMPTS` times, not for the whole budget, and is then "unreachable" for `UNREACHABLE_S`: its reads get
  one attempt each meanwhile, so an offline machine hears so in seconds, not once per call after the budget;
* writes (POST, PUT, DELETE) are sent once: whether a write happened is settled by the caller (`jobs/submission.py`
  looks the job up by its key).

`install()` is called when `hub.session` is imported; it is idempotent.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx2

from ..settings import get_settings

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_ERRORS = (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 4.0
CONNECT_ATTEMPTS = 3  # attempts at a host that refuses connections or cannot be resolved
UNREACHABLE_S = 30.0  # then: one attempt per read for this long
LIMITS = httpx2.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)


class RetryBudgetExhausted(Exception):
    """A read still failed when its retry budget ran out: with `hub_status` (429, 5xx), or with a network error
    (`network_error`, its class name). Not an httpx2 error on purpose: huggingface_hub's own retry loop lets it
    through instead of starting over."""

    def __init__(self, url: str, *, status: int | None = None, retry_after: str | None = None,
                 cause: BaseException | None = None, unreachable: bool = False,
                 network_error: str | None = None) -> None:  # fmt: skip
        network_error = network_error or (type(cause).__name__ if cause is not None else None)
        what = f"HTTP {status}" if status is not None else network_error
        how = "unreachable (it failed moments ago too)" if unreachable else "still failing after retries"
        super().__init__(f"{what} from {url.split('?')[0]}, {how}")
        self.hub_status, self.retry_after, self.network_error = status, retry_after, network_error
        self.budget_spent = False  # refused without an attempt: the request's budget was spent by earlier reads


class Budget:
    """The retry budget of one request: seconds left for failed attempts and waits, and the last failure (said
    again by the reads refused once it is spent). Shared by the threads of the request (a lock)."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds
        self.status: int | None = None
        self.retry_after: str | None = None
        self.network_error: str | None = None
        self._lock = threading.Lock()

    def charge(self, seconds: float, *, status: int | None = None, retry_after: str | None = None,
               error: BaseException | None = None) -> None:  # fmt: skip
        """Count `seconds` of failure (a failed attempt, a wait) and remember what failed."""
        with self._lock:
            self.left -= max(0.0, seconds)
            if status is not None or error is not None:
                self.status, self.retry_after = status, retry_after
                self.network_error = type(error).__name__ if error is not None else None

    def allows(self, seconds: float) -> bool:
        return self.left - seconds > 0

    @property
    def spent(self) -> bool:
        """Spent by failures (a budget of 0 still lets each read make its one attempt)."""
        return self.left <= 0 and (self.status is not None or self.network_error is not None)

    def exhausted(self, url: str) -> RetryBudgetExhausted:
        """The error of a read refused because the request's budget is spent: the failure that spent it."""
        err = RetryBudgetExhausted(url, status=self.status, retry_after=self.retry_after,
                                   network_error=self.network_error)  # fmt: skip
        err.budget_spent = True
        return err


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("trainer_space_request_budget", default=None)


@contextmanager
def request_budget() -> Iterator[Budget]:
    """One retry budget for every read made inside the block (and in the threads it starts with `in_request`);
    nested blocks share the outer one."""
    current = _BUDGET.get()
    if current is not None:
        yield current
        return
    budget = Budget(get_settings().retry_budget_s)
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


R = TypeVar("R")


def in_request(fn: Callable[..., R]) -> Callable[..., R]:
    """`fn`, to run in another thread as part of the current request (its reads share the request's budget)."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.run(fn, *args, **kwargs)


def retry_after_s(value: str | None) -> float | None:
    """`Retry-After` in seconds (a number of seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def backoff_s(attempt: int) -> float:
    """Exponential backoff with full jitter: attempt 1 -> up to 0.25 s, 2 -> 0.5 s, ... at most 4 s."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))


_UNREACHABLE: dict[str, float] = {}  # host:port -> monotonic time until which it counts as unreachable


def _host(request: httpx2.Request) -> str:
    return f"{request.url.host}:{request.url.port or ''}"


def forget_unreachable() -> None:
    """Forget which hosts were unreachable (tests; a machine that just came online)."""
    _UNREACHABLE.clear()


class BoundedTransport(httpx2.BaseTransport):
    """Timeouts on every request; retries with a budget for idempotent reads (see the module docstring)."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        settings = get_settings()
        timeouts = dict(request.extensions.get("timeout") or {})
        for key, default in (("connect", settings.connect_timeout_s), ("read", settings.hub_timeout_s),
                             ("write", settings.hub_timeout_s), ("pool", settings.connect_timeout_s)):  # fmt: skip
            if timeouts.get(key) is None:
                timeouts[key] = default
        request.extensions["timeout"] = timeouts
        if request.method.upper() not in IDEMPOTENT:
            return self.inner.handle_request(request)
        budget = _BUDGET.get() or Budget(settings.retry_budget_s)  # the request's, else this read's own
        if budget.spent:
            raise budget.exhausted(str(request.url))
        host = _host(request)
        down = _UNREACHABLE.get(host, 0.0) > time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                response = self.inner.handle_request(request)
            except httpx2.ConnectError as err:  # not even connected: offline, no DNS, nothing listening
                budget.charge(time.monotonic() - started, error=err)
                pause = backoff_s(attempt)
                if down or attempt >= CONNECT_ATTEMPTS or not budget.allows(pause):
                    _UNREACHABLE[host] = time.monotonic() + UNREACHABLE_S
                    raise RetryBudgetExhausted(str(request.url), cause=err, unreachable=down) from err
                _wait(pause, budget)
                continue
            except RETRY_ERRORS as err:
                budget.charge(time.monotonic() - started, error=err)
                pause = backoff_s(attempt)  # another attempt only when at least its connection fits in the budget
                if not budget.allows(pause + timeouts["connect"]):
                    raise RetryBudgetExhausted(str(request.url), cause=err) from err
                _wait(pause, budget)
                continue
            _UNREACHABLE.pop(host, None)
            if response.status_code not in RETRY_STATUSES:
                return response
            header = response.headers.get("Retry-After")
            budget.charge(time.monotonic() - started, status=response.status_code, retry_after=header)
            wait = retry_after_s(header)
            wait = backoff_s(attempt) if wait is None else wait
            response.close()
            if not budget.allows(wait):
                raise RetryBudgetExhausted(str(request.url), status=response.status_code, retry_after=header)
            _wait(wait, budget)

    def close(self) -> None:
        self.inner.close()


def _wait(seconds: float, budget: Budget) -> None:
    time.sleep(seconds)
    budget.charge(seconds)


def client_factory() -> httpx2.Client:
    """huggingface_hub's client (its request hook, redirects) over a `BoundedTransport`.

    The client itself has no default timeout: a call without one reaches the transport with `None`, which fills in
    the current settings (a call with its own, like the 120 s of a followed log stream, keeps it).
    """
    from huggingface_hub.utils._http import hf_request_event_hook

    return httpx2.Client(
        event_hooks={"request": [hf_request_event_hook]},
        follow_redirects=True,
        timeout=httpx2.Timeout(None),
        transport=BoundedTransport(httpx2.HTTPTransport(limits=LIMITS)),
    )


_INSTALLED = threading.Event()


def install() -> None:
    """Make huggingface_hub (and so `datasets` and `transformers`, which go through it) use `client_factory`."""
    if _INSTALLED.is_set():
        return
    from huggingface_hub import set_client_factory

    set_client_factory(client_factory)
    _INSTALLED.set()
