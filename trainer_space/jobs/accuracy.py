"""The estimate every job carries, beside what the job really used; and the estimator's accuracy over the visitor's
finished jobs, so that real GPU evidence of the estimator accumulates with use.

A training job carries its estimate in its environment (`ESTIMATE_ENV`, JSON of numbers and the flavor name:
never a secret, visible on inspect like the config). The measurement: the peak GPU memory from the job's own
progress lines (what PyTorch reserved) or from live metrics (the Hub's per-GPU memory), the running time from the
Hub's durations, the cost from running time x the flavor's price.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from huggingface_hub import JobInfo

from ..hub.hardware import Flavor, get_flavor
from ..hub.session import HubSession
from .backends import job_backends, list_all
from .progress import peak_gpu_memory
from .spec import APP_LABEL

if TYPE_CHECKING:
    from ..estimate.model import FlavorEstimate

ESTIMATE_ENV = "TRAINER_SPACE_ESTIMATE"
ACCURACY_JOBS = 20  # finished jobs the accuracy view reads (one log tail each)
ACCURACY_TAIL = 300  # log lines read per job for its progress lines


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


@dataclass(frozen=True)
class JobEstimate:
    """What the estimator said before the job ran, on the job's flavor."""

    flavor: str
    gpus: int
    peak_gpu_mem_gb: float | None  # per GPU, GiB (None on a machine without GPU)
    hours: float
    cost_usd: float

    def to_env(self) -> dict[str, str]:
        """The job's environment entry (numbers and a flavor name only)."""
        return {ESTIMATE_ENV: json.dumps(asdict(self), separators=(",", ":"))}

    @classmethod
    def from_flavor_estimate(cls, fit: FlavorEstimate) -> JobEstimate:
        gpu = fit.flavor.gpus > 0
        return cls(
            flavor=fit.flavor.name,
            gpus=fit.flavor.gpus,
            peak_gpu_mem_gb=round(fit.peak_gib, 3) if gpu else None,
            hours=round(fit.hours, 4),
            cost_usd=round(fit.cost_usd, 4),
        )

    @classmethod
    def from_env(cls, env: dict[str, Any] | None) -> JobEstimate | None:
        """The estimate a job carries (None for jobs without one, or one that does not parse)."""
        raw = (env or {}).get(ESTIMATE_ENV)
        try:
            data = json.loads(raw) if raw else None
        except (TypeError, ValueError):
            return None
        if not isinstance(data, dict) or _float(data.get("hours")) is None:
            return None
        return cls(
            flavor=str(data.get("flavor") or "")[:64],
            gpus=int(_float(data.get("gpus")) or 0),
            peak_gpu_mem_gb=_float(data.get("peak_gpu_mem_gb")),
            hours=_float(data.get("hours")) or 0.0,
            cost_usd=_float(data.get("cost_usd")) or 0.0,
        )


def ratio(measured: float | None, estimated: float | None) -> float | None:
    """measured / estimated (None when either is unknown or the estimate is zero)."""
    if measured is None or not estimated:
        return None
    return round(measured / estimated, 2)


@dataclass(frozen=True)
class Comparison:
    """Estimate beside measurement for one job: peak GPU memory (GiB), running time (s), cost ($), with ratios."""

    estimate: JobEstimate | None
    peak_gpu_mem_gb: float | None
    running_s: float | None
    cost_usd: float | None
    memory_source: str = ""  # "progress lines", "live metrics" or ""

    @property
    def memory_ratio(self) -> float | None:
        return ratio(self.peak_gpu_mem_gb, self.estimate.peak_gpu_mem_gb if self.estimate else None)

    @property
    def time_ratio(self) -> float | None:
        return ratio(self.running_s, self.estimate.hours * 3600 if self.estimate else None)

    @property
    def cost_ratio(self) -> float | None:
        return ratio(self.cost_usd, self.estimate.cost_usd if self.estimate else None)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(what, estimate, measured, ratio) as text, for a table."""
        est = self.estimate

        def fmt(value: float | None, unit: str) -> str:
            if value is None:
                return "—"
            return {"GB": f"{value:.1f} GB", "min": f"{value / 60:.1f} min", "$": f"${value:.2f}"}[unit]

        def rat(value: float | None) -> str:
            return f"{value:.2f}x" if value is not None else "—"

        memory = fmt(self.peak_gpu_mem_gb, "GB") + (f" ({self.memory_source})" if self.memory_source else "")
        return [
            ("Peak GPU memory (per GPU)", fmt(est.peak_gpu_mem_gb if est else None, "GB"), memory,
             rat(self.memory_ratio)),
            ("Running time", fmt(est.hours * 3600 if est else None, "min"), fmt(self.running_s, "min"),
             rat(self.time_ratio)),
            ("Cost", fmt(est.cost_usd if est else None, "$"), fmt(self.cost_usd, "$"), rat(self.cost_ratio)),
        ]  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "estimate": asdict(self.estimate) if self.estimate else None,
            "measured": {"peak_gpu_mem_gb": self.peak_gpu_mem_gb, "running_s": self.running_s,
                         "cost_usd": self.cost_usd, "memory_source": self.memory_source},
            "ratio": {"peak_gpu_mem": self.memory_ratio, "time": self.time_ratio, "cost": self.cost_ratio},
        }  # fmt: skip


def compare(
    estimate: JobEstimate | None,
    *,
    running_s: float | None,
    usd_per_hour: float | None,
    progress_peak_gb: float | None = None,
    metrics_peak_gb: float | None = None,
) -> Comparison:
    """The comparison of one job; the live metrics' GPU peak wins over the progress lines' (it sees every process)."""
    if metrics_peak_gb is not None:
        peak, source = metrics_peak_gb, "live metrics"
    elif progress_peak_gb is not None:
        peak, source = progress_peak_gb, "progress lines"
    else:
        peak, source = None, ""
    cost = round(running_s / 3600 * usd_per_hour, 4) if running_s is not None and usd_per_hour is not None else None
    return Comparison(estimate, peak, running_s, cost, source)


# ---------------------------------------------------------------------------------------------- accuracy view
ACCURACY_COLUMNS = (
    "job", "finished", "where", "flavor", "method", "model",
    "est_peak_gb", "peak_gb", "peak_ratio", "est_min", "min", "time_ratio", "est_cost_usd", "cost_usd", "cost_ratio",
)  # fmt: skip


def _running_s(job: JobInfo) -> float | None:
    if job.durations is not None and job.durations.running_secs is not None:
        return float(job.durations.running_secs)
    if job.started_at and job.finished_at:
        return max(0.0, (job.finished_at - job.started_at).total_seconds())
    return None


def accuracy_row(job: JobInfo, lines: list[str], flavors: tuple[Flavor, ...] | None = None) -> dict[str, Any] | None:
    """One finished training job's estimate beside its measurement (None for a job without an estimate)."""
    estimate = JobEstimate.from_env(job.environment)
    if estimate is None:
        return None
    flavor = get_flavor(str(job.flavor or estimate.flavor), flavors)
    price = flavor.usd_per_hour if flavor else (0.0 if getattr(job, "backend", "") == "local" else None)
    c = compare(estimate, running_s=_running_s(job), usd_per_hour=price, progress_peak_gb=peak_gpu_memory(lines))
    labels = job.labels or {}
    return {
        "job": job.id,
        "finished": job.finished_at.strftime("%Y-%m-%d %H:%M") if job.finished_at else "",
        "where": "this machine" if getattr(job, "backend", "") == "local" else "HF Jobs",
        "flavor": str(job.flavor or ""),
        "method": labels.get("method", ""),
        "model": labels.get("model", ""),
        "est_peak_gb": estimate.peak_gpu_mem_gb,
        "peak_gb": round(c.peak_gpu_mem_gb, 2) if c.peak_gpu_mem_gb is not None else None,
        "peak_ratio": c.memory_ratio,
        "est_min": round(estimate.hours * 60, 1),
        "min": round(c.running_s / 60, 1) if c.running_s is not None else None,
        "time_ratio": c.time_ratio,
        "est_cost_usd": round(estimate.cost_usd, 2),
        "cost_usd": round(c.cost_usd, 2) if c.cost_usd is not None else None,
        "cost_ratio": c.cost_ratio,
    }


def estimate_accuracy(session: HubSession, *, limit: int = ACCURACY_JOBS) -> list[dict[str, Any]]:
    """The visitor's last `limit` COMPLETED training jobs that carry an estimate, newest first, each with its
    estimate, its measurement and their ratios (one log tail read per job, for its progress lines)."""
    flavors, _ = session.hardware()
    rows: list[dict[str, Any]] = []
    for backend in job_backends(session, action="see your jobs"):
        jobs = [j for j in list_all([backend], stages=["COMPLETED"]) if (j.labels or {}).get(APP_LABEL) == "train"]
        for job in [j for j in jobs if JobEstimate.from_env(j.environment)][:limit]:
            lines = backend.job_logs(job.id, namespace=job.owner.name, tail=ACCURACY_TAIL)
            row = accuracy_row(job, lines, flavors)
            if row is not None:
                rows.append(row | {"_created": job.created_at.timestamp() if job.created_at else 0.0})
    rows.sort(key=lambda r: r["_created"], reverse=True)
    return [{k: v for k, v in r.items() if k != "_created"} for r in rows[:limit]]


RATIOS = (("peak_ratio", "peak_gpu_mem", "peak GPU memory"), ("time_ratio", "time", "time"),
          ("cost_ratio", "cost", "cost"))  # fmt: skip


def median_ratios(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """The median measured / estimated ratio of each measure over `rows` (None where no row measured it)."""
    out: dict[str, float | None] = {}
    for key, name, _ in RATIOS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[name] = round(statistics.median(values), 2) if values else None
    return out


def accuracy_summary(rows: list[dict[str, Any]]) -> str:
    """The median ratios in one sentence (measured / estimated: above 1, the estimate was low)."""
    if not rows:
        return "No finished training job with an estimate yet: every job you run from this app adds one row."
    medians = median_ratios(rows)
    parts = [f"{what} {medians[name]:.2f}x" if medians[name] is not None else f"{what} not measured"
             for _, name, what in RATIOS]  # fmt: skip
    return f"{len(rows)} finished job(s). Median measured / estimated: " + ", ".join(parts) + "."


def accuracy_answer(session: HubSession, *, limit: int = ACCURACY_JOBS) -> dict[str, Any]:
    """`/estimate_accuracy`: the rows, the median ratios and the sentence My jobs' "Estimate accuracy" view shows."""
    rows = estimate_accuracy(session, limit=limit)
    return {"jobs": rows, "count": len(rows), "median_ratio": median_ratios(rows), "summary": accuracy_summary(rows)}
