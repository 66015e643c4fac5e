"""The one door to the Hub: a per-request session built from the visitor's own token.

Every Hub call of the app goes through `HubSession`: one `HfApi` per session, the token passed explicitly with
every call (`token=False` when signed out, so huggingface_hub never falls back to a token saved on the
machine), explicit `namespace=` for jobs (`list_jobs()` without one would resolve it with the Space's own
token). The token is never read outside this class. Errors are translated in one place (`_hub_call`) into
`TrainerSpaceError`s a person can act on. `whoami` answers are cached per token (keyed by a hash of it, never
the token itself) for a few minutes because whoami is rate limited.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, JobInfo

from ..errors import (
    HubUnavailable,
    InvalidInput,
    JobNotFound,
    MissingPermission,
    NamespaceRole,
    NotSignedIn,
    TrainerSpaceError,
    from_hub_error,
)
from ..settings import get_settings
from ..validation import validate_job_id, validate_namespace, validate_timeout
from . import http
from .cache import TTLCache, visitor_key
from .hardware import FLAVOR_NAMES, Flavor, get_flavors
from .streams import read_within
from .viewer import Viewer

http.install()  # every Hub and viewer call bounded in time, reads retried within a budget

TERMINAL_STAGES = frozenset({"COMPLETED", "CANCELED", "ERROR", "DELETED"})
WRITE_ROLES = frozenset({"admin", "write", "contributor"})  # org roles that may create repos and run jobs
TOKEN_SECRET = "HF_TOKEN"
LOG_READ_ATTEMPTS = 3
LOG_READ_S = 10.0  # one read of a job's logs (its tail) ends within this, whatever the Hub sends
METRICS_MAX_SAMPLES = 30  # one read of a job's metrics: at most this many samples ...
METRICS_MAX_SECONDS = 30.0  # ... or this long (the Hub sends one sample per second), so a viewer never holds a worker
WHOAMI_CACHE: TTLCache[Visitor] = TTLCache(ttl_s=300.0, max_items=512)


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
    avatar_url: str = ""
    roles: tuple[tuple[str, str], ...] = ()  # (org, roleInOrg) as whoami says

    def role_in(self, namespace: str) -> str | None:
        """ "owner" for the visitor's own namespace, the org role (admin, write, contributor, read), else None."""
        if namespace == self.name:
            return "owner"
        return dict(self.roles).get(namespace)

    def can_write_to(self, namespace: str) -> bool:
        return namespace in self.writable_namespaces

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.name, *self.orgs)

    @property
    def writable_namespaces(self) -> tuple[str, ...]:
        return (self.name, *self.writable_orgs)

    @classmethod
    def from_whoami(cls, data: dict[str, Any]) -> Visitor:
        orgs = data.get("orgs") or []
        writable = tuple(o["name"] for o in orgs if o.get("roleInOrg") in WRITE_ROLES)
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
            avatar_url=str(data.get("avatarUrl") or ""),
            roles=tuple((o["name"], str(o.get("roleInOrg") or "")) for o in orgs),
        )


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
    name: str | None = None  # a readable job name (the Hub names unnamed jobs after their image)

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
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,63}", self.name):
            raise InvalidInput("A job name is 1 to 63 letters, digits, '-' or '_'.")


class HubSession:
    """The Hub, as one visitor sees it, for the duration of one request.

    Args:
        token: the visitor's OAuth token (or a user token given to the API); None for a signed-out visitor,
            who can still read public repos and the dataset viewer.

    Example:
        >>> session = HubSession(oauth_token.token).require("list your jobs")
        >>> session.list_jobs()
    """

    def __init__(self, token: str | None = None) -> None:
        self._token = token or None
        self.api = HfApi(endpoint=get_settings().endpoint)

    def __repr__(self) -> str:  # never print the token
        return f"HubSession({'signed in' if self._token else 'signed out'})"

    @classmethod
    def signed_in(cls, token: str | None, action: str = "continue") -> HubSession:
        """A session that must act for someone: NotSignedIn ("Sign in with Hugging Face to <action>") without one."""
        return cls(token).require(action)

    def require(self, action: str = "continue") -> HubSession:
        """This session, or NotSignedIn when nobody is signed in."""
        if not self._token:
            raise NotSignedIn(action)
        return self

    @property
    def is_signed_in(self) -> bool:
        return self._token is not None

    @property
    def _auth(self) -> str | bool:
        """huggingface_hub's `token=`: the visitor's token, or False (anonymous, never the machine's token)."""
        return self._token or False

    @property
    def cache_scope(self) -> str:
        """A key for caches of what this visitor may read (a hash of the token; "anon" when signed out)."""
        return visitor_key(self._token)

    @contextmanager
    def _hub_call(self, *, repo_id: str | None = None, repo_type: str = "model", job_id: str | None = None,
                  action: str = "") -> Iterator[None]:  # fmt: skip
        """Translate whatever huggingface_hub raises into a TrainerSpaceError (the message a person reads)."""
        try:
            yield
        except (TrainerSpaceError, FileNotFoundError):
            raise
        except Exception as err:
            raise from_hub_error(err, repo_id=repo_id, repo_type=repo_type, job_id=job_id, action=action) from None

    # ------------------------------------------------------------------ identity
    @property
    def visitor(self) -> Visitor:
        """Who is signed in (whoami, cached per token). NotSignedIn when nobody is."""
        self.require()
        cached = WHOAMI_CACHE.get(self.cache_scope)
        if cached is not None:
            return cached
        with self._hub_call(action="read your account"):
            visitor = Visitor.from_whoami(self.api.whoami(token=self._auth))
        return WHOAMI_CACHE.put(self.cache_scope, visitor)

    @property
    def username(self) -> str:
        return self.visitor.name

    def _namespace(self, namespace: str | None, *, write_action: str | None = None) -> str:
        """The namespace to act in (the visitor's own by default): a member's, and for `write_action` (running or
        cancelling jobs) one where the visitor's role allows writing (NamespaceRole for the read role)."""
        if namespace is None:
            return self.username
        return self.check_namespace(namespace, write_action=write_action)

    def check_namespace(self, namespace: str, *, write_action: str | None = None) -> str:
        """InvalidInput when the visitor is not in `namespace`; NamespaceRole when `write_action` needs more than
        their role there (checked from whoami's roleInOrg, in dry runs as in real ones)."""
        validate_namespace(namespace)
        visitor = self.visitor
        if namespace not in visitor.namespaces:
            raise InvalidInput(f"You are not a member of '{namespace}'. Use your own namespace or one of your orgs.")
        if write_action and not visitor.can_write_to(namespace):
            raise NamespaceRole(namespace, visitor.role_in(namespace), write_action)
        return namespace

    # ------------------------------------------------------------------ jobs
    def job_secrets(self) -> dict[str, str]:
        """The visitor's token as a job's `HF_TOKEN` secret (for a job the visitor runs: Jobs or this machine)."""
        self.require("run jobs")
        return {TOKEN_SECRET: self._token}

    def submit_job(self, request: JobRequest) -> JobInfo:
        """Create a job in the visitor's namespace. The token goes only into the `HF_TOKEN` secret."""
        self.require("run jobs")
        request.validate()
        namespace = self._namespace(request.namespace, write_action="run jobs")
        exposed = [*request.command, *request.env.values(), *request.labels.values(), *request.labels]
        if any(self._token in part for part in exposed):
            raise InvalidInput(
                "Refusing to submit: the access token must never appear in a job's command, env or labels."
            )
        with self._hub_call(action="run jobs"):
            return self.api.run_job(
                image=request.image,
                command=request.command,
                env=request.env or None,
                secrets=self.job_secrets() if request.with_token_secret else None,
                flavor=request.flavor,
                timeout=request.timeout_s,
                labels=request.labels or None,
                name=request.name,
                namespace=namespace,
                token=self._auth,
            )

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
            with self._hub_call(action=f"list the jobs of '{ns}'"):
                jobs.extend(
                    self.api.list_jobs(status=stages or None, labels=labels or None, namespace=ns, token=self._auth)
                )
        jobs.sort(key=lambda j: j.created_at.timestamp() if j.created_at else 0.0, reverse=True)
        return jobs

    def jobs_with_labels(self, labels: dict[str, str], *, namespace: str | None = None) -> list[JobInfo]:
        """The jobs of one namespace carrying every label of `labels` (the Hub filters), newest first."""
        return self.list_jobs(namespaces=[namespace] if namespace else None, labels=labels)

    def unfinished_jobs(self, *, namespace: str | None = None) -> list[JobInfo]:
        """The jobs of one namespace that are still scheduling or running (they may still cost money)."""
        return self.list_jobs(namespaces=[namespace] if namespace else None, stages=["SCHEDULING", "RUNNING"])

    def inspect_job(self, job_id: str, *, namespace: str | None = None) -> JobInfo:
        validate_job_id(job_id)
        ns = self._namespace(namespace)
        with self._hub_call(job_id=job_id, action="read this job"):
            return self.api.inspect_job(job_id=job_id, namespace=ns, token=self._auth)

    def job_logs(
        self, job_id: str, *, namespace: str | None = None, tail: int | None = 200, deadline_s: float = LOG_READ_S
    ) -> list[str]:
        """The job's log lines so far (the last `tail` ones): those read within `deadline_s` seconds.

        A stream cut in the middle is read again (the Hub replays the whole tail on each connection), up to
        `LOG_READ_ATTEMPTS` times within the deadline, so a dropped connection does not lose the lines. A stream
        that never ends by itself (keep-alives only, lines without end) is given up at the deadline
        (`hub/streams.py`: its connection and thread are released).
        """
        validate_job_id(job_id)
        ns = self._namespace(namespace)
        deadline = time.monotonic() + deadline_s
        lines: list[str] = []
        for attempt in range(1, LOG_READ_ATTEMPTS + 1):
            try:
                with self._hub_call(job_id=job_id, action="read this job's logs"):
                    lines, _ = read_within(
                        lambda: self.api.fetch_job_logs(job_id=job_id, namespace=ns, tail=tail, token=self._auth),
                        name=f"logs-{job_id[:8]}", deadline_s=max(0.0, deadline - time.monotonic()),
                    )  # fmt: skip
                    return lines
            except HubUnavailable:
                if attempt == LOG_READ_ATTEMPTS or time.monotonic() >= deadline:
                    raise
        return lines

    def follow_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = None) -> Iterator[str]:
        """Log lines as they come (starting with the last `tail` ones), until the job ends.

        huggingface_hub reconnects as needed and skips the lines it already gave. A blocking iterator: read it
        through `hub.streams.StreamRead`, whose `close()` ends it at once.
        """
        validate_job_id(job_id)
        ns = self._namespace(namespace)
        with self._hub_call(job_id=job_id, action="read this job's logs"):
            yield from self.api.fetch_job_logs(job_id=job_id, namespace=ns, follow=True, tail=tail, token=self._auth)

    def job_metrics(
        self,
        job_id: str,
        *,
        namespace: str | None = None,
        max_samples: int = 5,
        max_seconds: float = 5.0,
    ) -> list[dict[str, Any]]:
        """The job's live metrics: the samples the Hub sends (one per second) for at most `max_samples` samples or
        `max_seconds` seconds, whichever comes first; [] for a job that is scheduled or has ended (no history).

        Read with huggingface_hub's own `fetch_job_metrics` (its SSE parser) in a guarded thread
        (`hub/streams.py`), so that a silent or keep-alive-only stream (a scheduled job, a job that just ended)
        never holds the caller, a thread or a connection past `max_seconds`. Each sample is the Hub's dict:
        cpu_usage_pct, cpu_millicores, memory_used_bytes, memory_total_bytes, rx_bps, tx_bps,
        gpus {id: {utilization, memory_used_bytes, memory_total_bytes}}, replica.
        """
        validate_job_id(job_id)
        ns = self._namespace(namespace)
        max_samples = max(1, min(int(max_samples), METRICS_MAX_SAMPLES))
        max_seconds = max(0.1, min(float(max_seconds), METRICS_MAX_SECONDS))
        with self._hub_call(job_id=job_id, action="read this job's metrics"):
            samples, _ = read_within(
                lambda: self.api.fetch_job_metrics(job_id=job_id, namespace=ns, follow=True, token=self._auth),
                name=f"metrics-{job_id[:8]}", deadline_s=max_seconds, max_items=max_samples,
            )  # fmt: skip
        return [s for s in samples if isinstance(s, dict)]

    def cancel_job(self, job_id: str, *, namespace: str | None = None) -> JobInfo:
        """Cancel a job (the read role in an org cannot). Cancelling is idempotent: when the Hub's answer is lost,
        the job is inspected, and the cancel sent once more if it is still running, so the stage returned is true."""
        validate_job_id(job_id)
        ns = self._namespace(namespace, write_action="cancel jobs")
        for attempt in (1, 2):
            try:
                with self._hub_call(job_id=job_id, action="cancel jobs"):
                    self.api.cancel_job(job_id=job_id, namespace=ns, token=self._auth)
                break
            except HubUnavailable as err:
                if not err.maybe_applied or attempt == 2:
                    raise
                if self.inspect_job(job_id, namespace=ns).status.stage in TERMINAL_STAGES:
                    break
        return self.inspect_job(job_id, namespace=ns)

    def find_job(self, job_id: str) -> JobInfo:
        """Inspect a job by id in any of the visitor's namespaces."""
        validate_job_id(job_id)
        for ns in self.visitor.namespaces:
            try:
                return self.api.inspect_job(job_id=job_id, namespace=ns, token=self._auth)
            except Exception as err:
                mapped = from_hub_error(err, job_id=job_id)
                if not isinstance(mapped, (JobNotFound, InvalidInput, MissingPermission)):
                    raise mapped from None
        raise JobNotFound(job_id)

    # ------------------------------------------------------------------ repos
    def model_info(self, repo_id: str, *, revision: str | None = None, files_metadata: bool = False) -> Any:
        """`HfApi.model_info` with the visitor's token (RepoNotFound / GatedRepo / ... on failure)."""
        with self._hub_call(repo_id=repo_id, action="read this model"):
            return self.api.model_info(
                repo_id, revision=revision, files_metadata=files_metadata, token=self._auth,
                timeout=get_settings().hub_timeout_s,
            )  # fmt: skip

    def dataset_info(self, repo_id: str) -> Any:
        with self._hub_call(repo_id=repo_id, repo_type="dataset", action="read this dataset"):
            return self.api.dataset_info(repo_id, token=self._auth, timeout=get_settings().hub_timeout_s)

    def download(self, repo_id: str, filename: str, *, revision: str | None = None, isolated: bool = False) -> bytes:
        """One (small) file of a model repo, as bytes (FileNotFoundError when the repo has no such file).

        `isolated`: through a throw-away cache, for gated or private repos. A file cached for one visitor would
        otherwise be served to the next from the disk cache (commit-hash revisions are answered from disk).
        """
        from huggingface_hub.errors import EntryNotFoundError

        tmp = tempfile.mkdtemp(prefix="trainer-space-") if isolated else None
        try:
            with self._hub_call(repo_id=repo_id, action="read this model"):
                try:
                    path = self.api.hf_hub_download(
                        repo_id, filename, revision=revision, token=self._auth, cache_dir=tmp,
                        etag_timeout=get_settings().hub_timeout_s,
                    )  # fmt: skip
                except EntryNotFoundError:
                    raise FileNotFoundError(f"{repo_id} has no {filename}") from None
            return Path(path).read_bytes()
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def download_small(self, repo_id: str, filename: str, max_bytes: int) -> bytes:
        """One file of a model repo of at most `max_bytes` (its size is asked first, then checked again on the
        bytes), through a throw-away cache: FileNotFoundError when the repo has no such file, ValueError (saying
        the size) when it is larger."""
        with self._hub_call(repo_id=repo_id, action="read this model"):
            found = self.api.get_paths_info(repo_id, [filename], token=self._auth)
        size = next((getattr(f, "size", None) for f in found if getattr(f, "path", None) == filename), None)
        if not found:
            raise FileNotFoundError(f"{repo_id} has no {filename}")
        if size is not None and size > max_bytes:
            raise ValueError(f"{filename} is {size:,} bytes, more than the {max_bytes:,} read")
        data = self.download(repo_id, filename, isolated=True)
        if len(data) > max_bytes:
            raise ValueError(f"{filename} is {len(data):,} bytes, more than the {max_bytes:,} read")
        return data

    def download_json(self, repo_id: str, filename: str, **kwargs: Any) -> Any:
        """A JSON file of a model repo, parsed (InvalidInput when it is not JSON)."""
        try:
            return json.loads(self.download(repo_id, filename, **kwargs))
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"'{repo_id}' has a {filename} that is not valid JSON.") from None

    @contextmanager
    def snapshot(self, repo_id: str, allow_patterns: list[str], *, revision: str | None = None,
                 isolated: bool = False) -> Iterator[Path]:  # fmt: skip
        """A local folder with the files of a model repo matching `allow_patterns` (libraries then load it
        from disk, making no Hub call of their own). `isolated`: a throw-away folder, deleted afterwards."""
        tmp = Path(tempfile.mkdtemp(prefix="trainer-space-")) if isolated else None
        try:
            with self._hub_call(repo_id=repo_id, action="read this model"):
                folder = self.api.snapshot_download(
                    repo_id, revision=revision, allow_patterns=allow_patterns, token=self._auth,
                    cache_dir=tmp, etag_timeout=get_settings().hub_timeout_s,
                )  # fmt: skip
            yield Path(folder)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def stream_rows(
        self, repo_id: str, config: str | None, split: str, limit: int, *, stop: threading.Event | None = None
    ) -> tuple[list[dict], dict]:
        """The first `limit` rows of a dataset split and its features, read with `datasets` streaming.

        `stop`: set by a caller that gave up waiting; the read ends at the next row (its HTTP reads are bounded by
        the client's timeouts).
        """
        import datasets

        stream = datasets.load_dataset(repo_id, config, split=split, streaming=True, token=self._auth)
        rows: list[dict] = []
        for row in stream:
            if (stop is not None and stop.is_set()) or len(rows) >= limit:
                break
            rows.append(dict(row))
        features = stream.features.to_dict() if stream.features is not None else {}
        return rows, features

    # ------------------------------------------------------------------ viewer, hardware
    @property
    def viewer(self) -> Viewer:
        """The dataset viewer client, with this visitor's token."""
        return Viewer(self._token)

    def hardware(self) -> tuple[tuple[Flavor, ...], bool]:
        """Flavors with prices (from the Hub when it answers, else the built-in table). Public: no token sent."""
        return get_flavors()
