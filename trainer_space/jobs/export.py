"""GGUF export submissions: model (or LoRA adapter) -> a CPU job in llama.cpp's official image.

Conversion and quantization need RAM and disk, not a GPU: the recommended flavor is the cheapest
CPU flavor whose disk holds about three times the 16-bit model (the 16-bit GGUF, the quantized
files and, for an adapter, the merged model) and whose RAM holds the model for the merge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from huggingface_hub import JobInfo

from ..catalog import submit_timeout_s
from ..errors import InvalidInput
from ..hub.hardware import Flavor, get_flavor
from ..hub.session import HubSession, JobRequest
from ..settings import get_settings
from ..validation import format_timeout, parse_timeout, validate_repo_id
from .config import CONFIG_ENV, ExportConfig
from .preflight import Check, PreflightFailed, Status, check_account, check_output_repo
from .reproduce import hf_run_command, job_spec, python_run_snippet
from .spec import APP_LABEL, Template, job_name, label_value, load_template, pip_script_request, template_constants

TEMPLATE = "export_gguf.py"
GB = 1e9
DISK_FACTOR = 3.0  # 16-bit GGUF + quantized outputs + (adapter) merged model
RAM_FACTOR = 1.3  # the merge loads the whole model in 16-bit, plus overhead


def quant_types() -> dict[str, dict[str, Any]]:
    """The quantization types the template offers (its QUANT_TYPES: the single source)."""
    return template_constants(TEMPLATE)["QUANT_TYPES"]


def default_quant() -> str:
    return template_constants(TEMPLATE)["DEFAULT_QUANT"]


@dataclass(frozen=True)
class ModelSize:
    model: str
    bytes_16bit: int
    adapter_base: str | None
    reward_head: str | None = None  # why it is a reward (classification) model: nothing for llama.cpp to run

    @property
    def gb(self) -> float:
        return self.bytes_16bit / GB


def model_size(session: HubSession, model: str) -> ModelSize:
    """16-bit size of a model (or of an adapter's base model) from the Hub's metadata: no weights downloaded."""
    info = session.model_info(model, files_metadata=True)
    files = {s.rfilename: s for s in info.siblings or []}
    if "adapter_config.json" in files and "config.json" not in files:
        private = bool(info.private or info.gated)
        adapter = session.download_json(model, "adapter_config.json", revision=info.sha, isolated=private)
        base = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
        if not base:
            raise InvalidInput(f"'{model}' is a LoRA adapter without base_model_name_or_path: cannot merge it.")
        base_size = model_size(session, validate_repo_id(base, "model"))
        reward = "a LoRA adapter with task_type SEQ_CLS" if adapter.get("task_type") == "SEQ_CLS" else None
        return ModelSize(model, base_size.bytes_16bit, base, reward)
    architectures = (getattr(info, "config", None) or {}).get("architectures") or []
    heads = [a for a in architectures if str(a).endswith(("ForSequenceClassification", "ForTokenClassification"))]
    reward = f"a {heads[0]}" if heads else None
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

    config: ExportConfig  # resolved: quantizations, output repo, flavor and timeout filled in
    size: ModelSize
    request: JobRequest
    template: Template
    checks: tuple[Check, ...]
    notes: tuple[str, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == Status.ERROR)


@dataclass(frozen=True)
class ExportSubmission:
    plan: ExportPlan
    job: JobInfo | None = None

    @property
    def submitted(self) -> bool:
        return self.job is not None

    def to_json(self) -> dict[str, Any]:
        """The `/export_gguf` answer."""
        plan, cfg = self.plan, self.plan.config
        return {
            "job_id": self.job.id if self.job else None,
            "url": self.job.url if self.job else None,
            "flavor": cfg.flavor,
            "timeout": cfg.timeout,
            "command": hf_run_command(plan.request, plan.template),
            "python": python_run_snippet(plan.request, plan.template),
            "spec": job_spec(plan.request, plan.template),
            "output_repo": cfg.output_repo,
            "output_url": f"{get_settings().endpoint}/{cfg.output_repo}",
            "quantizations": list(cfg.quantizations),
            "model_gb_16bit": round(plan.size.gb, 2),
            "notes": list(plan.notes),
            "preflight": [c.to_json() for c in plan.checks],
            "config": cfg.to_json(),
            "submitted": self.submitted,
        }


def plan_export(session: HubSession, cfg: ExportConfig) -> ExportPlan:
    """Pre-flight (model readable, output writable, a flavor that fits) and the exact job, creating nothing."""
    checks = check_account(session)
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
    output_repo = cfg.output_repo or default_output_repo(session.username, cfg.model)
    checks.append(check_output_repo(session, output_repo, "GGUF files, card and Modelfile go to"))
    flavors, _ = session.hardware()
    recommended, notes = recommend_cpu_flavor(size.bytes_16bit, flavors)
    flavor_name = cfg.flavor or (recommended.name if recommended else "cpu-upgrade")
    flavor = get_flavor(flavor_name, flavors)
    if flavor and flavor.is_gpu:
        notes.append(f"{flavor.name} has a GPU that conversion does not use: a CPU flavor costs less.")
    if flavor and recommended and (flavor.disk_gb < size.bytes_16bit * DISK_FACTOR / GB):
        checks.append(Check("flavor", Status.WARN, f"{flavor.name} may run out of disk; {recommended.name} is safer."))
    else:
        checks.append(Check("flavor", Status.OK, f"{flavor_name}: enough RAM and disk."))
    quants = cfg.quantizations or (default_quant(),)
    timeout_s = (parse_timeout(cfg.timeout) if cfg.timeout else None) or export_timeout_s(size.bytes_16bit, len(quants))
    cfg = cfg.with_changes(
        quantizations=list(quants), output_repo=output_repo, flavor=flavor_name, timeout=format_timeout(timeout_s)
    )
    args = ["--model", cfg.model, "--output_repo", output_repo, "--quantizations", ",".join(quants)]
    args += ["--private", str(cfg.private).lower()]
    labels = {
        APP_LABEL: "export_gguf",
        "model": label_value(cfg.model),
        "output": label_value(output_repo),
        "timeout": str(timeout_s),
    }
    template = load_template(TEMPLATE)
    request = pip_script_request(
        template,
        args,
        image=template_constants(TEMPLATE)["LLAMA_CPP_IMAGE"],
        flavor=flavor_name,
        timeout_s=timeout_s,
        labels=labels,
        env={CONFIG_ENV: json.dumps(cfg.to_json(), separators=(",", ":"))},
        name=job_name("gguf", output_repo),
    )
    return ExportPlan(cfg, size, request, template, tuple(checks), tuple(notes))


def submit_export(session: HubSession, cfg: ExportConfig, *, dry_run: bool = False) -> ExportSubmission:
    """Plan the export, then (unless `dry_run`) create the job; PreflightFailed when a check failed."""
    plan = plan_export(session, cfg)
    if dry_run:
        return ExportSubmission(plan)
    if plan.failed:
        raise PreflightFailed(list(plan.failed))
    return ExportSubmission(plan, session.submit_job(plan.request))
