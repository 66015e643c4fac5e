"""Progress a training job reports itself: the template's `TRAINER_SPACE_PROGRESS {...}` log lines.

`job_templates/train.py` prints one such line (a fixed prefix, then one JSON object) on every logging step and at
the end: step, total steps, tokens per second, the peak GPU memory PyTorch reserved, the ETA it computed and the
time it wrote the line. My jobs (and `/job_status`) show a progress bar and ETA from the latest one (never from
whatever the last log line happens to be), and say plainly when a RUNNING job has reported no progress for a while.

A line may also say where checkpoints stand: `"checkpoint": {"step": 500, "saved_t": <unix s>, "pushed_t": <unix s
or null>}` (saved on the job's disk; pushed to the Hub, where a resumed job finds it). `last_checkpoint` reads the
latest of each over every line; jobs whose lines carry none have none.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

PREFIX = "TRAINER_SPACE_PROGRESS "  # the template's PROGRESS_PREFIX: keep both the same
_DECODER = json.JSONDecoder()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class Progress:
    """One progress line: where training is, and what it measured."""

    step: int
    total: int | None
    t: float | None  # when the job wrote it (unix seconds)
    eta_s: float | None = None
    tokens_per_s: float | None = None
    peak_gpu_mem_gb: float | None = None  # GiB PyTorch reserved on this process's GPU at most (None on CPU)
    loss: float | None = None
    done: bool = False  # the line written when training ended
    checkpoint_step: int | None = None  # the checkpoint this line reports (None: it reports none)
    checkpoint_saved_t: float | None = None  # when it was saved on the job's disk
    checkpoint_pushed_t: float | None = None  # when it was pushed to the Hub (None: not yet)

    @property
    def fraction(self) -> float | None:
        """Steps done over total steps (0 to 1), None when the total is unknown."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.step / self.total))

    def eta_now(self, now: float | None = None) -> float | None:
        """Seconds left, as of `now`: the job's ETA minus the time since it wrote the line."""
        if self.done:
            return 0.0
        if self.eta_s is None:
            return None
        since = max(0.0, (now or time.time()) - self.t) if self.t else 0.0
        return max(0.0, self.eta_s - since)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Progress | None:
        return _progress(data) if data else None


def _progress(data: Any) -> Progress | None:
    if not isinstance(data, dict):
        return None
    step = _number(data.get("step"))
    if step is None or step < 0:
        return None
    total = _number(data.get("total"))
    checkpoint = data.get("checkpoint") if isinstance(data.get("checkpoint"), dict) else {}
    saved_step = _number(checkpoint.get("step"))
    return Progress(
        step=int(step),
        total=int(total) if total and total > 0 else None,
        t=_number(data.get("t")),
        eta_s=_number(data.get("eta_s")),
        tokens_per_s=_number(data.get("tokens_per_s")),
        peak_gpu_mem_gb=_number(data.get("peak_gpu_mem_gb")),
        loss=_number(data.get("loss")),
        done=data.get("done") is True,
        checkpoint_step=int(saved_step) if saved_step is not None and saved_step >= 0 else None,
        checkpoint_saved_t=_number(checkpoint.get("saved_t")),
        checkpoint_pushed_t=_number(checkpoint.get("pushed_t")),
    )


MAX_LINE = 4096  # characters: a real progress line is about 200


def parse_progress(line: str) -> Progress | None:
    """The progress a log line reports (None for any other line). The prefix may follow other text on the same
    line (a progress bar redrawn without a newline)."""
    at = line.find(PREFIX)
    if at < 0 or len(line) - at > MAX_LINE:  # a job prints what it likes: a huge or deeply nested line is not one
        return None
    try:
        data, _ = _DECODER.raw_decode(line, at + len(PREFIX))
    except (ValueError, RecursionError):
        return None
    return _progress(data)


def latest_progress(lines: Iterable[str]) -> Progress | None:
    """The last progress line among `lines`."""
    latest = None
    for line in lines:
        found = parse_progress(line)
        if found is not None:
            latest = found
    return latest


@dataclass(frozen=True)
class Checkpoint:
    """The last checkpoint the progress lines say was saved, and the last they say was pushed to the Hub."""

    saved_step: int | None
    saved_t: float | None
    pushed_step: int | None
    pushed_t: float | None


def last_checkpoint(lines: Iterable[str]) -> Checkpoint | None:
    """The latest checkpoint saved and the latest pushed, as the progress lines report them (None: they report
    none)."""
    saved: tuple[int, float | None] | None = None
    pushed: tuple[int, float | None] | None = None
    for p in map(parse_progress, lines):
        if p is None or p.checkpoint_step is None:
            continue
        if saved is None or p.checkpoint_step >= saved[0]:
            saved = (p.checkpoint_step, p.checkpoint_saved_t)
        if p.checkpoint_pushed_t is not None and (pushed is None or p.checkpoint_step >= pushed[0]):
            pushed = (p.checkpoint_step, p.checkpoint_pushed_t)
    if saved is None:
        return None
    return Checkpoint(saved[0], saved[1], pushed[0] if pushed else None, pushed[1] if pushed else None)


def peak_gpu_memory(lines: Iterable[str]) -> float | None:
    """The largest peak GPU memory (GiB) the progress lines report (None without a GPU or without lines)."""
    peaks = [p.peak_gpu_mem_gb for p in map(parse_progress, lines) if p is not None and p.peak_gpu_mem_gb]
    return max(peaks) if peaks else None


def format_seconds(seconds: float | None) -> str:
    """`3725` -> `1 h 02 min`, `95` -> `1 min 35 s`, None -> `—`."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


@dataclass(frozen=True)
class ProgressReport:
    """What My jobs says about a job's progress: the bar's fraction, the ETA and a plain sentence."""

    fraction: float | None
    eta_s: float | None
    text: str
    stalled: bool = False
    idle_s: float | None = None  # RUNNING: seconds since the last progress line (or since it started, without one)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def progress_report(
    progress: Progress | None,
    stage: str,
    *,
    started_at: float | None,
    now: float | None = None,
    stall_after_s: float = 600.0,
) -> ProgressReport:
    """The progress of a job at `now`: from its latest progress line, its stage and when it started running.

    A RUNNING job whose latest line is older than `stall_after_s` (or that has written none that long after it
    started) is `stalled`, and the text says so in minutes.
    """
    now = now or time.time()
    if stage == "SCHEDULING":
        return ProgressReport(None, None, "Waiting for hardware: training has not started.")
    if progress is None:
        if stage != "RUNNING":
            return ProgressReport(None, None, "This job reported no training progress.")
        running_s = max(0.0, now - started_at) if started_at is not None else 0.0
        if running_s > stall_after_s:
            return ProgressReport(
                None, None, f"No progress for {running_s / 60:.0f} minutes while RUNNING: the job has not reported a "
                "single training step yet (still installing, downloading or stuck?). Look at its logs.", stalled=True,
                idle_s=running_s,
            )  # fmt: skip
        return ProgressReport(None, None, "Starting: no training step reported yet.", idle_s=running_s)
    steps = f"step {progress.step}" + (f" of {progress.total}" if progress.total else "")
    rate = f", {progress.tokens_per_s:,.0f} tokens/s" if progress.tokens_per_s else ""
    if stage != "RUNNING" or progress.done:
        ended = "Training finished" if progress.done else f"Ended ({stage.lower()})"
        return ProgressReport(progress.fraction, 0.0 if progress.done else None, f"{ended} at {steps}{rate}.")
    eta = progress.eta_now(now)
    # the job's own clock, kept between its start and now (a job may print any time at all)
    age = now - min(max(progress.t, started_at or 0.0), now) if progress.t else 0.0
    if age > stall_after_s:
        return ProgressReport(
            progress.fraction, None, f"No progress for {age / 60:.0f} minutes while RUNNING (last at {steps}): the "
            "job may be stuck. Look at its logs; cancel it if it does not move.", stalled=True, idle_s=age,
        )  # fmt: skip
    text = f"{steps.capitalize()}{rate}, about {format_seconds(eta)} left."
    return ProgressReport(progress.fraction, eta, text, idle_s=age)
