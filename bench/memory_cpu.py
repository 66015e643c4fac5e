# /// script
# requires-python = ">=3.11"
# dependencies = ["torch", "transformers>=5", "peft"]
# ///
"""Check the memory model's tensor terms on CPU, where torch's profiler sees every allocation.

A training step on CPU allocates the same tensors as on a GPU (same modules, same autocast casts, same
optimizer states); only kernels' private workspaces and the CUDA context differ. So the peak of live tensor
bytes during a step on CPU is a stand-in for `torch.cuda.max_memory_allocated` that needs no GPU. This script
builds small random-init Qwen2-shaped models, runs real training steps (bf16 autocast, AdamW, gradient
accumulation 2, optional gradient checkpointing, optional LoRA via PEFT), and prints the measured peak beside
`MemoryBreakdown.allocated` from trainer_space/estimate/model.py (no CUDA context, no fragmentation).

The loss here is transformers' own (full logits), so the estimate is asked for `fused_lm_head=False`: TRL's fused
head has no Triton kernel on CPU and its torch fallback allocates fp32 tiles the GPU kernel does not. What this
checks is everything else: weights, gradients, AdamW states, autocast copies, LoRA adapters, activations with and
without checkpointing, and the plain logits coefficient.

    .venv/bin/python bench/memory_cpu.py            # five configurations, ~15 minutes on 2 cores
    .venv/bin/python bench/memory_cpu.py --quick    # two configurations, ~3 minutes

It also prints the saved-activation coefficients per token per layer (torch.autograd.graph.saved_tensors_hooks)
that estimate.py's ACT_* constants come from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def qwen2_config(hidden: int, layers: int, heads: int, kv_heads: int, inter: int, vocab: int) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "tie_word_embeddings": True,
        "max_position_embeddings": 4096,
    }


def build(cfg: dict, peft: str, ckpt: bool):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "architectures"})
    config._attn_implementation = "sdpa"
    dtype = torch.float32 if peft == "full" else torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.train()
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if peft == "lora":
        from peft import LoraConfig, get_peft_model

        if ckpt:
            model.enable_input_require_grads()
        model = get_peft_model(
            model,
            LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
    return model


def live_bytes(model, optimizer) -> int:
    seen: dict[int, int] = {}
    for p in model.parameters():
        seen[p.untyped_storage().data_ptr()] = p.untyped_storage().nbytes()
        if p.grad is not None:
            seen[p.grad.untyped_storage().data_ptr()] = p.grad.untyped_storage().nbytes()
    for state in optimizer.state.values():
        for t in state.values():
            if hasattr(t, "untyped_storage") and t.dim() > 0:
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def measure_step(cfg: dict, peft: str, ckpt: bool, batch: int, seq: int, accum: int = 2) -> int:
    """Peak live tensor bytes during one optimizer step (after a warm-up step created the optimizer states)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = build(cfg, peft, ckpt)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(0, cfg["vocab_size"], (batch, seq))

    def step() -> None:
        for _ in range(accum):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(input_ids=ids, labels=ids)
            (out.loss / accum).backward()
            del out
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    base = live_bytes(model, optimizer)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns()
    )
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return base + peak


def saved_per_token_layer(cfg: dict, peft: str) -> float:
    """Saved-for-backward bytes per token per layer (difference of 2 vs 1 layers, 256 vs 128 tokens)."""
    import torch

    def saved(layers: int, seq: int) -> int:
        torch.manual_seed(0)
        model = build({**cfg, "num_hidden_layers": layers}, peft, False)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        seen: dict[int, int] = {}

        def pack(t):
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
            return t

        ids = torch.randint(0, cfg["vocab_size"], (1, seq))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=ids, labels=ids)
        return sum(v for k, v in seen.items() if k not in params)

    r = {(L, s): saved(L, s) for L in (1, 2) for s in (128, 256)}
    return ((r[2, 256] - r[1, 256]) - (r[2, 128] - r[1, 128])) / 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    from trainer_space.estimate.model import (
        EstimateInputs,
        activation_bytes_per_token_layer,
        lora_activation_bytes_per_token_layer,
        memory_breakdown,
    )
    from trainer_space.estimate.model_facts import facts_from_config

    small = qwen2_config(256, 4, 4, 2, 1024, 8192)
    runs = [(small, "full", True, 2, 256), (small, "lora", True, 2, 256)]
    if not args.quick:
        runs += [(small, "full", False, 2, 256), (small, "lora", False, 2, 256)]
        runs += [(qwen2_config(512, 2, 8, 2, 1536, 32000), "full", True, 1, 512)]
    print("config                                   peft  ckpt  tokens   measured MiB  estimate MiB  ratio")
    for cfg, peft, ckpt, batch, seq in runs:
        facts = facts_from_config("bench/random", cfg)
        inp = EstimateInputs(
            peft=peft,
            max_length=seq,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=2,
            gradient_checkpointing=ckpt,
        )
        est = memory_breakdown(facts, inp, fused_lm_head=False).allocated  # plain transformers CE here
        got = measure_step(cfg, peft, ckpt, batch, seq)
        shape = f"h{cfg['hidden_size']} L{cfg['num_hidden_layers']} I{cfg['intermediate_size']} V{cfg['vocab_size']}"
        print(
            f"{shape:40} {peft:5} {ckpt!s:5} {batch * seq:6}   {got / 2**20:12.1f}  {est / 2**20:12.1f}  "
            f"{est / got:5.2f}"
        )
    print("\nsaved activations per token per layer (bytes): measured vs estimate.py")
    for peft in ("full", "lora"):
        facts = facts_from_config("bench/random", small)
        stream = "mixed" if peft == "full" else "half"
        est = activation_bytes_per_token_layer(facts, stream)
        if peft == "lora":
            est += lora_activation_bytes_per_token_layer(facts, 0.05)
        print(f"  {peft:5} measured {saved_per_token_layer(small, peft):8.0f}   estimate {est:8.0f}")


if __name__ == "__main__":
    main()
