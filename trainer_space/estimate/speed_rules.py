"""Which speed settings a job turns on, and why: packing (padding-free batches), the attention kernel, Liger kernels.

One source for the Space and the job. The Space decides with the flavor's GPU and the model's `config.json` (read by
`model_facts`), to estimate and to say it in the pre-flight; the job decides again right before its trainer is built,
with the GPU it really has and the same `config.json`, and says it in its log. The part between the SHARED markers
is standard library only and is spliced, as text, into `job_templates/train.py` (`python -m trainer_space.data.splice`).

What TRL 1.16 / transformers 5.23 offer, and what each needs:

* packing: SFT only (`packing=True`, `packing_strategy="bfd"`: best-fit decreasing, padding-free, one document never
  attends to another). TRL's collator then flattens the micro-batch into one row with `position_ids` (no attention
  mask). The attention must honour those: a varlen flash-attention kernel (the `kernels` package loads
  `kernels-community/flash-attn2` from the Hub; Ampere or newer, 16-bit), or SDPA / eager, whose mask transformers
  builds block-diagonal from `position_ids` (`masking_utils.find_packed_sequence_indices`) at the cost of a
  (tokens x tokens) mask over the whole flattened row: without a kernel the job packs one row per micro-batch (more
  gradient accumulation, the same effective batch). DPO's `padding_free` is switched off inside TRL 1.16 ("temporarily
  unavailable"), GRPO, KTO and reward modelling have none.
* Liger kernels (`use_liger_kernel`): Triton kernels for RMSNorm, RoPE and SwiGLU, CUDA only. TRL 1.16 keeps its own
  chunked LM head (Liger's fused linear cross-entropy is turned off: `liger_kernel_config`).
* The chunked loss: TRL 1.16 computes SFT, DPO, KTO and GRPO log-probabilities with its fused, chunked LM head
  (`add_fused_lm_head`) in every job; `loss_type="chunked_nll"` is a deprecated alias of "nll". Nothing to choose.

Unsafe models keep the padded path, named with the reason (`model_hazards`): linear attention or recurrent layers
(Qwen3-Next, Qwen3.5, Mamba hybrids: their convolutions and recurrent states run across packed documents unless
kernels with sequence boundaries are installed), vision or audio towers (TRL refuses packing for vision data, and
multimodal position ids are not 1-D), ALiBi biases (built from the attention mask that padding-free drops) and custom
modelling code (`auto_map`: nobody checked it honours `position_ids`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# ----- BEGIN SHARED WITH job_templates/train.py (speed_rules; stdlib only; edit here, then `python -m trainer_space.data.splice`)
SPEED_MODES = ("auto", "off")  # packing and Liger: the job decides (auto), or never
CHECKPOINTING_MODES = ("auto", "on", "off")  # gradient checkpointing: the estimate decides (auto), or forced
PACKING_METHODS = frozenset({"sft"})  # TRL 1.16: BFD packing exists for SFT only (DPO's padding_free is disabled)
FLASH_KERNEL = "kernels-community/flash-attn2"  # transformers' own fallback for flash_attention_2 (`kernels` package)
FLASH_MIN_CAPABILITY = 80  # flash-attention 2 kernels: Ampere (8.0) or newer, bf16 / fp16 only
ATTENTION_LAYER_KINDS = frozenset({"full_attention", "sliding_attention", "chunked_attention", "attention", "global",
                                   "local", "full", "sliding"})  # fmt: skip
RECURRENT_MODEL_TYPES = frozenset({
    "mamba", "mamba2", "falcon_mamba", "falcon_h1", "jamba", "bamba", "zamba", "zamba2", "nemotron_h",
    "granitemoehybrid", "lfm2", "lfm2_moe", "recurrent_gemma", "rwkv", "xlstm", "minimax", "qwen3_next", "qwen3_5",
    "qwen3_5_moe", "qwen3_5_text", "qwen3_5_moe_text", "kimi_linear", "olmo_hybrid", "bailing_hybrid",
})  # fmt: skip
RECURRENT_KEYS = ("hybrid_override_pattern", "attn_layer_period", "linear_conv_kernel_dim", "linear_num_value_heads",
                  "mamba_d_state", "mamba_expand", "ssm_state_size", "attn_type_list")  # fmt: skip
TOWER_KEYS = ("vision_config", "vision_tower", "visual", "audio_config", "vision_encoder", "mm_vision_tower")


@dataclass(frozen=True)
class SpeedChoice:
    """One speed setting of one job: on or off (`value`: what is passed to TRL / transformers), and why."""

    name: str
    on: bool
    value: Any
    reason: str


def _layer_kinds(cfg: Mapping[str, Any]) -> set[str]:
    kinds: set[str] = set()
    for key in ("layer_types", "layers_block_type", "block_types"):
        value = cfg.get(key)
        if isinstance(value, (list, tuple)):
            kinds |= {str(v).lower() for v in value}
    return kinds


def model_hazards(config: Mapping[str, Any] | None) -> dict[str, str]:
    """Speed settings unsafe for the model of this `config.json` (its text config too), each with the reason.

    Keys: "packing" (padding-free batches), "attention" (a flash-attention kernel), "liger" (Liger kernels).
    """
    if not isinstance(config, Mapping):
        return {}
    parts = [config, *(config[k] for k in ("text_config", "llm_config", "language_config")
                       if isinstance(config.get(k), Mapping))]  # fmt: skip
    hazards: dict[str, str] = {}
    model_type = " ".join(str(p.get("model_type") or "") for p in parts).split()
    odd_layers = sorted(set().union(*(_layer_kinds(p) for p in parts)) - ATTENTION_LAYER_KINDS)
    recurrent_keys = [k for p in parts for k in RECURRENT_KEYS if p.get(k) is not None]
    recurrent_types = [t for t in model_type if t in RECURRENT_MODEL_TYPES]
    if odd_layers or recurrent_keys or recurrent_types:
        what = (f"layer types {', '.join(odd_layers)}" if odd_layers
                else f"model type {recurrent_types[0]}" if recurrent_types else f"config key {recurrent_keys[0]}")  # fmt: skip
        hazards["packing"] = (
            f"linear attention or recurrent layers ({what}): their convolutions and states would run across the "
            "packed documents, mixing samples"
        )
    towers = [k for k in TOWER_KEYS if config.get(k) is not None]
    if towers:
        why = f"a vision or audio tower ({towers[0]}): multimodal models keep the padded path"
        hazards |= {"packing": hazards.get("packing", why), "attention": why, "liger": why}
    if any(p.get("alibi") or (isinstance(p.get("attn_config"), Mapping) and p["attn_config"].get("alibi"))
           for p in parts) or any(t in ("bloom", "mpt") for t in model_type):  # fmt: skip
        hazards.setdefault("packing", "ALiBi position biases, built from the attention mask that padding-free drops")
    if config.get("auto_map"):
        why = "custom modelling code (auto_map): nobody checked that it honours packed position ids"
        hazards.setdefault("packing", why)
        hazards.setdefault("attention", why)
    return hazards


def choose_speed(
    method: str,
    *,
    packing: str = "auto",
    liger: str = "auto",
    gpu: bool,
    capability: int | None = None,
    half_precision: bool = True,
    hazards: Mapping[str, str] | None = None,
) -> dict[str, SpeedChoice]:
    """The job's packing, attention and Liger choices ("auto" or "off" each), on a CUDA GPU (`gpu`) of compute
    `capability` (80 = 8.0; None: unknown) training in bf16 / fp16 (`half_precision`), for a model with `hazards`."""
    hazards = hazards or {}
    out: dict[str, SpeedChoice] = {}
    if packing == "off":
        out["packing"] = SpeedChoice("packing", False, False, "turned off (padded batches)")
    elif method not in PACKING_METHODS:
        out["packing"] = SpeedChoice("packing", False, False, f"TRL 1.16 packs SFT only, not {method}")
    elif "packing" in hazards:
        out["packing"] = SpeedChoice("packing", False, False, f"unsafe for this model: {hazards['packing']}")
    else:
        out["packing"] = SpeedChoice("packing", True, "bfd", "BFD packing, padding-free: no token is padding")
    kernel_ok = gpu and half_precision and (capability or 0) >= FLASH_MIN_CAPABILITY
    if not out["packing"].on:
        out["attention"] = SpeedChoice("attention", False, "sdpa", "SDPA (the model's default)")
    elif "attention" in hazards:
        out["attention"] = SpeedChoice(
            "attention", False, "sdpa", f"SDPA with one packed row per micro-batch: {hazards['attention']}"
        )
    elif kernel_ok:
        out["attention"] = SpeedChoice(
            "attention", True, FLASH_KERNEL, f"flash-attention 2 ({FLASH_KERNEL}): each document attends to itself only"
        )
    else:
        why = ("no CUDA GPU" if not gpu else "not 16-bit" if not half_precision
               else "a GPU older than Ampere" if capability else "GPU generation unknown")  # fmt: skip
        out["attention"] = SpeedChoice(
            "attention", False, "sdpa",
            f"SDPA with a block-diagonal mask from position_ids, one packed row per micro-batch ({why}: no flash "
            "kernel)",
        )  # fmt: skip
    if liger == "off":
        out["liger"] = SpeedChoice("liger", False, False, "turned off")
    elif not gpu:
        out["liger"] = SpeedChoice("liger", False, False, "no CUDA GPU: Liger's Triton kernels need one")
    elif "liger" in hazards:
        out["liger"] = SpeedChoice("liger", False, False, f"unsafe for this model: {hazards['liger']}")
    else:
        out["liger"] = SpeedChoice("liger", True, True, "Liger's Triton kernels for RMSNorm, RoPE and SwiGLU")
    return out


def packed_micro_batch(batch: int, accumulation: int, choices: Mapping[str, SpeedChoice]) -> tuple[int, int]:
    """(per-device batch, gradient accumulation) the job trains with: packed rows without a flash kernel go one per
    micro-batch (SDPA's mask spans the whole flattened micro-batch), with the same effective batch."""
    if choices["packing"].on and not choices["attention"].on and batch > 1:
        return 1, accumulation * batch
    return batch, accumulation


def speed_summary(choices: Mapping[str, SpeedChoice]) -> str:
    """One line: each setting on or off, with its reason."""
    parts = []
    for c in choices.values():
        state = "" if c.name == "attention" else " on" if c.on else " off"
        parts.append(f"{'Liger kernels' if c.name == 'liger' else c.name}{state}: {c.reason}")
    return "; ".join(parts)


# ----- END SHARED WITH job_templates/train.py
