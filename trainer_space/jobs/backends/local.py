"""Local: the same job templates, run as subprocesses on the machine that runs the app (never on a Space).

* Jobs are rows of a SQLite database under `TRAINER_SPACE_HOME` (config, stage, times, exit code, log file,
  output folder), so they survive a restart of the app. A job that was running when the app stopped is marked
  ERROR with the reason when the app starts again (its orphaned processes are stopped).
* A queue runs `TRAINER_SPACE_LOCAL_MAX_JOBS` jobs at a time (1 by default); the others wait in SCHEDULING.
* Each job gets a folder (`jobs/<id>/`): the template's exact text, `log.txt` (stdout and stderr), `output/`.
  It runs in its own process group: cancel and timeout stop the whole group (TERM, then KILL).
* The templates' pinned dependencies come from `TRAINER_SPACE_LOCAL_PYTHON` (a Python that has them), or from
  an environment prepared once per dependency set with uv (`uv pip install --torch-backend auto`, so the torch
  build matches this machine's GPU or CPU); its progress goes to the job's log.
* Stages and messages are the Hub's (SCHEDULING, RUNNING, COMPLETED, ERROR, CANCELED; "Job failed with exit
  code: 1", "Job timeout exceeded (Ns)"), so the diagnosis reads local jobs like Hub jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from huggingface_hub import JobInfo

from ...errors import JobNotFound
from ...hub.hardware import Flavor
from ...hub.session import TERMINAL_STAGES
from ...hub.streams import read_abandoned
from ...settings import get_settings
from ...validation import validate_job_id
from ..spec import GPUS_ENV
from .base import JOB_DIR, LLAMA_CPP_DIR, LOCAL, JobLaunch
from .local_env import EnvironmentNotReady, prepare_environment, template_needs

LOCAL_FLAVOR = "local"
LOCAL_OWNER = "local"
STOP_GRACE_S = 10.0  # between SIGTERM and SIGKILL
# never passed on to a job: tokens of the machine or of the app (the job gets the visitor's own, when signed in)
_NOT_INHERITED = {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRAINER_SPACE_LOCAL_TOKEN"}
_COLUMNS = (
    "id", "owner", "kind", "stage", "message", "created_at", "started_at", "finished_at", "exit_code", "pid",
    "start_ticks", "flavor", "timeout_s", "labels", "env", "command", "name", "job_dir",
)  # fmt: skip


def _now() -> float:
    return time.time()


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if ts else None


def _visible_line(line: str) -> str:
    """A log line as a terminal shows it: a progress bar rewrites itself with carriage returns, keep the last."""
    parts = [p for p in line.rstrip("\n").split("\r") if p.strip()]
    return parts[-1] if parts else ""


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (so a reused pid is never mistaken for ours)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _running(pid: int) -> bool:
    """Whether the process group led by `pid` still runs (a zombie, stopped but not yet reaped, does not)."""
    try:
        os.killpg(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, PermissionError, FileNotFoundError, IndexError):
        return False


def _stop_group(pid: int, ticks: int | None, grace_s: float = STOP_GRACE_S) -> None:
    """TERM the process group led by `pid` (only if it is still the process we started), then KILL."""
    if ticks is not None and _start_ticks(pid) != ticks:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _running(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _group_usage(pgid: int) -> tuple[dict[tuple[int, int], int], int] | None:
    """The CPU clock ticks used by each process of the process group `pgid` (keyed by pid and start time, so a
    reused pid is another process) and their resident bytes together (None: none left)."""
    ticks: dict[tuple[int, int], int] = {}
    rss = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 21 and fields[2] == str(pgid) and fields[0] != "Z":
            ticks[(int(entry.name), int(fields[19]))] = int(fields[11]) + int(fields[12])  # utime + stime
            rss += int(fields[21]) * page
    return (ticks, rss) if ticks else None


def cpu_ticks_between(before: dict[tuple[int, int], int], after: dict[tuple[int, int], int]) -> int:
    """CPU ticks the group used between two readings: each process's own increase (one that started meanwhile:
    all of its ticks). A process that left the group meanwhile takes its ticks with it: never counted as negative."""
    return sum(max(0, used - before.get(key, 0)) for key, used in after.items())


def _gpu_usage() -> dict[str, dict[str, int]]:
    """This machine's NVIDIA GPUs as the Hub reports them (whole GPUs: nvidia-smi); {} without any."""
    if not shutil.which("nvidia-smi"):
        return {}
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=uuid,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout  # fmt: skip
        gpus = {}
        for row in out.strip().splitlines():
            uuid_, util, used, total = (c.strip() for c in row.split(","))
            gpus[uuid_.removeprefix("GPU-")[:8]] = {
                "utilization": int(float(util)), "memory_used_bytes": int(float(used) * 1024**2),
                "memory_total_bytes": int(float(total) * 1024**2),
            }  # fmt: skip
        return gpus
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}


def _memory_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def group_metrics(pid: int, ticks: int | None, *, max_samples: int, max_seconds: float,
                  interval_s: float = 1.0) -> list[dict[str, Any]]:  # fmt: skip
    """Usage samples of the process group led by `pid`, in the Hub's format, one per `interval_s`: CPU (100% is one
    core) and resident memory of the job's processes, the machine's GPUs (nvidia-smi; none: `gpus` is empty)."""
    if ticks is not None and _start_ticks(pid) != ticks:
        return []
    first = _group_usage(pid)
    if first is None:
        return []
    samples: list[dict[str, Any]] = []
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + max_seconds
    prev_ticks, prev_t = first[0], time.monotonic()
    total = _memory_total()
    while len(samples) < max_samples and time.monotonic() + interval_s <= deadline + 0.05:
        time.sleep(interval_s)
        now = time.monotonic()
        usage = _group_usage(pid)
        if usage is None:
            break
        cpu = 100.0 * cpu_ticks_between(prev_ticks, usage[0]) / hz / max(now - prev_t, 1e-6)
        prev_ticks, prev_t = usage[0], now
        samples.append({
            "cpu_usage_pct": round(cpu, 1), "cpu_millicores": (os.cpu_count() or 1) * 1000,
            "memory_used_bytes": usage[1], "memory_total_bytes": total, "rx_bps": 0, "tx_bps": 0,
            "gpus": _gpu_usage(), "replica": "local",
        })  # fmt: skip
    return samples


# ---------------------------------------------------------------------------------------------- this machine
@lru_cache(maxsize=1)
def this_machine() -> Flavor:
    """This machine as a flavor (free): its NVIDIA GPUs from `nvidia-smi`, else its CPU and RAM."""
    cpu = os.cpu_count() or 1
    ram_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    disk_gb = shutil.disk_usage(Path.home()).free / 1e9
    gpus: list[tuple[str, float]] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout  # fmt: skip
            gpus = [(n.strip(), float(m) / 1024) for n, m in (row.split(",") for row in out.strip().splitlines())]
        except (OSError, subprocess.SubprocessError, ValueError):
            gpus = []
    if gpus:
        from ...hub.hardware import _gpu_model

        name, vram = gpus[0]
        pretty = f"This machine ({len(gpus)}x {name})"
        return Flavor(LOCAL_FLAVOR, pretty, len(gpus), _gpu_model(name), vram, cpu, ram_gb, disk_gb, 0.0)
    return Flavor(LOCAL_FLAVOR, f"This machine (CPU, {cpu} cores)", 0, None, 0.0, cpu, ram_gb, disk_gb, 0.0)


# ---------------------------------------------------------------------------------------------- the store
class LocalStore:
    """The jobs database: one row per job (SQLite, safe across threads and app restarts)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, owner TEXT, kind TEXT, stage TEXT, "
                "message TEXT, created_at REAL, started_at REAL, finished_at REAL, exit_code INTEGER, pid INTEGER, "
                "start_ticks INTEGER, flavor TEXT, timeout_s INTEGER, labels TEXT, env TEXT, command TEXT, "
                "name TEXT, job_dir TEXT)"
            )

    def insert(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [row.get(c) for c in _COLUMNS],
            )

    def update(self, job_id: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values if k in _COLUMNS)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*values.values(), job_id])

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return dict(row) if row else None

    def all(self, stages: list[str] | None = None) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC").fetchall()
        return [dict(r) for r in rows if not stages or r["stage"] in stages]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def job_info(row: dict[str, Any]) -> JobInfo:
    """A stored job as huggingface_hub's JobInfo (what My jobs and the diagnosis read for every backend)."""
    now = _now()
    started, finished = row["started_at"], row["finished_at"]
    durations = {
        "schedulingSecs": int((started or finished or now) - row["created_at"]),
        "runningSecs": int((finished or now) - started) if started else None,
        "totalSecs": int((finished or now) - row["created_at"]),
    }
    job = JobInfo(
        id=row["id"],
        createdAt=_iso(row["created_at"]),
        startedAt=_iso(started),
        finishedAt=_iso(finished),
        dockerImage="local",
        command=json.loads(row["command"] or "[]"),
        arguments=[],
        environment=json.loads(row["env"] or "{}"),
        secrets={},
        flavor=row["flavor"],
        labels=json.loads(row["labels"] or "{}"),
        status={"stage": row["stage"], "message": row["message"]},
        durations=durations,
        owner={"id": row["owner"], "name": row["owner"], "type": "user"},
    )
    job.url = ""  # a local job has no page
    job.backend = LOCAL  # type: ignore[attr-defined]
    job.job_dir = row["job_dir"]  # type: ignore[attr-defined]
    return job


# ---------------------------------------------------------------------------------------------- environments
def local_dependencies() -> tuple[str, ...]:
    """What local jobs need: every job template's PEP 723 pins together (`local_env.template_needs`)."""
    return template_needs()[0]


def job_python(dependencies: tuple[str, ...], log: Any, on_prepare: Any = None) -> str:
    """A Python that has the templates' pinned dependencies: `TRAINER_SPACE_LOCAL_PYTHON` when set, else an
    environment prepared once from the machine's package registries (`local_env.prepare_environment`: the app's own
    interpreter and its pip, the torch build for this machine). Progress goes to `log` (the job's log file);
    `on_prepare()` is called when the environment is not ready yet (it takes minutes).

    Raises EnvironmentNotReady (its cause and the setting that fixes it)."""
    settings = get_settings()
    if settings.local_python:
        return settings.local_python
    cuda = this_machine().gpus > 0
    return prepare_environment(dependencies, template_needs()[1], log, cuda=cuda, on_prepare=on_prepare)


def llama_cpp_dir(log: Any) -> str:
    """llama.cpp's converter tree: `TRAINER_SPACE_LLAMA_CPP_DIR`, else fetched once from PyPI (llama-cpp-python's
    sdist vendors it; about a minute), progress in the job's log."""
    from .llama_cpp import cache_root, llama_cpp_converter

    configured = get_settings().llama_cpp_dir
    if configured:
        return configured
    log.write(f"Fetching llama.cpp's converter into {cache_root()} (once) ...\n")
    log.flush()
    return str(llama_cpp_converter())


PREPARING = "Preparing the job's Python environment (once: a few minutes; progress in the log)"
INTERRUPTED = "The app stopped while this job was running; it was stopped when the app started again."


def interrupted_message(row: dict[str, Any]) -> str:
    """What is true of a job the app's restart interrupted, and how to continue: from the checkpoint it pushed (a
    job that pushes), from a checkpoint in its folder (by hand), or from the start."""
    command = json.loads(row["command"] or "[]")
    if row["kind"] != "train":
        return f"{INTERRUPTED} Submit it again."
    output = Path(row["job_dir"]) / "output"
    repo = json.loads(row["labels"] or "{}").get("output")
    if repo and "--push_to_hub=true" in command:
        return (f"{INTERRUPTED} Continue… in My jobs goes on from the last checkpoint it pushed to {repo} (or submit "
                "it again with resume_from_hub; none pushed yet: it starts over).")  # fmt: skip
    checkpoints = sorted(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if
                         p.name.split("-")[-1].isdigit() else -1)  # fmt: skip
    if not checkpoints:
        return f"{INTERRUPTED} It pushed nothing and saved no checkpoint in its folder: submit it again to start over."
    last = checkpoints[-1]
    return (f"{INTERRUPTED} It pushed nothing; its folder keeps {len(checkpoints)} checkpoint(s), the last {last}. "
            "Continue… in My jobs goes on from it; or submit it again to start over.")  # fmt: skip


# ---------------------------------------------------------------------------------------------- the backend
@dataclass
class _Running:
    process: subprocess.Popen
    deadline: float
    timeout_s: int
    canceled: bool = False
    timed_out: bool = False


class LocalBackend:
    """Jobs on this machine: a SQLite record each, a queue, one process group per running job."""

    def __init__(self, home: Path | None = None, max_jobs: int | None = None) -> None:
        settings = get_settings()
        self.home = home or settings.home
        self.max_jobs = max_jobs or settings.local_max_jobs
        self.store = LocalStore(self.home / "jobs.sqlite3")
        self._running: dict[str, _Running] = {}
        self._secrets: dict[str, dict[str, str]] = {}  # job id -> env secrets, in memory until the job starts
        self._preparing: dict[str, bool] = {}  # job id -> canceled, while its environment is being prepared
        self._lock = threading.Condition()
        self._closed = False
        self._recover()
        self._scheduler = threading.Thread(target=self._schedule_loop, name="local-jobs", daemon=True)
        self._scheduler.start()

    # ------------------------------------------------------------------ lifecycle
    def _recover(self) -> None:
        """Jobs left RUNNING by a previous run of the app: stop their processes, mark them ERROR with the reason.

        Queued jobs wait for their turn as before, except those that needed the visitor's token (it is never
        stored): they are marked ERROR too.
        """
        for row in self.store.all(["SCHEDULING"]):
            launch = Path(row["job_dir"]) / "launch.json"
            if launch.is_file() and json.loads(launch.read_text()).get("secrets"):
                self.store.update(row["id"], stage="ERROR", finished_at=_now(),
                                  message="The app restarted before this job started: submit it again.")  # fmt: skip
        for row in self.store.all(["RUNNING"]):
            if row["pid"]:
                _stop_group(row["pid"], row["start_ticks"], grace_s=2.0)
            self.store.update(row["id"], stage="ERROR", finished_at=_now(), message=interrupted_message(row))

    def close(self) -> None:
        """Stop scheduling (running jobs keep running; the next start of the app marks them)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._scheduler.join(timeout=5)
        self.store.close()

    # ------------------------------------------------------------------ the interface
    def submit(self, launch: JobLaunch, *, owner: str = LOCAL_OWNER, secrets: dict[str, str] | None = None) -> JobInfo:
        """Record the job and queue it; returns at once (the job runs in the background).

        `secrets` (the visitor's HF_TOKEN) reach the job's environment only, and are never written to disk.
        """
        job_id = uuid.uuid4().hex[:24]
        job_dir = self.home / "jobs" / job_id
        (job_dir / "output").mkdir(parents=True)
        script = job_dir / launch.template.name
        script.write_text(launch.template.text, encoding="utf-8")
        args = [a.replace(JOB_DIR, str(job_dir)) for a in launch.args]
        env = {k: v.replace(JOB_DIR, str(job_dir)) for k, v in launch.env.items()} | gpu_env(launch)
        command = [launch.template.name, *args]
        self.store.insert({
            "id": job_id, "owner": owner, "kind": launch.kind, "stage": "SCHEDULING",
            "message": None, "created_at": _now(), "flavor": LOCAL_FLAVOR, "timeout_s": launch.timeout_s,
            "labels": json.dumps(launch.labels), "env": json.dumps(env), "command": json.dumps(command),
            "name": launch.name, "job_dir": str(job_dir),
        })  # fmt: skip
        needs = json.dumps({
            "dependencies": list(local_dependencies()), "secrets": sorted(secrets or {}),
            "tools": list(launch.tools),
        })  # fmt: skip
        (job_dir / "launch.json").write_text(needs)
        with self._lock:
            if secrets:
                self._secrets[job_id] = dict(secrets)
            self._lock.notify_all()
        return self.find_job(job_id)

    def list_jobs(self, *, namespaces: list[str] | None = None, stages: list[str] | None = None) -> list[JobInfo]:
        return [job_info(r) for r in self.store.all(stages)]

    def find_job(self, job_id: str) -> JobInfo:
        row = self.store.get(validate_job_id(job_id))
        if row is None:
            raise JobNotFound(job_id)
        return job_info(row)

    def job_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = 200) -> list[str]:
        path = self._log_path(job_id)
        if not path.is_file():
            return []
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = deque((_visible_line(line) for line in fh), maxlen=tail) if tail else [_visible_line(x) for x in fh]
        return list(lines)

    def follow_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = None) -> Iterator[str]:
        """The last `tail` lines, then new ones as the job writes them, until it ends."""
        path = self._log_path(job_id)
        yield from self.job_logs(job_id, tail=tail)
        position = path.stat().st_size if path.is_file() else 0
        partial = ""
        while True:
            ended = self.find_job(job_id).status.stage in TERMINAL_STAGES
            if path.is_file():
                with open(path, encoding="utf-8", errors="replace") as fh:
                    fh.seek(position)
                    chunk = fh.read()
                    position = fh.tell()
                lines = (partial + chunk).split("\n")
                partial = lines.pop()
                yield from map(_visible_line, lines)
            if ended:
                if partial:
                    yield _visible_line(partial)
                return
            if read_abandoned():  # its reader gave it up (hub/streams.py): no thread left polling the file
                return
            time.sleep(0.25)

    def cancel_job(self, job_id: str, *, namespace: str | None = None) -> JobInfo:
        row = self.store.get(validate_job_id(job_id))
        if row is None:
            raise JobNotFound(job_id)
        with self._lock:
            running = self._running.get(job_id)
            if job_id in self._preparing:  # its environment is being prepared: it never starts (the environment
                self._preparing[job_id] = True  # is kept for the next job)
            if self.store.get(job_id)["stage"] == "SCHEDULING" and running is None:
                self.store.update(job_id, stage="CANCELED", finished_at=_now(), message="Canceled before it started")
            elif running is not None:
                running.canceled = True
        if running is not None:
            _stop_group(running.process.pid, None)
            running.process.wait(timeout=STOP_GRACE_S + 5)
            self._finish(job_id)  # (or its watcher did already)
        return self.find_job(job_id)

    def job_metrics(self, job_id: str, *, max_samples: int = 5, max_seconds: float = 5.0,
                    interval_s: float = 1.0) -> list[dict[str, Any]]:  # fmt: skip
        """The running job's usage, sampled like the Hub's metrics (one per `interval_s`); [] unless RUNNING."""
        row = self.store.get(validate_job_id(job_id))
        if row is None:
            raise JobNotFound(job_id)
        if row["stage"] != "RUNNING" or not row["pid"]:
            return []
        return group_metrics(row["pid"], row["start_ticks"], max_samples=max_samples, max_seconds=max_seconds,
                             interval_s=interval_s)  # fmt: skip

    # ------------------------------------------------------------------ running
    def _log_path(self, job_id: str) -> Path:
        row = self.store.get(validate_job_id(job_id))
        if row is None:
            raise JobNotFound(job_id)
        return Path(row["job_dir"]) / "log.txt"

    def _schedule_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                self._reap()
                free = self.max_jobs - len(self._running) - len(self._preparing)
                waiting = [r for r in reversed(self.store.all(["SCHEDULING"])) if r["id"] not in self._preparing]
                for row in waiting[: max(free, 0)]:
                    self._preparing[row["id"]] = False
                    threading.Thread(target=self._prepare_and_start, args=(row,), name=f"prepare-{row['id'][:8]}",
                                     daemon=True).start()  # fmt: skip
                self._lock.wait(timeout=0.5)

    def _note(self, job_id: str, message: str) -> None:
        """Say what a queued job is doing (its status message), unless the app is closing."""
        with self._lock:
            if not self._closed:
                self.store.update(job_id, message=message)

    def _prepare_and_start(self, row: dict[str, Any]) -> None:
        """The job's environment (minutes, the first time: never under the backend's lock, so that cancel, submit
        and other jobs' ends are answered meanwhile), then its process."""
        job_id, job_dir = row["id"], Path(row["job_dir"])
        log = open(job_dir / "log.txt", "a", encoding="utf-8", buffering=1)  # noqa: SIM115 (closed below)
        try:
            launch = json.loads((job_dir / "launch.json").read_text())
            python = job_python(
                tuple(launch["dependencies"]),
                log,
                on_prepare=lambda: self._note(job_id, PREPARING),
            )
            tools = {"llama.cpp": llama_cpp_dir(log)} if "llama.cpp" in launch.get("tools", []) else {}
        except Exception as err:  # the job fails with the reason in its log and its status
            message = err.message if isinstance(err, EnvironmentNotReady) else f"Preparing the job failed: {err}"
            log.write(f"ERROR: {message}\n")
            log.close()
            with self._lock:
                self._preparing.pop(job_id, None)
                if not self._closed and self.store.get(job_id)["stage"] == "SCHEDULING":  # closed: tried again next run
                    self.store.update(job_id, stage="ERROR", started_at=_now(), finished_at=_now(),
                                      message=message[:1000])  # fmt: skip
                self._lock.notify_all()
            return
        with self._lock:
            canceled = self._preparing.pop(job_id, False)
            if self._closed or canceled:  # closed: it starts with the next run of the app
                log.close()
            else:
                self._start(row, python, tools, log)
            self._lock.notify_all()

    def _start(self, row: dict[str, Any], python: str, tools: dict[str, str], log: Any) -> None:
        """Start the job's process group (under the lock)."""
        job_dir = Path(row["job_dir"])
        command = [a.replace(LLAMA_CPP_DIR, tools.get("llama.cpp", "")) for a in json.loads(row["command"])]
        argv = [python, str(job_dir / command[0]), *command[1:]]  # with GPUs, train.py starts one process per GPU
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        # the visitor's token as a secret: in the process's environment only, never stored (never the machine's)
        secrets = self._secrets.pop(row["id"], {})
        env |= {**json.loads(row["env"] or "{}"), **secrets, "PYTHONUNBUFFERED": "1"}
        # with the visitor's token, huggingface_hub in the job uses it (HF_TOKEN) for every call; without it, no
        # call may borrow the machine's saved login: implicit tokens stay off
        if "HF_TOKEN" in secrets:
            env.pop("HF_HUB_DISABLE_IMPLICIT_TOKEN", None)
        else:
            env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
        log.write(f"===== Local job started on {this_machine().pretty_name} =====\n")
        process = subprocess.Popen(
            argv, cwd=job_dir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()  # the child holds its own copy
        self.store.update(row["id"], stage="RUNNING", message=None, started_at=_now(), pid=process.pid,
                          start_ticks=_start_ticks(process.pid))  # fmt: skip
        timeout_s = int(row["timeout_s"] or 1800)
        self._running[row["id"]] = _Running(process, time.monotonic() + timeout_s, timeout_s)
        # the job's end is recorded the moment it comes (the scheduler's loop only enforces timeouts)
        threading.Thread(
            target=self._watch, args=(row["id"], process), name=f"job-{row['id'][:8]}", daemon=True
        ).start()

    def _reap(self) -> None:
        """Stop the jobs past their timeout (their watcher records the end)."""
        for running in list(self._running.values()):
            if not running.timed_out and running.process.poll() is None and time.monotonic() > running.deadline:
                running.timed_out = True
                threading.Thread(target=_stop_group, args=(running.process.pid, None, 5.0), daemon=True).start()

    def _watch(self, job_id: str, process: subprocess.Popen) -> None:
        process.wait()
        self._finish(job_id)

    def _finish(self, job_id: str) -> None:
        with self._lock:
            running = self._running.pop(job_id, None)
            if running is None or self._closed:  # closed: the next start of the app records how it ended
                return
            code = running.process.returncode
            if running.canceled:
                stage, message = "CANCELED", "Canceled"
            elif running.timed_out:
                stage, message = "ERROR", f"Job timeout exceeded ({running.timeout_s}s)"
            elif code == 0:
                stage, message = "COMPLETED", None
            else:
                stage, message = "ERROR", f"Job failed with exit code: {code}"
            self.store.update(job_id, stage=stage, message=message, finished_at=_now(), exit_code=code)
            self._lock.notify_all()


class LocalJobs:
    """The Local backend as one visitor uses it: their name on the jobs, their token for jobs that push."""

    name = LOCAL

    def __init__(self, engine: LocalBackend, session: Any) -> None:
        self.engine, self.session = engine, session

    def submit(self, launch: JobLaunch) -> JobInfo:
        signed_in = self.session.is_signed_in
        owner = self.session.username if signed_in else LOCAL_OWNER
        return self.engine.submit(launch, owner=owner, secrets=self.session.job_secrets() if signed_in else None)

    def list_jobs(self, *, namespaces: list[str] | None = None, stages: list[str] | None = None) -> list[JobInfo]:
        return self.engine.list_jobs(stages=stages)

    def find_job(self, job_id: str) -> JobInfo:
        return self.engine.find_job(job_id)

    def job_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = 200) -> list[str]:
        return self.engine.job_logs(job_id, tail=tail)

    def follow_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = None) -> Iterator[str]:
        return self.engine.follow_logs(job_id, tail=tail)

    def cancel_job(self, job_id: str, *, namespace: str | None = None) -> JobInfo:
        return self.engine.cancel_job(job_id)

    def job_metrics(
        self, job_id: str, *, namespace: str | None = None, max_samples: int = 5, max_seconds: float = 5.0
    ) -> list[dict]:
        return self.engine.job_metrics(job_id, max_samples=max_samples, max_seconds=max_seconds)


_BACKEND: LocalBackend | None = None
_BACKEND_LOCK = threading.Lock()


def local_backend() -> LocalBackend:
    """The process's Local backend (started on first use)."""
    global _BACKEND
    with _BACKEND_LOCK:
        if _BACKEND is None or _BACKEND.home != get_settings().home:
            _BACKEND = LocalBackend()
        return _BACKEND


def start_local_backend() -> threading.Thread | None:
    """Start the Local backend now, in the background (off Spaces, where it is enabled): jobs a previous run of the
    app left running are stopped and marked at start-up, not at the first page, and without delaying it."""
    if not get_settings().local_enabled:
        return None
    thread = threading.Thread(target=local_backend, name="local-jobs-recovery", daemon=True)
    thread.start()
    return thread


def gpu_env(launch: JobLaunch) -> dict[str, str]:
    """A training job on this machine's GPUs is told their count (train.py checks it at start and runs one
    process per GPU); on a CPU-only machine it is told nothing (it trains on the CPU)."""
    return {GPUS_ENV: str(launch.gpus)} if launch.kind == "train" and launch.gpus > 0 else {}


def local_command(launch: JobLaunch) -> str:
    """The job as a command line to run by hand on this machine (in the job's folder, with the template)."""
    import shlex

    args = [a.replace(JOB_DIR, "<job folder>").replace(LLAMA_CPP_DIR, "<llama.cpp folder>") for a in launch.args]
    head = [*(f"{k}={v}" for k, v in gpu_env(launch).items()), "python", launch.template.name]
    lines, current = [], " ".join(shlex.quote(p) for p in head)
    for arg in args:
        if arg.startswith("--") and current:
            lines.append(current)
            current = shlex.quote(arg)
        else:
            current += " " + shlex.quote(arg)
    lines.append(current)
    env = " ".join(f"{k}=..." for k in sorted(launch.env))
    return (f"# in a Python environment with {launch.template.name}'s dependencies; {env}\n" if env else "") + (
        " \\\n    ".join(lines)
    )


def local_spec(launch: JobLaunch) -> dict[str, Any]:
    """A local job as it will run, for previews (the config by name, the token as $HF_TOKEN when it pushes)."""
    return {
        "backend": LOCAL,
        "command": [
            launch.template.name,
            *(a.replace(JOB_DIR, "<job folder>").replace(LLAMA_CPP_DIR, "<llama.cpp folder>") for a in launch.args),
        ],
        "template_sha256": launch.template.sha256,
        "flavor": LOCAL_FLAVOR,
        "timeout": launch.timeout_s,
        "gpus": launch.gpus,
        "labels": launch.labels,
        "env": sorted(launch.env),
        "folder": str(get_settings().home / "jobs" / "<job id>"),
    }
