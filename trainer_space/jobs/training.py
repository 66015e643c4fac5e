"""Training submissions: one config -> pre-flight checks -> the exact job -> submitted (or a dry run).

`plan_training` runs the pre-flight checks and builds the job request and its copyable equivalents without
creating anything; `submit_training` creates the job only when no check failed. The config the job carries
(in its environment) is the resolved one: output repo, Trackio Space, flavor and timeout filled in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from huggingface_hub import JobInfo

from ..catalog import DEFAULT_BATCH_SIZE, DEFAULT_GRAD_ACCUM, QUICK_TEST_ROWS
from ..estimate.speed_rules import PACKING_METHODS
from ..hub.hardware import LOCAL_FLAVOR, get_flavor
from ..hub.session import HubSession
from ..settings import get_settings
from ..validation import format_timeout, is_local_ref
from .accuracy import JobEstimate
from .backends import JOB_DIR, JobLaunch
from .backends.hf_jobs import job_request
from .backends.local import local_command, local_spec, this_machine
from .config import CONFIG_ENV, TrainingConfig
from .preflight import Check, EstimateCheck, PreflightFailed, Status, run_preflight
from .reproduce import hf_run_command, job_spec, python_run_snippet
from .spec import APP_LABEL, KEY_LABEL, Template, job_name, label_value, load_template, space_subdomain
from .spending import CostGuard
from .submission import Submitted, create_once, submission_key
from .trl_options import as_argument

TEMPLATE = "train.py"
OUTPUT_DIR = "/tmp/output"


def default_output_repo(username: str, model: str, method: str) -> str:
    name = model.rstrip("/").split("/")[-1]
    return f"{username}/{name}-{method}"[:96]


def resolve(cfg: TrainingConfig, username: str | None) -> TrainingConfig:
    """The config with the defaults that depend on where it runs and who runs it: the backend, the output repo,
    the Trackio Space and project. A local job of a signed-out visitor keeps its outputs on this machine."""
    changes: dict[str, Any] = {"backend": cfg.resolved_backend}
    if cfg.is_local:
        changes["flavor"] = LOCAL_FLAVOR
        if username is None:
            changes["push_to_hub"] = False
    pushing = changes.get("push_to_hub", cfg.push_to_hub)
    if not pushing:
        name = Path(cfg.model).name if is_local_ref(cfg.model) else cfg.model.split("/")[-1]
        return cfg.with_changes(**changes, trackio_project=cfg.trackio_project or f"{name}-{cfg.method}"[:96])
    assert username is not None
    output_repo = cfg.output_repo or default_output_repo(username, cfg.model, cfg.method)
    return cfg.with_changes(
        **changes,
        output_repo=output_repo,
        trackio_space=cfg.trackio_space or f"{username}/trackio",
        trackio_project=cfg.trackio_project or output_repo.split("/")[-1],
    )


def template_args(cfg: TrainingConfig) -> list[str]:
    """The job template's command-line arguments for a resolved config: one `--name=value` string each.

    Never `--name value`: a value (a dataset config, an advanced option) that starts with `--` stays a value.
    Advanced options come last, typed (`trl_options`); a list travels as one JSON array that train.py spreads.
    """
    spec = cfg.spec
    options: dict[str, Any] = {"method": cfg.method, "model_name_or_path": cfg.model, "dataset_name": cfg.dataset or ""}
    if cfg.dataset_config:
        options["dataset_config"] = cfg.dataset_config
    options["dataset_train_split"] = cfg.split
    if cfg.mapping:
        options["dataset_mapping"] = json.dumps(cfg.mapping.to_json(), separators=(",", ":"))
    options["peft_mode"] = cfg.peft
    if cfg.peft != "full":
        options |= {"lora_r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "lora_dropout": f"{cfg.lora_dropout:g}"}
    options |= {"learning_rate": f"{cfg.resolved_learning_rate:g}", "num_train_epochs": f"{cfg.resolved_epochs:g}"}
    if cfg.steps_limit:
        options["max_steps"] = cfg.steps_limit
    if cfg.quick_test:
        options["max_train_samples"] = QUICK_TEST_ROWS
    options |= {
        "per_device_train_batch_size": cfg.per_device_train_batch_size or DEFAULT_BATCH_SIZE,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps or DEFAULT_GRAD_ACCUM,
    }
    if not cfg.fsdp and cfg.gradient_checkpointing != "auto":  # under FSDP: FSDP's own activation checkpointing
        options["gradient_checkpointing"] = cfg.gradient_checkpointing == "on"  # auto (unresolved): TRL's default, on
    if cfg.packing == "off" and cfg.method in PACKING_METHODS:  # auto: the job packs where its rules allow
        options["packing"] = False
    if cfg.use_liger_kernel == "off":  # auto: the job turns them on where it has a CUDA GPU
        options["use_liger_kernel"] = False
    if spec.generates:
        options |= {"num_generations": cfg.num_generations, "max_completion_length": cfg.max_completion_length}
    else:
        options["max_length"] = cfg.max_length
    if cfg.eval_split_fraction:
        options["eval_split_fraction"] = f"{cfg.eval_split_fraction:g}"
    if cfg.reward_funcs:
        options["reward_funcs"] = ",".join(cfg.reward_funcs)
    if cfg.resume_from_hub:
        options["resume_from_hub"] = True
    if cfg.continues and cfg.is_local:  # that job's folder on this machine (`jobs/continuing.py`)
        options["resume_from_dir"] = str(get_settings().home / "jobs" / cfg.continues / "output")
    if not cfg.compare:  # base vs tuned: on by default in the job
        options["compare"] = False
    elif cfg.compare_prompts:
        options["compare_prompts"] = json.dumps(cfg.compare_prompts, ensure_ascii=False, separators=(",", ":"))
    options["output_dir"] = f"{JOB_DIR}/output" if cfg.is_local else OUTPUT_DIR
    if cfg.push_to_hub:
        options |= {
            "push_to_hub": True,
            "hub_model_id": cfg.output_repo or "",
            "hub_private_repo": cfg.private,
            "report_to": "trackio",
            "trackio_space_id": cfg.trackio_space or "",
        }
    else:  # outputs stay on this machine; Trackio keeps the metrics locally too
        options |= {"push_to_hub": False, "report_to": "trackio"}
    options |= {
        "project": cfg.trackio_project or "",
        "run_name": f"{cfg.method}-{cfg.peft}" + ("-quick-test" if cfg.quick_test else ""),
    }
    args = [as_argument(name, value) for name, value in options.items()]
    if cfg.fsdp:
        args.append("--fsdp")
    return args + [as_argument(name, value) for name, value in sorted(cfg.advanced.items())]


def job_labels(cfg: TrainingConfig, timeout_s: int) -> dict[str, str]:
    """The labels My jobs lists and filters by (the whole config travels in the job's environment)."""
    labels = {
        APP_LABEL: "train",
        "method": cfg.method,
        "model": label_value(cfg.model),
        "output": label_value(cfg.output_repo or ""),
        "trackio": label_value(cfg.trackio_space or ""),
        "project": label_value(cfg.trackio_project or ""),
        "timeout": str(timeout_s),  # JobInfo does not carry the timeout: My jobs reads it from here
        "continues": cfg.continues or "",  # the job this one continues (`jobs/continuing.py` lists by it)
    }
    return {k: v for k, v in labels.items() if v}


def estimate_env(check: EstimateCheck) -> dict[str, str]:
    """The job's estimate on its flavor, carried in its environment (numbers only; nothing without an estimate)."""
    return JobEstimate.from_flavor_estimate(check.chosen).to_env() if check.chosen is not None else {}


def trackio_url(space_id: str, project: str | None = None) -> str:
    """The Trackio dashboard's page (for links; My jobs embeds it with `monitor.trackio_embed_url`)."""
    query = f"?project={project}" if project else ""
    return f"https://{space_subdomain(space_id)}.hf.space/{query}"


@dataclass(frozen=True)
class TrainingPlan:
    """The checks, the resolved config and the exact job, before anything is created."""

    config: TrainingConfig  # resolved: backend, output repo, Trackio, flavor and timeout filled in
    launch: JobLaunch
    checks: tuple[Check, ...]
    estimate: EstimateCheck
    command: str  # the same job as `hf jobs run ...` (Jobs), or `python train.py ...` (this machine)
    python: str  # the same job as `huggingface_hub.run_job(...)` (Jobs only)
    cost: CostGuard
    key: str  # the submission key (the job's KEY_LABEL)

    @property
    def template(self) -> Template:
        return self.launch.template

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == Status.ERROR)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def pushes(self) -> bool:
        """Whether the job pushes to the Hub (a signed-out local job never does, whatever was asked)."""
        return self.config.push_to_hub

    def spec(self) -> dict[str, Any]:
        """The job as it will be sent, with the script shown by name and hash and the token as $HF_TOKEN."""
        if self.config.is_local:
            return local_spec(self.launch)
        return job_spec(job_request(self.launch), self.template)


@dataclass(frozen=True)
class PushChoice:
    """Whether a job on `backend` can push to the Hub for this visitor, and the sentence that says why (the UI shows
    it beside the push toggle, off and disabled when it cannot)."""

    available: bool
    note: str


SIGNED_OUT_PUSH = (
    "Signed out: a job on this machine keeps its outputs here ({folder}) and pushes nothing to the Hub. Sign in to "
    "push them."
)


def push_choice(session: HubSession, backend: str) -> PushChoice:
    """Can a job on `backend` ("local" or "hf-jobs") push for this visitor? Hugging Face Jobs always push (the job's
    disk does not outlive it); a local job pushes only with a signed-in visitor's token."""
    folder = str(get_settings().home / "jobs" / "<job id>" / "output")
    if backend != "local":
        return PushChoice(True, "A job on Hugging Face Jobs pushes its checkpoints and model to your output repo.")
    if not session.is_signed_in:
        return PushChoice(False, SIGNED_OUT_PUSH.format(folder=folder))
    return PushChoice(True, f"Outputs stay on this machine ({folder}); ticked, they are also pushed with your token.")


def check_push(asked: bool, cfg: TrainingConfig) -> Check | None:
    """A local job asked to push while nobody is signed in: said, rather than silently not pushing."""
    if not cfg.is_local or not asked or cfg.push_to_hub:
        return None
    folder = str(get_settings().home / "jobs" / "<job id>" / "output")
    return Check("push to the Hub", Status.WARN, SIGNED_OUT_PUSH.format(folder=folder))


def check_output_shared(cfg: TrainingConfig, unfinished: tuple[JobInfo, ...] | None, key: str) -> Check | None:
    """A warning when another unfinished job of the visitor's (`unfinished`, as the pre-flight read them; not this
    very submission) pushes to the same output repo: both would write checkpoints and the final model there."""
    if unfinished is None or not cfg.push_to_hub or not cfg.output_repo:
        return None  # a local job, or the running-jobs check says it could not read them
    repo = label_value(cfg.output_repo)
    others = [
        j for j in unfinished if (j.labels or {}).get("output") == repo and (j.labels or {}).get(KEY_LABEL) != key
    ]
    if not others:
        return None
    job = others[0]
    return Check(
        "output repo in use",
        Status.WARN,
        f"Your job {job.id} ({job.status.stage}) also writes to {cfg.output_repo}: both would push checkpoints and the "
        f"final model there. Name another output repo (e.g. {cfg.output_repo}-2) unless you mean to replace it.",
    )


def plan_training(session: HubSession, cfg: TrainingConfig, *, dry_run: bool = True) -> TrainingPlan:
    """Pre-flight checks and the exact job, without creating anything (`dry_run=False`: the checks of a real
    submission, where unconfirmed extra running jobs are an error).

    Raises:
        NotSignedIn / InvalidToken: nobody (valid) is signed in where the job needs it (HF Jobs, or a local job
            that pushes to the Hub). Every other problem is a failed check.
    """
    if cfg.is_local:
        username = session.username if session.is_signed_in else None
    else:
        username = session.require("run jobs on Hugging Face").visitor.name
    asked_push = cfg.push_to_hub
    cfg = resolve(cfg, username)
    output_repo = cfg.output_repo if cfg.push_to_hub else None
    preflight = run_preflight(session, cfg, output_repo=output_repo, dry_run=dry_run)
    push = check_push(asked_push, cfg)
    if push is not None:
        preflight = replace(preflight, checks=(*preflight.checks, push))
    cfg = cfg.with_changes(
        flavor=preflight.flavor, timeout=format_timeout(preflight.timeout_s), reward_funcs=list(preflight.reward_funcs),
        **preflight.settings,  # "auto" resolved: epochs, batch, accumulation, learning rate, gradient checkpointing
    )  # fmt: skip
    flavor = this_machine() if cfg.is_local else get_flavor(preflight.flavor, session.hardware()[0])
    template = load_template(TEMPLATE)
    visitor = username or "local"
    key = submission_key(visitor, cfg.namespace or visitor, "train", cfg.job_json(), cfg.idempotency_key)
    shared = check_output_shared(cfg, preflight.unfinished, key)
    if shared is not None:
        preflight = replace(preflight, checks=(*preflight.checks, shared))
    launch = JobLaunch(
        kind="train",
        template=template,
        args=tuple(template_args(cfg)),
        labels={**job_labels(cfg, preflight.timeout_s), KEY_LABEL: key},
        env={CONFIG_ENV: json.dumps(cfg.to_json(), separators=(",", ":")), **estimate_env(preflight.estimate)},
        flavor=preflight.flavor,
        timeout_s=preflight.timeout_s,
        gpus=flavor.gpus if flavor else 1,
        namespace=cfg.namespace,
        name=job_name("train", cfg.method, cfg.output_repo or cfg.model),
    )
    if cfg.is_local:
        return TrainingPlan(cfg, launch, preflight.checks, preflight.estimate, local_command(launch), "",
                            preflight.cost, key)  # fmt: skip
    request = job_request(launch)
    return TrainingPlan(
        config=cfg,
        launch=launch,
        checks=preflight.checks,
        estimate=preflight.estimate,
        command=hf_run_command(request, template),  # written from the request: the same job, byte for byte
        python=python_run_snippet(request, template),
        cost=preflight.cost,
        key=key,
    )


@dataclass(frozen=True)
class Submission:
    """A plan, and the job created from it (None for a dry run or when a check failed)."""

    plan: TrainingPlan
    job: JobInfo | None = None
    how: Submitted | None = None  # created / existing / recovered

    @property
    def submitted(self) -> bool:
        return self.job is not None

    def to_json(self) -> dict[str, Any]:
        """The `/submit_training` answer."""
        cfg, endpoint = self.plan.config, get_settings().endpoint
        local = cfg.is_local
        return {
            "backend": cfg.resolved_backend,
            "output_dir": str(Path(self.job.job_dir) / "output") if local and self.job else None,
            "job_id": self.job.id if self.job else None,
            "url": self.job.url if self.job else None,
            "flavor": cfg.flavor,
            "timeout": cfg.timeout,
            "command": self.plan.command,
            "python": self.plan.python,
            "spec": self.plan.spec(),
            "output_repo": cfg.output_repo,
            "output_url": f"{endpoint}/{cfg.output_repo}" if cfg.output_repo else None,
            "trackio_url": trackio_url(cfg.trackio_space, cfg.trackio_project) if cfg.trackio_space else None,
            "preflight": [c.to_json() for c in self.plan.checks],
            "estimate": self.plan.estimate.summary(),
            "config": cfg.to_json(),
            "submitted": self.submitted,
            "cost": self.plan.cost.to_json(),
            "submission": self.how.to_json() if self.how else {"outcome": None, "key": self.plan.key},
        }


def submit_training(
    session: HubSession, cfg: TrainingConfig, *, dry_run: bool = False, raise_on_failed: bool = True
) -> Submission:
    """Pre-flight, then (unless `dry_run` or a check failed) create the job.

    The job is created at most once per submission key (`jobs/submission.py`): a job already submitted with the
    same key is returned (`how.outcome == "existing"`), and a lost answer is settled by looking the key up.

    Raises:
        PreflightFailed: a check failed (nothing submitted), unless `raise_on_failed=False`, which returns the
            plan unsubmitted instead.
        JobNotCreated / JobOutcomeUnknown: the create failed; the message says whether the job exists.
        NotSignedIn / InvalidToken / MissingPermission / PaymentRequired / HubUnavailable: from the Hub.
    """
    plan = plan_training(session, cfg, dry_run=dry_run)
    if dry_run:
        return Submission(plan)
    if plan.failed:
        if raise_on_failed:
            raise PreflightFailed(list(plan.failed))
        return Submission(plan)
    how = create_once(session, plan.launch, key=plan.key, explicit=bool(plan.config.idempotency_key),
                      local=plan.config.is_local, worst_usd=plan.cost.worst_usd)  # fmt: skip
    return Submission(plan, how.job, how)
