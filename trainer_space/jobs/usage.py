"""What a job uses: the metric samples of a backend (the Hub's format) as series for charts, with peaks kept.

A sample is the dict the Hub's `GET /api/jobs/{ns}/{id}/metrics` sends once per second (the Local backend
produces the same): cpu_usage_pct, cpu_millicores, memory_used_bytes, memory_total_bytes, rx_bps, tx_bps,
gpus {id: {utilization, memory_used_bytes, memory_total_bytes}}. Samples carry no time: they are stamped one
second apart, ending when they were read. Memory is in GiB (what the estimate calls GB).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

GIB = 1024**3
MAX_POINTS = 900  # points kept for the charts (15 minutes at one per second); peaks cover every sample seen


def _num(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return float(value)


@dataclass(frozen=True)
class GpuUse:
    id: str
    utilization: float  # percent
    memory_gb: float
    total_gb: float


@dataclass(frozen=True)
class UsageSample:
    t: float  # unix seconds
    cpu_pct: float
    cpu_cores: float
    ram_gb: float
    ram_total_gb: float
    gpus: tuple[GpuUse, ...] = ()

    @classmethod
    def from_hub(cls, raw: dict[str, Any], t: float) -> UsageSample:
        """A sample as the Hub (or the Local backend) sends it, stamped `t`; missing fields read as 0."""
        gpus = raw.get("gpus") if isinstance(raw.get("gpus"), dict) else {}
        return cls(
            t=t,
            cpu_pct=_num(raw.get("cpu_usage_pct")),
            cpu_cores=_num(raw.get("cpu_millicores")) / 1000,
            ram_gb=_num(raw.get("memory_used_bytes")) / GIB,
            ram_total_gb=_num(raw.get("memory_total_bytes")) / GIB,
            gpus=tuple(
                GpuUse(
                    str(gid),
                    _num(g.get("utilization")),
                    _num(g.get("memory_used_bytes")) / GIB,
                    _num(g.get("memory_total_bytes")) / GIB,
                )
                for gid, g in sorted(gpus.items())
                if isinstance(g, dict)
            ),
        )


@dataclass
class Peaks:
    """The highest values seen, over every sample (kept when old points leave the charts)."""

    gpu_mem_gb: float | None = None  # the most memory any one GPU used
    gpu_total_gb: float | None = None
    gpu_util_pct: float | None = None
    cpu_pct: float = 0.0
    ram_gb: float = 0.0
    ram_total_gb: float = 0.0
    samples: int = 0
    gpus: dict[str, dict[str, float]] = field(default_factory=dict)  # per GPU id: memory_gb, total_gb, utilization

    def add(self, s: UsageSample) -> None:
        self.samples += 1
        self.cpu_pct = max(self.cpu_pct, s.cpu_pct)
        self.ram_gb = max(self.ram_gb, s.ram_gb)
        self.ram_total_gb = max(self.ram_total_gb, s.ram_total_gb)
        for g in s.gpus:
            self.gpu_mem_gb = max(self.gpu_mem_gb or 0.0, g.memory_gb)
            self.gpu_total_gb = max(self.gpu_total_gb or 0.0, g.total_gb)
            self.gpu_util_pct = max(self.gpu_util_pct or 0.0, g.utilization)
            peak = self.gpus.setdefault(g.id, {"memory_gb": 0.0, "total_gb": 0.0, "utilization": 0.0})
            for key, value in (("memory_gb", g.memory_gb), ("total_gb", g.total_gb), ("utilization", g.utilization)):
                peak[key] = max(peak[key], value)

    @property
    def has_gpu(self) -> bool:
        return self.gpu_mem_gb is not None


@dataclass
class Usage:
    """A job's usage so far: the last MAX_POINTS samples for charts, and the peaks of all of them."""

    samples: deque[UsageSample] = field(default_factory=lambda: deque(maxlen=MAX_POINTS))
    peaks: Peaks = field(default_factory=Peaks)

    def add(self, raw_samples: list[dict[str, Any]], *, read_at: float | None = None) -> list[UsageSample]:
        """Add samples read together (stamped one second apart, the last at `read_at`); returns them."""
        end = read_at or time.time()
        n = len(raw_samples)
        if self.samples:  # never before (or at) a sample already kept
            end = max(end, self.samples[-1].t + n)
        added = [UsageSample.from_hub(raw, end - (n - 1 - i)) for i, raw in enumerate(raw_samples)]
        for sample in added:
            self.samples.append(sample)
            self.peaks.add(sample)
        return added

    def to_json(self) -> dict[str, Any]:
        """For a Gradio State: the points and the peaks."""
        points = [
            {"t": s.t, "cpu": s.cpu_pct, "cores": s.cpu_cores, "ram": s.ram_gb, "ram_total": s.ram_total_gb,
             "gpus": [[g.id, g.utilization, g.memory_gb, g.total_gb] for g in s.gpus]}
            for s in self.samples
        ]  # fmt: skip
        return {
            "points": points,
            "peaks": {**vars(self.peaks), "gpus": {k: dict(v) for k, v in self.peaks.gpus.items()}},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Usage:
        usage = cls()
        if not data:
            return usage
        for p in data.get("points") or []:
            gpus = tuple(GpuUse(str(g[0]), _num(g[1]), _num(g[2]), _num(g[3])) for g in p.get("gpus") or [])
            usage.samples.append(UsageSample(_num(p.get("t")), _num(p.get("cpu")), _num(p.get("cores")),
                                             _num(p.get("ram")), _num(p.get("ram_total")), gpus))  # fmt: skip
        known = {k: v for k, v in (data.get("peaks") or {}).items() if k in Peaks.__dataclass_fields__}
        gpus = known.pop("gpus", None)
        usage.peaks = Peaks(**known)
        if isinstance(gpus, dict):
            usage.peaks.gpus = {str(k): {n: _num(v.get(n)) for n in ("memory_gb", "total_gb", "utilization")}
                                for k, v in gpus.items() if isinstance(v, dict)}  # fmt: skip
        return usage

    # ------------------------------------------------------------------ series for charts
    def gpu_rows(self) -> list[dict[str, Any]]:
        """One row per sample and GPU: time, gpu ("GPU 0", ...), memory_gb, utilization."""
        return [
            {"time": s.t, "gpu": f"GPU {i}", "memory_gb": round(g.memory_gb, 3), "utilization": g.utilization}
            for s in self.samples
            for i, g in enumerate(s.gpus)
        ]

    def host_rows(self) -> list[dict[str, Any]]:
        """One row per sample and series: time, series ("CPU %" or "RAM %"), percent (RAM: of the machine's)."""
        rows = []
        for s in self.samples:
            rows.append({"time": s.t, "series": "CPU %", "percent": round(s.cpu_pct, 1)})
            ram = 100 * s.ram_gb / s.ram_total_gb if s.ram_total_gb else 0.0
            rows.append({"time": s.t, "series": "RAM %", "percent": round(ram, 1)})
        return rows

    def summary(self) -> str:
        """The peaks in one line (says when there is no GPU)."""
        p = self.peaks
        if not p.samples:
            return "No usage sample yet (a job sends them only while it runs)."
        parts = []
        if p.has_gpu:
            parts.append(f"GPU memory peak {p.gpu_mem_gb:.1f} of {p.gpu_total_gb:.0f} GB, "
                         f"utilisation peak {p.gpu_util_pct:.0f}%")  # fmt: skip
        else:
            parts.append("no GPU")
        parts.append(f"CPU peak {p.cpu_pct:.0f}%")
        parts.append(f"RAM peak {p.ram_gb:.1f}" + (f" of {p.ram_total_gb:.0f} GB" if p.ram_total_gb else " GB"))
        return f"Peaks over {p.samples} samples: " + ", ".join(parts) + "."
