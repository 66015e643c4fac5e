"""Hugging Face Jobs: the visitor's own namespace, billed to them, through their `HubSession`."""

from __future__ import annotations

from collections.abc import Iterator

from huggingface_hub import JobInfo

from ...hub.session import HubSession, JobRequest
from ..spec import pip_script_request, uv_script_request
from .base import HF_JOBS, JobLaunch


def job_request(launch: JobLaunch) -> JobRequest:
    """The Jobs API request for a launch: the template's exact text and `bash -c` boot (see `jobs/spec.py`)."""
    where = {"flavor": launch.flavor, "timeout_s": launch.timeout_s, "namespace": launch.namespace}
    if launch.image:
        return pip_script_request(launch.template, list(launch.args), image=launch.image, labels=launch.labels,
                                  env=launch.env, name=launch.name, **where)  # fmt: skip
    return uv_script_request(launch.template, list(launch.args), labels=launch.labels, env=launch.env,
                             gpus=launch.gpus, name=launch.name, **where)  # fmt: skip


class HFJobsBackend:
    """Jobs on Hugging Face: created, listed and cancelled with the visitor's token only."""

    name = HF_JOBS

    def __init__(self, session: HubSession) -> None:
        self.session = session

    def submit(self, launch: JobLaunch) -> JobInfo:
        return self.session.submit_job(job_request(launch))

    def list_jobs(self, *, namespaces: list[str] | None = None, stages: list[str] | None = None) -> list[JobInfo]:
        return self.session.list_jobs(namespaces=namespaces, stages=stages)

    def find_job(self, job_id: str) -> JobInfo:
        return self.session.find_job(job_id)

    def job_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = 200) -> list[str]:
        return self.session.job_logs(job_id, namespace=namespace, tail=tail)

    def follow_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = None) -> Iterator[str]:
        return self.session.follow_logs(job_id, namespace=namespace, tail=tail)

    def cancel_job(self, job_id: str, *, namespace: str | None = None) -> JobInfo:
        return self.session.cancel_job(job_id, namespace=namespace)

    def job_metrics(
        self, job_id: str, *, namespace: str | None = None, max_samples: int = 5, max_seconds: float = 5.0
    ) -> list[dict]:
        return self.session.job_metrics(job_id, namespace=namespace, max_samples=max_samples, max_seconds=max_seconds)
