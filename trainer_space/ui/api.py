"""The app's API (also its MCP tools): JSON in, JSON out, the caller's own token.

The only place where service results become JSON. Each function is registered with `gr.api` under its own name
(`/inspect_dataset`, `/estimate`, `/submit_training`, `/list_jobs`, `/job_status`, `/job_logs`, `/cancel_job`,
`/export_gguf`, `/estimate_accuracy`, `/continue_job`, `/stop_after_checkpoint`); the tabs call the service layer directly, never these. A parameter is named
as the training config names the setting (TRL's names), and described in the same words wherever a client reads
it: the API page, gradio_client's `view_api()` and the MCP tool list.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from inspect import signature
from typing import Any, TypeVar, get_type_hints

import gradio as gr

from ..catalog import DEFAULT_MAX_LENGTH, METHOD_NAMES
from ..data.inspection import inspect_dataset as inspect
from ..errors import TOKENS_URL, InvalidInput, InvalidToken, NotSignedIn, TrainerSpaceError
from ..hub.hardware import FLAVOR_NAMES, LOCAL_FLAVOR
from ..jobs import monitor
from ..jobs.accuracy import ACCURACY_JOBS, accuracy_answer
from ..jobs.compare import base_vs_tuned as read_base_vs_tuned
from ..jobs.config import ExportConfig, TrainingConfig
from ..jobs.continuing import continue_job as continue_from_checkpoint
from ..jobs.export import submit_export
from ..jobs.preflight import estimate_config
from ..jobs.report import USAGE_MAX_S, job_report
from ..jobs.stopping import request_stop
from ..jobs.training import submit_training as submit
from ..validation import (
    format_timeout,
    validate_float,
    validate_int,
    validate_job_id,
    validate_method,
    validate_timeout,
)
from .api_types import (
    AccuracyAnswer,
    Backend,
    BaseVsTunedAnswer,
    Checkpointing,
    ContinueAnswer,
    Estimate,
    ExportSubmission,
    Inspection,
    JobList,
    JobStage,
    JobStatus,
    LogTail,
    Method,
    Peft,
    Speed,
    StopAnswer,
    TrainingSubmission,
)
from .caller import abandonable, cancel_mcp_calls_with_their_job
from .common import caller_token, concurrency, reader_for, ui_errors

F = TypeVar("F", bound=Callable[..., Any])
HOW_TO_SEND = (
    "send your Hugging Face token as the `Authorization: Bearer hf_...` header (MCP clients: in the server's "
    'headers; gradio_client: `Client(url, oauth_token="hf_...")`)'
)


class TokenNeeded(TrainerSpaceError):
    title = "Token required"


class TokenRefused(TrainerSpaceError):
    title = "Token refused"


PARAMETERS: dict[str, dict[str, str]] = {}  # endpoint -> parameter -> its description


def described(summary: str, returns: str, **params: str) -> Callable[[F], F]:
    """Describe an endpoint for the API page and the MCP tool list: a summary, one line per parameter and what it
    returns (Gradio reads the `Args:` and `Returns:` sections of the docstring)."""

    def wrap(fn: F) -> F:
        lines = [summary, "", "Args:", *(f"    {k}: {v}" for k, v in params.items()), "", "Returns:", f"    {returns}"]
        fn.__doc__ = "\n".join(lines)
        PARAMETERS[fn.__name__] = dict(params)  # the same texts, for the parameters' own schemas (`register`)
        # the annotations evaluated (this module's `from __future__ import annotations` leaves strings): Gradio
        # reads the answer's type from the signature, and a string would show as `Any` to clients
        fn.__annotations__ = get_type_hints(fn)
        return fn

    return wrap


def for_api_callers(fn: F) -> F:
    """Sign-in errors worded for a program: an API or MCP caller has no "Sign in" button, it sends a token."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotSignedIn as err:
            raise TokenNeeded(
                f"A token is needed to {err.action}: {HOW_TO_SEND}. Create one at {TOKENS_URL}."
            ) from None
        except InvalidToken:
            raise TokenRefused(
                "Hugging Face refused the token you sent (401): it is mistyped, revoked or expired. Create a new one at "
                f"{TOKENS_URL} and {HOW_TO_SEND}."
            ) from None

    return wrapper  # type: ignore[return-value]


# the kind of work of each endpoint: its concurrency group (see ui/common.py CONCURRENCY)
KINDS = {"inspect_dataset": "inspect", "estimate": "plan", "submit_training": "plan", "list_jobs": "hub",
         "job_status": "hub", "job_logs": "hub", "cancel_job": "hub", "export_gguf": "plan",
         "estimate_accuracy": "hub", "continue_job": "plan", "stop_after_checkpoint": "hub",
         "base_vs_tuned": "hub"}  # fmt: skip


def endpoint(summary: str, returns: str, **params: str) -> Callable[[F], F]:
    """An API endpoint: described, its errors turned into messages (`ui_errors`), sign-in errors worded for a
    program. Every endpoint takes the caller's token as `oauth_token` (signed in, or gradio_client's `oauth_token=`)
    or as the `Authorization: Bearer` header (`authorization`, filled by Gradio from the request, MCP included)."""

    def wrap(fn: F) -> F:
        wrapped = for_api_callers(described(summary, returns, **params)(fn))
        return ui_errors(wrapped, kind=KINDS[fn.__name__])  # type: ignore[return-value]

    return wrap


def _caller(oauth_token: gr.OAuthToken | None, authorization: str | None):
    return reader_for(caller_token(oauth_token, authorization))


METHODS_TEXT = ", ".join(METHOD_NAMES)


@endpoint(
    "Inspect a Hub dataset: row count, columns, first rows, and READY / NEEDS_MAPPING / INCOMPATIBLE for each TRL "
    "method, with the column mapping the training job applies (and an equivalent `datasets.map` snippet) when the data "
    "needs one. Private and gated datasets need the caller's token.",
    "the dataset's facts, `methods` (a verdict, reason and mapping per method) and, at the top level, the verdict, "
    "reason, mapping and mapping_code of the method asked for.",
    dataset="dataset id like `trl-lib/Capybara` (or its Hub URL).",
    split="split to read, e.g. `train` (empty: the dataset's first split).",
    dataset_config="dataset config (subset) name (empty: the default config).",
    method=f"training method whose verdict is returned at the top level: one of {METHODS_TEXT}.",
)
def inspect_dataset(
    dataset: str,
    split: str = "train",
    dataset_config: str = "",
    method: Method = "sft",
    oauth_token: gr.OAuthToken | None = None,
    authorization: gr.Header | None = None,
) -> Inspection:
    method = validate_method(method or "sft")
    split, config = _text(split, "split"), _text(dataset_config, "dataset_config")
    result = inspect(_caller(oauth_token, authorization), dataset=dataset, split=split or None, config=config or None)
    answer = result.to_json()
    return {**answer, "method": method, **answer["methods"][method]}


@endpoint(
    "Estimate a training run before paying for it: parameters, tokens, peak GPU memory, hours and dollars on every "
    "Hugging Face Jobs GPU flavor and (off Spaces) on this machine; the flavor to use on the backend asked for, the "
    "timeout to submit with (estimate + 30%), and always the cheapest Hugging Face Jobs flavor that fits.",
    "`flavors` (one row per flavor: fits, peak_vram_gb, hours, cost_usd; `local` is this machine), `backend`, "
    "`recommended` and its `timeout` (for that backend), `cheapest_jobs_flavor` (flavor, hours, cost_usd, timeout) "
    "and `notes` (what would make it fit, when nothing does).",
    model="model id like `Qwen/Qwen2.5-0.5B`.",
    dataset="dataset id whose size and lengths are used (empty: count `num_rows` rows of `max_length` tokens).",
    method=f"training method: one of {METHODS_TEXT}.",
    peft="`lora` (adapters, bf16), `qlora` (adapters on a 4-bit model) or `full` (every weight).",
    max_length="longest sequence in tokens (32 to 262144); longer examples are cut.",
    num_train_epochs="passes over the dataset (> 0, e.g. 1 or 0.5); empty or 0: auto (from the dataset's size).",
    per_device_train_batch_size="examples per GPU per step (1 to 1024); empty or 0: auto (from the model's size).",
    gradient_accumulation_steps="steps accumulated before each optimizer update (1 to 1024); empty or 0: auto.",
    gradient_checkpointing="recompute activations to save memory (slower): `auto` (only where the job does not fit "
    "without it), `on` or `off` (true / false also read).",
    packing="SFT: pack examples into full rows without padding: `auto` (where the model allows it) or `off`.",
    use_liger_kernel="Liger's kernels on CUDA GPUs (less memory, faster): `auto` or `off`.",
    num_rows="rows to train on (empty: the dataset viewer's count).",
    backend="where the job would run: `hf-jobs` (Hugging Face Jobs) or `local` (this machine; not on a Space); "
    "empty: the default (local off Spaces). Either way the cheapest Jobs flavor that fits is named.",
)
def estimate(
    model: str,
    dataset: str | None = None,
    method: Method = "sft",
    peft: Peft = "lora",
    max_length: int = DEFAULT_MAX_LENGTH,
    num_train_epochs: float | None = None,
    per_device_train_batch_size: int | None = None,
    gradient_accumulation_steps: int | None = None,
    gradient_checkpointing: Checkpointing | bool = "auto",
    num_rows: int | None = None,
    backend: Backend = "",
    packing: Speed = "auto",
    use_liger_kernel: Speed = "auto",
    oauth_token: gr.OAuthToken | None = None,
    authorization: gr.Header | None = None,
) -> Estimate:
    cfg = TrainingConfig.from_dict(
        {
            "method": method or "sft", "model": model, "dataset": dataset or None, "peft": peft or "lora",
            "max_length": max_length, "num_train_epochs": num_train_epochs,
            "per_device_train_batch_size": per_device_train_batch_size,
            "gradient_accumulation_steps": gradient_accumulation_steps,
            "gradient_checkpointing": gradient_checkpointing, "backend": backend or None,
            "packing": packing or "auto", "use_liger_kernel": use_liger_kernel or "auto",
        },
        required=("model",),
    )  # fmt: skip
    rows = None if num_rows in (None, "", 0) else validate_int(num_rows, "num_rows", 1, 10_000_000_000)
    return estimate_config(_caller(oauth_token, authorization), cfg, num_rows=rows).to_json()


@endpoint(
    "Plan (dry_run true) or submit (dry_run false) one TRL training job with the caller's token: the config is "
    "validated, the pre-flight checks run (dataset format, model access, memory fit, cost cap, namespace), and the job "
    "is created on Hugging Face Jobs with Trackio monitoring and checkpoints pushed to the Hub. Without `flavor` or "
    "`timeout` the estimate's cheapest fitting flavor and its timeout are used. The same config submitted twice "
    "creates one job.",
    "the resolved config, `preflight` checks, `cost` (worst case = timeout x price, the cap), the commands to "
    "reproduce it, and once submitted `job_id`, `url`, `output_repo` and `trackio_url`.",
    config="the training config as a JSON object (or a JSON string): `method`, `model` and `dataset` are required; "
    "see the schema for every field, its bounds and its default.",
    dry_run="true: check and plan only (nothing is created); false: create the job (it costs money on a paid flavor).",
)
def submit_training(
    config: dict[str, Any] | str,
    dry_run: bool = True,
    oauth_token: gr.OAuthToken | None = None,
    authorization: gr.Header | None = None,
) -> TrainingSubmission:
    dry = _flag(dry_run, "dry_run")
    cfg = TrainingConfig.from_dict(config)  # input checked before anything else
    cfg.refuse_mixed_flavor()
    # sign-in is required by the plan for Hugging Face Jobs (and for a local job that pushes to the Hub)
    return submit(_caller(oauth_token, authorization), cfg, dry_run=dry).to_json()


@endpoint(
    "List the caller's jobs (their own namespace plus the organizations named), newest first.",
    "`user` and `jobs` (id, kind, model, stage, flavor, started, duration_min, cost_usd, url, backend).",
    orgs="organizations whose jobs to include, separated by commas (empty: only the caller's own).",
    only_this_app="true: only the jobs this app created (training and GGUF exports).",
    stages="stages to keep, separated by commas, e.g. `RUNNING,ERROR` (empty: all).",
)
def list_jobs(
    orgs: str = "",
    only_this_app: bool = False,
    stages: str = "",
    oauth_token: gr.OAuthToken | None = None,
    authorization: gr.Header | None = None,
) -> JobList:
    only, orgs_, keep = (
        _flag(only_this_app, "only_this_app"),
        split_names(orgs, "orgs"),
        {s.upper() for s in split_names(stages, "stages")},
    )
    session = _caller(oauth_token, authorization)
    if orgs_ and not session.is_signed_in:
        session.require("list your organizations' jobs")
    namespaces = [session.username, *orgs_] if session.is_signed_in else None
    rows = monitor.list_job_rows(session, namespaces=namespaces, only_this_app=only)
    user = session.username if session.is_signed_in else "local"
    return {"user": user, "jobs": [r.to_json() for r in rows if not keep or r.stage in keep]}


@endpoint(
    "One of the caller's jobs: stage, times, cost so far, links, the config it was submitted with; its progress (step, "
    "total, percent, tokens/s, ETA, the last checkpoint saved and pushed, how long without progress) and what it "
    "uses (per-GPU peak memory and utilisation, CPU and RAM peaks, beside the job's estimate with the ratio); once it "
    "has ended, the diagnosis of a failure (OOM, timeout, auth, format) with the fixed config to submit.",
    "the job's details, `progress` (training jobs), `usage` (peaks of the live metrics read now, `vs_estimate`), "
    "`diagnosis` (title, explanation, action) and `fix` (a config for /submit_training); for training jobs `links` "
    "(the job it continues, the jobs that continue it: /continue_job) and `stop_request` (a /stop_after_checkpoint "
    "request's state, or null).",
    job_id="the job's id (from /submit_training or /list_jobs).",
    usage_seconds="how long to read a running job's live metrics for `usage` (0 to 10 seconds; 0: none). The Hub "
    "keeps no history: the peaks are over the samples read now.",
)
def job_status(
    job_id: str,
    usage_seconds: float = 2.0,
    oauth_token: gr.OAuthToken | None = None,
    authorization: gr.Header | None = None,
) -> JobStatus:
    seconds = validate_float(usage_seconds, "usage_seconds", 0.0, USAGE_MAX_S)
    session = _caller(oauth_token, authorization)
    return job_report(session, validate_job_id(job_id), usage_seconds=seconds).to_json()


@endpoint(
    "The last lines of one of the caller's jobs' logs (tokens the job printed are replaced by hf_***).",
    "`id`, `stage` and `lines`.",
    job_id="the job's id.",
    tail="how many of the last lines (1 to 5000).",
)
def job_logs(
    job_id: str, tail: int = 200, oauth_token: gr.OAuthToken | None = None, authorization: gr.Header | None = None
) -> LogTail:
    tail = validate_int(tail, "tail", 1, 5000)
    return monitor.job_log_tail(_caller(oauth_token, authorization), validate_job_id(job_id), tail).to_json()


@endpoint(
    "Cancel one of the caller's jobs: billing stops; checkpoints already pushed stay on the Hub.",
    "`id` and `stage` after the cancel.",
    job_id="the job's id.",
)
def cancel_job(
    job_id: str, oauth_token: gr.OAuthToken | None = None, authorization: gr.Header | None = None
) -> JobStage:
    return monitor.cancel(_caller(oauth_token, authorization), validate_job_id(job_id)).to_json()


@endpoint(
    "Plan (dry_run true) or submit a GGUF export job with the caller's token: merge a LoRA adapter into its base, "
    "convert with llama.cpp, quantize, and upload the files with a model card and an Ollama Modelfile.",
    "the resolved export, `preflight` checks, `cost`, the commands to reproduce it and once submitted `job_id`/`url`.",
    model="model or LoRA adapter repo id like `you/Qwen2.5-0.5B-sft`.",
    quantizations="GGUF types, a list or comma-separated: e.g. Q4_K_M, Q5_K_M, Q8_0, F16 (default Q4_K_M).",
    output_repo="repo for the GGUF files (empty: `<model>-GGUF` in the caller's namespace).",
    private="make the output repo private (true by default).",
    flavor="CPU flavor (empty: the cheapest with enough RAM and disk).",
    dry_run="true: check and plan only; false: create the job.",
    timeout="job timeout like `90m` or `2h` (empty: from the model's size).",
    max_cost_usd="the most this job may cost: its worst case (timeout x price) must stay under it.",
    allow_unfit="submit even on a flavor short of disk or RAM.",
    allow_many_running="confirm starting it while several of the caller's jobs run.",
    idempotency_key="submitting again with the same key returns the job it created.",
    backend="`hf-jobs` (Hugging Face Jobs) or `local` (this machine; not on a Space); empty: the default.",
    pre_tokenizer="llama.cpp pre-tokenizer name for models the converter does not recognise (empty: detected).",
)
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
    backend: Backend = "",
    pre_tokenizer: str = "",
    oauth_token: gr.OAuthToken | None = None,
    authorization: gr.Header | None = None,
) -> ExportSubmission:
    dry = _flag(dry_run, "dry_run")
    cfg = ExportConfig.from_dict(
        {"model": model, "quantizations": quantizations, "output_repo": output_repo, "private": private,
         "flavor": flavor, "timeout": timeout, "max_cost_usd": max_cost_usd, "allow_unfit": allow_unfit,
         "allow_many_running": allow_many_running, "idempotency_key": idempotency_key,
         "backend": backend or None, "pre_tokenizer": pre_tokenizer or None}
    )  # fmt: skip
    cfg.refuse_mixed_flavor()
    return submit_export(_caller(oauth_token, authorization), cfg, dry_run=dry).to_json()


@endpoint(
    "How good the estimates were: the caller's finished training jobs (this app's, carrying their estimate) with the "
    "estimate beside what each really used (peak GPU memory, minutes, dollars) and the ratios, newest first; and "
    "the median ratios, as My jobs' Estimate accuracy view shows them.",
    "`jobs` (one row per job: estimate, measurement, ratio of each), `count`, `median_ratio` (peak_gpu_mem, time, "
    "cost: measured / estimated, above 1 the estimate was low) and `summary`.",
    limit=f"how many of the latest finished jobs to read (1 to {ACCURACY_JOBS}; one log read each).",
)
def estimate_accuracy(
    limit: int = ACCURACY_JOBS, oauth_token: gr.OAuthToken | None = None, authorization: gr.Header | None = None
) -> AccuracyAnswer:
    limit = validate_int(limit, "limit", 1, ACCURACY_JOBS)
    return accuracy_answer(_caller(oauth_token, authorization), limit=limit)


@endpoint(
    "Continue one of the caller's stopped training jobs (ended by its timeout, an error such as out of memory or a "
    "preemption, or a cancel) from its last checkpoint: a new job resumes from it (Hugging Face Jobs: the output "
    "repo's last-checkpoint; this machine: the job's folder), on the same flavor or the one given; after out of "
    "memory, the cheapest flavor with more GPU memory that the estimate says fits. The steps left give the time, cost "
    "and timeout; the same pre-flight and spending guard as /submit_training; the same continuation asked twice "
    "creates one job. The new job is labelled `continues=<job_id>` (in /job_status's `labels`; My jobs shows the links "
    "both ways).",
    "`eligible` and `reason`; `checkpoint` (step, max_steps, where), `steps_left`, `time_left_s`, `cost_usd`, "
    "`worst_case_usd`, `flavor` (and why), `preflight`, `cost`; once submitted `new_job_id`; without a checkpoint, "
    "`resubmit`: the job's config with the diagnosis' fix, for /submit_training.",
    job_id="the id of the job to continue (from /list_jobs).",
    flavor="Hugging Face Jobs flavor for the new job, e.g. `l4x1` (empty: the old job's; after out of memory the "
    "cheapest bigger one that fits). A job on this machine continues on this machine.",
    timeout="the new job's timeout like `90m` or `2h` (empty: the time the steps left need, plus 30%).",
    max_cost_usd="the most the new job may cost: its worst case (timeout x price) must stay under it (empty: the "
    "default cap).",
    dry_run="true: check and plan only (nothing is created); false: create the new job (it costs money on a paid "
    "flavor).",
)
def continue_job(
    job_id: str,
    flavor: str = "",
    timeout: str = "",
    max_cost_usd: float | None = None,
    dry_run: bool = True,
    oauth_token: gr.OAuthToken | None = None,
    authorization: gr.Header | None = None,
) -> ContinueAnswer:
    job_id, dry = validate_job_id(job_id), _flag(dry_run, "dry_run")
    flavor = _text(flavor, "flavor", 64)
    if flavor and flavor not in (*FLAVOR_NAMES, LOCAL_FLAVOR):
        raise InvalidInput(f"flavor '{flavor[:64]}' is not a flavor: e.g. {', '.join(sorted(FLAVOR_NAMES)[:6])}.")
    timeout = format_timeout(validate_timeout(timeout)) if timeout not in (None, "") else ""
    cap = None if max_cost_usd in (None, "") else validate_float(max_cost_usd, "max_cost_usd", 0.01, 1_000_000)
    answer = continue_from_checkpoint(_caller(oauth_token, authorization), job_id, flavor=flavor or None,
                                      timeout=timeout or None, max_cost_usd=cap, dry_run=dry)  # fmt: skip
    return answer.to_json()


@endpoint(
    "Stop one of the caller's running training jobs right after its next checkpoint: the app follows the job's "
    "progress lines and cancels it as soon as a checkpoint saved after this call is pushed to the Hub (saved, for a "
    "job on this machine that does not push), so no paid work is lost; then /continue_job continues it. Asking again "
    "returns the same request. The app waits in memory: if it restarts first, the job runs on; ask again.",
    "`state` (waiting, then canceled / ended / expired / failed), `sentence` (what My jobs shows), `after_step` (the "
    "last checkpoint before the request), `waits_for` (pushed or saved) and, once canceled, `checkpoint_step`.",
    job_id="the id of the running training job.",
)
def stop_after_checkpoint(
    job_id: str, oauth_token: gr.OAuthToken | None = None, authorization: gr.Header | None = None
) -> StopAnswer:
    return request_stop(_caller(oauth_token, authorization), validate_job_id(job_id)).to_json()


@endpoint(
    "Base vs tuned: a finished training job's held-out prompts (and the prompts the caller added with "
    "`compare_prompts`) answered by the model before training and after, with the same greedy decoding, and the eval "
    "loss before and after when the job had an eval split; a reward model's scores of held-out pairs instead. Read "
    "from the job's output repo (or, for a local job, its output folder), as My jobs shows it.",
    "`status` (ready, pending: the job still runs, none: it wrote no comparison, off: submitted with compare false, "
    "unreadable), `message` (My jobs' sentence), `items` (prompt, origin, base, tuned), `eval_loss` (before, after, "
    "rows), `notes`, and where it was read.",
    job_id="the training job's id (from /submit_training or /list_jobs).",
)
def base_vs_tuned(
    job_id: str, oauth_token: gr.OAuthToken | None = None, authorization: gr.Header | None = None
) -> BaseVsTunedAnswer:
    return read_base_vs_tuned(_caller(oauth_token, authorization), validate_job_id(job_id)).to_json()


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


ENDPOINTS = (inspect_dataset, estimate, submit_training, list_jobs, job_status, job_logs, cancel_job, export_gguf,
             estimate_accuracy, continue_job, stop_after_checkpoint, base_vs_tuned)  # fmt: skip
# the endpoints that read a job's logs or metrics: their reads stop when their caller goes away (ui/caller.py)
READERS = frozenset({"job_status", "job_logs", "estimate_accuracy"})


def register() -> None:
    """Register every endpoint under its own name (inside the Blocks), in the concurrency group of its kind. Each
    parameter carries its description (and the training config's parameter the config's JSON schema: fields,
    bounds, defaults), where gradio_client's `view_api()` and MCP clients read it."""
    answer_mcp_in_json()
    cancel_mcp_calls_with_their_job()
    blocks = gr.context.Context.root_block
    for fn in ENDPOINTS:
        served = abandonable(fn) if fn.__name__ in READERS else fn
        gr.api(served, api_name=fn.__name__, **concurrency(KINDS[fn.__name__]))
        block_fn = next(f for f in blocks.fns.values() if f.api_name == fn.__name__)
        texts = PARAMETERS[fn.__name__]
        names = [n for n in signature(fn).parameters if n not in ("oauth_token", "authorization")]
        for name, component in zip(names, block_fn.inputs, strict=True):
            info = config_schema() if fn is submit_training and name == "config" else dict(component._api_info)
            component._api_info = {**info, "description": texts[name], "additional_description": texts[name]}


def answer_mcp_in_json() -> None:
    """MCP tools answer JSON text, as agents expect (Gradio writes a dict's Python repr: `True`, `None`, quotes)."""
    from gradio.mcp import GradioMCPServer

    original = GradioMCPServer.postprocess_output_data
    if getattr(original, "_answers_json", False):
        return

    def postprocess_output_data(self, data: Any, root_url: str) -> list[Any]:
        out = original(self, data, root_url)
        if isinstance(data, list) and len(data) == len(out):
            for i, value in enumerate(data):
                if isinstance(value, (dict, list)) and getattr(out[i], "type", "") == "text":
                    out[i] = self.types.TextContent(type="text", text=json.dumps(value, ensure_ascii=False))
        return out

    postprocess_output_data._answers_json = True  # type: ignore[attr-defined]
    GradioMCPServer.postprocess_output_data = postprocess_output_data  # type: ignore[method-assign]


def config_schema() -> dict[str, Any]:
    """The training config's JSON schema (from the typed config), with its definitions inlined: the form Gradio's
    API page and MCP clients read."""
    schema = TrainingConfig.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:  # also in the forms gradio_client's schema reader knows
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            if isinstance(node.get("type"), list):
                rest = {k: v for k, v in node.items() if k != "type"}
                return {**inline(rest), "anyOf": [{"type": t} for t in node["type"]]}
            return {k: inline(v) for k, v in node.items() if not (k == "additionalProperties" and v is False)}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"anyOf": [inline(schema), {"type": "string", "description": "the same config as a JSON string"}]}
