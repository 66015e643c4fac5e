"""The visitor's jobs as rows for the "My jobs" table and the `/list_jobs` API (no Gradio here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from huggingface_hub import JobInfo

from .hardware import Flavor, get_flavor
from .hub import TERMINAL_STAGES, HubSession

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
