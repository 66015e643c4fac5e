# /// script
# requires-python = ">=3.11"
# dependencies = ["torch", "transformers>=5", "peft", "trl==1.16.0", "datasets", "accelerate"]
# ///
"""Measured peak GPU memory and step time beside trainer_space/estimate/model.py's figures.

Builds random-initialised models from the real configs of Qwen2.5-0.5B and Qwen2.5-1.5B (written out below,
nothing is downloaded), trains a few SFT steps with full fine-tuning and with LoRA the way
job_templates/train.py does (TRL SFTTrainer, bf16 autocast, float32 master weights for full / bf16 base and
fp32 adapters for LoRA, AdamW, gradient checkpointing), every sequence exactly `max_length` tokens long, and
prints, per run:

* measured `torch.cuda.max_memory_allocated()` vs the estimate's `allocated` (tensors only) and the ratio,
* measured `torch.cuda.max_memory_reserved()` vs the estimate's `peak` (with allocator overhead),
* measured seconds per optimizer step (median after warm-up) vs `seconds_per_step` and the ratio.

Targets (issue 5): memory within +/-20%, time within +/-35%.

    # on a GPU machine (H100 / A100 / L4 ...), from the repository root:
    python bench/estimate_vs_gpu.py                       # 2 models x {full, lora}, 8 steps each
    python bench/estimate_vs_gpu.py --json out.json       # also write the rows as JSON
    # on a CPU, to check that the script itself runs (tiny shapes, no figures to compare):
    python bench/estimate_vs_gpu.py --smoke

Use `--loop plain` to time a bare PyTorch loop (same tensors, no Trainer) instead of TRL's SFTTrainer.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Qwen/Qwen2.5-0.5B and Qwen/Qwen2.5-1.5B config.json (architecture keys), as published on the Hub
QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "tie_word_embeddings": True, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "hidden_act": "silu", "torch_dtype": "bfloat16",
}  # fmt: skip
QWEN25_15B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
    "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
    "tie_word_embeddings": True, "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "hidden_act": "silu", "torch_dtype": "bfloat16",
}  # fmt: skip
MODELS = {"Qwen/Qwen2.5-0.5B": (QWEN25_05B, 494_032_768), "Qwen/Qwen2.5-1.5B": (QWEN25_15B, 1_543_714_304)}
SMOKE = {  # tiny Qwen2 shape for --smoke (CPU)
    "bench/smoke": (
        {
            **QWEN25_05B,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 512,
        },
        None,
    )
}


def build_model(config: dict, peft: str, device: str):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**{k: v for k, v in config.items() if k not in ("architectures", "torch_dtype")})
    # as the template: TRL's default float32 for full fine-tuning, bf16 frozen base for LoRA
    dtype = torch.float32 if peft == "full" else torch.bfloat16
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    return model.to(device)


def lora_config():
    from peft import LoraConfig

    # job_templates/train.py: r=16, alpha=32, dropout=0.05 (TRL ModelConfig defaults), all-linear
    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")


def synthetic_dataset(vocab: int, rows: int, length: int):
    import random

    from datasets import Dataset

    rng = random.Random(0)
    return Dataset.from_dict({"input_ids": [[rng.randrange(3, vocab) for _ in range(length)] for _ in range(rows)]})


def tokenizer_for(vocab: int):
    """A word-level tokenizer with the model's vocabulary size (the data is already token ids)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t1", eos_token="t2", unk_token="t0")


class StepTimer:
    """Seconds per optimizer step (CUDA-synchronised)."""

    def __init__(self, device: str) -> None:
        self.device, self.times, self._t = device, [], 0.0

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def begin(self) -> None:
        self._sync()
        self._t = time.perf_counter()

    def end(self) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._t)


def run_trl(config: dict, peft: str, args, device: str) -> list[float]:
    import torch
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    timer = StepTimer(device)

    class Timing(TrainerCallback):
        def on_step_begin(self, *a, **k):
            timer.begin()

        def on_step_end(self, *a, **k):
            timer.end()

    model = build_model(config, peft, device)
    rows = args.steps * args.batch * args.accum
    on_cuda = device.startswith("cuda")
    bf16_ok = on_cuda and torch.cuda.get_device_capability()[0] >= 8
    training_args = SFTConfig(
        output_dir="/tmp/estimate-bench",
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=args.accum,
        gradient_checkpointing=not args.no_ckpt,
        max_length=args.max_length,
        bf16=bf16_ok,
        fp16=on_cuda and not bf16_ok,
        use_cpu=not on_cuda,
        learning_rate=1e-5,
        logging_steps=1000,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=synthetic_dataset(config["vocab_size"], rows, args.max_length),
        processing_class=tokenizer_for(config["vocab_size"]),
        peft_config=lora_config() if peft == "lora" else None,
        callbacks=[Timing()],
    )
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    return timer.times


def run_plain(config: dict, peft: str, args, device: str) -> list[float]:
    """The same step without the Trainer: TRL's fused LM head, autocast, backward per micro-batch, fused AdamW."""
    import torch
    from trl.trainer.utils import add_fused_lm_head

    model = build_model(config, peft, device)
    model.train()
    add_fused_lm_head(model)  # as SFTTrainer does: no [tokens, vocab] logits
    if not args.no_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if peft == "lora":
        from peft import get_peft_model

        if not args.no_ckpt:
            model.enable_input_require_grads()
        model = get_peft_model(model, lora_config())
    on_cuda = device.startswith("cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=on_cuda)
    dtype = torch.bfloat16 if (not on_cuda or torch.cuda.get_device_capability()[0] >= 8) else torch.float16
    ids = torch.randint(3, config["vocab_size"], (args.batch, args.max_length), device=device)
    timer = StepTimer(device)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.steps):
        timer.begin()
        for _ in range(args.accum):
            with torch.autocast(device.split(":")[0], dtype=dtype):
                loss = model(input_ids=ids, labels=ids, fused_lm_head=True).loss / args.accum
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timer.end()
    return timer.times


def flavor_for_device(device: str):
    """A one-GPU `Flavor` for the card we run on (name, VRAM, speed figures from trainer_space.hub.hardware)."""
    from trainer_space.hub.hardware import Flavor, _gpu_model

    if not device.startswith("cuda"):
        return Flavor("cpu", "CPU", 1, "A10G", 24.0, 0, 0.0, 0.0, 0.0)  # smoke only: any figures do
    import torch

    props = torch.cuda.get_device_properties(0)
    model = _gpu_model(props.name)
    return Flavor("bench", props.name, 1, model, props.total_memory / 1024**3, 0, 0.0, 0.0, 0.0)


def _f(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Measured GPU memory and step time vs the estimate.")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the timing")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--accum", type=int, default=2)
    parser.add_argument("--max-length", dest="max_length", type=int, default=1024)
    parser.add_argument("--no-ckpt", dest="no_ckpt", action="store_true", help="gradient checkpointing off")
    parser.add_argument("--peft", nargs="+", default=["full", "lora"], choices=["full", "lora"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--loop", choices=["trl", "plain"], default="trl")
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU: checks the script runs")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    import torch

    from trainer_space.estimate.model import GIB, EstimateInputs, memory_breakdown, seconds_per_step
    from trainer_space.estimate.model_facts import facts_from_config

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    models = SMOKE if args.smoke else {m: MODELS[m] for m in args.models}
    if args.smoke:
        args.steps, args.warmup, args.max_length, args.batch = 3, 1, 64, 2
    flavor = flavor_for_device(device)
    print(f"device: {flavor.pretty_name} ({flavor.gpu_model}, {flavor.vram_gb:.0f} GiB), loop: {args.loop}")
    rows = []
    for name, (config, published) in models.items():
        facts = facts_from_config(name, config, safetensors_total=published)
        for peft in args.peft:
            inp = EstimateInputs(
                method="sft", peft=peft, max_length=args.max_length, per_device_train_batch_size=args.batch,
                gradient_accumulation_steps=args.accum, gradient_checkpointing=not args.no_ckpt,
            )  # fmt: skip
            memory = memory_breakdown(facts, inp)
            est_step = seconds_per_step(facts, inp, flavor, seq_len=args.max_length)
            on_cuda = device.startswith("cuda")
            gc.collect()  # the previous run's trainer and model must be gone before this one is measured
            baseline = 0
            if on_cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                baseline = torch.cuda.memory_allocated()
            times = (run_trl if args.loop == "trl" else run_plain)(config, peft, args, device)
            measured_step = statistics.median(times[args.warmup :] or times)
            # CPU (--smoke): nothing to compare
            allocated = torch.cuda.max_memory_allocated() - baseline if on_cuda else None
            reserved = torch.cuda.max_memory_reserved() if on_cuda else None
            row = {
                "model": name, "peft": peft, "batch": args.batch, "accum": args.accum, "max_length": args.max_length,
                "gradient_checkpointing": not args.no_ckpt, "device": flavor.pretty_name, "loop": args.loop,
                "measured_allocated_gib": allocated / GIB if allocated else None,
                "estimated_allocated_gib": memory.allocated / GIB,
                "memory_ratio": memory.allocated / allocated if allocated else None,
                "measured_reserved_gib": reserved / GIB if reserved else None, "estimated_peak_gib": memory.peak / GIB,
                "measured_step_s": measured_step, "estimated_step_s": est_step,
                "time_ratio": est_step / measured_step if measured_step else None,
            }  # fmt: skip
            rows.append(row)
            print(
                f"{name:20} {peft:4}  allocated {_f(row['measured_allocated_gib'])} GiB  est "
                f"{_f(row['estimated_allocated_gib'])} (x{_f(row['memory_ratio'])})  "
                f"reserved {_f(row['measured_reserved_gib'])}  est peak {_f(row['estimated_peak_gib'])}  "
                f"step {measured_step:6.3f} s  est {est_step:6.3f} s (x{_f(row['time_ratio'])})",
                flush=True,
            )
            del times
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
