"""Training submissions: one config -> pre-flight checks -> the exact job -> submitted (or a dry run).

`TrainingConfig.from_dict` validates everything a visitor (or an API caller) sends. `plan_training`
runs the pre-flight checks and builds the job request and its copyable equivalents without creating
anything; `submit_training` creates the job only when no check failed.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .catalog import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLAVOR,
    DEFAULT_GRAD_ACCUM,
    DEFAULT_MAX_LENGTH,
    GRPO_MAX_COMPLETION_LENGTH,
    GRPO_NUM_GENERATIONS,
    GRPO_REWARDS,
    LORA_ALPHA,
    LORA_DROPOUT,
    LORA_R,
    MAX_LENGTH_RANGE,
    METHODS,
    PEFT_MODES,
    preset,
)
from .errors import InvalidInput, TrainerSpaceError
from .hardware import FLAVOR_NAMES, get_flavor
from .hub import HubSession, JobRequest
from .jobs import APP_LABEL, space_subdomain
from .jobspec import (
    format_timeout,
    hf_cli_command,
    job_spec,
    load_template,
    parse_timeout,
    python_snippet,
    uv_script_request,
)
from .validation import validate_float, validate_int, validate_repo_id, validate_timeout

TEMPLATE = "train.py"
QUICK_TEST_STEPS = 20
QUICK_TEST_ROWS = 200
MIN_TIMEOUT_S = 30 * 60
_ADVANCED_KEY = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
# options the app sets itself: an "advanced" override of these would contradict the checks
_RESERVED = {
    "method", "model_name_or_path", "dataset_name", "dataset_config", "dataset_train_split", "dataset_mapping",
    "output_dir", "push_to_hub", "hub_model_id", "hub_token", "hub_strategy", "peft_mode", "report_to",
    "trackio_space_id", "resume_from_hub", "config",
}  # fmt: skip


@dataclass
class TrainingConfig:
    """Everything the Train tab (or `/submit_training`) sends."""

    method: str
    model: str
    dataset: str
    output_repo: str = ""  # default <user>/<model>-<method>
    dataset_config: str | None = None
    split: str = "train"
    mapping: dict[str, Any] | None = None
    peft: str = "lora"
    lora_r: int = LORA_R
    lora_alpha: int = LORA_ALPHA
    lora_dropout: float = LORA_DROPOUT
    learning_rate: float | None = None  # default from the method/PEFT preset
    num_train_epochs: float = 1.0
    max_steps: int | None = None
    per_device_train_batch_size: int = DEFAULT_BATCH_SIZE
    gradient_accumulation_steps: int = DEFAULT_GRAD_ACCUM
    max_length: int = DEFAULT_MAX_LENGTH
    gradient_checkpointing: bool = True
    eval_split_fraction: float = 0.0
    reward_funcs: list[str] = field(default_factory=list)
    num_generations: int = GRPO_NUM_GENERATIONS  # GRPO: completions sampled per prompt
    max_completion_length: int = GRPO_MAX_COMPLETION_LENGTH  # GRPO: tokens per completion (GRPO has no max_length)
    private: bool = True
    trackio_space: str = ""  # default <user>/trackio
    trackio_project: str = ""  # default: the output repo's name
    flavor: str = DEFAULT_FLAVOR
    timeout: str = "2h"
    quick_test: bool = False
    fsdp: bool = False
    resume_from_hub: bool = False
    advanced: dict[str, Any] = field(default_factory=dict)
    namespace: str | None = None  # where the job runs (default: the visitor)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> TrainingConfig:
        """Validate a JSON object (or its text) into a config; unknown keys are refused."""
        if isinstance(data, str):
            try:
                data = json.loads(data or "{}")
            except json.JSONDecodeError as err:
                raise InvalidInput(f"The config is not valid JSON: {err.msg} (line {err.lineno}).") from None
        if not isinstance(data, dict):
            raise InvalidInput("The config must be a JSON object.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"dry_run"})
        if unknown:
            raise InvalidInput(f"Unknown config field(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
        for required in ("method", "model", "dataset"):
            if not data.get(required):
                raise InvalidInput(f"'{required}' is required.")
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.method not in METHODS:
            raise InvalidInput(f"Unknown method '{self.method}'. Use one of: {', '.join(METHODS)}.")
        if self.peft not in PEFT_MODES:
            raise InvalidInput(f"Unknown PEFT mode '{self.peft}'. Use one of: {', '.join(PEFT_MODES)}.")
        self.model = validate_repo_id(self.model, "model")
        self.dataset = validate_repo_id(self.dataset, "dataset")
        if self.output_repo:
            self.output_repo = validate_repo_id(self.output_repo, "model")
            if "/" not in self.output_repo:
                raise InvalidInput("The output repo needs a namespace: 'you/name'.")
        if self.trackio_space:
            self.trackio_space = validate_repo_id(self.trackio_space, "space")
        if self.trackio_project and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", self.trackio_project):
            raise InvalidInput("The Trackio project name may use letters, digits, '.', '_' and '-'.")
        if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:%+]{1,64}", self.split or ""):
            raise InvalidInput(f"'{self.split}' is not a valid split name.")
        if self.dataset_config is not None and not re.fullmatch(r"[A-Za-z0-9_.\- ]{1,128}", self.dataset_config):
            raise InvalidInput(f"'{self.dataset_config}' is not a valid dataset config name.")
        self.lora_r = validate_int(self.lora_r, "LoRA rank", 1, 1024)
        self.lora_alpha = validate_int(self.lora_alpha, "LoRA alpha", 1, 4096)
        self.lora_dropout = validate_float(self.lora_dropout, "LoRA dropout", 0.0, 0.9)
        if self.learning_rate is not None:
            self.learning_rate = validate_float(self.learning_rate, "Learning rate", 1e-9, 1e-2)
        self.num_train_epochs = validate_float(self.num_train_epochs, "Epochs", 0.01, 100)
        if self.max_steps in (None, "", 0, -1):
            self.max_steps = None
        else:
            self.max_steps = validate_int(self.max_steps, "Max steps", 1, 1_000_000)
        self.per_device_train_batch_size = validate_int(self.per_device_train_batch_size, "Batch size", 1, 1024)
        self.gradient_accumulation_steps = validate_int(self.gradient_accumulation_steps, "Accumulation", 1, 1024)
        self.max_length = validate_int(self.max_length, "max_length", *MAX_LENGTH_RANGE)
        self.eval_split_fraction = validate_float(self.eval_split_fraction, "Eval fraction", 0.0, 0.5)
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = [r.strip() for r in self.reward_funcs.split(",") if r.strip()]
        bad = [r for r in self.reward_funcs if r not in GRPO_REWARDS]
        if bad:
            raise InvalidInput(f"Unknown reward function(s) {bad}. Available: {', '.join(GRPO_REWARDS)}.")
        if self.method == "grpo" and not self.reward_funcs:
            raise InvalidInput(f"GRPO needs at least one reward function ({', '.join(GRPO_REWARDS)}).")
        self.num_generations = validate_int(self.num_generations, "Generations per prompt", 2, 256)
        self.max_completion_length = validate_int(self.max_completion_length, "Completion length", 8, 65_536)
        if self.method == "grpo" and (
            (self.per_device_train_batch_size * self.gradient_accumulation_steps) % self.num_generations
        ):
            raise InvalidInput(
                "GRPO needs batch size x gradient accumulation to be a multiple of the generations per prompt "
                f"({self.num_generations}): e.g. batch {self.num_generations} x accumulation 1, or 4 x 2 for 8."
            )
        if self.flavor not in FLAVOR_NAMES:
            raise InvalidInput(f"Unknown hardware flavor '{self.flavor}'.")
        self.timeout = format_timeout(validate_timeout(self.timeout))
        if self.mapping is not None:
            self.mapping = _validate_mapping(self.mapping)
        if not isinstance(self.advanced, dict):
            raise InvalidInput("'advanced' must be an object of TRL option names to values.")
        for key, value in self.advanced.items():
            if not _ADVANCED_KEY.match(str(key)) or key in _RESERVED:
                raise InvalidInput(f"'{key}' cannot be set as an advanced option.")
            if not isinstance(value, (str, int, float, bool)) or (isinstance(value, str) and len(value) > 500):
                raise InvalidInput(f"The value of '{key}' must be a short string, a number or true/false.")

    @property
    def timeout_s(self) -> int:
        return parse_timeout(self.timeout)


def _validate_mapping(mapping: Any) -> dict[str, Any]:
    if isinstance(mapping, str):
        try:
            mapping = json.loads(mapping)
        except json.JSONDecodeError:
            raise InvalidInput("The dataset mapping is not valid JSON.") from None
    if not isinstance(mapping, dict) or set(mapping) - {"columns", "transforms"}:
        raise InvalidInput('The dataset mapping must look like {"columns": {...}, "transforms": [...]}.')
    columns = mapping.get("columns") or {}
    transforms = mapping.get("transforms") or []
    if not isinstance(columns, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()):
        raise InvalidInput("Mapping columns must be field -> column names.")
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        raise InvalidInput("Mapping transforms must be a list of names.")
    return {"columns": columns, "transforms": transforms}


@dataclass
class Check:
    """One pre-flight check: `ok`, `warn` (submission allowed) or `error` (blocks submission)."""

    name: str
    status: str
    message: str


@dataclass
class TrainingPlan:
    config: TrainingConfig
    request: JobRequest | None
    output_repo: str
    trackio_space: str
    checks: list[Check]
    command: str = ""
    python: str = ""
    estimate: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.request is not None and not any(c.status == "error" for c in self.checks)

    def spec(self) -> dict[str, Any]:
        """The job as it will be sent, with the script shown by name and hash and the token as $HF_TOKEN."""
        return job_spec(self.request, load_template(TEMPLATE)) if self.request is not None else {}


def default_output_repo(username: str, model: str, method: str) -> str:
    name = model.split("/")[-1]
    return f"{username}/{name}-{method}"[:96]


def template_args(cfg: TrainingConfig, output_repo: str, trackio_space: str, project: str) -> list[str]:
    """The job template's command-line arguments for this config (strings only; no shell involved)."""
    lr = cfg.learning_rate if cfg.learning_rate is not None else preset(cfg.method, peft=cfg.peft).learning_rate
    args = ["--method", cfg.method, "--model_name_or_path", cfg.model, "--dataset_name", cfg.dataset]
    if cfg.dataset_config:
        args += ["--dataset_config", cfg.dataset_config]
    args += ["--dataset_train_split", cfg.split]
    if cfg.mapping:
        args += ["--dataset_mapping", json.dumps(cfg.mapping, separators=(",", ":"))]
    args += ["--peft_mode", cfg.peft]
    if cfg.peft != "full":
        args += [
            "--lora_r",
            str(cfg.lora_r),
            "--lora_alpha",
            str(cfg.lora_alpha),
            "--lora_dropout",
            f"{cfg.lora_dropout:g}",
        ]
    args += ["--learning_rate", f"{lr:g}", "--num_train_epochs", f"{cfg.num_train_epochs:g}"]
    max_steps = QUICK_TEST_STEPS if cfg.quick_test else cfg.max_steps
    if max_steps:
        args += ["--max_steps", str(max_steps)]
    if cfg.quick_test:
        args += ["--max_train_samples", str(QUICK_TEST_ROWS)]
    args += [
        "--per_device_train_batch_size", str(cfg.per_device_train_batch_size),
        "--gradient_accumulation_steps", str(cfg.gradient_accumulation_steps),
    ]  # fmt: skip
    if not cfg.fsdp:  # under FSDP the template uses FSDP's own activation checkpointing instead
        args += ["--gradient_checkpointing", str(cfg.gradient_checkpointing).lower()]
    if cfg.method == "grpo":
        args += [
            "--num_generations",
            str(cfg.num_generations),
            "--max_completion_length",
            str(cfg.max_completion_length),
        ]
    else:
        args += ["--max_length", str(cfg.max_length)]
    if cfg.eval_split_fraction:
        args += ["--eval_split_fraction", f"{cfg.eval_split_fraction:g}"]
    if cfg.method == "grpo":
        args += ["--reward_funcs", ",".join(cfg.reward_funcs)]
    if cfg.fsdp:
        args += ["--fsdp"]
    if cfg.resume_from_hub:
        args += ["--resume_from_hub", "true"]
    args += [
        "--output_dir", "/tmp/output",
        "--push_to_hub", "true",
        "--hub_model_id", output_repo,
        "--hub_private_repo", str(cfg.private).lower(),
        "--report_to", "trackio",
        "--trackio_space_id", trackio_space,
        "--project", project,
        "--run_name", f"{cfg.method}-{cfg.peft}" + ("-quick-test" if cfg.quick_test else ""),
    ]  # fmt: skip
    for key, value in sorted(cfg.advanced.items()):
        args += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return args


def plan_training(session: HubSession, cfg: TrainingConfig, *, checks: list[Check] | None = None) -> TrainingPlan:
    """Pre-flight checks and the exact job, without creating anything."""
    from .preflight import run_preflight

    visitor = session.visitor
    output_repo = cfg.output_repo or default_output_repo(visitor.name, cfg.model, cfg.method)
    trackio_space = cfg.trackio_space or f"{visitor.name}/trackio"
    project = cfg.trackio_project or output_repo.split("/")[-1]
    flavor = get_flavor(cfg.flavor, session.hardware()[0])
    if cfg.quick_test:
        cfg.timeout = format_timeout(max(parse_timeout(cfg.timeout), MIN_TIMEOUT_S))
    results, estimate = run_preflight(session, cfg, output_repo=output_repo) if checks is None else (checks, None)
    gpus = flavor.gpus if flavor else 1
    labels = {
        APP_LABEL: "train",
        "method": cfg.method,
        "model": _label(cfg.model),
        "output": _label(output_repo),
        "trackio": _label(trackio_space),
        "project": _label(project),
        "timeout": str(cfg.timeout_s),  # JobInfo does not carry the timeout: My jobs reads it from here
    }
    args = template_args(cfg, output_repo, trackio_space, project)
    template = load_template(TEMPLATE)
    where = {"flavor": cfg.flavor, "timeout_s": cfg.timeout_s, "namespace": cfg.namespace}
    request = uv_script_request(template, args, labels=labels, num_processes=max(1, gpus), **where)
    return TrainingPlan(
        config=cfg,
        request=request,
        output_repo=output_repo,
        trackio_space=trackio_space,
        checks=results,
        # the request's labels: they include the template's hash
        command=hf_cli_command(template, args, labels=request.labels, num_processes=max(1, gpus), **where),
        python=python_snippet(template, args, labels=request.labels, **where),
        estimate=estimate,
    )


def _label(value: str) -> str:
    """Label values: repo ids are safe already; keep them short."""
    return value[:128]


def trackio_url(space_id: str, project: str | None = None) -> str:
    """The Trackio dashboard's page (for links; My jobs embeds it with `jobs.trackio_embed_url`)."""
    query = f"?project={project}" if project else ""
    return f"https://{space_subdomain(space_id)}.hf.space/{query}"


def submit_training(
    session: HubSession, cfg: TrainingConfig, *, dry_run: bool = False, raise_on_failed: bool = True
) -> dict[str, Any]:
    """Pre-flight, then (unless `dry_run` or a check failed) create the job. Returns the API's JSON.

    A failed check raises `PreflightFailed` (nothing submitted); with `raise_on_failed=False` the
    result comes back with `submitted: False` instead.
    """
    plan = plan_training(session, cfg)
    from .settings import get_settings

    endpoint = get_settings().endpoint
    spec = plan.spec()
    result: dict[str, Any] = {
        "job_id": None,
        "url": None,
        "flavor": cfg.flavor,
        "timeout": cfg.timeout,
        "command": plan.command,
        "python": plan.python,
        "spec": spec,
        "output_repo": plan.output_repo,
        "output_url": f"{endpoint}/{plan.output_repo}",
        "trackio_url": trackio_url(plan.trackio_space, spec["labels"]["project"]),
        "preflight": [asdict(c) for c in plan.checks],
        "estimate": plan.estimate,
        "submitted": False,
    }
    if dry_run:
        return result
    errors_ = [c for c in plan.checks if c.status == "error"]
    if errors_ and raise_on_failed:
        raise PreflightFailed(errors_)
    if errors_:
        return result
    job = session.submit_job(plan.request)
    result.update(job_id=job.id, url=job.url, submitted=True)
    return result


class PreflightFailed(TrainerSpaceError):
    title = "Pre-flight check failed"

    def __init__(self, failed: list[Check]) -> None:
        self.failed = failed
        lines = "; ".join(f"{c.name}: {c.message}" for c in failed)
        super().__init__(f"Nothing was submitted. {lines}")
