"""Why did a job fail, and what one thing to do about it: status + log tail -> `Diagnosis` (pure, no Gradio).

`diagnose()` runs an ordered tuple of rules, each `(kind, patterns, builder)`; the first rule with a
pattern that matches wins. A pattern is searched in the job's status message and in its log lines,
newest first, so that the last error printed is the one explained. Builders turn the match and the
job's context (labels, flavor, template arguments) into a title, an explanation, one action and an
`action_hint`: machine-readable settings for the fix (e.g. `{"per_device_train_batch_size": 2}`).

Example:
    >>> d = diagnose("ERROR", "Job timeout exceeded (3600s)", [], {"trainer-space": "train", "output": "me/out"})
    >>> d.kind, d.action_hint["resume_from_hub"]
    ('timeout', True)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from ..hub.hardware import FALLBACK_FLAVORS, Flavor
from .backends.local_env import FAILED as ENVIRONMENT_FAILED
from .backends.local_env import split_failure

DEFAULT_ENDPOINT = "https://huggingface.co"
# terminal escapes: colours and cursor moves (CSI), titles and links (OSC), and the two-character ones
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[@-Z\\-_]")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# module name -> pip package, where they differ
_PIP_NAMES = {
    "flash_attn": "flash-attn",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "google": "protobuf",
    "liger_kernel": "liger-kernel",
}


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong (`kind`, `title`, `explanation`) and the one `action` to take about it."""

    kind: str
    title: str
    explanation: str
    action: str
    action_hint: dict[str, Any] = field(default_factory=dict)
    evidence: str = ""  # the log line (or status message) that gave it away

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class JobContext:
    """Everything a builder may use: the job's outcome and how it was configured."""

    stage: str
    message: str
    lines: tuple[str, ...]
    labels: dict[str, str]
    flavor: str | None
    args: dict[str, str]  # the job template's `--key value` arguments
    flavors: tuple[Flavor, ...]
    endpoint: str
    backend: str = "hf-jobs"  # or "local": this machine (no billing, its outputs in its folder)

    @property
    def local(self) -> bool:
        return self.backend == "local" or self.flavor == "local"

    @property
    def output_dir(self) -> str | None:
        """A local job's output folder on this machine."""
        return self.args.get("output_dir") if self.local else None

    @property
    def kind(self) -> str:
        return self.labels.get("trainer-space", "")

    @property
    def output_repo(self) -> str | None:
        out = self.labels.get("output") or self.args.get("hub_model_id") or self.args.get("output_repo")
        return out if out and _REPO_ID.fullmatch(out) else None


class Found(NamedTuple):
    match: re.Match[str]
    line: str


Builder = Callable[[JobContext, Found], Diagnosis]


class Rule(NamedTuple):
    kind: str
    patterns: tuple[str, ...]
    builder: Builder
    where: str = "any"  # "any", "message" (status message only) or "log" (log lines only)


# ---------------------------------------------------------------------------------------------- helpers
def _flavor(ctx: JobContext) -> Flavor | None:
    return next((f for f in ctx.flavors if f.name == ctx.flavor), None)


def bigger_gpu_flavor(current: str | None, flavors: Iterable[Flavor] = FALLBACK_FLAVORS) -> Flavor | None:
    """The cheapest flavor whose GPUs each have more memory than `current`'s (None at the top)."""
    pool = [f for f in flavors if f.is_gpu]
    now = next((f for f in pool if f.name == current), None)
    floor = now.vram_gb if now else 0.0
    bigger = [f for f in pool if f.vram_gb > floor]
    return min(bigger, key=lambda f: (f.usd_per_hour, f.gpus, f.name), default=None)


def bigger_ram_flavor(current: str | None, flavors: Iterable[Flavor] = FALLBACK_FLAVORS) -> Flavor | None:
    """The cheapest flavor of the same type (CPU/GPU) as `current` with more RAM (CPU when unknown)."""
    pool = list(flavors)
    now = next((f for f in pool if f.name == current), None)
    gpu, floor = (now.is_gpu, now.ram_gb) if now else (False, 0.0)
    bigger = [f for f in pool if f.is_gpu == gpu and f.ram_gb > floor]
    return min(bigger, key=lambda f: (f.usd_per_hour, f.name), default=None)


def bigger_disk_flavor(current: str | None, flavors: Iterable[Flavor] = FALLBACK_FLAVORS) -> Flavor | None:
    """The cheapest flavor of the same type (CPU/GPU) with more disk than `current` (None if none)."""
    pool = list(flavors)
    now = next((f for f in pool if f.name == current), None)
    if now is None:
        return None
    bigger = [f for f in pool if f.is_gpu == now.is_gpu and f.disk_gb > now.disk_gb]
    return min(bigger, key=lambda f: (f.usd_per_hour, f.name), default=None)


def _int(value: str | None) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _truthy(value: str | None) -> bool | None:
    if value is None:
        return None
    return str(value).strip().lower() in ("1", "true", "yes", "on", "")


def _duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


_ERROR_LINE = re.compile(
    r"^\s*(?:\[rank\d+\]:\s*)?(?:ERROR:|[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Timeout)\b|Killed$)"
)
_EXCEPTION_LINE = re.compile(r"^(?:\[rank\d+\]:\s*)?[A-Za-z_][\w.]*:\s")


def last_error_line(lines: Iterable[str]) -> str | None:
    """The last line that reports an error: our templates' `ERROR: ...`, or a traceback's exception line."""
    lines = list(lines)
    found = next((i for i in range(len(lines) - 1, -1, -1) if _ERROR_LINE.match(lines[i])), None)
    traceback = next(
        (i for i in range(len(lines) - 1, -1, -1) if "Traceback (most recent call last)" in lines[i]), None
    )
    if traceback is not None and (found is None or found < traceback):  # an exception type we do not know by name
        found = next((i for i in range(len(lines) - 1, traceback, -1) if _EXCEPTION_LINE.match(lines[i])), found)
    return lines[found].strip() if found is not None else None


# ---------------------------------------------------------------------------------------------- builders
def _canceled(ctx: JobContext) -> Diagnosis:
    kept = f" Checkpoints already pushed to {ctx.output_repo} stay on the Hub." if ctx.output_repo else ""
    if ctx.local:
        folder = f" Its folder keeps what it saved ({ctx.output_dir})." if ctx.output_dir else ""
        what = "The job was canceled: its processes on this machine were stopped." + kept + folder
    else:
        what = "The job was canceled, and billing stopped then." + kept
    return Diagnosis("canceled", "Canceled", what, "", {}, ctx.message)


def _timeout(ctx: JobContext, found: Found) -> Diagnosis:
    m = re.search(r"\((\d+)\s*s\)|(\d+)\s*s(?:econds)?\b", ctx.message)
    previous = _int(m.group(1) or m.group(2)) if m else None
    hint: dict[str, Any] = {"previous_timeout_s": previous}
    if previous:
        hint["timeout_s"] = int(math.ceil(previous * 1.3 / 900) * 900)
    ran = f" after {_duration(previous)}" if previous else ""
    who = "The app" if ctx.local else "Hugging Face Jobs"
    if ctx.kind == "export_gguf":
        return Diagnosis(
            "timeout",
            "Timed out",
            f"{who} stopped the export{ran}: it reached its timeout before finishing.",
            "Resubmit the export with a longer timeout (the estimate plus 30%), or fewer quantization types.",
            hint,
            found.line,
        )
    if ctx.local and not ctx.output_repo:  # it pushed nothing: its checkpoints are in its folder
        return Diagnosis(
            "timeout",
            "Timed out",
            f"{who} stopped the job{ran}: it reached its timeout before training finished. It pushed nothing; the "
            f"checkpoints it saved are in its folder ({ctx.output_dir or 'output/'}).",
            "Continue… in My jobs (or /continue_job) goes on from its last checkpoint in that folder, with a timeout "
            "for the steps left; or resubmit with a longer timeout (the estimate plus 30%) to start over.",
            hint,
            found.line,
        )
    hint.update(resume_from_hub=True, output_repo=ctx.output_repo)
    where = f" ({ctx.output_repo}, `last-checkpoint/`)" if ctx.output_repo else ""
    return Diagnosis(
        "timeout",
        "Timed out",
        f"{who} stopped the job{ran}: it reached its timeout before training finished. "
        f"Checkpoints pushed before that are on the Hub{where}.",
        "Continue… in My jobs (or /continue_job) starts a new job from the last checkpoint on the Hub, with a "
        "timeout for the steps left; or resubmit with a longer timeout (the estimate plus 30%) and "
        "`resume_from_hub`.",
        hint,
        found.line,
    )


def _oom(ctx: JobContext, found: Found) -> Diagnosis:
    if ctx.kind == "export_gguf":
        return _ram_oom(ctx, found)
    text = found.line
    alloc = re.search(r"Tried to allocate ([\d.]+ [KMGT]i?B)", text)
    total = re.search(r"total capacity of ([\d.]+ [KMGT]i?B)", text)
    flavor = _flavor(ctx)
    gpu = f"the {flavor.gpu_model} ({flavor.vram_gb:g} GB" if flavor and flavor.gpu_model else "the GPU ("
    gpu = (gpu + (f"; {total.group(1)} usable)" if total else ")")).replace(" ()", "")
    explanation = f"Training needed more GPU memory than {gpu} has" + (
        f": it failed to allocate {alloc.group(1)} more." if alloc else "."
    )
    steps: list[str] = []
    hint: dict[str, Any] = {}
    peft = (ctx.args.get("peft_mode") or "").lower()
    if ctx.args.get("use_peft") is not None and not peft:
        peft = "lora" if _truthy(ctx.args.get("use_peft")) else "full"
    if peft in ("", "full"):
        steps.append("switch to LoRA (trains ~1% of the weights: far smaller gradients and optimizer states)")
        hint["peft"] = "lora"
    elif peft == "lora" and flavor is not None and flavor.is_gpu:
        steps.append("switch to QLoRA (4-bit base weights)")
        hint["peft"] = "qlora"
    batch, accum = _int(ctx.args.get("per_device_train_batch_size")), _int(ctx.args.get("gradient_accumulation_steps"))
    if batch is None:
        steps.append("halve per_device_train_batch_size and double gradient_accumulation_steps (same effective batch)")
    elif batch > 1:
        new_batch, new_accum = max(1, batch // 2), (accum or 1) * 2
        steps.append(
            f"halve per_device_train_batch_size ({batch} → {new_batch}) and double gradient_accumulation_steps "
            f"({accum or 1} → {new_accum}): same effective batch"
        )
        hint.update(per_device_train_batch_size=new_batch, gradient_accumulation_steps=new_accum)
    else:
        length = _int(ctx.args.get("max_length") or ctx.args.get("max_seq_length"))
        if length and length > 256:
            steps.append(f"shorten max_length ({length} → {length // 2}): the batch is already 1")
            hint["max_length"] = length // 2
    if not _truthy(ctx.args.get("gradient_checkpointing")):
        steps.append("enable gradient checkpointing (recomputes activations instead of storing them)")
        hint["gradient_checkpointing"] = True
    bigger = bigger_gpu_flavor(ctx.flavor, ctx.flavors)
    if bigger is not None:
        steps.append(f"a bigger flavor: {bigger.name} ({bigger.gpu_model}, {bigger.vram_gb:g} GB per GPU)")
        hint["flavor"] = bigger.name
    else:
        steps.append("a smaller model, or several GPUs with FSDP")
    model = ctx.labels.get("model")
    action = "Resubmit" + (f" {model}" if model else "") + " with: " + "; ".join(steps) + "."
    return Diagnosis("oom", "Out of GPU memory", explanation, action, hint, found.line)


def _ram_oom(ctx: JobContext, found: Found) -> Diagnosis:
    bigger = bigger_ram_flavor(ctx.flavor, ctx.flavors)
    what = "export" if ctx.kind == "export_gguf" else "job"
    return Diagnosis(
        "ram_oom",
        "Out of memory (RAM)",
        f"The {what} was killed because it used more RAM than the flavor has.",
        f"Resubmit on {bigger.name} ({bigger.ram_gb:g} GB RAM)." if bigger else "Resubmit on a flavor with more RAM.",
        {"flavor": bigger.name} if bigger else {},
        found.line,
    )


def _disk_full(ctx: JobContext, found: Found) -> Diagnosis:
    bigger = bigger_disk_flavor(ctx.flavor, ctx.flavors)
    if ctx.kind == "export_gguf":
        action = "Resubmit with fewer quantization types at once" + (
            f", or on {bigger.name} ({bigger.disk_gb:g} GB disk)." if bigger else " (each needs its own disk space)."
        )
    else:
        action = "Resubmit with `save_total_limit` 1 (fewer local checkpoints)" + (
            f", or on {bigger.name} ({bigger.disk_gb:g} GB disk)." if bigger else "."
        )
    hint: dict[str, Any] = {"flavor": bigger.name} if bigger else {}
    if ctx.kind != "export_gguf":
        hint["save_total_limit"] = 1
    return Diagnosis(
        "disk_full",
        "Disk full",
        "The job ran out of disk space (the model, its checkpoints or the converted files did not fit).",
        action,
        hint,
        found.line,
    )


def _payment(ctx: JobContext, found: Found) -> Diagnosis:
    return Diagnosis(
        "payment",
        "Credit needed",
        "The Hub refused a paid operation (402): your account has no payment method or not enough pre-paid credit.",
        "Add a payment method or credit at https://huggingface.co/settings/billing, then resubmit.",
        {"url": "https://huggingface.co/settings/billing"},
        found.line,
    )


def _gated(ctx: JobContext, found: Found) -> Diagnosis:
    repo = None
    pattern = re.compile(
        r"(?:Access to (?:model|dataset) |have access to it at https?://[^/\s]+/(?:datasets/)?|https?://[^/\s]+/"
        r"(?:datasets/)?)([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*?)(?: is restricted|\.?$|/resolve|\.\s)"
    )
    for line in (found.line, *reversed(ctx.lines)):
        m = pattern.search(line)
        if m and _REPO_ID.fullmatch(m.group(1)):
            repo = m.group(1)
            break
    repo = repo or ctx.labels.get("model")
    url = f"{ctx.endpoint}/{repo}" if repo and _REPO_ID.fullmatch(repo) else None
    return Diagnosis(
        "gated",
        "Gated model or dataset",
        f"{repo or 'A repository the job reads'} is gated, and your account has not been granted access yet.",
        f"Request access at {url} with the account you signed in with, wait for approval, then resubmit."
        if url
        else "Request access on the repository's page with the account you signed in with, then resubmit.",
        {"repo_id": repo, "url": url},
        found.line,
    )


def _auth(ctx: JobContext, found: Found) -> Diagnosis:
    forbidden = re.search(r"403|Forbidden|rights", found.line) is not None
    out = ctx.output_repo
    if forbidden:
        explanation = (
            "The Hub refused to let the job's token write" + (f" to {out}" if out else "") + " (403): the sign-in "
            "lacks the 'write-repos' permission, or you cannot write to that namespace (an org where you only read)."
        )
    else:
        explanation = (
            "The Hub refused the job's token (401): the sign-in expired or was revoked, or a repository id is "
            "wrong (the Hub answers 401 for repos it cannot find)."
        )
    return Diagnosis(
        "auth",
        "Token rights",
        explanation,
        "Sign out and sign in again granting 'write-repos' and 'jobs', check the output repo is in your own "
        "namespace (or an org where you can write), then resubmit.",
        {"scopes": ["write-repos", "jobs"], "output_repo": out},
        found.line,
    )


def _qlora(ctx: JobContext, found: Found) -> Diagnosis:
    flavor = _flavor(ctx)
    on_gpu = flavor is not None and flavor.is_gpu
    if on_gpu:
        action, hint = "Resubmit with LoRA instead of QLoRA (the 4-bit backend is missing here).", {"peft": "lora"}
    else:
        gpu = bigger_gpu_flavor(None, ctx.flavors)
        action = "Resubmit with LoRA on this CPU flavor, or keep QLoRA on a GPU flavor" + (
            f" such as {gpu.name}." if gpu else "."
        )
        hint = {"peft": "lora", "flavor_for_qlora": gpu.name if gpu else None}
    return Diagnosis(
        "qlora_unavailable",
        "QLoRA unavailable",
        "QLoRA loads the model in 4-bit with bitsandbytes, which needs a CUDA GPU and the bitsandbytes package.",
        action,
        hint,
        found.line,
    )


def _missing_package(ctx: JobContext, found: Found) -> Diagnosis:
    module = next((g for g in found.match.groups() if g), "a package")
    top = module.split(".")[0]
    package = _PIP_NAMES.get(top, top)
    if top == "flash_attn":
        action = "Resubmit with attn_implementation 'sdpa' (the default): FlashAttention-2 is not in the job image."
        hint: dict[str, Any] = {"attn_implementation": "sdpa", "package": package}
    else:
        action = f"Resubmit with `{package}` added to the job's dependencies, or drop the option that needs it."
        hint = {"package": package}
    return Diagnosis(
        "missing_package",
        f"Missing package: {package}",
        f"The job imported `{module}`, which is not installed in its environment.",
        action,
        hint,
        found.line,
    )


def _chat_template(ctx: JobContext, found: Found) -> Diagnosis:
    model = ctx.labels.get("model") or ctx.args.get("model_name_or_path") or "The model"
    return Diagnosis(
        "chat_template",
        "No chat template",
        f"{model}'s tokenizer has no chat template, so conversational data (role/content messages) cannot be "
        "rendered. Base models usually have none.",
        "Resubmit with an instruct/chat model (e.g. Qwen/Qwen2.5-0.5B-Instruct), or map the data to plain text "
        "in the Dataset tab.",
        {"tab": "dataset", "model": ctx.labels.get("model")},
        found.line,
    )


def _dataset_columns(ctx: JobContext, found: Found) -> Diagnosis:
    column = next((g for g in found.match.groups() if g), None)
    if column is None:
        m = re.search(r"(?:column|split)s? '([^']+)'", found.line)
        column = m.group(1) if m else None
    dataset = ctx.args.get("dataset_name")
    return Diagnosis(
        "dataset_columns",
        "Dataset columns don't fit",
        (f"The dataset has no column '{column}' where the job expected one" if column else "The dataset's columns "
         "or splits do not match what the training method needs") + ": the mapping from your columns to the "
        "method's fields is missing or wrong.",
        "Open the Dataset tab, check the columns and map them to the method's fields, then resubmit.",
        {"tab": "dataset", "dataset": dataset, "column": column},
        found.line,
    )  # fmt: skip


def _gguf_architecture(ctx: JobContext, found: Found) -> Diagnosis:
    arch = next((g for g in found.match.groups() if g), None)
    return Diagnosis(
        "gguf_unsupported_architecture",
        "Architecture not supported by llama.cpp",
        f"llama.cpp's converter does not know the {arch or 'model'} architecture, so it cannot write a GGUF. "
        "Your model on the Hub is unaffected.",
        "Export a model of a supported family (Llama, Qwen, Mistral, Gemma, Phi ...), or wait for llama.cpp to "
        "add this architecture and export again.",
        {"architecture": arch},
        found.line,
    )


def _gguf_pre_tokenizer(ctx: JobContext, found: Found) -> Diagnosis:
    digest = next((m.group(1) for line in ctx.lines if (m := re.search(r"chkhsh:?\s*([0-9a-f]{64})", line))), None)
    return Diagnosis(
        "gguf_pre_tokenizer",
        "Unknown pre-tokenizer",
        "llama.cpp does not recognise this tokenizer's pre-tokenizer (a new model family, or a changed tokenizer).",
        "Resubmit the export with `pre_tokenizer` set to the family the model derives from (e.g. llama-bpe, "
        "qwen2, deepseek-llm): a wrong name gives wrong tokens.",
        {"pre_tokenizer": None, "chkhsh": digest},
        found.line,
    )


def _unknown_model_type(ctx: JobContext, found: Found) -> Diagnosis:
    model_type = next((g for g in found.match.groups() if g), None)
    return Diagnosis(
        "unknown_model_type",
        "Model type not supported here",
        f"The job's transformers version does not know the model type {model_type or 'of this model'}: the model "
        "is newer than the library, or needs `trust_remote_code`.",
        "Pick a model of a family the pinned transformers supports (Qwen, Llama, Mistral, Gemma, Phi ...), "
        "then resubmit.",
        {"model_type": model_type},
        found.line,
    )


def _environment(ctx: JobContext, found: Found) -> Diagnosis:
    cause, fix = split_failure(ctx.message) or (ctx.message, "see the job's log")
    return Diagnosis(
        "environment",
        "Job environment not prepared",
        f"The job never started: preparing its Python environment failed: {cause}.",
        f"To fix it: {fix}. Then submit it again.",
        {"setting": "TRAINER_SPACE_LOCAL_PYTHON"},
        found.line,
    )


def _interrupted(ctx: JobContext, found: Found) -> Diagnosis:
    first, _, rest = ctx.message.partition("again. ")
    hint: dict[str, Any] = {"resume_from_hub": True} if "resume_from_hub" in rest else {}
    return Diagnosis("interrupted", "Stopped by a restart of the app", first + "again.", rest, hint, ctx.message)


def _generic(ctx: JobContext, found: Found | None = None) -> Diagnosis:
    line = last_error_line(ctx.lines) or ctx.message or "The job ended with an error."
    exit_code = re.search(r"exit code:?\s*(-?\d+)", ctx.message)
    return Diagnosis(
        "error",
        "Failed" + (f" (exit code {exit_code.group(1)})" if exit_code else ""),
        line,
        "Read the end of the logs for the cause, fix it and resubmit.",
        {},
        line,
    )


# ---------------------------------------------------------------------------------------------- rules
RULES: tuple[Rule, ...] = (
    Rule("environment", (re.escape(ENVIRONMENT_FAILED),), _environment, "message"),
    Rule("interrupted", (r"^The app stopped while this job was running",), _interrupted, "message"),
    Rule("timeout", (r"(?i)\btime ?out\b", r"(?i)\btimed out\b", r"DeadlineExceeded"), _timeout, "message"),
    Rule("timeout", (r"DeadlineExceeded",), _timeout, "log"),
    Rule(
        "payment",
        (r"\b402 Client Error", r"Payment Required", r"(?i)pre-paid credit", r"(?i)insufficient (credit|balance)"),
        _payment,
    ),
    Rule(
        "oom",
        (
            r"torch\.(?:cuda\.)?OutOfMemoryError",
            r"CUDA out of memory",
            r"OutOfMemoryError",
            r"CUBLAS_STATUS_ALLOC_FAILED",
        ),
        _oom,
    ),
    Rule(
        "disk_full",
        (r"No space left on device", r"(?i)not enough (free )?disk", r"(?i)out of disk space", r"\[Errno 28\]"),
        _disk_full,
    ),
    Rule(
        "gguf_pre_tokenizer",
        (r"BPE pre-tokenizer was not recognized", r"does not recognise this tokenizer's pre-tokenizer"),
        _gguf_pre_tokenizer,
    ),
    Rule(
        "gguf_unsupported_architecture",
        (
            r"Model (\S+) is not supported",
            r"NotImplementedError: Architecture '?([\w.-]+)'?",
            r"architecture (\S+) is not supported by llama\.cpp",
            r"Architecture '?([\w.-]+)'? not supported",
        ),
        _gguf_architecture,
    ),
    Rule(
        "gated",
        (r"GatedRepoError", r"Cannot access gated repo", r"(?i)access a gated repo", r"(?i)is a gated (?:repo|model)"),
        _gated,
    ),
    Rule(
        "auth",
        (
            r"\b401 Client Error",
            r"\b403 Client Error",
            r"403 Forbidden",
            r"Invalid credentials",
            r"Invalid username or password",
            r"You don't have the rights",
            r"token was refused",
        ),
        _auth,
    ),
    Rule(
        "qlora_unavailable",
        (
            r"QLoRA needs",
            r"No module named '(bitsandbytes)'",
            r"(?i)requires (?:the latest version of )?bitsandbytes",
            r"(?i)bitsandbytes.*(?:not installed|CUDA (?:is )?(?:required|not available))",
        ),
        _qlora,
    ),
    Rule(
        "missing_package",
        (
            r"No module named '([\w.]+)'",
            r"requires the (\S+) library but it was not found",
            r"the package (\w+) seems to be not installed",
        ),
        _missing_package,
    ),
    Rule(
        "chat_template",
        (
            r"tokenizer\.chat_template is not set",
            r"(?i)has no chat template",
            r"(?i)(?:Error|ERROR:).*chat[_ ]template",
            r"(?i)chat_template.*(?:is not set|is None|missing)",
        ),
        _chat_template,
    ),
    Rule(
        "unknown_model_type",
        (r"model type `([\w-]+)` but Transformers does not recognize", r"does not recognize this architecture"),
        _unknown_model_type,
    ),
    Rule(
        "dataset_columns",
        (
            r"ERROR:.*\bcolumn '([^']+)'",
            r"ERROR:.*\bcolumns?\b",
            r"ERROR:.*\bsplit '([^']+)' not in dataset",
            r"ERROR: dataset mapping",
            r"KeyError: '([^']+)'",
            r"Column '?([^' ]+?)'? (?:not in the dataset|doesn't exist)",
            r"Column to remove \['([^']+)'",
        ),
        _dataset_columns,
    ),
    Rule(
        "ram_oom",
        (r"exit code:? ?137\b", r"(?i)killed \(out of memory", r"\bOOMKilled\b", r"^Killed$", r"^MemoryError\b"),
        _ram_oom,
    ),
)


# Lines that successful jobs print and that read like failures: never evidence of one (tests/test_diagnosis.py runs
# the diagnosis over every successful job's log and requires "no failure found").
HARMLESS = (
    # bitsandbytes >= 0.49 on a CPU: its optional `kernels` package is missing, it falls back to its own code
    re.compile(r"from kernels-community: No module named 'kernels'"),
)


def _normalise(lines: Iterable[str]) -> tuple[str, ...]:
    """Strip colours and split progress-bar carriage returns, keeping one entry per visible line (harmless ones
    left out)."""
    out: list[str] = []
    for raw in lines:
        for part in _ANSI.sub("", str(raw)).replace("\r", "\n").split("\n"):
            if part.strip() and not any(h.search(part) for h in HARMLESS):
                out.append(part.rstrip())
    return tuple(out)


def strip_ansi(text: str) -> str:
    """`text` without terminal escape codes (colours, cursor moves), which a page or an API client shows as boxes."""
    return _ANSI.sub("", text)


def _search(rule: Rule, ctx: JobContext, lines: tuple[str, ...]) -> Found | None:
    for pattern in rule.patterns:
        regex = re.compile(pattern)
        if rule.where in ("any", "message") and ctx.message and (m := regex.search(ctx.message)):
            return Found(m, ctx.message)
        if rule.where in ("any", "log"):
            for line in reversed(lines):
                if m := regex.search(line):
                    return Found(m, line.strip())
    return None


def _first_match(ctx: JobContext) -> Diagnosis | None:
    """Rules against the final error line first (what the job died of), then against the whole tail."""
    final = last_error_line(ctx.lines)
    for lines in ((final,) if final else (), ctx.lines):
        for rule in RULES:
            found = _search(rule, ctx, lines)
            if found is not None:
                return rule.builder(ctx, found)
    return None


def find_failure(log: Iterable[str], message: str | None = None, labels: dict[str, str] | None = None,
                 **context: Any) -> Diagnosis | None:  # fmt: skip
    """The failure a job's log (and status message) shows, by the rules; None: no failure found in them.

    A successful job's log must give None (the precision the tests check over every successful job they run):
    a harmless line (a library's warning or note) is never taken for the failure."""
    return diagnose("ERROR", message, list(log), labels, **context, specific=True)


def diagnose(
    stage: str,
    message: str | None,
    log_tail: list[str],
    labels: dict[str, str] | None,
    *,
    flavor: str | None = None,
    args: dict[str, str] | None = None,
    flavors: tuple[Flavor, ...] | None = None,
    endpoint: str = DEFAULT_ENDPOINT,
    backend: str | None = None,
    specific: bool = False,
) -> Diagnosis | None:
    """Explain a finished job; None while it runs, or when it completed (or was deleted).

    Args:
        stage: the job's stage (SCHEDULING, RUNNING, COMPLETED, CANCELED, ERROR, DELETED).
        message: the job's status message (e.g. "Job timeout exceeded (3600s)").
        log_tail: the last log lines (about 200 are enough).
        labels: the job's labels (`trainer-space` kind, `method`, `model`, `output`, ...).
        flavor: the job's hardware flavor (default: a `flavor` label, if any).
        args: the job template's arguments (`peft_mode`, `per_device_train_batch_size`, ...), for concrete fixes.
        flavors: the flavor catalogue with prices (default: the built-in one).
        endpoint: the Hub's URL, for links.
        backend: where it ran, "hf-jobs" or "local" (default: "local" for the flavor "local").
        specific: only a failure a rule recognises (None rather than the generic "failed" one).
    """
    labels = dict(labels or {})
    stage = (stage or "").upper()
    ctx = JobContext(
        stage=stage,
        message=(message or "").strip(),
        lines=_normalise(log_tail or []),
        labels=labels,
        flavor=flavor or labels.get("flavor"),
        args=dict(args or {}),
        flavors=tuple(flavors or FALLBACK_FLAVORS),
        endpoint=endpoint.rstrip("/"),
        backend=backend or "hf-jobs",
    )
    if stage == "CANCELED":
        return _canceled(ctx)
    if stage != "ERROR":
        return None
    found = _first_match(ctx)
    return found if found is not None or specific else _generic(ctx)
