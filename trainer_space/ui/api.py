"""The app's API (also its MCP tools): JSON in, JSON out, the caller's own token.

The only place where service results become JSON. Each function is registered with `gr.api` under its own name
(`/inspect_dataset`, `/estimate`, `/submit_training`, `/list_jobs`, `/job_status`, `/job_logs`, `/cancel_job`,
`/export_gguf`); the tabs call the service layer directly, never these.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..catalog import DEFAULT_BATCH_SIZE, DEFAULT_GRAD_ACCUM, DEFAULT_MAX_LENGTH
from ..data.inspection import inspect_dataset as inspect
from ..errors import InvalidInput
from ..jobs import monitor
from ..jobs.config import ExportConfig, TrainingConfig
from ..jobs.export import submit_export
from ..jobs.preflight import estimate_config
from ..jobs.training import submit_training as submit
from ..validation import validate_int, validate_job_id, validate_method
from .common import concurrency, reader_for, ui_errors


@ui_errors
def inspect_dataset(
    dataset: str, split: str = "train", config: str = "", method: str = "sft", oauth_token: gr.OAuthToken | None = None
) -> dict:
    """Inspect a Hub dataset: row count, columns, first rows, and READY / NEEDS_MAPPING / INCOMPATIBLE per method.

    Each method comes with a one-line reason and, when the data needs mapping, the mapping the training job
    applies plus an equivalent `datasets.map` snippet. Empty split / config pick the defaults.
    """
    method = validate_method(method or "sft")
    split, config = _text(split, "split"), _text(config, "config")
    result = inspect(reader_for(oauth_token), dataset=dataset, split=split or None, config=config or None)
    return {**result.to_json(), "method": method}


@ui_errors
def estimate(
    model: str,
    dataset: str | None = None,
    method: str = "sft",
    peft: str = "lora",
    max_length: int = DEFAULT_MAX_LENGTH,
    epochs: float = 1.0,
    per_device_batch_size: int = DEFAULT_BATCH_SIZE,
    gradient_accumulation: int = DEFAULT_GRAD_ACCUM,
    gradient_checkpointing: bool = True,
    num_rows: int | None = None,
    oauth_token: gr.OAuthToken | None = None,
) -> dict[str, Any]:
    """Peak memory, hours and dollars on every GPU flavor, the recommended flavor and the timeout.

    num_rows None: counted by the dataset viewer. Returns {"model", "params", "tokens", "flavors": [...],
    "recommended", "timeout", "notes"}.
    """
    cfg = TrainingConfig.from_dict(
        {
            "method": method or "sft", "model": model, "dataset": dataset or None, "peft": peft or "lora",
            "max_length": max_length, "num_train_epochs": epochs, "per_device_train_batch_size": per_device_batch_size,
            "gradient_accumulation_steps": gradient_accumulation, "gradient_checkpointing": gradient_checkpointing,
        },
        required=("model",),
    )  # fmt: skip
    rows = None if num_rows in (None, "", 0) else validate_int(num_rows, "num_rows", 1, 10_000_000_000)
    return estimate_config(reader_for(oauth_token), cfg, num_rows=rows).to_json()


@ui_errors
def submit_training(
    config: dict[str, Any] | str, dry_run: bool = True, oauth_token: gr.OAuthToken | None = None
) -> dict[str, Any]:
    """Validate one training config, run the pre-flight checks and (unless dry_run) submit the job.

    Returns {"job_id", "url", "flavor", "timeout", "command", "output_repo", "trackio_url", "preflight", "cost",
    "submission", ...}. The config takes max_cost_usd (the cost cap), allow_unfit, allow_many_running and
    idempotency_key besides the job's own fields; the same job submitted twice is created once.
    """
    dry = _flag(dry_run, "dry_run")
    cfg = TrainingConfig.from_dict(config)  # input checked before anything else
    # sign-in is required by the plan for Hugging Face Jobs (and for a local job that pushes to the Hub)
    return submit(reader_for(oauth_token), cfg, dry_run=dry).to_json()


@ui_errors
def list_jobs(
    orgs: str = "", only_this_app: bool = False, stages: str = "", oauth_token: gr.OAuthToken | None = None
) -> dict:
    """The visitor's jobs (own namespace plus the orgs named, comma-separated), newest first.

    `stages`: comma-separated stages to keep (e.g. "RUNNING,ERROR"); empty keeps all.
    """
    only, orgs_, keep = (
        _flag(only_this_app, "only_this_app"),
        split_names(orgs, "orgs"),
        {s.upper() for s in split_names(stages, "stages")},
    )
    session = reader_for(oauth_token)
    if orgs_ and not session.is_signed_in:
        session.require("list your organizations' jobs")
    namespaces = [session.username, *orgs_] if session.is_signed_in else None
    rows = monitor.list_job_rows(session, namespaces=namespaces, only_this_app=only)
    user = session.username if session.is_signed_in else "local"
    return {"user": user, "jobs": [r.to_json() for r in rows if not keep or r.stage in keep]}


@ui_errors
def job_status(job_id: str, oauth_token: gr.OAuthToken | None = None) -> dict:
    """One job's details (stage, times, cost so far, links, its config) and, once it has ended, its diagnosis."""
    return monitor.job_status(reader_for(oauth_token), validate_job_id(job_id)).to_json()


@ui_errors
def job_logs(job_id: str, tail: int = 200, oauth_token: gr.OAuthToken | None = None) -> dict:
    """The last `tail` log lines of a job (1 to 5000)."""
    tail = validate_int(tail, "tail", 1, 5000)
    return monitor.job_log_tail(reader_for(oauth_token), validate_job_id(job_id), tail).to_json()


@ui_errors
def cancel_job(job_id: str, oauth_token: gr.OAuthToken | None = None) -> dict:
    """Cancel one of your jobs (billing stops; pushed checkpoints stay on the Hub). Returns its stage."""
    return monitor.cancel(reader_for(oauth_token), validate_job_id(job_id)).to_json()


@ui_errors
def export_gguf(
    model: str,
    quantizations: list[str] | str | None = None,
    output_repo: str = "",
    private: bool = True,
    flavor: str = "",
    dry_run: bool = True,
    timeout: str = "",
    max_cost_usd: float | None = None,
    allow_unfit: bool = False,
    allow_many_running: bool = False,
    idempotency_key: str = "",
    backend: str = "",
    pre_tokenizer: str = "",
    oauth_token: gr.OAuthToken | None = None,
) -> dict[str, Any]:
    """Plan (dry_run) or submit a GGUF export job. Returns the job id, links, command, pre-flight and cost.

    max_cost_usd: the cost cap (default from the estimate); allow_unfit: submit on a flavor short of disk or RAM;
    allow_many_running: confirm starting it while several of your jobs run; idempotency_key: submitting again with
    it returns the job it created.
    """
    dry = _flag(dry_run, "dry_run")
    cfg = ExportConfig.from_dict(
        {"model": model, "quantizations": quantizations, "output_repo": output_repo, "private": private,
         "flavor": flavor, "timeout": timeout, "max_cost_usd": max_cost_usd, "allow_unfit": allow_unfit,
         "allow_many_running": allow_many_running, "idempotency_key": idempotency_key,
         "backend": backend or None, "pre_tokenizer": pre_tokenizer or None}
    )  # fmt: skip
    return submit_export(reader_for(oauth_token), cfg, dry_run=dry).to_json()


def split_names(text: Any, field: str = "orgs") -> list[str]:
    """Comma- or space-separated names ("acme, beta") as a list."""
    if text in (None, ""):
        return []
    if not isinstance(text, str) or len(text) > 2000:
        raise InvalidInput(f"{field} must be names as text, separated by commas.")
    return [n.strip() for n in text.replace(",", " ").split() if n.strip()]


def _text(value: Any, name: str, limit: int = 128) -> str:
    """A short optional text argument (a split or config name): text of at most `limit` characters, or empty."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{name} must be text of at most {limit} characters.")
    return value.strip()


def _flag(value: Any, name: str) -> bool:
    """A boolean argument: true/false (or "true"/"false"), nothing else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"{name} must be true or false.")


ENDPOINTS = (inspect_dataset, estimate, submit_training, list_jobs, job_status, job_logs, cancel_job, export_gguf)
# the kind of work of each endpoint: its concurrency group (see ui/common.py CONCURRENCY)
KINDS = {"inspect_dataset": "inspect", "estimate": "plan", "submit_training": "plan", "list_jobs": "hub",
         "job_status": "hub", "job_logs": "hub", "cancel_job": "hub", "export_gguf": "plan"}  # fmt: skip


def register() -> None:
    """Register every endpoint under its own name (inside the Blocks), in the concurrency group of its kind."""
    for fn in ENDPOINTS:
        gr.api(fn, api_name=fn.__name__, **concurrency(KINDS[fn.__name__]))
