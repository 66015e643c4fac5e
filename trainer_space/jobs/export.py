"""GGUF export submissions: model (or LoRA adapter) -> a CPU job in llama.cpp's official image.

Conversion and quantization need RAM and disk, not a GPU: the recommended flavor is the cheapest
CPU flavor whose disk holds about three times the 16-bit model (the 16-bit GGUF, the quantized
files and, for an adapter, the merged model) and whose RAM holds the model for the merge.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from huggingface_hub import JobInfo

from ..catalog import submit_timeout_s
from ..errors import InvalidInput
from ..estimate.model_facts import safetensors_total
from ..hub.hardware import LOCAL_FLAVOR, Flavor, get_flavor
from ..hub.session import HubSession
from ..settings import get_settings
from ..steps import step
from ..validation import format_timeout, is_local_ref, parse_timeout, validate_repo_id
from .backends import JOB_DIR, JobLaunch
from .backends.base import LLAMA_CPP_DIR
from .backends.hf_jobs import job_request
from .backends.local import local_command, local_spec, this_machine
from .config import CONFIG_ENV, ExportConfig
from .preflight import (
    Check,
    PreflightFailed,
    Status,
    check_account,
    check_output_repo,
    check_running,
    check_total,
)
from .reproduce import hf_run_command, job_spec, python_run_snippet
from .spec import APP_LABEL, Template, job_name, label_value, load_template, template_constants
from .spending import CostGuard, bounded_timeout, cost_check, guard
from .submission import KEY_LABEL, Submitted, create_once, submission_key
from .training import SIGNED_OUT_PUSH

TEMPLATE = "export_gguf.py"
GB = 1e9
DISK_FACTOR = 3.0  # 16-bit GGUF + quantized outputs + (adapter) merged model
RAM_FACTOR = 1.3  # the merge loads the whole model in 16-bit, plus overhead


def quant_types() -> dict[str, dict[str, Any]]:
    """The quantization types the template offers (its QUANT_TYPES: the single source)."""
    return template_constants(TEMPLATE)["QUANT_TYPES"]


def default_quant(backend: str | None = None) -> str:
    """The default quantization type: the template's (Q4_K_M), or the one `backend` can make here when it cannot
    (`quant_options`)."""
    return quant_options(backend).default if backend else template_constants(TEMPLATE)["DEFAULT_QUANT"]


@dataclass(frozen=True)
class QuantOptions:
    """What a backend can make here: the types (in the template's order), the default to preselect, and for each
    type it cannot make, why and how to get it."""

    backend: str
    available: tuple[str, ...]
    default: str
    unavailable: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "available": list(self.available), "default": self.default,
                "unavailable": dict(self.unavailable)}  # fmt: skip


GET_LLAMA_QUANTIZE = (
    "Build it with `python -m trainer_space.jobs.backends.llama_cpp --build` (about 10 minutes; needs cmake and a C++ "
    "compiler), or put yours on PATH or in TRAINER_SPACE_LLAMA_CPP_DIR"
)  # how to get llama.cpp's llama-quantize on this machine (what local K-quants need)


def quant_options(backend: str | None = None) -> QuantOptions:
    """The quantization types `backend` ("hf-jobs" or "local"; default: the configured one) can make here, and the
    default to use. Hugging Face Jobs: all of them (llama.cpp's image has llama-quantize), default Q4_K_M. This
    machine: all with `llama-quantize` (default Q4_K_M), else the types the converter makes itself (F16, BF16,
    Q8_0; default Q8_0), the K-quants said unavailable with how to get llama-quantize."""
    backend = backend or get_settings().default_backend
    types = tuple(quant_types())
    best = template_constants(TEMPLATE)["DEFAULT_QUANT"]
    if backend != "local" or quantizer() is not None:
        return QuantOptions(backend, types, best, {})
    converter = set(template_constants(TEMPLATE)["CONVERTER_TYPES"])
    available = tuple(q for q in types if q in converter)
    return QuantOptions(backend, available, "Q8_0" if "Q8_0" in available else available[0],
                        {q: f"needs llama.cpp's llama-quantize, which is not on this machine. {GET_LLAMA_QUANTIZE}."
                         for q in types if q not in converter})  # fmt: skip


@dataclass(frozen=True)
class ModelSize:
    model: str
    bytes_16bit: int
    adapter_base: str | None
    reward_head: str | None = None  # why it is a reward (classification) model: nothing for llama.cpp to run

    @property
    def gb(self) -> float:
        return self.bytes_16bit / GB


def reward_head_of(architectures: list[Any] | None, adapter: dict[str, Any] | None = None) -> str | None:
    """Why a model is a reward (classification) model, from its config's architectures or its adapter's task."""
    if adapter is not None and adapter.get("task_type") == "SEQ_CLS":
        return "a LoRA adapter with task_type SEQ_CLS"
    heads = [a for a in architectures or [] if str(a).endswith(("ForSequenceClassification", "ForTokenClassification"))]
    return f"a {heads[0]}" if heads else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def local_model_size(path: str) -> ModelSize:
    """16-bit size of a model folder on this machine (or of the base an adapter folder names)."""
    folder = Path(path)
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        adapter = _read_json(folder / "adapter_config.json")
        base = adapter.get("base_model_name_or_path")
        if not base:
            raise InvalidInput(f"{folder} is a LoRA adapter without base_model_name_or_path: cannot merge it.")
        # the base's size is read by the caller (a Hub id or a folder)
        return ModelSize(path, 0, base, reward_head_of(None, adapter))
    total, _ = safetensors_total(folder)
    if not total:
        raise InvalidInput(f"{folder} has no safetensors weights to convert.")
    reward = reward_head_of(_read_json(folder / "config.json").get("architectures"))
    return ModelSize(path, int(total) * 2, None, reward)


def model_size(session: HubSession, model: str) -> ModelSize:
    """16-bit size of a model (or of an adapter's base model) from the Hub's metadata: no weights downloaded."""
    if is_local_ref(model):
        size = local_model_size(model)
        if size.adapter_base:
            base = model_size(session, size.adapter_base)
            return ModelSize(model, base.bytes_16bit, size.adapter_base, size.reward_head)
        return size
    info = session.model_info(model, files_metadata=True)
    files = {s.rfilename: s for s in info.siblings or []}
    if "adapter_config.json" in files and "config.json" not in files:
        private = bool(info.private or info.gated)
        adapter = session.download_json(model, "adapter_config.json", revision=info.sha, isolated=private)
        base = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
        if not base:
            raise InvalidInput(f"'{model}' is a LoRA adapter without base_model_name_or_path: cannot merge it.")
        base_size = model_size(session, validate_repo_id(base, "model"))
        return ModelSize(model, base_size.bytes_16bit, base, reward_head_of(None, adapter))
    reward = reward_head_of((getattr(info, "config", None) or {}).get("architectures"))
    params = getattr(getattr(info, "safetensors", None), "total", None)
    if params:
        return ModelSize(model, int(params) * 2, None, reward)
    weight_bytes = sum((s.size or 0) for name, s in files.items() if name.endswith((".safetensors", ".bin")) and s.size)
    if not weight_bytes:
        raise InvalidInput(f"'{model}' has no weights (safetensors or .bin) to convert.")
    return ModelSize(model, int(weight_bytes), None, reward)


def recommend_cpu_flavor(bytes_16bit: int, flavors: tuple[Flavor, ...]) -> tuple[Flavor | None, list[str]]:
    """The cheapest CPU flavor with disk >= 3x and RAM >= 1.3x the 16-bit size, and why."""
    need_disk, need_ram = bytes_16bit * DISK_FACTOR / GB, bytes_16bit * RAM_FACTOR / GB
    notes = [
        f"Needs about {need_disk:.1f} GB of disk and {need_ram:.1f} GB of RAM (16-bit model {bytes_16bit / GB:.1f} GB)."
    ]
    fitting = [f for f in flavors if not f.is_gpu and f.disk_gb >= need_disk and f.ram_gb >= need_ram]
    if fitting:
        best = min(fitting, key=lambda f: (f.usd_per_hour, f.name))
        return best, [*notes, f"{best.name} is the cheapest CPU flavor with enough RAM and disk; no GPU is needed."]
    bigger = [f for f in flavors if f.disk_gb >= need_disk and f.ram_gb >= need_ram]
    if bigger:
        best = min(bigger, key=lambda f: (f.usd_per_hour, f.name))
        return best, [*notes, f"No CPU flavor has enough RAM/disk; {best.name} does (its GPU is not used)."]
    return None, [*notes, "No flavor has enough disk for this model."]


def export_seconds(bytes_16bit: int, n_quants: int) -> float:
    """Start-up (5 min) + download (100 MB/s) + convert (0.5 min/GB) + quantize (0.6 min/GB each) + upload
    (50 MB/s of the 16-bit and quantized files): assumptions, like the training estimate's."""
    gb = bytes_16bit / GB
    minutes = 5 + gb / 0.1 / 60 + gb * 0.5 + n_quants * gb * 0.6 + gb * (0.4 + 0.2 * n_quants) / 0.05 / 60
    return minutes * 60


def export_timeout_s(bytes_16bit: int, n_quants: int) -> int:
    """The export's timeout, by the same rule as training's (the estimate + 30%, at least 30 minutes)."""
    return submit_timeout_s(export_seconds(bytes_16bit, n_quants))


def default_output_repo(username: str, model: str) -> str:
    return f"{username}/{model.split('/')[-1]}-GGUF"[:96]


@dataclass(frozen=True)
class ExportPlan:
    """The checks, the resolved config and the exact export job, before anything is created."""

    config: ExportConfig  # resolved: backend, quantizations, output repo, flavor and timeout filled in
    size: ModelSize
    launch: JobLaunch
    checks: tuple[Check, ...]
    notes: tuple[str, ...]
    cost: CostGuard
    key: str  # the submission key (the job's KEY_LABEL)

    @property
    def template(self) -> Template:
        return self.launch.template

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == Status.ERROR)


@dataclass(frozen=True)
class ExportSubmission:
    plan: ExportPlan
    job: JobInfo | None = None
    how: Submitted | None = None  # created / existing / recovered

    @property
    def submitted(self) -> bool:
        return self.job is not None

    def to_json(self) -> dict[str, Any]:
        """The `/export_gguf` answer."""
        plan, cfg = self.plan, self.plan.config
        if cfg.is_local:
            command, python, spec = local_command(plan.launch), "", local_spec(plan.launch)
        else:
            request = job_request(plan.launch)
            command, python = hf_run_command(request, plan.template), python_run_snippet(request, plan.template)
            spec = job_spec(request, plan.template)
        return {
            "backend": cfg.resolved_backend,
            "output_dir": str(Path(self.job.job_dir) / "output") if cfg.is_local and self.job else None,
            "job_id": self.job.id if self.job else None,
            "url": self.job.url if self.job else None,
            "flavor": cfg.flavor,
            "timeout": cfg.timeout,
            "command": command,
            "python": python,
            "spec": spec,
            "output_repo": cfg.output_repo,
            "output_url": f"{get_settings().endpoint}/{cfg.output_repo}" if cfg.output_repo else None,
            "quantizations": list(cfg.quantizations),
            "model_gb_16bit": round(plan.size.gb, 2),
            "notes": list(plan.notes),
            "preflight": [c.to_json() for c in plan.checks],
            "config": cfg.to_json(),
            "submitted": self.submitted,
            "cost": plan.cost.to_json(),
            "submission": self.how.to_json() if self.how else {"outcome": None, "key": plan.key},
        }


def quantizer() -> str | None:
    """llama.cpp's `llama-quantize` on this machine (for local K-quants), or None."""
    from .backends.llama_cpp import llama_cpp_bin_dir

    found = shutil.which("llama-quantize")
    if found:
        return found
    configured = Path(get_settings().llama_cpp_dir) if get_settings().llama_cpp_dir else None
    for folder in (configured, configured / "build" / "bin" if configured else None, llama_cpp_bin_dir()):
        if folder is not None and (folder / "llama-quantize").is_file():
            return str(folder / "llama-quantize")
    return None


def check_local_export(size: ModelSize, quants: list[str]) -> list[Check]:
    """A local export: RAM and disk of this machine, and llama-quantize for the types the converter cannot make."""
    machine = this_machine()
    need_disk, need_ram = size.bytes_16bit * DISK_FACTOR / GB, size.bytes_16bit * RAM_FACTOR / GB
    checks = [Check("this machine", Status.OK, f"Runs on {machine.pretty_name}; the files stay in a local folder.")]
    if machine.ram_gb and machine.ram_gb < need_ram:
        checks.append(Check("memory", Status.ERROR, f"Needs about {need_ram:.1f} GB of RAM; this machine has "
                            f"{machine.ram_gb:.1f} GB. Run it on Hugging Face Jobs instead."))  # fmt: skip
    if machine.disk_gb < need_disk:
        checks.append(Check("disk", Status.ERROR, f"Needs about {need_disk:.1f} GB of free disk; {machine.disk_gb:.1f} "
                            "GB are free."))  # fmt: skip
    converter_types = set(template_constants(TEMPLATE)["CONVERTER_TYPES"])
    k_quants = [q for q in quants if q not in converter_types]
    if k_quants and quantizer() is None:
        checks.append(Check(
            "quantizer", Status.ERROR,
            f"{', '.join(k_quants)} need llama.cpp's llama-quantize, which is not on this machine. "
            f"{GET_LLAMA_QUANTIZE}. Or pick {', '.join(sorted(converter_types))}, which the converter makes itself "
            "(Q8_0 is the smallest), or run the export on Hugging Face Jobs.",
        ))  # fmt: skip
    return checks


def plan_export(session: HubSession, cfg: ExportConfig, *, dry_run: bool = True) -> ExportPlan:
    """Pre-flight (model readable, output writable, a flavor that fits, the cost under its cap) and the exact job,
    creating nothing. On this machine: its RAM and disk, llama-quantize for K-quants, the Hub only to push."""
    local = cfg.is_local
    if not local:
        session.require("export to GGUF on Hugging Face Jobs")
    pushing = cfg.push_to_hub and (not local or session.is_signed_in)
    step("checking your sign-in and reading the model")
    checks = check_account(session) if pushing else []
    size = model_size(session, cfg.model)
    what = f"LoRA adapter on {size.adapter_base}" if size.adapter_base else "full model"
    if size.reward_head:
        checks.append(
            Check(
                "model",
                Status.ERROR,
                f"{cfg.model} is a reward model ({size.reward_head}: a score head, no language-model head): llama.cpp "
                "and Ollama run text-generation models, and a GGUF of it would lose its score head. Use it with "
                "transformers (AutoModelForSequenceClassification), or export a model trained with SFT, DPO, GRPO "
                "or KTO.",
            )
        )
    else:
        checks.append(Check("model", Status.OK, f"{cfg.model}: {what}, {size.gb:.1f} GB in 16-bit."))
    output_repo = None
    if pushing:
        output_repo = cfg.output_repo or default_output_repo(session.username, cfg.model)
        checks.append(check_output_repo(session, output_repo, "GGUF files, card and Modelfile go to"))
    quants = list(cfg.quantizations or (default_quant(cfg.resolved_backend),))
    notes: list[str] = []
    flavor: Flavor | None = None
    if local:
        flavor_name = LOCAL_FLAVOR
        checks += check_local_export(size, quants)
        if cfg.push_to_hub and not pushing:  # asked while signed out: said, not silently ignored
            folder = str(get_settings().home / "jobs" / "<job id>" / "output")
            checks.append(Check("push to the Hub", Status.WARN, SIGNED_OUT_PUSH.format(folder=folder)))
    else:
        flavors, _ = session.hardware()
        recommended, notes = recommend_cpu_flavor(size.bytes_16bit, flavors)
        flavor_name = cfg.flavor or (recommended.name if recommended else "cpu-upgrade")
        flavor = get_flavor(flavor_name, flavors)
        if flavor and flavor.is_gpu:
            notes.append(f"{flavor.name} has a GPU that conversion does not use: a CPU flavor costs less.")
        checks.append(_flavor_check(cfg, flavor, flavor_name, recommended, size))
    estimate_s = export_seconds(size.bytes_16bit, len(quants))
    needed_s = export_timeout_s(size.bytes_16bit, len(quants))
    timeout_s = (parse_timeout(cfg.timeout) if cfg.timeout else None) or needed_s
    price = flavor.usd_per_hour if flavor else 0.0
    cost = guard(flavor_name, session.hardware() if not local else ((), True), timeout_s=timeout_s,
                 needed_timeout_s=needed_s, estimate_usd=estimate_s / 3600 * price, max_cost_usd=cfg.max_cost_usd)  # fmt: skip
    if not cfg.timeout:
        timeout_s = bounded_timeout(timeout_s, estimate_s, cost.usd_per_hour, cost.cap_usd)
        cost = replace(cost, timeout_s=timeout_s)
    if not local:  # this machine costs nothing and is not one of the visitor's Jobs
        checks.append(cost_check(cost))
        running, unfinished = check_running(session, None, confirmed=cfg.allow_many_running, dry_run=dry_run)
        total, cost = check_total(session, None, cost, unfinished)
        checks += [running] if total is None else [running, total]
    cfg = cfg.with_changes(
        backend=cfg.resolved_backend, quantizations=quants, output_repo=output_repo, flavor=flavor_name,
        timeout=format_timeout(timeout_s), push_to_hub=pushing,
    )  # fmt: skip
    args = ["--model", cfg.model]
    if pushing:
        args += ["--output_repo", output_repo or ""]
    args += ["--quantizations", ",".join(quants)]
    if pushing:
        args += ["--private", str(cfg.private).lower()]
    if cfg.pre_tokenizer:
        args += ["--pre_tokenizer", cfg.pre_tokenizer]
    if local:
        args += ["--push", str(pushing).lower(), "--output_dir", f"{JOB_DIR}/output", "--llama_cpp_dir", LLAMA_CPP_DIR]
        quantize = quantizer()
        if quantize:
            args += ["--quantize_bin", quantize]
    visitor = session.username if session.is_signed_in else "local"
    key = submission_key(visitor, visitor, "export_gguf", cfg.job_json(), cfg.idempotency_key)
    labels = {
        APP_LABEL: "export_gguf",
        "model": label_value(cfg.model),
        "output": label_value(output_repo or ""),
        "timeout": str(timeout_s),
        KEY_LABEL: key,
    }
    template = load_template(TEMPLATE)
    launch = JobLaunch(
        kind="export_gguf",
        template=template,
        args=tuple(args),
        labels={k: v for k, v in labels.items() if v} | {"template_sha": template.short_sha},
        env={CONFIG_ENV: json.dumps(cfg.to_json(), separators=(",", ":"))},
        flavor=flavor_name,
        timeout_s=timeout_s,
        name=job_name("gguf", output_repo or cfg.model),
        image=None if local else template_constants(TEMPLATE)["LLAMA_CPP_IMAGE"],
        tools=("llama.cpp",) if local else (),
    )
    return ExportPlan(cfg, size, launch, tuple(checks), tuple(notes), cost, key)


def _flavor_check(
    cfg: ExportConfig, flavor: Flavor | None, name: str, recommended: Flavor | None, size: ModelSize
) -> Check:
    """The flavor has the disk and RAM the export needs (an error unless `allow_unfit`)."""
    need_disk, need_ram = size.bytes_16bit * DISK_FACTOR / GB, size.bytes_16bit * RAM_FACTOR / GB
    if flavor is None or (flavor.disk_gb >= need_disk and flavor.ram_gb >= need_ram):
        return Check("flavor", Status.OK, f"{name}: enough RAM and disk.")
    safer = f"; {recommended.name} has enough" if recommended else ""
    message = (
        f"{name} has {flavor.disk_gb:g} GB of disk and {flavor.ram_gb:g} GB of RAM, the export needs about "
        f"{need_disk:.0f} GB and {need_ram:.0f} GB{safer}."
    )
    if cfg.allow_unfit:
        return Check("flavor", Status.WARN, f"{message} You chose to submit anyway (allow_unfit).")
    return Check("flavor", Status.ERROR, f"{message} To submit anyway: allow_unfit: true.")


def submit_export(session: HubSession, cfg: ExportConfig, *, dry_run: bool = False) -> ExportSubmission:
    """Plan the export, then (unless `dry_run`) create the job once per submission key; PreflightFailed when a check
    failed, JobNotCreated / JobOutcomeUnknown when the create failed."""
    plan = plan_export(session, cfg, dry_run=dry_run)
    if dry_run:
        return ExportSubmission(plan)
    if plan.failed:
        raise PreflightFailed(list(plan.failed))
    how = create_once(session, plan.launch, key=plan.key, explicit=bool(plan.config.idempotency_key),
                      local=plan.config.is_local, what="export", worst_usd=plan.cost.worst_usd)  # fmt: skip
    return ExportSubmission(plan, how.job, how)
