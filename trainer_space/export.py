"""GGUF export submissions: model (or LoRA adapter) -> a CPU job in llama.cpp's official image.

Conversion and quantization need RAM and disk, not a GPU: the recommended flavor is the cheapest
CPU flavor whose disk holds about three times the 16-bit model (the 16-bit GGUF, the quantized
files and, for an adapter, the merged model) and whose RAM holds the model for the merge.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import InvalidInput, from_hub_error
from .hardware import FLAVOR_NAMES, Flavor, get_flavor
from .hub import HubSession
from .jobs import APP_LABEL
from .jobspec import (
    format_timeout,
    hf_run_command,
    job_spec,
    load_template,
    parse_timeout,
    pip_script_request,
    python_run_snippet,
)
from .training import Check, PreflightFailed
from .validation import validate_repo_id, validate_timeout

TEMPLATE = "export_gguf.py"
GB = 1e9
DISK_FACTOR = 3.0  # 16-bit GGUF + quantized outputs + (adapter) merged model
RAM_FACTOR = 1.3  # the merge loads the whole model in 16-bit, plus overhead


@lru_cache(maxsize=1)
def template_constants() -> dict[str, Any]:
    """QUANT_TYPES, DEFAULT_QUANT and LLAMA_CPP_IMAGE read from the template (its single source of truth)."""
    import ast

    tree = ast.parse(load_template(TEMPLATE).text)
    wanted = {"QUANT_TYPES", "DEFAULT_QUANT", "LLAMA_CPP_IMAGE"}
    found: dict[str, Any] = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id in wanted:
            found[target.id] = ast.literal_eval(node.value)
    return found


def quant_types() -> dict[str, dict[str, Any]]:
    return template_constants()["QUANT_TYPES"]


@dataclass
class ExportRequest:
    model: str
    quantizations: list[str]
    output_repo: str = ""
    private: bool = False
    flavor: str = ""  # default: recommended
    timeout: str = ""  # default: from the size

    def validate(self) -> None:
        self.model = validate_repo_id(self.model, "model")
        if isinstance(self.quantizations, str):
            self.quantizations = [q for q in re.split(r"[,\s]+", self.quantizations) if q]
        self.quantizations = list(dict.fromkeys(q.strip().upper() for q in self.quantizations))
        known = quant_types()
        if not self.quantizations:
            self.quantizations = [template_constants()["DEFAULT_QUANT"]]
        bad = [q for q in self.quantizations if q not in known]
        if bad:
            raise InvalidInput(f"Unknown quantization(s) {', '.join(bad)}. Choose from: {', '.join(known)}.")
        if self.output_repo:
            self.output_repo = validate_repo_id(self.output_repo, "model")
            if "/" not in self.output_repo:
                raise InvalidInput("The output repo needs a namespace: 'you/name-GGUF'.")
        if self.flavor and self.flavor not in FLAVOR_NAMES:
            raise InvalidInput(f"Unknown hardware flavor '{self.flavor}'.")
        if self.timeout:
            validate_timeout(self.timeout)


@dataclass
class ModelSize:
    model: str
    bytes_16bit: int
    adapter_base: str | None

    @property
    def gb(self) -> float:
        return self.bytes_16bit / GB


def model_size(session: HubSession, model: str) -> ModelSize:
    """16-bit size of a model (or of an adapter's base model) from the Hub's metadata: no weights downloaded."""
    from huggingface_hub import hf_hub_download

    try:
        info = session.api.model_info(model, token=session._token, files_metadata=True)
    except Exception as err:
        raise from_hub_error(err, repo_id=model) from None
    files = {s.rfilename: s for s in info.siblings or []}
    if "adapter_config.json" in files and "config.json" not in files:
        try:
            path = hf_hub_download(model, "adapter_config.json", token=session._token)
            base = json.loads(Path(path).read_text(encoding="utf-8")).get("base_model_name_or_path")
        except Exception as err:
            raise from_hub_error(err, repo_id=model) from None
        if not base:
            raise InvalidInput(f"'{model}' is a LoRA adapter without base_model_name_or_path: cannot merge it.")
        base_size = model_size(session, validate_repo_id(base, "model"))
        return ModelSize(model, base_size.bytes_16bit, base)
    params = getattr(getattr(info, "safetensors", None), "total", None)
    if params:
        return ModelSize(model, int(params) * 2, None)
    weight_bytes = sum((s.size or 0) for name, s in files.items() if name.endswith((".safetensors", ".bin")) and s.size)
    if not weight_bytes:
        raise InvalidInput(f"'{model}' has no weights (safetensors or .bin) to convert.")
    return ModelSize(model, int(weight_bytes), None)


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


def export_timeout_s(bytes_16bit: int, n_quants: int) -> int:
    """Start-up + download + convert + quantize each + upload, +30%, at least 30 minutes."""
    gb = bytes_16bit / GB
    minutes = 5 + gb / 0.1 / 60 + gb * 0.5 + n_quants * gb * 0.6 + gb * (0.4 + 0.2 * n_quants) / 0.05 / 60
    return max(30 * 60, int(minutes * 60 * 1.3))


def default_output_repo(username: str, model: str) -> str:
    return f"{username}/{model.split('/')[-1]}-GGUF"[:96]


def submit_export(session: HubSession, req: ExportRequest, *, dry_run: bool = False) -> dict[str, Any]:
    """Pre-flight (model readable, output writable, a flavor that fits), then create the job unless dry run."""
    req.validate()
    from .preflight import check_account, check_output_repo

    checks = check_account(session)
    size = model_size(session, req.model)
    what = f"LoRA adapter on {size.adapter_base}" if size.adapter_base else "full model"
    checks.append(Check("model", "ok", f"{req.model}: {what}, {size.gb:.1f} GB in 16-bit."))
    output_repo = req.output_repo or default_output_repo(session.username, req.model)
    checks.append(check_output_repo(session, output_repo, "GGUF files, card and Modelfile go to"))
    flavors, _ = session.hardware()
    recommended, notes = recommend_cpu_flavor(size.bytes_16bit, flavors)
    flavor_name = req.flavor or (recommended.name if recommended else "cpu-upgrade")
    flavor = get_flavor(flavor_name, flavors)
    if flavor and flavor.is_gpu:
        notes.append(f"{flavor.name} has a GPU that conversion does not use: a CPU flavor costs less.")
    if flavor and recommended and (flavor.disk_gb < size.bytes_16bit * DISK_FACTOR / GB):
        checks.append(Check("flavor", "warn", f"{flavor.name} may run out of disk; {recommended.name} is safer."))
    else:
        checks.append(Check("flavor", "ok", f"{flavor_name}: enough RAM and disk."))
    timeout_s = (
        parse_timeout(req.timeout) if req.timeout else export_timeout_s(size.bytes_16bit, len(req.quantizations))
    )
    template = load_template(TEMPLATE)
    args = ["--model", req.model, "--output_repo", output_repo, "--quantizations", ",".join(req.quantizations)]
    args += ["--private", str(bool(req.private)).lower()]
    labels = {
        APP_LABEL: "export_gguf",
        "model": req.model[:128],
        "output": output_repo[:128],
        "timeout": str(timeout_s),
    }
    request = pip_script_request(
        template,
        args,
        image=template_constants()["LLAMA_CPP_IMAGE"],
        flavor=flavor_name,
        timeout_s=timeout_s,
        labels=labels,
    )
    from .settings import get_settings

    result: dict[str, Any] = {
        "job_id": None,
        "url": None,
        "flavor": flavor_name,
        "timeout": format_timeout(timeout_s),
        "command": hf_run_command(request, template),
        "python": python_run_snippet(request, template),
        "spec": job_spec(request, template),
        "output_repo": output_repo,
        "output_url": f"{get_settings().endpoint}/{output_repo}",
        "quantizations": req.quantizations,
        "model_gb_16bit": round(size.gb, 2),
        "notes": notes,
        "preflight": [asdict(c) for c in checks],
        "submitted": False,
    }
    if dry_run:
        return result
    failed = [c for c in checks if c.status == "error"]
    if failed:
        raise PreflightFailed(failed)
    job = session.submit_job(request)
    result.update(job_id=job.id, url=job.url, submitted=True)
    return result
