"""Stop after the next checkpoint: the app waits for the job's progress line that says a checkpoint was pushed to the
Hub (saved, for a local job that does not push) after the request, then cancels the job. No Gradio here.

One watcher per job (`request_stop` is idempotent): a thread that follows the job's log and cancels it the moment
that line comes. It ends when it has canceled the job, when the job ends by itself, or when the job's timeout (from
the request on) has passed. The visitor's session (their token) lives only in that thread's arguments for that job:
never in the registry, never logged. The registry (`stop_state`) keeps what My jobs shows: "stopping after the next
checkpoint", then what happened.

The watchers live in this process: if the app restarts, the request is gone and the job runs on until it ends by
itself or times out (as if nothing had been asked; its pushed checkpoints stay). Ask again after the restart.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import InvalidInput, TrainerSpaceError
from ..hub.session import TERMINAL_STAGES, HubSession
from ..hub.streams import StreamRead
from ..validation import validate_job_id
from .backends import LOCAL, JobBackend, backend_of, find_job, job_backends
from .config import TrainingConfig
from .monitor import job_config, job_timeout_s, running_seconds
from .progress import last_checkpoint, parse_progress

LOG_TAIL = 2000  # lines read at the request for the last checkpoint already saved
DEFAULT_WAIT_S = 24 * 3600  # a job whose timeout is unknown is watched this long at most
SCHEDULING_WAIT_S = 6 * 3600  # a job still waiting for hardware is watched this much longer than its timeout
REOPEN_PAUSE_S = 2.0  # between two reads of the log when a stream ends while the job still runs
KEEP_FINISHED = 500  # finished requests kept for My jobs (the oldest are forgotten first)
RESTART_NOTE = (
    "The app waits in memory: if it restarts before then, the job runs on until it ends or times out; ask again."
)


@dataclass
class StopRequest:
    """One job's "stop after the next checkpoint": what it waits for, and what became of it."""

    job_id: str
    backend: str
    requested_at: float  # unix seconds
    after_step: int  # the last checkpoint saved before the request (-1: none); a later one counts
    waits_for: str  # "pushed" (the job pushes to the Hub) or "saved" (a local job that does not)
    deadline: float  # unix seconds: the watcher gives up then (the job's timeout has passed)
    state: str = "waiting"  # waiting / canceled / ended / expired / failed
    detail: str = ""
    checkpoint_step: int | None = None  # the checkpoint it stopped after
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def waiting(self) -> bool:
        return self.state == "waiting"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the watcher has finished (tests, scripts); whether it has."""
        return self._done.wait(timeout)

    def sentence(self) -> str:
        """What My jobs shows about it."""
        if self.waiting:
            what = "pushed to the Hub" if self.waits_for == "pushed" else "saved"
            return f"Stopping after the next checkpoint: canceled as soon as one is {what}. {RESTART_NOTE}"
        return self.detail

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["sentence"] = self.sentence()
        return out


_REQUESTS: dict[str, StopRequest] = {}  # by job id
_LOCK = threading.Lock()


def stop_state(job_id: str) -> StopRequest | None:
    """The job's stop request, if one was made in this process (its state as of now)."""
    with _LOCK:
        return _REQUESTS.get(job_id)


def _forget_old() -> None:
    finished = [r for r in _REQUESTS.values() if not r.waiting]
    for request in sorted(finished, key=lambda r: r.requested_at)[: max(0, len(finished) - KEEP_FINISHED)]:
        _REQUESTS.pop(request.job_id, None)


def _waits_for(backend: str, cfg: Any) -> str:
    if backend != LOCAL:
        return "pushed"  # a Hugging Face Job always pushes
    return "pushed" if isinstance(cfg, TrainingConfig) and cfg.push_to_hub else "saved"


def request_stop(session: HubSession, job_id: str) -> StopRequest:
    """Cancel job `job_id` right after its next checkpoint is pushed (saved, on this machine without pushing).

    Idempotent: a job already being watched returns its request. Raises InvalidInput when the job has ended or is
    not a training job of this app (other jobs print no checkpoints), JobNotFound / NotSignedIn as My jobs does.
    """
    job_id = validate_job_id(job_id)
    backend, job = find_job(job_backends(session, action="stop jobs"), job_id)
    with _LOCK:
        existing = _REQUESTS.get(job.id)
        if existing is not None and existing.waiting:
            return existing
    if job.status.stage in TERMINAL_STAGES:
        raise InvalidInput(f"Job {job.id} has already ended ({job.status.stage.lower()}): there is nothing to stop.")
    cfg = job_config(job)
    if not isinstance(cfg, TrainingConfig):
        raise InvalidInput("Only this app's training jobs report their checkpoints: cancel this job instead.")
    # a job still waiting for hardware has saved nothing (and a read of its logs waits for the Hub's read timeout)
    lines = (
        [] if job.status.stage == "SCHEDULING" else backend.job_logs(job.id, namespace=job.owner.name, tail=LOG_TAIL)
    )
    saved = last_checkpoint(lines)
    after = saved.saved_step if saved is not None and saved.saved_step is not None else -1
    timeout = job_timeout_s(job)
    left = timeout - running_seconds(job) if timeout else DEFAULT_WAIT_S
    if job.status.stage == "SCHEDULING":  # its timeout counts once it runs: the wait for hardware comes first
        left += SCHEDULING_WAIT_S
    now = time.time()
    request = StopRequest(job.id, backend_of(job), now, after, _waits_for(backend_of(job), cfg),
                          deadline=now + max(60.0, left) + 120.0)  # fmt: skip
    with _LOCK:
        existing = _REQUESTS.get(job.id)
        if existing is not None and existing.waiting:  # another request won the race
            return existing
        _REQUESTS[job.id] = request
        _forget_old()
    threading.Thread(target=_watch, args=(backend, job.owner.name, request), daemon=True,
                     name=f"stop-after-checkpoint-{job.id[:8]}").start()  # fmt: skip
    return request


def _finish(request: StopRequest, state: str, detail: str, step: int | None = None) -> None:
    with _LOCK:
        request.state, request.detail, request.checkpoint_step = state, detail, step
    request._done.set()


def _counts(line: str, request: StopRequest) -> int | None:
    """The checkpoint step a log line reports as saved/pushed after the request (None: it reports none)."""
    progress = parse_progress(line)
    if progress is None or progress.checkpoint_step is None or progress.checkpoint_step <= request.after_step:
        return None
    if request.waits_for == "pushed" and progress.checkpoint_pushed_t is None:
        return None
    return progress.checkpoint_step


def _watch(backend: JobBackend, namespace: str, request: StopRequest) -> None:
    """Follow the job's log until a checkpoint after the request is pushed (saved), then cancel it."""
    try:
        while time.time() < request.deadline:
            stream = functools.partial(backend.follow_logs, request.job_id, namespace=namespace, tail=LOG_TAIL)
            with StreamRead(stream, name=f"stop-{request.job_id[:8]}",
                            deadline_s=max(1.0, request.deadline - time.time())) as read:  # fmt: skip
                while True:
                    item = read.next(timeout=1.0)
                    if item is StreamRead.END:
                        break
                    if item is StreamRead.TIMEOUT:
                        if read.expired:
                            break
                        continue
                    step = _counts(item, request)
                    if step is not None:
                        _cancel_after(backend, namespace, request, step)
                        return
            stage = backend.find_job(request.job_id).status.stage
            if stage in TERMINAL_STAGES:
                _finish(request, "ended", f"The job ended by itself ({stage.lower()}) before another checkpoint: "
                        "nothing was canceled.")  # fmt: skip
                return
            time.sleep(REOPEN_PAUSE_S)  # the stream was cut while the job runs: read it again
        _finish(request, "expired", "No checkpoint came before the job's timeout: nothing was canceled.")
    except TrainerSpaceError as err:
        _finish(request, "failed", f"Stop after the next checkpoint failed: {err.message} The job was not canceled: "
                "cancel it yourself if you wish.")  # fmt: skip
    except Exception as err:  # a watcher never dies silently: My jobs says it stopped watching
        _finish(request, "failed", f"Stop after the next checkpoint stopped watching ({type(err).__name__}). The job "
                "was not canceled: cancel it yourself if you wish.")  # fmt: skip


def _cancel_after(backend: JobBackend, namespace: str, request: StopRequest, step: int) -> None:
    job = backend.find_job(request.job_id)
    if job.status.stage in TERMINAL_STAGES:
        _finish(request, "ended", f"The job ended by itself ({job.status.stage.lower()}) with checkpoint {step}.", step)
        return
    backend.cancel_job(request.job_id, namespace=namespace)
    what = "pushed to the Hub" if request.waits_for == "pushed" else "saved"
    _finish(request, "canceled", f"Canceled right after checkpoint {step} was {what}: continue it from there "
            "(Continue…).", step)  # fmt: skip


def forget_requests() -> None:
    """Forget every finished request (tests); waiting watchers keep watching."""
    with _LOCK:
        for job_id in [j for j, r in _REQUESTS.items() if not r.waiting]:
            del _REQUESTS[job_id]
