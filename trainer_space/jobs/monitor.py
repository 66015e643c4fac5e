"""The visitor's jobs: rows for the "My jobs" table and `/list_jobs`, one job's details (with the config it
carries), logs, diagnosis, the fix as a whole config, cancel.

No Gradio here: the UI (`ui/jobs_tab.py`) and the API endpoints call these.
"""

from __future__ import annotations

import functools
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from huggingface_hub import JobInfo

from ..errors import InvalidInput, redact
from ..hub.hardware import Flavor, get_flavor
from ..hub.session import TERMINAL_STAGES, HubSession
from ..hub.streams import StreamRead
from ..settings import get_settings
from ..validation import format_timeout, validate_int, validate_job_id
from .accuracy import JobEstimate
from .backends import HF_JOBS, JobBackend, backend_of, find_job, job_backend, job_backends, list_all
from .config import ExportConfig, TrainingConfig
from .diagnosis import Diagnosis, diagnose, strip_ansi
from .progress import format_seconds
from .spec import APP_LABEL, space_subdomain
from .usage import Usage


@dataclass(frozen=True)
class JobRow:
    id: str
    namespace: str
    kind: str  # train / export_gguf (this app's jobs) or "other"
    model: str
    stage: str
    flavor: str
    started: str
    duration_min: float
    cost_usd: float
    url: str
    backend: str = HF_JOBS  # "hf-jobs" or "local"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _short(name: str) -> str:
    """A model for the jobs table: a Hub id as it is, a local folder by its last two parts (a long one, such as a
    job's id, cut to its first 8 characters)."""
    if not name.startswith("/"):
        return name
    return "…/" + "/".join(p if len(p) <= 16 else p[:8] + "…" for p in Path(name).parts[-2:])


def running_seconds(job: JobInfo, now: datetime | None = None) -> float:
    """Billed seconds so far: from start until the end (or now, while it runs)."""
    if job.durations is not None and job.durations.running_secs is not None and job.status.stage in TERMINAL_STAGES:
        return float(job.durations.running_secs)
    if job.started_at is None:
        return 0.0
    end = job.finished_at or now or datetime.now(UTC)
    return max(0.0, (end - job.started_at).total_seconds())


def job_row(job: JobInfo, flavors: tuple[Flavor, ...] | None = None) -> JobRow:
    labels = job.labels or {}
    flavor = str(job.flavor or "cpu-basic")
    info = get_flavor(flavor, flavors)
    seconds = running_seconds(job)
    return JobRow(
        id=job.id,
        namespace=job.owner.name,
        kind=labels.get(APP_LABEL, "other"),
        model=_short(labels.get("model", "") or labels.get("output", "")),
        stage=job.status.stage,
        flavor=flavor,
        started=job.started_at.strftime("%Y-%m-%d %H:%M UTC") if job.started_at else "",
        duration_min=round(seconds / 60, 1),
        cost_usd=round(seconds / 3600 * info.usd_per_hour, 2) if info else 0.0,
        url=job.url,
        backend=backend_of(job),
    )


def list_job_rows(
    session: HubSession,
    *,
    namespaces: list[str] | None = None,
    only_this_app: bool = False,
    stages: list[str] | None = None,
) -> list[JobRow]:
    """The visitor's jobs on every backend (Hugging Face Jobs and this machine), newest first, with the cost so far
    (duration x price; free on this machine)."""
    jobs = list_all(job_backends(session, action="list your jobs"), namespaces=namespaces, stages=stages)
    # the Hub's price list only where a job runs there: listing this machine's jobs sends nothing to the Hub
    flavors = session.hardware()[0] if any(backend_of(j) == HF_JOBS for j in jobs) else None
    rows = [job_row(j, flavors) for j in jobs]
    if only_this_app:
        rows = [r for r in rows if r.kind != "other"]
    return rows


def any_running(rows: list[JobRow]) -> bool:
    return any(r.stage not in TERMINAL_STAGES for r in rows)


# ---------------------------------------------------------------------------------------------- one job
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TIMEOUT_MESSAGE = re.compile(r"(?i)timeout exceeded \((\d+)\s*s\)")
DIAGNOSIS_TAIL = 200


def safe_repo_id(value: str | None) -> str | None:
    """`value` if it is a plain `owner/name` repo id (safe in a URL and in HTML), else None."""
    return value if value and _REPO_ID.fullmatch(value) and ".." not in value else None


TRACKIO_METRICS = {"grpo": "train/loss,train/reward", "reward": "train/loss,train/accuracy"}
TRACKIO_DEFAULT_METRICS = "train/loss,eval/loss"  # what transformers' TrackioCallback logs (rewrite_logs names)


def trackio_embed_url(space_id: str | None, project: str | None, method: str | None = None) -> str | None:
    """The Trackio dashboard of `project` on `space_id`, embeddable: on the project, showing its loss chart
    (`metrics`, by the method), no sidebar or navbar (Trackio's documented query parameters). None if a value is
    unsafe."""
    space = safe_repo_id(space_id)
    if space is None or not project or not _PROJECT.fullmatch(project):
        return None
    metrics = TRACKIO_METRICS.get(method or "", TRACKIO_DEFAULT_METRICS)
    query = urlencode({"project": project, "metrics": metrics, "sidebar": "hidden", "navbar": "hidden"}, safe="/,")
    return f"https://{space_subdomain(space)}.hf.space/?{query}"


def job_args(job: JobInfo) -> dict[str, str]:
    """The `--key value` arguments of a job's command (our templates take their options that way)."""
    parts = [*(job.command or []), *(job.arguments or [])]
    args: dict[str, str] = {}
    i = 0
    while i < len(parts):
        part = parts[i]
        if part.startswith("--") and len(part) > 2 and " " not in part:
            key, eq, value = part[2:].partition("=")
            if eq:
                args[key] = value
            elif i + 1 < len(parts) and not parts[i + 1].startswith("--"):
                args[key] = parts[i + 1]
                i += 1
            else:
                args[key] = "true"
        i += 1
    return args


def job_timeout_s(job: JobInfo) -> int | None:
    """The job's timeout when known (a `timeout` label, or the timeout message); the Hub's JobInfo omits it."""
    for value in (getattr(job, "timeout", None), (job.labels or {}).get("timeout")):
        if value is not None and str(value).isdigit():
            return int(value)
    m = _TIMEOUT_MESSAGE.search(job.status.message or "")
    return int(m.group(1)) if m else None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass(frozen=True)
class JobDetails:
    """One job as the details panel and `/job_status` show it."""

    id: str
    namespace: str
    kind: str
    stage: str
    message: str | None
    flavor: str
    labels: dict[str, str]
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    timeout_s: int | None
    duration_min: float
    cost_usd: float
    url: str
    output_repo: str | None
    output_url: str | None
    trackio_space: str | None
    trackio_url: str | None
    config: TrainingConfig | ExportConfig | None = None  # what the app submitted (None for other jobs)
    backend: str = HF_JOBS
    output_dir: str | None = None  # a local job's outputs on this machine
    estimate: JobEstimate | None = None  # what the estimator said (training jobs of this app)
    scheduling_s: float | None = None  # seconds spent waiting for hardware (so far, while SCHEDULING)
    running_s: float = 0.0  # seconds running (billed)
    usd_per_hour: float | None = None  # the flavor's price (0 on this machine)
    stuck_scheduling: bool = False  # SCHEDULING for longer than the setting (TRAINER_SPACE_SCHEDULING_ALERT_MIN)

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL_STAGES

    @property
    def started_ts(self) -> float | None:
        """When it started running (unix seconds)."""
        return datetime.strptime(self.started_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() \
            if self.started_at else None  # fmt: skip

    def scheduling_note(self) -> str | None:
        """The plain sentence for a job waiting too long for hardware (None otherwise)."""
        if not self.stuck_scheduling:
            return None
        return (
            f"Waiting for hardware ({self.flavor}) for {format_seconds(self.scheduling_s)}, longer than "
            f"{format_seconds(get_settings().scheduling_alert_s)}. Cost so far: $0.00 (billing starts when it runs). "
            "Cancel it if you would rather not wait, or try another flavor."
        )

    def cancel_prompt(self) -> str:
        """The question before canceling this job, true for where it runs (`cancel_prompt`)."""
        return cancel_prompt(self.id, backend=self.backend, output_repo=self.output_repo, output_dir=self.output_dir)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["config"] = self.config.to_json() if self.config is not None else None
        out["estimate"] = asdict(self.estimate) if self.estimate is not None else None
        out["scheduling_note"] = self.scheduling_note()
        return out


def job_config(job: JobInfo) -> TrainingConfig | ExportConfig | None:
    """The validated config a job of this app carries in its environment (None for other jobs)."""
    kind = (job.labels or {}).get(APP_LABEL)
    config_class = {"train": TrainingConfig, "export_gguf": ExportConfig}.get(kind or "")
    return config_class.from_job_env(job.environment) if config_class else None


def scheduling_seconds(job: JobInfo, now: datetime | None = None) -> float | None:
    """Seconds the job waited for hardware (still waiting: so far), from the Hub's durations when it gives them."""
    if job.durations is not None and job.durations.scheduling_secs is not None:
        return float(job.durations.scheduling_secs)
    if job.created_at is None:
        return None
    end = job.started_at or job.finished_at or now or datetime.now(UTC)
    return max(0.0, (end - job.created_at).total_seconds())


def job_details(job: JobInfo, flavors: tuple[Flavor, ...] | None = None) -> JobDetails:
    """Details of one job: times, cost so far, its config, its estimate, and links (output repo, Trackio)."""
    row = job_row(job, flavors)
    labels = dict(job.labels or {})
    config = job_config(job)
    endpoint = get_settings().endpoint
    output = safe_repo_id(
        getattr(config, "output_repo", None) or labels.get("output") or job_args(job).get("hub_model_id")
    )
    trackio = safe_repo_id(getattr(config, "trackio_space", None) or labels.get("trackio"))
    project = getattr(config, "trackio_project", None) or labels.get("project")
    info = get_flavor(row.flavor, flavors)
    scheduling = scheduling_seconds(job)
    return JobDetails(
        id=job.id,
        namespace=row.namespace,
        kind=row.kind,
        stage=row.stage,
        message=job.status.message,
        flavor=row.flavor,
        labels=labels,
        created_at=_iso(job.created_at),
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        timeout_s=job_timeout_s(job),
        duration_min=row.duration_min,
        cost_usd=row.cost_usd,
        url=job.url,
        output_repo=output,
        output_url=f"{endpoint}/{output}" if output else None,
        trackio_space=trackio,
        trackio_url=trackio_embed_url(trackio, project, getattr(config, "method", None) or labels.get("method"))
        if row.kind == "train" else None,
        config=config,
        backend=row.backend,
        output_dir=str(Path(job.job_dir) / "output") if getattr(job, "job_dir", None) else None,
        estimate=JobEstimate.from_env(job.environment) if row.kind == "train" else None,
        scheduling_s=scheduling,
        running_s=running_seconds(job),
        usd_per_hour=info.usd_per_hour if info else (0.0 if row.backend == "local" else None),
        stuck_scheduling=row.stage == "SCHEDULING" and (scheduling or 0) > get_settings().scheduling_alert_s,
    )  # fmt: skip


def diagnose_job(
    backend: JobBackend,
    job: JobInfo,
    flavors: tuple[Flavor, ...] | None = None,
    *,
    tail: int = DIAGNOSIS_TAIL,
    lines: list[str] | None = None,
) -> Diagnosis | None:
    """The diagnosis of a finished job from its status, the last `tail` log lines (read unless `lines` are given)
    and its labels (None if running)."""
    stage = job.status.stage
    if stage not in TERMINAL_STAGES or stage in ("COMPLETED", "DELETED"):
        return None
    if stage != "ERROR":
        lines = []
    elif lines is None:
        lines = safe_lines(backend.job_logs(job.id, namespace=job.owner.name, tail=tail))
    else:
        lines = lines[-tail:]
    return diagnose(
        stage,
        job.status.message,
        lines,
        job.labels,
        flavor=str(job.flavor) if job.flavor else None,
        args=job_args(job),
        flavors=flavors,
        endpoint=get_settings().endpoint,
        backend=backend_of(job),
    )


# diagnosis hints that name a TrainingConfig field, and how they map onto it
_FIX_FIELDS = ("per_device_train_batch_size", "gradient_accumulation_steps", "gradient_checkpointing", "max_length",
               "peft", "flavor", "output_repo", "resume_from_hub")  # fmt: skip


def fixed_config(
    config: TrainingConfig | ExportConfig | None, diagnosis: Diagnosis | None
) -> TrainingConfig | ExportConfig | None:
    """The failed job's whole config with the diagnosis' fix applied (None when there is nothing to carry).

    Dataset, mapping, learning rate, max_steps and everything else stay as the job had them. An export's config
    comes back as it was (its fixes are outside the config: a newer converter, another model).
    """
    if config is None or diagnosis is None:
        return None
    if isinstance(config, ExportConfig):
        return config
    if not diagnosis.action_hint:
        return None
    hint = diagnosis.action_hint
    changes: dict[str, Any] = {k: hint[k] for k in _FIX_FIELDS if hint.get(k) not in (None, "")}
    if hint.get("timeout_s"):
        changes["timeout"] = format_timeout(int(hint["timeout_s"]))
    if hint.get("attn_implementation"):
        changes["advanced"] = {**config.advanced, "attn_implementation": hint["attn_implementation"]}
    try:
        return config.with_changes(**changes)
    except InvalidInput:  # a hint the config cannot take (e.g. a flavor it no longer knows): keep the job's own
        return config


def export_handoff(details: JobDetails) -> ExportConfig | None:
    """The GGUF export of a completed training job's model: its output repo (Jobs, or a local job that pushed),
    else its output folder on this machine, on the backend it ran on. None for anything else (a running or failed
    job, a reward model: llama.cpp has nothing to run for a classifier, a job of another app)."""
    cfg = details.config
    if details.kind != "train" or details.stage != "COMPLETED" or not isinstance(cfg, TrainingConfig):
        return None
    if cfg.method == "reward":
        return None
    source = details.output_repo if cfg.push_to_hub else details.output_dir
    if not source:
        return None
    try:
        return ExportConfig.from_dict({"model": source, "backend": details.backend, "push_to_hub": cfg.push_to_hub})
    except InvalidInput:  # a folder that is gone, a repo id the export cannot take: nothing to hand over
        return None


@dataclass(frozen=True)
class JobStatus:
    """`/job_status`: one job's details and, once it has ended, its diagnosis and the fixed config."""

    details: JobDetails
    diagnosis: Diagnosis | None
    fix: TrainingConfig | ExportConfig | None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.details.to_json(),
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "fix": self.fix.to_json() if self.fix else None,
        }


def job_status(session: HubSession, job_id: str) -> JobStatus:
    """A job of any of the visitor's namespaces, with its diagnosis once it has ended."""
    job_id = validate_job_id(job_id)  # before any Hub call
    flavors, _ = session.hardware()
    backend, job = find_job(job_backends(session), job_id)
    details = job_details(job, flavors)
    diagnosis = diagnose_job(backend, job, flavors)
    return JobStatus(details, diagnosis, fixed_config(details.config, diagnosis))


def safe_line(line: str) -> str:
    """A log line as the app shows it (UI and API): a token the job printed (its own HF_TOKEN, any other) becomes
    `hf_***`, and terminal colour codes are dropped (a page shows them as boxes)."""
    return redact(strip_ansi(str(line)))


def safe_lines(lines: list[str]) -> list[str]:
    """`safe_line` of each line."""
    return [safe_line(line) for line in lines]


@dataclass(frozen=True)
class LogTail:
    id: str
    stage: str
    lines: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def job_log_tail(session: HubSession, job_id: str, tail: int = DIAGNOSIS_TAIL) -> LogTail:
    """The last `tail` log lines of a job (1 to 5000)."""
    tail = validate_int(tail, "tail", 1, 5000)
    backend, job = find_job(job_backends(session, action="read job logs"), validate_job_id(job_id))
    return LogTail(job.id, job.status.stage, safe_lines(backend.job_logs(job.id, namespace=job.owner.name, tail=tail)))


@dataclass(frozen=True)
class JobStage:
    id: str
    stage: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cancel_prompt(job_id: str, *, backend: str, output_repo: str | None = None, output_dir: str | None = None) -> str:
    """The question before a cancel (Markdown), true for the backend: on Hugging Face Jobs billing stops; on this
    machine its processes stop (nothing is billed). What stays: checkpoints already pushed (a job that pushes), and
    for a local job its folder."""
    kept = f" Checkpoints already pushed to {output_repo} stay on the Hub." if output_repo else ""
    if backend == HF_JOBS:
        what = "Billing stops at once." + kept
    else:
        folder = f" ({output_dir})" if output_dir else ""
        what = f"Its processes on this machine are stopped (nothing is billed).{kept} Its folder{folder} keeps what it saved."
    return f"**Cancel job `{job_id}`?** {what}"


def cancel(session: HubSession, job_id: str) -> JobStage:
    """Cancel a job of the visitor's (found in their namespaces; others' jobs are not found)."""
    backend, job = find_job(job_backends(session, action="cancel jobs"), validate_job_id(job_id))
    if job.status.stage in TERMINAL_STAGES:
        return JobStage(job.id, job.status.stage)
    after = backend.cancel_job(job.id, namespace=job.owner.name)
    return JobStage(after.id, after.status.stage)


# ---------------------------------------------------------------------------------------------- following logs
@dataclass(frozen=True)
class LogView:
    """What the log view shows at one moment: the last lines, and whether the job has ended."""

    lines: tuple[str, ...]
    ended: bool


@dataclass(frozen=True)
class JobWhere:
    """Where a job lives (its backend and namespace) and its stage as last read."""

    backend: str
    namespace: str
    stage: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def located(session: HubSession, job_id: str, known: dict[str, str] | None) -> JobWhere:
    """Where a job lives: as the panel last saw it (`known`, a `JobWhere.to_json()`), else asked of the backends."""
    if known and {"backend", "namespace", "stage"} <= set(known):
        return JobWhere(known["backend"], known["namespace"], known["stage"])
    return where_is(session, job_id)


def where_is(session: HubSession, job_id: str) -> JobWhere:
    """Where one of the visitor's jobs lives, on whichever backend holds it."""
    _, job = find_job(job_backends(session), validate_job_id(job_id))
    return JobWhere(backend_of(job), job.owner.name, job.status.stage)


def follow_logs(
    session: HubSession, job_id: str, *, where: JobWhere | None = None, keep: int = 500, every_s: float = 0.4
) -> Iterator[LogView]:
    """The job's last `keep` log lines, again every `every_s` seconds while new lines come, until the job ends.

    `where`: the job's backend, namespace and stage as last read (None: the job is looked up). An ended job gives
    its tail once. The blocking read runs in its own thread so that the reader is paced (and stops it when it
    stops iterating).
    """
    where = where or where_is(session, job_id)
    backend = job_backend(where.backend, session)
    namespace, stage = where.namespace, where.stage
    if stage in TERMINAL_STAGES:
        yield LogView(tuple(safe_lines(backend.job_logs(job_id, namespace=namespace, tail=keep))), True)
        return
    buffer: deque[str] = deque(maxlen=keep)
    stream = functools.partial(backend.follow_logs, job_id, namespace=namespace, tail=keep)
    with StreamRead(stream, name=f"logs-{job_id[:8]}") as read:  # leaving (or a reader that stops) ends the read
        last, dirty = 0.0, False
        while True:
            item = read.next(timeout=0.5)
            while item is not StreamRead.TIMEOUT and item is not StreamRead.END:
                buffer.append(safe_line(item))
                dirty = True
                item = read.next(timeout=0)
            if item is StreamRead.END:
                break
            if dirty and time.monotonic() - last >= every_s:
                last, dirty = time.monotonic(), False
                yield LogView(tuple(buffer), False)
    yield LogView(tuple(buffer), True)


# ---------------------------------------------------------------------------------------------- live usage
@dataclass(frozen=True)
class UsageView:
    """The live usage of a job at one moment: every sample so far (with peaks), the stage, whether it has ended."""

    usage: Usage
    stage: str
    ended: bool


def follow_usage(
    session: HubSession,
    job_id: str,
    *,
    where: JobWhere | None = None,
    usage: Usage | None = None,
    max_seconds: float | None = None,
    batch_s: float = 5.0,
) -> Iterator[UsageView]:
    """The job's usage every `batch_s` seconds (a bounded metrics read each), for at most `max_seconds`
    (TRAINER_SPACE_USAGE_FOLLOW_S by default), until the job ends. A reader that stops iterating stops it at once:
    no read outlives its batch. While the job is scheduled, its stage is checked once per batch."""
    where = where or where_is(session, job_id)
    backend = job_backend(where.backend, session)
    usage = usage or Usage()
    stage = where.stage
    if stage in TERMINAL_STAGES:
        yield UsageView(usage, stage, True)
        return
    deadline = time.monotonic() + (max_seconds or get_settings().usage_follow_s)
    while (left := deadline - time.monotonic()) > 0.5:
        raw = backend.job_metrics(job_id, namespace=where.namespace, max_samples=max(1, round(batch_s)),
                                  max_seconds=min(batch_s, left))  # fmt: skip
        if raw:
            usage.add(raw)
            stage = "RUNNING"
        else:
            stage = backend.find_job(job_id).status.stage
            if stage in TERMINAL_STAGES:
                yield UsageView(usage, stage, True)
                return
            if stage == "SCHEDULING" and where.backend != HF_JOBS:  # local reads return at once: pace them
                time.sleep(min(batch_s, max(0.0, deadline - time.monotonic())))
        yield UsageView(usage, stage, False)
