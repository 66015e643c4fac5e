"""The backend interface: what to run (`JobLaunch`) and what every backend answers (`JobBackend`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from huggingface_hub import JobInfo

from ..spec import Template

LOCAL, HF_JOBS = "local", "hf-jobs"
BACKEND_LABELS = {LOCAL: "This machine", HF_JOBS: "Hugging Face Jobs"}
JOB_DIR = "{job_dir}"  # in a Local launch's arguments: the job's own folder (known once it is submitted)
LLAMA_CPP_DIR = "{llama_cpp_dir}"  # in a Local launch's arguments: llama.cpp's tools, fetched when the job starts


@dataclass(frozen=True)
class JobLaunch:
    """What to run, wherever it runs: a job template, its arguments and what the job carries."""

    kind: str  # "train" or "export_gguf" (the app's label value)
    template: Template
    args: tuple[str, ...]
    labels: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)  # never a secret: visible on inspect
    flavor: str = "cpu-basic"
    timeout_s: int = 1800
    gpus: int = 0  # the flavor's (or this machine's) GPUs: the training script starts one process per GPU
    namespace: str | None = None
    name: str | None = None  # a readable job name
    image: str | None = None  # HF Jobs: run in this image with pip (else uv's image)
    tools: tuple[str, ...] = ()  # Local: tools prepared before the job starts ("llama.cpp")


class JobBackend(Protocol):
    """One place jobs run. Every method raises TrainerSpaceError subclasses a person can act on."""

    name: str  # LOCAL or HF_JOBS

    def submit(self, launch: JobLaunch) -> JobInfo: ...

    def list_jobs(self, *, namespaces: list[str] | None = None, stages: list[str] | None = None) -> list[JobInfo]: ...

    def find_job(self, job_id: str) -> JobInfo: ...

    def job_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = 200) -> list[str]: ...

    def follow_logs(self, job_id: str, *, namespace: str | None = None, tail: int | None = None) -> Iterator[str]: ...

    def cancel_job(self, job_id: str, *, namespace: str | None = None) -> JobInfo: ...

    def job_metrics(
        self, job_id: str, *, namespace: str | None = None, max_samples: int = 5, max_seconds: float = 5.0
    ) -> list[dict]:
        """Live usage samples in the Hub's format (one per second), at most `max_samples` / `max_seconds`."""
        ...
