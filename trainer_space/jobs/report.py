"""What a program sees of one job (`/job_status`): what My jobs shows a person, as data.

* `progress`: the job's latest progress line (`jobs/progress.py`, read from its log tail): step, total, percent,
  tokens/s, ETA, the last checkpoint saved and pushed when the lines say so, how long it has made no progress, and
  My jobs' own sentence for it (`progress_report`).
* `usage`: while the job runs, a short read of its live metrics (one bounded read: `hub/streams.py`) with the peaks
  per GPU, CPU and RAM (`jobs/usage.py`); beside each GPU's peak memory the job's estimate and the ratio, and the
  estimate vs measured of memory, time and cost that My jobs shows (`jobs/accuracy.py`'s `compare`).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import TrainerSpaceError
from ..hub.session import HubSession
from ..settings import get_settings
from ..validation import validate_job_id
from .accuracy import ACCURACY_TAIL, Comparison, compare, ratio
from .backends import find_job, job_backends
from .continuing import job_links
from .monitor import DIAGNOSIS_TAIL, JobDetails, JobStatus, diagnose_job, fixed_config, job_details, safe_lines
from .progress import Checkpoint, format_seconds, last_checkpoint, latest_progress, peak_gpu_memory, progress_report
from .stopping import stop_state
from .usage import Usage

USAGE_MAX_S = 10.0  # the longest live-metrics read one `/job_status` may ask for


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


def checkpoint_json(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {"saved_step": checkpoint.saved_step, "saved_at": _iso(checkpoint.saved_t),
            "pushed_step": checkpoint.pushed_step, "pushed_at": _iso(checkpoint.pushed_t)}  # fmt: skip


def progress_json(lines: list[str], details: JobDetails, *, now: float | None = None) -> dict[str, Any]:
    """The progress of a training job from its log lines, as My jobs reports it (`progress_report`)."""
    now = now or time.time()
    latest = latest_progress(lines)
    report = progress_report(latest, details.stage, started_at=details.started_ts, now=now,
                             stall_after_s=get_settings().stall_alert_s)  # fmt: skip
    running = details.stage == "RUNNING"
    return {
        "step": latest.step if latest else None,
        "total": latest.total if latest else None,
        "percent": round(100 * report.fraction, 1) if report.fraction is not None else None,
        "tokens_per_s": _round(latest.tokens_per_s, 1) if latest else None,
        "eta_s": round(report.eta_s) if report.eta_s is not None else None,
        "eta": format_seconds(report.eta_s) if report.eta_s is not None else None,
        "loss": latest.loss if latest else None,
        "done": bool(latest and latest.done),
        "reported_at": _iso(latest.t) if latest else None,
        "no_progress_min": round(report.idle_s / 60, 1) if running and report.idle_s is not None else None,
        "stalled": report.stalled,
        "last_checkpoint": checkpoint_json(last_checkpoint(lines)),
        "text": report.text,
    }


def usage_note(usage: Usage, stage: str) -> str:
    """What the usage figures are, in one sentence (as My jobs words it)."""
    if stage == "SCHEDULING":
        return "Waiting for hardware: usage starts when it runs."
    if stage != "RUNNING":
        return ("The job has ended: live usage is only sent while a job runs; the measured peak GPU memory comes "
                "from its progress lines.")  # fmt: skip
    return usage.summary()


def usage_json(
    usage: Usage, stage: str, comparison: Comparison | None, *, window_s: float, progress_peak_gb: float | None
) -> dict[str, Any]:
    """The peaks of the samples read (per GPU, CPU, RAM), each GPU's peak memory beside the estimate per GPU with
    the ratio, and the estimate vs measured of memory, time and cost."""
    peaks = usage.peaks
    estimate_gb = comparison.estimate.peak_gpu_mem_gb if comparison and comparison.estimate else None
    gpus = [
        {"id": gpu_id, "memory_peak_gb": round(g["memory_gb"], 2), "memory_total_gb": round(g["total_gb"], 2),
         "utilization_peak_pct": round(g["utilization"], 1), "estimate_gb": estimate_gb,
         "memory_ratio": ratio(g["memory_gb"], estimate_gb)}
        for gpu_id, g in sorted(peaks.gpus.items())
    ]  # fmt: skip
    sampled = peaks.samples > 0
    source = "live metrics" if sampled else ("progress lines" if progress_peak_gb is not None else None)
    return {
        "source": source,
        "samples": peaks.samples,
        "window_s": round(window_s, 1),
        "gpus": gpus,
        "gpu_memory_peak_gb": _round(peaks.gpu_mem_gb if peaks.has_gpu else progress_peak_gb),
        "gpu_utilization_peak_pct": _round(peaks.gpu_util_pct, 1),
        "cpu_peak_pct": round(peaks.cpu_pct, 1) if sampled else None,
        "ram_peak_gb": round(peaks.ram_gb, 2) if sampled else None,
        "ram_total_gb": round(peaks.ram_total_gb, 2) if sampled and peaks.ram_total_gb else None,
        "vs_estimate": comparison.to_json() if comparison and comparison.estimate else None,
        "note": usage_note(usage, stage),
    }


@dataclass(frozen=True)
class JobReport:
    """`/job_status`: the job's details, diagnosis and fix, with its progress and usage."""

    status: JobStatus
    progress: dict[str, Any] | None  # training jobs of this app only
    usage: dict[str, Any]
    links: dict[str, Any] | None = None  # training jobs: the job it continues, the jobs that continue it
    stop_request: dict[str, Any] | None = None  # "Stop after the next checkpoint", when one was asked

    def to_json(self) -> dict[str, Any]:
        return {**self.status.to_json(), "progress": self.progress, "usage": self.usage, "links": self.links,
                "stop_request": self.stop_request}  # fmt: skip


def job_report(session: HubSession, job_id: str, *, usage_seconds: float = 2.0) -> JobReport:
    """One of the visitor's jobs with its diagnosis once ended, its progress (from its log tail: one bounded read)
    and its usage (while it runs: live metrics read for at most `usage_seconds`, 0 for none)."""
    job_id = validate_job_id(job_id)  # before any Hub call
    flavors, _ = session.hardware()
    backend, job = find_job(job_backends(session), job_id)
    details = job_details(job, flavors)
    training = details.kind == "train"
    lines: list[str] = []
    if details.stage != "SCHEDULING" and (training or details.stage == "ERROR"):
        tail = ACCURACY_TAIL if training else DIAGNOSIS_TAIL
        lines = safe_lines(backend.job_logs(job.id, namespace=job.owner.name, tail=tail))
    diagnosis = diagnose_job(backend, job, flavors, lines=lines)
    status = JobStatus(details, diagnosis, fixed_config(details.config, diagnosis))

    usage, window = Usage(), 0.0
    if details.stage == "RUNNING" and usage_seconds > 0:
        started = time.monotonic()
        seconds = min(usage_seconds, USAGE_MAX_S)
        usage.add(backend.job_metrics(job.id, namespace=job.owner.name, max_samples=max(1, math.ceil(seconds)),
                                      max_seconds=seconds))  # fmt: skip
        window = time.monotonic() - started
    progress_peak = peak_gpu_memory(lines)
    comparison = None
    if training:
        comparison = compare(
            details.estimate, running_s=details.running_s if details.stage != "SCHEDULING" else 0.0,
            usd_per_hour=details.usd_per_hour, progress_peak_gb=progress_peak,
            metrics_peak_gb=usage.peaks.gpu_mem_gb if usage.peaks.has_gpu else None,
        )  # fmt: skip
    links = stop = None
    if training:  # as My jobs shows them (the caller's own job: find_job read it with the caller's session)
        with contextlib.suppress(TrainerSpaceError):  # the continuations cannot be listed just now: no links
            links = job_links(session, job).to_json()
        request = stop_state(job.id)
        stop = request.to_json() if request is not None else None
    return JobReport(
        status,
        progress_json(lines, details) if training else None,
        usage_json(usage, details.stage, comparison, window_s=window, progress_peak_gb=progress_peak),
        links,
        stop,
    )
