"""Throughput of job_templates/train.py, by hand (not a test): SFT with LoRA and full DPO on a GPU, and the speed
comparison (issue 24): SFT LoRA on varied-length chat data with the template's defaults against TRL's plain defaults.

The model is Qwen2.5-0.5B's architecture written out here (hidden 896, 24 layers, 14 heads, 2 KV heads,
intermediate 4864, vocab 151936, tied embeddings) with random weights, and the tokenizer is trained on the spot
(tests/tiny_model.py), so nothing is downloaded. Each run is train.py in its own process; it prints tokens per
second (TRL's `num_tokens`: the non-pad tokens trained, / `train_runtime`) and the peak memory (GPU:
torch.cuda.max_memory_allocated; CPU: the process's peak RSS).

The speed comparison ("sft-plain" vs "sft-defaults") trains one epoch over the same chats of 20 to 900 tokens, same
batch, learning rate and seed: "plain" is TRL's defaults (padded batches, no Liger, gradient checkpointing on),
"defaults" is the template's (packing / padding-free with the attention it needs, Liger on a GPU, gradient
checkpointing as the Space's estimate decides for this machine). It prints trained tokens/s, seconds per optimizer
step, peak memory, the final train and eval losses, and the ratios; `--repeats 2` reruns both with another seed to
show the loss noise. On a CPU it runs a small model (4 layers, hidden 128) and no bf16.

    python bench/train_gpu.py                    # GPU: 30 steps each (sft-lora, dpo-full), then the speed pair
    python bench/train_gpu.py --steps 50 --batch 4 --seq_len 1024 --only sft-lora
    python bench/train_gpu.py --speed            # the speed pair only (CPU allowed): 300 chats, batch 4
    python bench/train_gpu.py --speed --rows 600 --repeats 2
    python bench/train_gpu.py --smoke            # wiring check on CPU: tiny model, 2 steps (the speed pair: 16 chats)
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
CPU = QWEN25_05B | {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4}

# train.py in-process, then the peak GPU memory of that process written where BENCH_RESULT says
RUNNER = """
import json, os, resource, runpy, sys, threading, time
import torch, transformers
sys.argv = sys.argv[1:]
TIMES = {}
train = transformers.Trainer.train
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def timed(self, *args, **kwargs):  # the training loop's wall and CPU seconds (CPU time is steadier on a shared CPU)
    start, peak, done = rss(), [0], threading.Event()
    def sample():  # the process's resident memory while it trains, every 20 ms
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss())
    threading.Thread(target=sample, daemon=True).start()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        return train(self, *args, **kwargs)
    finally:
        TIMES.update(cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall)
        done.set()
        TIMES.update(train_rss=max(peak[0], rss()), train_rss_growth=max(peak[0], rss()) - start)
transformers.Trainer.train = timed
runpy.run_path(sys.argv[0], run_name="__main__")
peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
with open(os.environ["BENCH_RESULT"], "w") as fh:
    json.dump({"max_memory_allocated": peak, "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
               **TIMES}, fh)
"""

WORDS = ("the", "sea", "is", "wide", "and", "blue", "deep", "fox", "dog", "two", "plus", "four", "paris", "capital")
RUNS = {
    "sft-lora": ["--method", "sft", "--peft_mode", "lora", "--learning_rate", "2e-4"],
    "dpo-full": ["--method", "dpo", "--peft_mode", "full", "--learning_rate", "5e-7"],
}
# the speed comparison: the same SFT LoRA job with TRL's plain defaults, with the template's (gradient checkpointing as
# the Space's estimate decides: see speed_pair), and with the template's but checkpointing on (packing's share alone)
SPEED = {
    "sft-plain": ["--method", "sft", "--peft_mode", "lora", "--learning_rate", "2e-4", "--packing", "false",
                  "--use_liger_kernel", "false", "--gradient_checkpointing", "true"],
    "sft-defaults": ["--method", "sft", "--peft_mode", "lora", "--learning_rate", "2e-4"],
    "sft-packed-ckpt": ["--method", "sft", "--peft_mode", "lora", "--learning_rate", "2e-4",
                        "--gradient_checkpointing", "true"],
}  # fmt: skip
PACKED = ("sft-defaults", "sft-packed-ckpt")
CHAT_TOKENS = (20, 900)  # each chat's length, uniform, in tokens (chat template included)


def build_model(path: Path, shape: dict) -> None:
    """Random-initialised Qwen2 with the given shape and a BPE tokenizer trained here (ChatML template)."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    sys.path.insert(0, str(REPO_ROOT))
    from tests.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(path)
    if shape is not QWEN25_05B:  # small CPU models: the tokenizer's own vocabulary (a 152k LM head would dominate)
        shape = shape | {"vocab_size": len(tokenizer)}
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


def build_chats(
    root: Path, rows: int, tokenizer_dir: Path, seed: int = 0, tokens: tuple[int, int] = CHAT_TOKENS
) -> tuple[Path, list[int]]:
    """Chats of `tokens` tokens (uniform; the chat template included) saved with save_to_disk, and their lengths."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    def length(chat: list[dict]) -> int:
        return len(tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"])

    rng = random.Random(seed)
    chats, lengths = [], []
    for _ in range(rows):
        target = rng.randint(*tokens)
        chat = [{"role": "user", "content": words(max(1, target // 6), rng)}, {"role": "assistant", "content": ""}]
        answer = max(1, target - length(chat))
        for _ in range(4):  # words are 1 to 3 tokens: adjust the answer's word count to the target
            chat[1]["content"] = words(answer, rng)
            answer = max(1, round(answer * (target - length(chat[:1]) - 4) / max(length(chat) - length(chat[:1]), 1)))
        chat[1]["content"] = " ".join(chat[1]["content"].split()[: max(1, answer)])
        while length(chat) > target and len(chat[1]["content"].split()) > 1:
            chat[1]["content"] = chat[1]["content"].rsplit(" ", 1)[0]
        chats.append({"messages": chat})
        lengths.append(length(chat))
    path = root / "chat"
    Dataset.from_list(chats).save_to_disk(str(path))
    return path, lengths


def padding_share(lengths: list[int], batch: int, seed: int) -> float:
    """Share of padding in padded batches of `batch` rows in a random order (as the Trainer's sampler draws them)."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    computed = sum(max(lengths[i] for i in order[k : k + batch]) * len(order[k : k + batch])
                   for k in range(0, len(order), batch))  # fmt: skip
    return 1 - sum(lengths) / computed


def checkpointing_for(model: Path, rows: int, lengths: list[int], batch: int, max_length: int) -> bool:
    """What the Space's estimate decides for this job on this machine (gradient checkpointing "auto")."""
    sys.path.insert(0, str(REPO_ROOT))
    from trainer_space.estimate.model import EstimateInputs, estimate_flavor
    from trainer_space.estimate.model_facts import local_model_facts
    from trainer_space.jobs.backends.local import this_machine

    inputs = EstimateInputs(method="sft", peft="lora", max_length=max_length, per_device_train_batch_size=batch,
                            gradient_accumulation_steps=1, num_rows=rows, mean_tokens=sum(lengths) / len(lengths),
                            packing="auto", use_liger_kernel="auto", gradient_checkpointing="auto")  # fmt: skip
    return estimate_flavor(local_model_facts(str(model)), inputs, this_machine()).gradient_checkpointing


def run(
    name: str, model: Path, dataset: Path, out: Path, args: argparse.Namespace, on_cuda: bool, extra: list[str] = ()
) -> dict:
    """One train.py process; returns tokens/s, seconds per optimizer step, peak memory and losses."""
    result_file = out / "bench-result.json"
    if name in SPEED:  # one epoch over the chats, evaluated at its end; every step logged (num_tokens at the end)
        length = ["--num_train_epochs", "1", "--max_length", str(args.seq_len), "--eval_split_fraction", "0.1",
                  "--eval_strategy", "epoch", "--seed", str(args.seed), "--logging_steps", "1"]  # fmt: skip
    else:
        length = ["--max_steps", str(args.steps), "--max_length", str(args.seq_len)]
    cmd = [
        sys.executable, "-c", RUNNER, str(TRAIN_SCRIPT), *(SPEED.get(name) or RUNS[name]), *extra, *length,
        "--model_name_or_path", str(model), "--dataset_name", str(dataset), "--output_dir", str(out),
        "--per_device_train_batch_size", str(getattr(args, "packed_batch", args.batch) if name in PACKED else args.batch),
        "--gradient_accumulation_steps", "1", *(["--logging_steps", "5"] if name not in SPEED else []),
        "--save_strategy", "no", "--report_to", "none", "--push_to_hub", "false", "--num_sample_generations", "0",
        "--bf16", str(on_cuda).lower(), "--dataloader_pin_memory", str(on_cuda).lower(),
    ]  # fmt: skip
    env = dict(os.environ, BENCH_RESULT=str(result_file), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    if not on_cuda:  # one thread: CPU seconds measure the work, whatever else the machine runs
        env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{name}: train.py exited with {proc.returncode}")
    state = json.loads((out / "trainer_state.json").read_text())
    history = state["log_history"]
    tokens = max(entry.get("num_tokens", 0) for entry in history)
    runtime = next(entry["train_runtime"] for entry in history if "train_runtime" in entry)
    measured = json.loads(result_file.read_text())
    peak = measured["max_memory_allocated"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    evals = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    return {
        "run": name,
        "steps": state["global_step"],
        "tokens": int(tokens),
        "seconds": round(runtime, 2),
        "tokens_per_s": round(tokens / runtime, 1),
        "tokens_per_cpu_s": round(tokens / measured["cpu_s"], 1) if measured.get("cpu_s") else None,
        "s_per_step": round(runtime / max(state["global_step"], 1), 3),
        "max_memory_allocated_gib": round(peak / 2**30, 2) if peak is not None else None,
        "peak_rss_gib": round(measured.get("train_rss", measured["max_rss"]) / 2**30, 3),
        "train_rss_growth_mib": round(measured.get("train_rss_growth", 0) / 2**20, 1),
        "train_loss": round(losses[-1], 4) if losses else None,
        "eval_loss": round(evals[-1], 4) if evals else None,
        "speed_line": next((line for line in proc.stdout.splitlines() if line.startswith("speed: ")), ""),
    }


def speed_pair(model: Path, root: Path, args: argparse.Namespace, on_cuda: bool) -> list[dict]:
    """The template's defaults against TRL's plain defaults on the same chats (and the same seed), `--repeats` times."""
    tokens = (20, 120) if args.smoke else CHAT_TOKENS
    data, lengths = build_chats(root / "data", args.rows, model, tokens=tokens)
    share = padding_share(lengths[: int(len(lengths) * 0.9)], args.batch, args.seed)
    checkpointing = checkpointing_for(model, args.rows, lengths, args.batch, args.seq_len)
    # the same tokens per optimizer step: a packed row holds max_length x 0.95 tokens, a padded row its mean
    args.packed_batch = max(1, round(args.batch * (sum(lengths) / len(lengths)) / (args.seq_len * 0.95)))
    print(f"chats: {len(lengths)}, {min(lengths)} to {max(lengths)} tokens (mean {sum(lengths) / len(lengths):.0f}); "
          f"padded batches of {args.batch}: about {share:.0%} of the computed tokens are padding; the Space's estimate "
          f"turns gradient checkpointing {'on' if checkpointing else 'off'} here; packed runs take {args.packed_batch} "
          f"packed rows per step for about the same tokens per step as {args.batch} padded rows", flush=True)  # fmt: skip
    results = []
    for repeat in range(args.repeats):
        seed = args.seed + repeat
        for name in SPEED if not args.smoke else ("sft-plain", "sft-defaults"):
            extra = ["--gradient_checkpointing", str(checkpointing).lower()] if name == "sft-defaults" else []
            result = run(name, model, data, root / f"{name}-{seed}", argparse.Namespace(**{**vars(args), "seed": seed}),
                         on_cuda, extra)  # fmt: skip
            result |= {"seed": seed, "padding_share": round(share, 3) if name == "sft-plain" else 0.0}
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def print_speed(results: list[dict], device: str) -> None:
    print(f"\n{'run':<16} {'seed':>4} {'steps':>5} {'tokens':>8} {'tokens/s':>9} {'tok/cpu-s':>9} {'s/step':>7} "
          f"{'peak GiB':>9} {'train loss':>10} {'eval loss':>9}  ({device})")  # fmt: skip
    for r in results:
        peak = r["max_memory_allocated_gib"] if r["max_memory_allocated_gib"] is not None else r["peak_rss_gib"]
        print(f"{r['run']:<16} {r['seed']:>4} {r['steps']:>5} {r['tokens']:>8} {r['tokens_per_s']:>9} "
              f"{r['tokens_per_cpu_s']!s:>9} {r['s_per_step']:>7} {peak:>9} {r['train_loss']!s:>10} "
              f"{r['eval_loss']!s:>9}")  # fmt: skip
    by = {(r["run"], r["seed"]): r for r in results}
    rate = "tokens_per_s" if results and results[0]["max_memory_allocated_gib"] is not None else "tokens_per_cpu_s"
    for plain in (r for r in results if r["run"] == "sft-plain"):
        for name in PACKED:
            fast = by.get((name, plain["seed"]))
            if fast is None:
                continue
            what = "GPU memory allocated" if plain["max_memory_allocated_gib"] is not None else "peak RSS in training"
            key = "max_memory_allocated_gib" if plain["max_memory_allocated_gib"] is not None else "peak_rss_gib"
            print(f"seed {plain['seed']}: {name} / plain: {rate.replace('_', ' ')} x{fast[rate] / plain[rate]:.2f} "
                  f"(wall tokens/s x{fast['tokens_per_s'] / plain['tokens_per_s']:.2f}), {what} "
                  f"x{fast[key] / plain[key]:.2f}, eval loss {fast['eval_loss']} vs {plain['eval_loss']}")  # fmt: skip
    line = next((r["speed_line"] for r in results if r["run"] == "sft-defaults"), "")
    print(f"speed settings (defaults): {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq_len", type=int, default=512)
    parser.add_argument("--only", choices=[*RUNS, "speed"], action="append", help="run only these (repeatable)")
    parser.add_argument("--speed", action="store_true", help="the speed pair only (CPU allowed)")
    parser.add_argument("--rows", type=int, default=300, help="speed pair: chats (10%% held out for eval)")
    parser.add_argument("--repeats", type=int, default=1, help="speed pair: runs of each with seeds seed, seed+1, ...")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="keep models, data and outputs here (default: a temp folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 2 steps, CPU allowed: checks the wiring")
    args = parser.parse_args()

    import torch

    on_cuda = torch.cuda.is_available()
    if not on_cuda and not (args.smoke or args.speed):
        raise SystemExit("no CUDA GPU: this benchmark measures GPU throughput (--speed or --smoke run on a CPU)")
    if args.speed and not args.smoke:
        args.batch = 4 if args.batch == 8 and not on_cuda else args.batch
        args.seq_len = 1024 if args.seq_len == 512 else args.seq_len  # chats up to 900 tokens: none truncated
    if args.smoke:
        args.steps, args.batch, args.seq_len, args.rows = 2, 2, 128, 16
    device = torch.cuda.get_device_name() if on_cuda else "cpu"
    print(f"device: {device}, torch {torch.__version__}, bf16: {on_cuda}", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        model = root / "model"
        build_model(model, SMOKE if args.smoke else QWEN25_05B if on_cuda else CPU)
        names = ["speed"] if args.speed else args.only or [*RUNS, "speed"]
        results, speed = [], []
        if set(names) & set(RUNS):
            data = build_datasets(root / "data", rows=args.steps * args.batch + args.batch, seq_len=args.seq_len)
        for name in names:
            if name == "speed":
                speed = speed_pair(model, root, args, on_cuda)
                continue
            result = run(name, model, data[name.split("-")[0]], root / name, args, on_cuda)
            print(json.dumps(result), flush=True)
            results.append(result)

    if speed:
        print_speed(speed, device)
    if not results:
        return
    print(f"\n{'run':<10} {'steps':>5} {'tokens':>9} {'seconds':>8} {'tokens/s':>10} {'peak GiB':>9}  ({device})")
    for r in results:
        peak = "n/a" if r["max_memory_allocated_gib"] is None else f"{r['max_memory_allocated_gib']:.2f}"
        print(f"{r['run']:<10} {r['steps']:>5} {r['tokens']:>9} {r['seconds']:>8} {r['tokens_per_s']:>10} {peak:>9}")


if __name__ == "__main__":
    main()
