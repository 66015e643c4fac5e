"""GPU throughput of job_templates/train.py, by hand (not a test): SFT with LoRA and full DPO, bf16.

The model is Qwen2.5-0.5B's architecture written out here (hidden 896, 24 layers, 14 heads, 2 KV heads,
intermediate 4864, vocab 151936, tied embeddings) with random weights, and the tokenizer is trained on the spot
(tests/tiny_model.py), so nothing is downloaded. Each run is train.py in its own process; it prints tokens per
second (TRL's `num_tokens` / `train_runtime`) and the peak of torch.cuda.max_memory_allocated.

    python bench/train_gpu.py                    # 30 steps each, batch 8, 512-token sequences
    python bench/train_gpu.py --steps 50 --batch 4 --seq_len 1024 --only sft-lora
    python bench/train_gpu.py --smoke            # wiring check on CPU: tiny model, 2 steps, no bf16
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO_ROOT / "job_templates" / "train.py"

QWEN25_05B = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
}
SMOKE = QWEN25_05B | {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}

# train.py in-process, then the peak GPU memory of that process written where BENCH_RESULT says
RUNNER = """
import json, os, runpy, sys
import torch
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
with open(os.environ["BENCH_RESULT"], "w") as fh:
    json.dump({"max_memory_allocated": peak}, fh)
"""

WORDS = ("the", "sea", "is", "wide", "and", "blue", "deep", "fox", "dog", "two", "plus", "four", "paris", "capital")
RUNS = {
    "sft-lora": ["--method", "sft", "--peft_mode", "lora", "--learning_rate", "2e-4"],
    "dpo-full": ["--method", "dpo", "--peft_mode", "full", "--learning_rate", "5e-7"],
}


def build_model(path: Path, shape: dict) -> None:
    """Random-initialised Qwen2 with the given shape and a BPE tokenizer trained here (ChatML template)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    sys.path.insert(0, str(REPO_ROOT))
    from tests.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(path)
    config = Qwen2Config(
        **shape,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.0f}M parameters, tokenizer vocab {len(tokenizer)}", flush=True)


def words(n_tokens: int, rng: random.Random) -> str:
    """Text of roughly `n_tokens` tokens for the tiny BPE tokenizer (about one token per short word)."""
    return " ".join(rng.choice(WORDS) for _ in range(n_tokens))


def build_datasets(root: Path, rows: int, seq_len: int) -> dict[str, Path]:
    """SFT prompt/completion and DPO preference data sized so every sequence is about `seq_len` tokens."""
    from datasets import Dataset

    rng = random.Random(0)
    prompt, answer = seq_len // 4, (seq_len * 3) // 4 - 8
    sft = [{"prompt": words(prompt, rng), "completion": words(answer, rng)} for _ in range(rows)]
    dpo = [
        {"prompt": words(prompt, rng), "chosen": words(answer, rng), "rejected": words(answer, rng)}
        for _ in range(rows)
    ]
    paths = {"sft": root / "sft", "dpo": root / "dpo"}
    Dataset.from_list(sft).save_to_disk(str(paths["sft"]))
    Dataset.from_list(dpo).save_to_disk(str(paths["dpo"]))
    return paths


def run(name: str, model: Path, dataset: Path, out: Path, args: argparse.Namespace, on_cuda: bool) -> dict:
    """One train.py process; returns tokens/s and peak memory."""
    result_file = out / "bench-result.json"
    cmd = [
        sys.executable, "-c", RUNNER, str(TRAIN_SCRIPT), *RUNS[name],
        "--model_name_or_path", str(model), "--dataset_name", str(dataset), "--output_dir", str(out),
        "--max_steps", str(args.steps), "--per_device_train_batch_size", str(args.batch),
        "--gradient_accumulation_steps", "1", "--max_length", str(args.seq_len), "--logging_steps", "5",
        "--save_strategy", "no", "--report_to", "none", "--push_to_hub", "false", "--num_sample_generations", "0",
        "--bf16", str(on_cuda).lower(), "--dataloader_pin_memory", str(on_cuda).lower(),
    ]  # fmt: skip
    env = dict(os.environ, BENCH_RESULT=str(result_file), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{name}: train.py exited with {proc.returncode}")
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    tokens = max(entry.get("num_tokens", 0) for entry in history)
    runtime = next(entry["train_runtime"] for entry in history if "train_runtime" in entry)
    peak = json.loads(result_file.read_text())["max_memory_allocated"]
    return {
        "run": name,
        "steps": args.steps,
        "tokens": int(tokens),
        "seconds": round(runtime, 2),
        "tokens_per_s": round(tokens / runtime, 1),
        "max_memory_allocated_gib": round(peak / 2**30, 2) if peak is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--only", choices=list(RUNS), action="append", help="run only these (repeatable)")
    parser.add_argument("--out", type=Path, help="keep models, data and outputs here (default: a temp folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 2 steps, CPU allowed: checks the wiring")
    args = parser.parse_args()

    import torch

    on_cuda = torch.cuda.is_available()
    if not on_cuda and not args.smoke:
        raise SystemExit("no CUDA GPU: this benchmark measures GPU throughput (use --smoke for a CPU wiring check)")
    if args.smoke:
        args.steps, args.batch, args.seq_len = 2, 2, 64
    device = torch.cuda.get_device_name() if on_cuda else "cpu"
    print(f"device: {device}, torch {torch.__version__}, bf16: {on_cuda}", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        model = root / "model"
        build_model(model, SMOKE if args.smoke else QWEN25_05B)
        data = build_datasets(root / "data", rows=args.steps * args.batch + args.batch, seq_len=args.seq_len)
        results = []
        for name in args.only or list(RUNS):
            result = run(name, model, data[name.split("-")[0]], root / name, args, on_cuda)
            print(json.dumps(result), flush=True)
            results.append(result)

    print(f"\n{'run':<10} {'steps':>5} {'tokens':>9} {'seconds':>8} {'tokens/s':>10} {'peak GiB':>9}  ({device})")
    for r in results:
        peak = "n/a" if r["max_memory_allocated_gib"] is None else f"{r['max_memory_allocated_gib']:.2f}"
        print(f"{r['run']:<10} {r['steps']:>5} {r['tokens']:>9} {r['seconds']:>8} {r['tokens_per_s']:>10} {peak:>9}")


if __name__ == "__main__":
    main()
