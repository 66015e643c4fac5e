"""The visitor's jobs: rows for the "My jobs" table and `/list_jobs`, one job's details, logs, diagnosis, cancel.

No Gradio here: the UI (`ui/jobs_tab.py`) and the API endpoints call these.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from huggingface_hub import JobInfo

from .diagnosis import Diagnosis, diagnose
from .hardware import Flavor, get_flavor
from .hub import TERMINAL_STAGES, HubSession
from .settings import get_settings
from .validation import validate_int, validate_job_id

APP_LABEL = "trainer-space"  # label key set on every job this app submits; its value is the job kind


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
        model=labels.get("model", "") or labels.get("output", ""),
        stage=job.status.stage,
        flavor=flavor,
        started=job.started_at.strftime("%Y-%m-%d %H:%M UTC") if job.started_at else "",
        duration_min=round(seconds / 60, 1),
        cost_usd=round(seconds / 3600 * info.usd_per_hour, 2) if info else 0.0,
        url=job.url,
    )


def list_job_rows(
    session: HubSession,
    *,
    namespaces: list[str] | None = None,
    only_this_app: bool = False,
    stages: list[str] | None = None,
) -> list[JobRow]:
    """The visitor's jobs, newest first, with the cost so far (duration x price)."""
    flavors, _ = session.hardware()
    jobs = session.list_jobs(namespaces=namespaces, stages=stages)
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


def space_subdomain(space_id: str) -> str:
    """`Owner/My_Space.v2` -> `owner-my-space-v2` (the Space's *.hf.space host name)."""
    return re.sub(r"[/_.]", "-", space_id.lower())


def trackio_embed_url(space_id: str | None, project: str | None) -> str | None:
    """The Trackio dashboard of `project` on `space_id`, embeddable (no sidebar/navbar); None if a value is unsafe."""
    space = safe_repo_id(space_id)
    if space is None or not project or not _PROJECT.fullmatch(project):
        return None
    query = urlencode({"project": project, "sidebar": "hidden", "navbar": "hidden"})
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

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL_STAGES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def job_details(job: JobInfo, flavors: tuple[Flavor, ...] | None = None) -> JobDetails:
    """Details of one job: times, cost so far, and links (output repo, Trackio dashboard) from its labels."""
    row = job_row(job, flavors)
    labels = dict(job.labels or {})
    endpoint = get_settings().endpoint
    output = safe_repo_id(labels.get("output") or job_args(job).get("hub_model_id"))
    trackio = safe_repo_id(labels.get("trackio"))
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
        trackio_url=trackio_embed_url(trackio, labels.get("project")) if row.kind == "train" else None,
    )


def diagnose_job(
    session: HubSession, job: JobInfo, flavors: tuple[Flavor, ...] | None = None, *, tail: int = DIAGNOSIS_TAIL
) -> Diagnosis | None:
    """The diagnosis of a finished job from its status, the last `tail` log lines and its labels (None if running)."""
    stage = job.status.stage
    if stage not in TERMINAL_STAGES or stage in ("COMPLETED", "DELETED"):
        return None
    lines = session.job_logs(job.id, namespace=job.owner.name, tail=tail) if stage == "ERROR" else []
    return diagnose(
        stage,
        job.status.message,
        lines,
        job.labels,
        flavor=str(job.flavor) if job.flavor else None,
        args=job_args(job),
        flavors=flavors,
        endpoint=get_settings().endpoint,
    )


def job_status(session: HubSession, job_id: str) -> dict[str, Any]:
    """`/job_status`: a job of any of the visitor's namespaces, with its diagnosis once it has ended."""
    flavors, _ = session.hardware()
    job = session.find_job(validate_job_id(job_id))
    diagnosis = diagnose_job(session, job, flavors)
    return {**job_details(job, flavors).to_json(), "diagnosis": diagnosis.to_json() if diagnosis else None}


def job_log_tail(session: HubSession, job_id: str, tail: int = DIAGNOSIS_TAIL) -> dict[str, Any]:
    """`/job_logs`: the last `tail` log lines of a job (1 to 5000)."""
    tail = validate_int(tail, "tail", 1, 5000)
    job = session.find_job(validate_job_id(job_id))
    return {
        "id": job.id,
        "stage": job.status.stage,
        "lines": session.job_logs(job.id, namespace=job.owner.name, tail=tail),
    }


def cancel(session: HubSession, job_id: str) -> dict[str, Any]:
    """`/cancel_job`: cancel a job of the visitor's (found in their namespaces; others' jobs are not found)."""
    job = session.find_job(validate_job_id(job_id))
    if job.status.stage in TERMINAL_STAGES:
        return {"id": job.id, "stage": job.status.stage}
    after = session.cancel_job(job.id, namespace=job.owner.name)
    return {"id": after.id, "stage": after.status.stage}
