"""Where jobs run, behind one interface: Hugging Face Jobs (the visitor's token) or Local (this machine).

A `JobLaunch` says what to run (a job template, its arguments, labels, the config it carries); a `JobBackend`
runs it and answers for its jobs (list, inspect, logs, cancel) with huggingface_hub's own `JobInfo`, so the
rest of the app (My jobs, the diagnosis) reads both alike. `job_backends(session)` gives the visitor's backends:
HF Jobs when signed in, Local when the app runs on the visitor's own machine (never on a Space).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from huggingface_hub import JobInfo

from ...errors import JobNotFound, NotSignedIn, TrainerSpaceError
from ...settings import get_settings
from .base import BACKEND_LABELS, HF_JOBS, JOB_DIR, LOCAL, JobBackend, JobLaunch

if TYPE_CHECKING:
    from ...hub.session import HubSession


def backend_of(job: JobInfo) -> str:
    """Which backend a job came from (Local jobs are marked by the Local backend)."""
    return getattr(job, "backend", HF_JOBS)


def job_backend(name: str, session: HubSession) -> JobBackend:
    """The backend called `name`, for this visitor (HF Jobs needs a signed-in session)."""
    if name == LOCAL:
        from .local import LocalJobs, local_backend

        return LocalJobs(local_backend(), session)
    from .hf_jobs import HFJobsBackend

    return HFJobsBackend(session)


def job_backends(session: HubSession, *, action: str = "see your jobs") -> list[JobBackend]:
    """The visitor's backends: Local when enabled (no sign-in needed), HF Jobs when signed in.

    Raises NotSignedIn (naming `action`) when neither is available.
    """
    backends: list[JobBackend] = []
    if get_settings().local_enabled:
        backends.append(job_backend(LOCAL, session))
    if session.is_signed_in or not backends:
        backends.append(job_backend(HF_JOBS, session.require(action)))
    return backends


def find_job(backends: list[JobBackend], job_id: str) -> tuple[JobBackend, JobInfo]:
    """The backend holding `job_id`, and the job.

    Raises JobNotFound when none has it, or NotSignedIn when it is not on this machine and nobody is signed in
    (it may be on Hugging Face Jobs).
    """
    for backend in backends:
        try:
            return backend, backend.find_job(job_id)
        except JobNotFound:
            continue
    if all(b.name == LOCAL for b in backends):
        raise NotSignedIn("see this job: it is not on this machine, and Hugging Face Jobs need your sign-in")
    raise JobNotFound(job_id)


def list_all(backends: list[JobBackend], **kwargs) -> list[JobInfo]:
    """Every backend's jobs, newest first."""
    jobs: list[JobInfo] = []
    for backend in backends:
        jobs.extend(backend.list_jobs(**kwargs))
    jobs.sort(key=lambda j: j.created_at.timestamp() if j.created_at else 0.0, reverse=True)
    return jobs


__all__ = [
    "BACKEND_LABELS",
    "HF_JOBS",
    "JOB_DIR",
    "LOCAL",
    "JobBackend",
    "JobLaunch",
    "TrainerSpaceError",
    "backend_of",
    "find_job",
    "job_backend",
    "job_backends",
    "list_all",
]
