"""A per-request session on the Hub, built from the visitor's own token.

Every call goes through huggingface_hub's `HfApi` with an explicit `token=` and `namespace=`
(`list_jobs()` without a namespace would resolve it with the module-level whoami, i.e. the
Space's own token). The token lives only as long as the request's `HubSession`; `whoami` answers
are cached per token (keyed by a hash of it, never the token itself) for a few minutes because
whoami is rate limited.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import HfApi, JobInfo

from .errors import InvalidInput, JobNotFound, MissingPermission, NotSignedIn, TrainerSpaceError, from_hub_error
from .hardware import FLAVOR_NAMES, Flavor, get_flavors
from .settings import get_settings
from .validation import validate_job_id, validate_namespace, validate_timeout

TERMINAL_STAGES = frozenset({"COMPLETED", "CANCELED", "ERROR", "DELETED"})
TOKEN_SECRET = "HF_TOKEN"


@dataclass(frozen=True)
class Visitor:
    """Who the token belongs to, as whoami says."""

    name: str
    fullname: str
    orgs: tuple[str, ...]
    writable_orgs: tuple[str, ...]
    can_pay: bool
    token_role: str | None
    can_run_jobs: bool | None = None  # None: the token's permissions are not visible (OAuth, classic tokens)

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.name, *self.orgs)

    @property
    def writable_namespaces(self) -> tuple[str, ...]:
        return (self.name, *self.writable_orgs)

    @classmethod
    def from_whoami(cls, data: dict[str, Any]) -> Visitor:
        orgs = data.get("orgs") or []
        writable = tuple(o["name"] for o in orgs if o.get("roleInOrg") in ("admin", "write", "contributor"))
        token_info = (data.get("auth") or {}).get("accessToken") or {}
        access = token_info.get("role")
        can_run_jobs = None
        if access == "fineGrained" and isinstance(token_info.get("fineGrained"), dict):
            grained = token_info["fineGrained"]
            permissions = set(grained.get("global") or [])
            for scope in grained.get("scoped") or []:
                permissions.update(scope.get("permissions") or [])
            can_run_jobs = "job.write" in permissions
        elif access == "read":
            can_run_jobs = False
        return cls(
            name=data["name"],
            fullname=data.get("fullname") or data["name"],
            orgs=tuple(o["name"] for o in orgs),
            writable_orgs=writable,
            can_pay=bool(data.get("canPay", True)),
            token_role=access,
            can_run_jobs=can_run_jobs,
        )


class _WhoamiCache:
    """A small TTL cache keyed by sha256(token): never one global identity, never the token itself."""

    def __init__(self, ttl_s: float = 300.0, max_items: int = 512) -> None:
        self.ttl_s, self.max_items = ttl_s, max_items
        self._items: OrderedDict[str, tuple[float, Visitor]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> Visitor | None:
        k = self.key(token)
        with self._lock:
            item = self._items.get(k)
            if item is None or time.monotonic() - item[0] > self.ttl_s:
                self._items.pop(k, None)
                return None
            self._items.move_to_end(k)
            return item[1]

    def put(self, token: str, visitor: Visitor) -> None:
        with self._lock:
            self._items[self.key(token)] = (time.monotonic(), visitor)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


WHOAMI_CACHE = _WhoamiCache()


@dataclass
class JobRequest:
    """What to run: a Docker image and command, on a flavor, with a timeout.

    The visitor's token is never part of it: `HubSession.submit_job` adds it as the `HF_TOKEN`
    secret, and refuses a request whose env, labels or command contain it.
    """

    image: str
    command: list[str]
    flavor: str = "cpu-basic"
    timeout_s: int = 1800
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None  # default: the visitor's own namespace
    with_token_secret: bool = True

    def validate(self) -> None:
        if self.flavor not in FLAVOR_NAMES:
            raise InvalidInput(f"Unknown hardware flavor '{self.flavor}'. Pick one from the list.")
        if not isinstance(self.timeout_s, int):
            raise InvalidInput("The timeout must be a whole number of seconds.")
        validate_timeout(self.timeout_s)
        if not self.image or not self.command or not all(isinstance(c, str) for c in self.command):
            raise InvalidInput("A job needs an image and a command (a list of strings).")
        for key, value in {**self.env, **self.labels}.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidInput("Job environment and labels must be strings.")
        for key in self.labels:
            if not key or len(key) > 63 or not all(c.isalnum() or c in "-_." for c in key):
                raise InvalidInput(f"Invalid label name '{key}'.")
        if self.namespace is not None:
            validate_namespace(self.namespace)


class HubSession:
    """The Hub, as one visitor sees it, for the duration of one request.

    Args:
        token: the visitor's OAuth token (or a user token given to the API). Required.
        action: what the visitor was doing, for the "Sign in to ..." message.
    """

    def __init__(self, token: str | None, *, action: str = "continue") -> None:
        if not token:
            raise NotSignedIn(action)
        self._token = token
        self.api = HfApi(endpoint=get_settings().endpoint)

    def __repr__(self) -> str:  # never print the token
        return "HubSession(token=***)"

    # ------------------------------------------------------------------ identity
    @property
    def visitor(self) -> Visitor:
        cached = WHOAMI_CACHE.get(self._token)
        if cached is not None:
            return cached
        try:
            visitor = Visitor.from_whoami(self.api.whoami(token=self._token))
        except Exception as err:
            raise from_hub_error(err, action="read your account") from None
        WHOAMI_CACHE.put(self._token, visitor)
        return visitor

    @property
    def username(self) -> str:
        return self.visitor.name

    def _namespace(self, namespace: str | None) -> str:
        if namespace is None:
            return self.username
        validate_namespace(namespace)
        if namespace not in self.visitor.namespaces:
            raise InvalidInput(f"You are not a member of '{namespace}'. Use your own namespace or one of your orgs.")
        return namespace

    # ------------------------------------------------------------------ jobs
    def submit_job(self, request: JobRequest) -> JobInfo:
        """Create a job in the visitor's namespace. The token goes only into the `HF_TOKEN` secret."""
        request.validate()
        namespace = self._namespace(request.namespace)
        exposed = [*request.command, *request.env.values(), *request.labels.values(), *request.labels]
        if any(self._token in part for part in exposed):
            raise InvalidInput(
                "Refusing to submit: the access token must never appear in a job's command, env or labels."
            )
        try:
            return self.api.run_job(
                image=request.image,
                command=request.command,
                env=request.env or None,
                secrets={TOKEN_SECRET: self._token} if request.with_token_secret else None,
                flavor=request.flavor,
                timeout=request.timeout_s,
                labels=request.labels or None,
                namespace=namespace,
                token=self._token,
            )
        except Exception as err:
            raise from_hub_error(err, action="run jobs") from None

    def list_jobs(
        self,
        *,
        namespaces: list[str] | None = None,
        stages: list[str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[JobInfo]:
        """Jobs in the visitor's namespace (and the orgs named), newest first."""
        names = [self._namespace(n) for n in (namespaces or [None])]
        jobs: list[JobInfo] = []
        for ns in dict.fromkeys(names):
            try:
                jobs.extend(
                    self.api.list_jobs(status=stages or None, labels=labels or None, namespace=ns, token=self._token)
                )
            except Exception as err:
                raise from_hub_error(err, action=f"list the jobs of '{ns}'") from None
        jobs.sort(key=lambda j: j.created_at.timestamp() if j.created_at else 0.0, reverse=True)
        return jobs

    def inspect_job(self, job_id: str, *, namespace: str | None = None) -> JobInfo:
        validate_job_id(job_id)
        ns = self._namespace(namespace)
        try:
            return self.api.inspect_job(job_id=job_id, namespace=ns, token=self._token)
        except Exception as err:
            raise from_hub_error(err, job_id=job_id, action="read this job") from None

    def job_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = 200) -> list[str]:
        """The job's log lines so far (the last `tail` ones)."""
        validate_job_id(job_id)
        ns = self._namespace(namespace)
        try:
            return list(self.api.fetch_job_logs(job_id=job_id, namespace=ns, tail=tail, token=self._token))
        except Exception as err:
            raise from_hub_error(err, job_id=job_id, action="read this job's logs") from None

    def follow_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = None) -> Iterator[str]:
        """Log lines as they come (starting with the last `tail` ones), until the job ends.

        huggingface_hub reconnects as needed and skips the lines it already gave.
        """
        validate_job_id(job_id)
        ns = self._namespace(namespace)
        try:
            yield from self.api.fetch_job_logs(job_id=job_id, namespace=ns, follow=True, tail=tail, token=self._token)
        except TrainerSpaceError:
            raise
        except Exception as err:
            raise from_hub_error(err, job_id=job_id, action="read this job's logs") from None

    def cancel_job(self, job_id: str, *, namespace: str | None = None) -> JobInfo:
        validate_job_id(job_id)
        ns = self._namespace(namespace)
        try:
            self.api.cancel_job(job_id=job_id, namespace=ns, token=self._token)
            return self.api.inspect_job(job_id=job_id, namespace=ns, token=self._token)
        except Exception as err:
            raise from_hub_error(err, job_id=job_id, action="cancel this job") from None

    def find_job(self, job_id: str) -> JobInfo:
        """Inspect a job by id in any of the visitor's namespaces."""
        validate_job_id(job_id)
        for ns in self.visitor.namespaces:
            try:
                return self.api.inspect_job(job_id=job_id, namespace=ns, token=self._token)
            except Exception as err:
                mapped = from_hub_error(err, job_id=job_id)
                if not isinstance(mapped, (JobNotFound, InvalidInput, MissingPermission)):
                    raise mapped from None
        raise JobNotFound(job_id)

    # ------------------------------------------------------------------ hardware
    def hardware(self) -> tuple[tuple[Flavor, ...], bool]:
        """Flavors with prices (from the Hub when it answers, else the built-in table)."""
        return get_flavors(self._token)
