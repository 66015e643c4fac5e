# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "peft==0.21.2",
#     "transformers==5.23.0",
#     "accelerate==1.15.0",
#     "huggingface_hub==2.4.0",
# ]
# ///
"""Export a Hub model, or a LoRA adapter merged onto its base, to GGUF for llama.cpp, Ollama and LM Studio.

Runs inside llama.cpp's official image (``LLAMA_CPP_IMAGE`` below), which ships the converter
(``/app/convert_hf_to_gguf.py`` + its Python requirements, torch CPU included), ``/app/llama-quantize`` and
``/app/llama-completion``. The header above lists only what the job adds on top of that image (never
torch: the image's CPU build must stay). Everything runs on CPU; no GPU is needed.

Steps: quantizer check -> disk check, then download of the final weights only (or merge an adapter) -> RAM check
-> convert to 16-bit GGUF -> quantize -> read every
file back -> generate a few tokens where a llama.cpp runtime exists -> Modelfile + card -> one Hub commit.

Examples::

    HF_TOKEN=hf_... python3 export_gguf.py --model alice/my-sft --quantizations Q4_K_M,Q8_0
    HF_TOKEN=hf_... python3 export_gguf.py --model alice/my-lora --output_repo alice/my-lora-GGUF --private true
    python3 export_gguf.py --model ./merged --quantizations Q8_0 --push false --output_dir ./gguf \\
        --llama_cpp_dir ~/src/llama.cpp

Exit codes: 0 done, 2 a problem the user can fix (arguments, token, disk, RAM, tokenizer, architecture),
1 anything else. Errors are printed as one ``ERROR: ...`` line.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# One tagged llama.cpp release for converter, quantizer and runtime (b11312 = commit 0c1e57098, the tree
# llama-cpp-python 0.3.36 vendors, which is what the CI tests run the converter from).
LLAMA_CPP_IMAGE = "ghcr.io/ggml-org/llama.cpp:full-b11312"

# Offered types. bits_per_weight: effective size of a whole file (llama.cpp's table for Llama-3-8B,
# F16 = 16); multiply by parameters / 8 for a size estimate.
QUANT_TYPES = {
    "Q2_K": {"bits_per_weight": 3.17, "description": "smallest; clear quality loss, last resort"},
    "Q3_K_S": {"bits_per_weight": 3.65, "description": "very small; high quality loss"},
    "Q3_K_M": {"bits_per_weight": 4.00, "description": "very small; noticeable quality loss"},
    "Q3_K_L": {"bits_per_weight": 4.31, "description": "small; some quality loss"},
    "Q4_0": {"bits_per_weight": 4.64, "description": "legacy 4-bit; fast on ARM and older runtimes"},
    "Q4_K_S": {"bits_per_weight": 4.67, "description": "small; a little quality loss"},
    "Q4_K_M": {"bits_per_weight": 4.90, "description": "recommended default; good balance of size and quality"},
    "Q5_K_S": {"bits_per_weight": 5.57, "description": "medium; low quality loss"},
    "Q5_K_M": {"bits_per_weight": 5.70, "description": "medium; very low quality loss"},
    "Q6_K": {"bits_per_weight": 6.57, "description": "large; almost lossless"},
    "Q8_0": {"bits_per_weight": 8.51, "description": "large; practically lossless"},
    "F16": {"bits_per_weight": 16.0, "description": "16-bit float; full quality, for re-quantizing"},
    "BF16": {"bits_per_weight": 16.0, "description": "bfloat16; full quality, keeps the range of bf16 models"},
}
DEFAULT_QUANT = "Q4_K_M"
CONVERTER_TYPES = {"F16": "f16", "BF16": "bf16", "Q8_0": "q8_0"}  # made by convert_hf_to_gguf.py itself
HUB_MAX_FILE_BYTES = 50 * 1000**3  # the Hub refuses single files above 50 GB
STEP_TIMEOUT_S = 6 * 3600
SMOKE_TOKENS = 8

_TOKENIZER_EXTRAS = ["*.model", "*.jinja", "*.tiktoken", "merges.txt", "vocab.txt"]
DOWNLOAD_PATTERNS = ["*.safetensors", "*.json", "tokenizer*", *_TOKENIZER_EXTRAS]
TOKENIZER_FILES = ["tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab.json", *_TOKENIZER_EXTRAS]


def _pep723_dependencies(source: str) -> list[str]:
    """The ``dependencies`` list of a script's PEP 723 header."""
    match = re.search(r"(?ms)^# /// script\s*$(.*?)^# ///\s*$", source)
    if match is None:
        return []
    body = "\n".join(line[2:] if line.startswith("# ") else line[1:] for line in match.group(1).splitlines())
    return list(tomllib.loads(body).get("dependencies", []))


# What the job installs on top of the image: read from the header above (the single source of truth).
JOB_PIP_REQUIREMENTS = _pep723_dependencies(Path(__file__).read_text(encoding="utf-8"))


class ExportError(Exception):
    """A failure with a one-line explanation; ``exit_code`` 2 means the user can fix it."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ExportConfig:
    """Command-line options (see ``make_parser``)."""

    model: str
    output_repo: str | None = None
    private: bool = False
    quantizations: str = DEFAULT_QUANT
    outtype: str = "auto"
    pre_tokenizer: str | None = None
    llama_cpp_dir: str = "/app"
    convert_script: str | None = None
    quantize_bin: str | None = None
    cli_bin: str | None = None
    work_dir: str | None = None
    output_dir: str | None = None
    push: bool = True


@dataclass
class GGUFSummary:
    """What a GGUF file says about itself once read back."""

    path: Path
    qtype: str
    architecture: str
    tensor_count: int
    file_type: int
    context_length: int | None
    chat_template: str | None
    eos_token_id: int | None
    eos_token: str | None
    eot_token: str | None = None

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


@dataclass
class ResolvedInput:
    """The HF-format model directory to convert and where it came from."""

    model_dir: Path
    source: str
    adapter_base: str | None = None  # the base model an adapter was merged onto
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- arguments


def _str2bool(value: str) -> bool:
    if value.lower() in {"1", "true", "yes", "y"}:
        return True
    if value.lower() in {"0", "false", "no", "n"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="Hub repo id or local dir: a full model or a LoRA adapter")
    parser.add_argument("--output_repo", help="Hub repo for the GGUF files (default: <user>/<model>-GGUF)")
    parser.add_argument("--private", type=_str2bool, default=False, help="create the output repo private")
    parser.add_argument("--quantizations", default=DEFAULT_QUANT, help=f"comma list of: {', '.join(QUANT_TYPES)}")
    parser.add_argument("--outtype", choices=["auto", "f16", "bf16"], default="auto", help="16-bit intermediate")
    parser.add_argument("--pre_tokenizer", help="expert: llama.cpp pre-tokenizer name (e.g. qwen2, llama-bpe)")
    parser.add_argument("--llama_cpp_dir", default="/app", help="where the llama.cpp tools live")
    parser.add_argument("--convert_script", help="default: <llama_cpp_dir>/convert_hf_to_gguf.py")
    parser.add_argument("--quantize_bin", help="default: <llama_cpp_dir>/llama-quantize")
    parser.add_argument("--cli_bin", help="default: <llama_cpp_dir>/llama-completion, else llama-cli")
    parser.add_argument("--work_dir", help="scratch space (default: a temporary directory)")
    parser.add_argument("--output_dir", help="where the files are written (default: ./gguf-output with --push false)")
    parser.add_argument("--push", type=_str2bool, default=True, help="upload to the Hub (false: keep files locally)")
    return parser


def parse_quant_types(text: str) -> list[str]:
    """``"q4_k_m, Q8_0"`` -> ``["Q4_K_M", "Q8_0"]``; unknown or empty lists raise ``ExportError``."""
    wanted = list(dict.fromkeys(part.strip().upper() for part in text.split(",") if part.strip()))
    unknown = [name for name in wanted if name not in QUANT_TYPES]
    if unknown or not wanted:
        raise ExportError(f"unknown quantization {unknown or text!r}; choose from {', '.join(QUANT_TYPES)}", 2)
    return wanted


def default_output_repo(user: str, source: str) -> str:
    """``<user>/<model name>-GGUF`` for a repo id or a local path."""
    return f"{user}/{Path(source.rstrip('/')).name}-GGUF"


# ------------------------------------------------------------------------------------------ input, merging


def _import_gguf(llama_cpp_dir: Path):
    """Import gguf, preferring the gguf-py that ships with the converter (it matches the writer)."""
    vendored = llama_cpp_dir / "gguf-py"
    if vendored.is_dir() and str(vendored) not in sys.path:
        sys.path.insert(0, str(vendored))
    import gguf

    return gguf


WEIGHT_SUFFIXES = (".safetensors", ".bin")
# What the disk must still hold once a repo's files are on it, from its folder and the 16-bit size of its weights
DiskPlan = Callable[[Path, int], int]


def download_plan(files: dict[str, int]) -> list[str]:
    """The files conversion needs among a repo's top-level files (`files`: name -> size): the final weights only,
    never a trainer's `last-checkpoint/` or `checkpoint-*/` copy; `.bin` weights only without safetensors."""
    patterns = list(DOWNLOAD_PATTERNS)
    if not any(name.endswith(".safetensors") for name in files):
        patterns += ["pytorch_model*.bin", "adapter_model.bin"]
    return sorted(n for n in files if "/" not in n and any(fnmatch.fnmatchcase(n, p) for p in patterns))


def checkpoint_bytes_16bit(folder: Path, weight_bytes: int) -> int:
    """The 16-bit size of weights of `weight_bytes` on disk: half for an fp32 checkpoint (its config says)."""
    config = folder / "config.json"
    meta = json.loads(config.read_text()) if config.is_file() else {}
    dtype = str(meta.get("dtype") or meta.get("torch_dtype") or "")
    return weight_bytes // 2 if dtype.removeprefix("torch.") == "float32" else weight_bytes


def check_disk(need: int, where: Path, what: str) -> None:
    """Refuse (exit 2) before a download when the disk cannot hold `need` bytes."""
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    print(f"{what}: disk needed ~{human_size(need)}, free {human_size(free)}", flush=True)
    if free < need:
        raise ExportError(
            f"not enough disk in {where}: {what} needs ~{human_size(need)} (download, 16-bit copy and outputs), free "
            f"{human_size(free)}. Pick a CPU flavor with more disk (`hf jobs hardware` lists them; plan ~3x the "
            "16-bit size) or request fewer quantizations",
            2,
        )


def _download(repo_id: str, dest: Path, token: str | None, plan: DiskPlan | None = None) -> Path:
    """Download what conversion needs: the small files first, then, once the disk is known to hold the weights and
    everything made from them (`plan`), the final weights (sizes from the repo's file list)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.hf_api import RepoFile

    tree = HfApi(token=token).list_repo_tree(repo_id, recursive=False)
    files = {entry.path: entry.size for entry in tree if isinstance(entry, RepoFile)}
    names = download_plan(files)
    weights = [n for n in names if n.endswith(WEIGHT_SUFFIXES)]
    light = [n for n in names if n not in weights]
    folder = Path(snapshot_download(repo_id, local_dir=dest, allow_patterns=light, token=token)) if light else dest
    weight_bytes = sum(files[n] for n in weights)
    later = plan(folder, checkpoint_bytes_16bit(folder, weight_bytes)) if plan else 0
    check_disk(weight_bytes + later, dest, f"{repo_id} ({human_size(weight_bytes)} of weights)")
    if weights:
        folder = Path(snapshot_download(repo_id, local_dir=dest, allow_patterns=weights, token=token))
    return folder


def fetch(model: str, dest: Path, token: str | None, plan: DiskPlan | None = None) -> Path:
    """A local directory as is, else a download of the Hub repo into ``dest`` (disk checked first, see `_download`)."""
    if Path(model).is_dir():
        return Path(model)
    print(f"Downloading {model} ...", flush=True)
    return _download(model, dest, token, plan)


def safetensors_params(model_dir: Path) -> int:
    """Parameter count from the safetensors headers (no weights are read)."""
    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with open(path, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
    return total


def model_bytes_16bit(model_dir: Path) -> int:
    """Size of the model at 16 bits per weight (safetensors headers, else file sizes)."""
    params = safetensors_params(model_dir)
    if params:
        return params * 2
    return sum(p.stat().st_size for p in model_dir.glob("pytorch_model*.bin")) // 2  # usually fp32


def _copy_tokenizer(src: Path, dst: Path) -> list[str]:
    copied = []
    for pattern in TOKENIZER_FILES:
        for path in src.glob(pattern):
            shutil.copy2(path, dst / path.name)
            copied.append(path.name)
    return sorted(set(copied))


def _has_tokenizer(path: Path) -> bool:
    return any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def merge_adapter(adapter_dir: Path, base_dir: Path, out_dir: Path, dtype_name: str) -> list[str]:
    """Merge a LoRA adapter onto its base and save a 16-bit HF model with the fine-tune's tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer_dir = adapter_dir if _has_tokenizer(adapter_dir) else base_dir
    # loaded straight in 16 bit (an fp32 checkpoint is cast tensor by tensor): RAM ~ the 16-bit size, as the
    # Space's flavor choice assumes; PEFT computes each LoRA delta in fp32 on CPU before adding it
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float16
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, low_cpu_mem_usage=True)
    vocab = len(AutoTokenizer.from_pretrained(tokenizer_dir))
    if vocab > model.get_input_embeddings().weight.shape[0]:  # tokens added during fine-tuning
        model.resize_token_embeddings(vocab)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir)
    _copy_tokenizer(tokenizer_dir, out_dir)  # one source only: a base chat_template.jinja must not shadow the tune's
    return [f"tokenizer and chat template from {'the adapter' if tokenizer_dir == adapter_dir else 'the base'}"]


def _available_ram() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reward_model_reason(model_dir: Path) -> str | None:
    """Why this is a reward (sequence-classification) model, or None: such a model has a score head and no
    language-model head, so merging it with AutoModelForCausalLM would drop what it learned."""
    adapter_config = model_dir / "adapter_config.json"
    if adapter_config.is_file() and json.loads(adapter_config.read_text()).get("task_type") == "SEQ_CLS":
        return "a LoRA adapter for sequence classification (task_type SEQ_CLS: a reward model's score head)"
    config = model_dir / "config.json"
    architectures = json.loads(config.read_text()).get("architectures") or [] if config.is_file() else []
    heads = [a for a in architectures if a.endswith(("ForSequenceClassification", "ForTokenClassification"))]
    return f"a classification model ({heads[0]}: a reward model's score head)" if heads else None


def resolve_input(cfg: ExportConfig, work: Path, token: str | None, quants: list[str] | None = None) -> ResolvedInput:
    """Return a full HF model directory; an adapter (``adapter_config.json``) is merged onto its base. Downloads
    check the disk first: a model's weights plus the GGUF files made from them, a base's plus the merged copy."""
    quants = quants or [DEFAULT_QUANT]

    def outputs(folder: Path, bytes16: int) -> int:
        return estimate_disk_bytes(bytes16, quants, pick_outtype(cfg.outtype, folder))

    def input_plan(folder: Path, bytes16: int) -> int:
        return 0 if (folder / "adapter_config.json").is_file() else outputs(folder, bytes16)  # the base comes next

    model_dir = fetch(cfg.model, work / "input", token, input_plan)
    reason = reward_model_reason(model_dir)
    if reason:
        raise ExportError(
            f"{cfg.model} is {reason}, not a text-generation model: llama.cpp, Ollama and LM Studio run language "
            "models, and a GGUF of it would lose its score head. Use it with transformers "
            "(AutoModelForSequenceClassification), or export a model trained with SFT, DPO, GRPO or KTO",
            2,
        )
    adapter_config = model_dir / "adapter_config.json"
    if not adapter_config.is_file():
        if not (model_dir / "config.json").is_file():
            raise ExportError(f"{cfg.model} has neither config.json nor adapter_config.json: not a model", 2)
        return ResolvedInput(model_dir, cfg.model)
    base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
    if not base:
        raise ExportError("adapter_config.json has no base_model_name_or_path: cannot tell which base to merge", 2)
    print(f"{cfg.model} is a LoRA adapter: merging it onto {base}", flush=True)
    base_dir = fetch(base, work / "base", token, lambda folder, bytes16: bytes16 + outputs(folder, bytes16))
    need, free = int(model_bytes_16bit(base_dir) * 1.3), _available_ram()  # the merge holds it in 16 bit
    if free is not None and free < need:
        raise ExportError(
            f"not enough RAM to merge the adapter: need ~{human_size(need)}, "
            f"available {human_size(free)}; pick a CPU flavor with more RAM",
            2,
        )
    notes = merge_adapter(model_dir, base_dir, work / "merged", pick_outtype(cfg.outtype, base_dir))
    return ResolvedInput(work / "merged", cfg.model, adapter_base=base, notes=notes)


def pick_outtype(requested: str, model_dir: Path) -> str:
    """``auto``: f16 for f16 checkpoints, bf16 for everything else (bf16 and fp32 weights keep their range in bf16;
    in f16 values beyond 65504 overflow to inf)."""
    if requested != "auto":
        return requested
    config = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").is_file() else {}
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "")
    return "f16" if dtype.removeprefix("torch.") == "float16" else "bf16"


# ------------------------------------------------------------------------------------- disk, size checks


def estimate_disk_bytes(bytes16: int, quants: list[str], outtype: str) -> int:
    """Scratch space still needed once the model is on disk: 16-bit intermediate + every output, +10%."""
    outputs = [q for q in quants if q != outtype.upper()]  # the intermediate itself is reused as that output
    fraction = 1 + sum(QUANT_TYPES[q]["bits_per_weight"] / 16 for q in outputs)
    return int(bytes16 * fraction * 1.1)


def check_resources(bytes16: int, quants: list[str], outtype: str, work: Path) -> None:
    """Refuse early (exit 2) when the disk is too small or an output would exceed the Hub's file limit."""
    need, free = estimate_disk_bytes(bytes16, quants, outtype), shutil.disk_usage(work).free
    print(f"16-bit model: {human_size(bytes16)}; disk needed ~{human_size(need)}, free {human_size(free)}")
    if free < need:
        raise ExportError(
            f"not enough disk in {work}: need ~{human_size(need)} (16-bit model {human_size(bytes16)} "
            f"+ outputs), free {human_size(free)}. Pick a CPU flavor with more disk "
            "(`hf jobs hardware` lists them; plan ~3x the 16-bit size) or request fewer quantizations",
            2,
        )
    for quant in quants:
        size = bytes16 * QUANT_TYPES[quant]["bits_per_weight"] / 16
        if size > HUB_MAX_FILE_BYTES:
            raise ExportError(f"{quant} would be ~{human_size(int(size))}, above the Hub's 50 GB file limit", 2)


# ---------------------------------------------------------------------------------- subprocess, converter

# Runs convert_hf_to_gguf.py with TextModel.get_vocab_base_pre replaced, so an expert can name the
# pre-tokenizer of a tokenizer llama.cpp does not recognise. argv: script, name, converter args...
_CONVERTER_WRAPPER = """\
import os, runpy, sys
script, name = sys.argv[1], sys.argv[2]
sys.argv = [script, *sys.argv[3:]]
here = os.path.dirname(os.path.abspath(script))
sys.path.insert(0, here)
if "NO_LOCAL_GGUF" not in os.environ:
    sys.path.insert(1, os.path.join(here, "gguf-py"))
from conversion.base import TextModel
TextModel.get_vocab_base_pre = lambda self, tokenizer: name
print(f"export_gguf: pre-tokenizer forced to {name!r}", flush=True)
runpy.run_path(script, run_name="__main__")
"""


def converter_argv(convert_script: Path, model_dir: Path, outfile: Path, outtype: str, pre: str | None) -> list[str]:
    """argv for llama.cpp's converter, through the pre-tokenizer wrapper when ``pre`` is given."""
    args = [str(model_dir), "--outfile", str(outfile), "--outtype", outtype]
    if pre:
        return [sys.executable, "-c", _CONVERTER_WRAPPER, str(convert_script), pre, *args]
    return [sys.executable, str(convert_script), *args]


def quantize_argv(quantize_bin: Path, src: Path, dst: Path, qtype: str, threads: int | None = None) -> list[str]:
    """argv for ``llama-quantize SRC DST TYPE [THREADS]``."""
    return [str(quantize_bin), str(src), str(dst), qtype, str(threads or os.cpu_count() or 2)]


def run_logged(argv: list[str], timeout: float = STEP_TIMEOUT_S, tail: int = 200) -> tuple[int, str]:
    """Run argv, streaming its output to ours; return (exit code, last ``tail`` lines)."""
    print("$ " + " ".join(a if len(a) < 200 else a[:40] + "..." for a in argv), flush=True)
    lines: deque[str] = deque(maxlen=tail)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace"
    )
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            sys.stdout.write(line)
            lines.append(line)
        code = proc.wait()
    finally:
        timer.cancel()
    sys.stdout.flush()
    return code, "".join(lines)


def diagnose_converter(code: int, log: str) -> ExportError:
    """Turn a failed conversion's output into one clear error."""
    if "BPE pre-tokenizer was not recognized" in log:
        digest = re.search(r"chkhsh:\s*([0-9a-f]{64})", log)
        return ExportError(
            "llama.cpp does not recognise this tokenizer's pre-tokenizer"
            + (f" (hash {digest.group(1)})" if digest else "")
            + ". Either the model family is newer than the pinned llama.cpp release, or the tokenizer was "
            "changed. If you know the family it was derived from, rerun with --pre_tokenizer NAME "
            "(e.g. llama-bpe, qwen2, deepseek-llm); a wrong name gives wrong tokens.",
            2,
        )
    unsupported = re.search(r"Model (\S+) is not supported|Architecture '?([\w.-]+)'? not supported", log)
    if unsupported:
        arch = unsupported.group(1) or unsupported.group(2)
        return ExportError(f"architecture {arch} is not supported by llama.cpp's converter ({LLAMA_CPP_IMAGE})", 2)
    if "No space left on device" in log or "Errno 28" in log:
        return ExportError("out of disk space while converting: pick a CPU flavor with more disk", 2)
    if code in (-9, 137):
        return ExportError("the converter was killed (out of memory?): pick a CPU flavor with more RAM", 2)
    last = log.strip().splitlines()[-1] if log.strip() else "no output"
    return ExportError(f"convert_hf_to_gguf.py failed with exit code {code}: {last}")


def convert(convert_script: Path, model_dir: Path, outfile: Path, outtype: str, pre: str | None) -> Path:
    """HF model -> one GGUF file of ``outtype`` (f16, bf16 or q8_0)."""
    if not convert_script.is_file():
        raise ExportError(f"llama.cpp converter not found at {convert_script} (set --llama_cpp_dir)", 2)
    try:
        code, log = run_logged(converter_argv(convert_script, model_dir, outfile, outtype, pre))
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise ExportError("out of disk space while converting: pick a CPU flavor with more disk", 2) from exc
        raise ExportError(f"could not run the converter: {exc}") from exc
    if code != 0 or not outfile.is_file():
        raise diagnose_converter(code, log)
    return outfile


def missing_quantizer(quantize_bin: Path, qtype: str) -> ExportError:
    """The error for a type that needs llama-quantize when the binary is not there."""
    return ExportError(
        f"{qtype} needs llama.cpp's llama-quantize, not found at {quantize_bin}. Run the job in "
        f"{LLAMA_CPP_IMAGE}, pass --quantize_bin, or pick only {', '.join(CONVERTER_TYPES)}",
        2,
    )


def quantize(quantize_bin: Path, src: Path, dst: Path, qtype: str) -> Path:
    """16-bit GGUF -> ``qtype`` with llama-quantize."""
    if not quantize_bin.is_file():
        raise missing_quantizer(quantize_bin, qtype)
    code, log = run_logged(quantize_argv(quantize_bin, src, dst, qtype))
    if code != 0 or not dst.is_file():
        if "No space left on device" in log:
            raise ExportError("out of disk space while quantizing: pick a CPU flavor with more disk", 2)
        raise ExportError(f"llama-quantize {qtype} failed with exit code {code}")
    return dst


def produce_outputs(
    cfg: ExportConfig, model_dir: Path, quants: list[str], outtype: str, out_dir: Path, name: str, work: Path
) -> list[Path]:
    """Write one GGUF per requested type into ``out_dir``.

    The converter writes the 16-bit intermediate; every other type is quantized from it with llama-quantize
    (without that binary, F16/BF16/Q8_0 come from the converter itself).
    """
    llama_dir = Path(cfg.llama_cpp_dir)
    script = Path(cfg.convert_script or llama_dir / "convert_hf_to_gguf.py")
    quantize_bin = Path(cfg.quantize_bin or llama_dir / "llama-quantize")
    needs_quantizer = [q for q in quants if q not in CONVERTER_TYPES]
    if needs_quantizer and not quantize_bin.is_file():
        raise missing_quantizer(quantize_bin, needs_quantizer[0])  # before any conversion time is spent
    inter_type = outtype.upper()
    intermediate = (out_dir if inter_type in quants else work) / f"{name}-{inter_type}.gguf"
    convert(script, model_dir, intermediate, outtype, cfg.pre_tokenizer)
    outputs = {inter_type: intermediate}
    for quant in quants:
        if quant in outputs:
            continue
        dst = out_dir / f"{name}-{quant}.gguf"
        if quant in CONVERTER_TYPES and not quantize_bin.is_file():  # else one pass over the HF weights is enough
            outputs[quant] = convert(script, model_dir, dst, CONVERTER_TYPES[quant], cfg.pre_tokenizer)
        else:
            outputs[quant] = quantize(quantize_bin, intermediate, dst, quant)
    if inter_type not in quants:
        intermediate.unlink()
    return [outputs[q] for q in quants]


# ------------------------------------------------------------------------------------- read-back, smoke


def read_back(path: Path, qtype: str, llama_cpp_dir: Path) -> GGUFSummary:
    """Open a GGUF with the gguf package and check its metadata; raise ``ExportError`` if it is broken."""
    gguf = _import_gguf(llama_cpp_dir)
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:  # any parse failure means a broken file
        raise ExportError(f"{path.name} does not read back as GGUF: {exc}") from exc

    def value(key: str):
        found = reader.fields.get(key)
        return None if found is None else found.contents()

    arch = value("general.architecture")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    eos_id, eot_id = value("tokenizer.ggml.eos_token_id"), value("tokenizer.ggml.eot_token_id")
    summary = GGUFSummary(
        path=path,
        qtype=qtype,
        architecture=arch,
        tensor_count=len(reader.tensors),
        file_type=value("general.file_type"),
        context_length=value(f"{arch}.context_length"),
        chat_template=value("tokenizer.chat_template"),
        eos_token_id=eos_id,
        eos_token=tokens.contents(eos_id) if tokens is not None and eos_id is not None else None,
        eot_token=tokens.contents(eot_id) if tokens is not None and eot_id is not None else None,
    )
    expected = gguf.LlamaFileType[f"MOSTLY_{qtype}"]
    if not arch or summary.tensor_count == 0 or summary.file_type != expected:
        raise ExportError(
            f"{path.name} read back wrong: arch={arch} tensors={summary.tensor_count} "
            f"file_type={summary.file_type} (expected {int(expected)})"
        )
    print(
        f"read back {path.name}: {arch}, {summary.tensor_count} tensors, file type {qtype}, "
        f"context {summary.context_length}, eos {summary.eos_token!r}, "
        f"chat template {'present' if summary.chat_template else 'MISSING'}",
        flush=True,
    )
    return summary


def smoke_argv(runtime: Path, model: Path, prompt: str = "Hello") -> list[str]:
    """argv that generates ``SMOKE_TOKENS`` tokens greedily and exits."""
    argv = [str(runtime), "-m", str(model), "-p", prompt, "-n", str(SMOKE_TOKENS), "--temp", "0", "-c", "256"]
    return argv + (["-no-cnv"] if runtime.name == "llama-completion" else ["-st"])


def smoke_test(model: Path, cfg: ExportConfig) -> str:
    """Generate a few tokens with llama.cpp where a runtime exists; return a one-line result."""
    llama_dir = Path(cfg.llama_cpp_dir)
    candidates = [Path(cfg.cli_bin)] if cfg.cli_bin else [llama_dir / "llama-completion", llama_dir / "llama-cli"]
    runtime = next((c for c in candidates if c.is_file()), None)
    if runtime is not None:
        code, _ = run_logged(smoke_argv(runtime, model), timeout=600)
        if code != 0:
            raise ExportError(f"{runtime.name} could not generate from {model.name} (exit {code})")
        print(f"generation smoke test: generated {SMOKE_TOKENS} tokens with {runtime.name}", flush=True)
        return f"generated {SMOKE_TOKENS} tokens with {runtime.name}"
    try:
        from llama_cpp import Llama  # optional: llama-cpp-python
    except ImportError:
        print("generation smoke test skipped: no llama.cpp runtime here", flush=True)
        return "skipped: no llama.cpp runtime here"
    text = Llama(model_path=str(model), n_ctx=256, verbose=False)("Hello", max_tokens=SMOKE_TOKENS)
    print(f"llama-cpp-python generated: {text['choices'][0]['text']!r}", flush=True)
    return f"generated {SMOKE_TOKENS} tokens with llama-cpp-python"


# ------------------------------------------------------------------------------------------- Ollama

# Ollama Go templates per chat-template family. Ollama passes system messages both inside .Messages and
# joined in .System: families with a system role render .Messages as they are; the others put .System
# into a user turn, as their Jinja templates do.
OLLAMA_TEMPLATES = {
    "chatml": "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
    "llama3": (
        "{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "mistral": (
        '{{ range $i, $_ := .Messages }}{{ if eq .Role "user" }}[INST] '
        "{{ if and $.System (eq (len (slice $.Messages $i)) 1) }}{{ $.System }}\n\n{{ end }}{{ .Content }}[/INST]"
        '{{ else if eq .Role "assistant" }} {{ .Content }}</s>{{ end }}{{ end }}'
    ),
    "gemma": (
        '{{ $system := .System }}{{ range .Messages }}{{ if eq .Role "user" }}<start_of_turn>user\n'
        '{{ if $system }}{{ $system }}\n\n{{ $system = "" }}{{ end }}{{ .Content }}<end_of_turn>\n'
        '{{ else if eq .Role "assistant" }}<start_of_turn>model\n{{ .Content }}<end_of_turn>\n{{ end }}{{ end }}'
        "<start_of_turn>model\n"
    ),
    "phi3": "{{ range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n",
}
FAMILY_NAMES = {"chatml": "ChatML", "llama3": "Llama 3", "mistral": "Mistral", "gemma": "Gemma", "phi3": "Phi-3"}
FAMILY_STOPS = {
    "chatml": ["<|im_start|>", "<|im_end|>"],
    "llama3": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    "mistral": ["[INST]", "[/INST]", "</s>"],
    "gemma": ["<start_of_turn>", "<end_of_turn>"],
    "phi3": ["<|user|>", "<|assistant|>", "<|end|>"],
}
_FAMILY_MARKERS = [  # checked in this order; all markers must appear in the Jinja text
    ("llama3", ["<|start_header_id|>", "<|eot_id|>"]),
    ("chatml", ["<|im_start|>", "<|im_end|>"]),
    ("gemma", ["<start_of_turn>", "<end_of_turn>"]),
    ("phi3", ["<|user|>", "<|end|>"]),
    ("mistral", ["[INST]", "[/INST]"]),
]


def detect_template_family(chat_template: str | None) -> str | None:
    """Name the chat-template family from markers in its Jinja text, or None if unknown."""
    text = chat_template or ""
    return next((family for family, marks in _FAMILY_MARKERS if all(m in text for m in marks)), None)


def ollama_stops(family: str | None, eos_token: str | None, eot_token: str | None = None) -> list[str]:
    """Stop strings: the family's turn markers plus the model's own EOS (and EOT)."""
    stops = list(FAMILY_STOPS.get(family or "", []))
    for token in (eos_token, eot_token):
        if token and token not in stops:
            stops.append(token)
    return stops


def render_modelfile(gguf_name: str, family: str | None, stops: list[str]) -> str:
    """An Ollama Modelfile for ``gguf_name`` with the family's template and the stop tokens."""
    lines = ["# Ollama Modelfile. Build and run:", "#   ollama create my-model -f Modelfile && ollama run my-model"]
    lines.append(f"FROM ./{gguf_name}")
    if family:
        lines.append(f'TEMPLATE """{OLLAMA_TEMPLATES[family]}"""')
    else:
        lines += [
            "# The chat template is not one of the known families (ChatML, Llama 3, Mistral, Gemma, Phi-3):",
            "# no TEMPLATE here, so Ollama matches the template embedded in the GGUF. Check it with",
            "# `ollama show my-model --template` and add a TEMPLATE block if it is wrong.",
        ]
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stops]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- card


def human_size(num: float) -> str:
    """Bytes in decimal units as the Hub shows them: ``2.6 MB``, ``4.92 GB``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num < 1000 or unit == "TB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.2f} {unit}" if num < 10 else f"{num:.1f} {unit}"
        num /= 1000
    raise AssertionError("unreachable")


@dataclass
class CardInfo:
    """Everything the model card shows."""

    output_repo: str
    source: str
    files: list[GGUFSummary]
    default_quant: str
    adapter_base: str | None = None
    quantized_by: str | None = None
    template_family: str | None = None
    smoke: str = "not run"
    notes: list[str] = field(default_factory=list)


def _is_repo_id(text: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", text)) and not Path(text).exists()


def render_model_card(info: CardInfo) -> str:
    """README.md: front matter, a table of the files with their real sizes, usage for each app."""
    import yaml

    bases = [b for b in (info.source, info.adapter_base) if b and _is_repo_id(b)]
    meta: dict = {"base_model": bases[0] if len(bases) == 1 else bases} if bases else {}
    if bases:
        meta["base_model_relation"] = "quantized"
    meta["tags"] = ["gguf", "llama.cpp", "ollama", "lm-studio"]
    if info.quantized_by:
        meta["quantized_by"] = info.quantized_by
    repo, quant = info.output_repo, info.default_quant
    made_from = f"[{info.source}](https://huggingface.co/{info.source})" if _is_repo_id(info.source) else info.source
    if info.adapter_base:
        made_from += f", a LoRA adapter merged onto [{info.adapter_base}](https://huggingface.co/{info.adapter_base})"
    rows = [
        f"| [{s.path.name}](https://huggingface.co/{repo}/blob/main/{s.path.name}) | {s.qtype} | "
        f"{human_size(s.size_bytes)} | {QUANT_TYPES[s.qtype]['description']} |"
        for s in info.files
    ]
    first = info.files[0]
    template_line = (
        f"The `Modelfile` uses the {FAMILY_NAMES[info.template_family]} chat template"
        if info.template_family
        else "The chat template is not a known family, so the `Modelfile` relies on the template in the GGUF"
    )
    body = f"""# {repo.split("/")[-1]}

GGUF files of {made_from}, for llama.cpp, Ollama and LM Studio.
Made with llama.cpp's converter and quantizer from `{LLAMA_CPP_IMAGE}`.

| File | Type | Size | Notes |
|---|---|---|---|
{chr(10).join(rows)}

Architecture `{first.architecture}`, context length {first.context_length}, {first.tensor_count} tensors.
Every file was read back after writing; generation check: {info.smoke}.

## llama.cpp

```sh
llama-cli -hf {repo}:{quant}
llama-server -hf {repo}:{quant}
```

## Ollama

```sh
ollama run hf.co/{repo}:{quant}
```

{template_line}, with the model's end-of-turn and EOS tokens as stop words (`template` and `params` here
apply the same to `ollama run hf.co/...`). To build it locally, download the `.gguf` named in the `Modelfile`
next to it, then:

```sh
ollama create {repo.split("/")[-1].lower()} -f Modelfile
```

## LM Studio

Search for `{repo}` in LM Studio's Discover tab (or run `lms get {repo}`) and pick the {quant} file.
"""
    if info.notes:
        body += "\n## Notes\n\n" + "\n".join(f"- {note}" for note in info.notes) + "\n"
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n" + body


def write_ollama_files(out_dir: Path, primary: GGUFSummary) -> str | None:
    """Write Modelfile, ``template`` and ``params`` (read by ``ollama run hf.co/...``); return the family."""
    family = detect_template_family(primary.chat_template)
    stops = ollama_stops(family, primary.eos_token, primary.eot_token)
    (out_dir / "Modelfile").write_text(render_modelfile(primary.path.name, family, stops))
    if family:
        (out_dir / "template").write_text(OLLAMA_TEMPLATES[family])
    (out_dir / "params").write_text(json.dumps({"stop": stops}, indent=2) + "\n")
    return family


# -------------------------------------------------------------------------------------------- upload


def upload(out_dir: Path, repo_id: str, private: bool, token: str, message: str) -> str:
    """Create the repo if needed and upload every output in one commit; return the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=out_dir,
            allow_patterns=["*.gguf", "README.md", "Modelfile", "template", "params"],
            commit_message=message,
        )
    except (HfHubHTTPError, ValueError) as exc:  # ValueError: the Hub refused the card's metadata
        raise ExportError(f"upload to {repo_id} failed: {exc}") from exc
    return str(getattr(info, "commit_url", info))


# ---------------------------------------------------------------------------------------------- main


def pick_primary(summaries: list[GGUFSummary]) -> GGUFSummary:
    """The file the Modelfile and usage lines point at: Q4_K_M, else the first quantized one, else the first."""
    preferred = [s for s in summaries if s.qtype == DEFAULT_QUANT] + [s for s in summaries if "F16" not in s.qtype]
    return (preferred or summaries)[0]


def _target_repo(cfg: ExportConfig, token: str | None) -> tuple[str | None, str | None]:
    """(output repo, its owner) when pushing; refuses (exit 2) without a token."""
    if not cfg.push:
        return cfg.output_repo, None
    if not token:
        raise ExportError("HF_TOKEN is not set: a write token is needed to upload (or pass --push false)", 2)
    if cfg.output_repo:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", cfg.output_repo):
            raise ExportError(f"--output_repo {cfg.output_repo!r} is not of the form owner/name", 2)
        return cfg.output_repo, cfg.output_repo.split("/")[0]
    from huggingface_hub import HfApi

    user = HfApi(token=token).whoami()["name"]
    return default_output_repo(user, cfg.model), user


def run(cfg: ExportConfig, work: Path) -> Path:
    """The whole export in ``work``; return the folder of outputs."""
    quants = parse_quant_types(cfg.quantizations)
    if cfg.pre_tokenizer and not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", cfg.pre_tokenizer):
        raise ExportError(f"--pre_tokenizer {cfg.pre_tokenizer!r} is not a llama.cpp pre-tokenizer name", 2)
    quantize_bin = Path(cfg.quantize_bin or Path(cfg.llama_cpp_dir) / "llama-quantize")
    needs_quantizer = [q for q in quants if q not in CONVERTER_TYPES]
    if needs_quantizer and not quantize_bin.is_file():  # first: before any download, merge or conversion
        raise missing_quantizer(quantize_bin, needs_quantizer[0])
    token = os.environ.get("HF_TOKEN") or None
    repo_id, user = _target_repo(cfg, token)
    out_dir = Path(cfg.output_dir or (work / "output" if cfg.push else "gguf-output"))
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = resolve_input(cfg, work, token, quants)
    outtype = pick_outtype(cfg.outtype, resolved.model_dir)
    check_resources(model_bytes_16bit(resolved.model_dir), quants, outtype, work)
    name = Path(cfg.model.rstrip("/")).name
    files = produce_outputs(cfg, resolved.model_dir, quants, outtype, out_dir, name, work)
    summaries = [read_back(path, quant, Path(cfg.llama_cpp_dir)) for path, quant in zip(files, quants, strict=True)]
    primary = pick_primary(summaries)
    smoke = smoke_test(primary.path, cfg)
    family = write_ollama_files(out_dir, primary)
    if not primary.chat_template:
        resolved.notes.append("the model has no chat template: use it for plain completion, not chat")
    if cfg.private:
        resolved.notes.append(
            "this repo is private: `ollama run hf.co/...` needs your Ollama SSH key added to your Hub account "
            "(https://huggingface.co/settings/keys); `llama-cli -hf` needs HF_TOKEN"
        )
    card = CardInfo(
        repo_id or f"local/{name}-GGUF",
        resolved.source,
        summaries,
        primary.qtype,
        resolved.adapter_base,
        user,
        family,
        smoke,
        resolved.notes,
    )
    (out_dir / "README.md").write_text(render_model_card(card))
    if cfg.push:
        assert repo_id and token
        url = upload(out_dir, repo_id, cfg.private, token, f"GGUF export of {cfg.model} ({', '.join(quants)})")
        print(f"Uploaded to {repo_id}: {url}", flush=True)
    kept = f" in {out_dir}" if not cfg.push or cfg.output_dir or cfg.work_dir else ""
    print(f"Done: {', '.join(p.name for p in files)}{kept}", flush=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    cfg = ExportConfig(**vars(make_parser().parse_args(argv)))
    try:
        if cfg.work_dir:
            Path(cfg.work_dir).mkdir(parents=True, exist_ok=True)
            run(cfg, Path(cfg.work_dir))
        else:
            with tempfile.TemporaryDirectory(prefix="export-gguf-") as tmp:
                run(cfg, Path(tmp))
    except ExportError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            print("ERROR: out of disk space: pick a CPU flavor with more disk", file=sys.stderr, flush=True)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
