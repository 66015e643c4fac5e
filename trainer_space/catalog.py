"""One source of truth for training methods, PEFT modes and the defaults the app proposes."""

from __future__ import annotations

from dataclasses import dataclass

METHODS: tuple[str, ...] = ("sft", "dpo", "grpo", "reward", "kto")
PEFT_MODES: tuple[str, ...] = ("full", "lora", "qlora")

METHOD_NAMES: dict[str, str] = {"sft": "SFT", "dpo": "DPO", "grpo": "GRPO", "reward": "Reward modelling", "kto": "KTO"}
METHOD_LABELS: dict[str, str] = {  # the same, with what each needs, for method pickers
    "sft": "SFT (supervised fine-tuning)",
    "dpo": "DPO (preference pairs)",
    "grpo": "GRPO (online RL with rewards)",
    "reward": "Reward modelling",
    "kto": "KTO (unpaired preferences)",
}

# GRPO reward functions the job template offers (names shared with job_templates/train.py REWARD_FUNCS)
GRPO_REWARDS: tuple[str, ...] = ("accuracy", "think_format", "length")

# defaults the Train tab submits and the Estimate tab assumes (one place, so both describe the same job)
DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B"
DEFAULT_DATASET = "trl-lib/Capybara"
DEFAULT_FLAVOR = "a10g-small"
DEFAULT_MAX_LENGTH = 1024
MAX_LENGTH_RANGE = (32, 262_144)  # tokens; the job template refuses anything under 16
DEFAULT_BATCH_SIZE = 4  # per GPU
DEFAULT_GRAD_ACCUM = 4
LORA_R = 16  # trl ModelConfig.lora_r default
LORA_ALPHA = 32  # trl ModelConfig.lora_alpha default
LORA_DROPOUT = 0.05  # trl ModelConfig.lora_dropout default
GRPO_NUM_GENERATIONS = 8  # trl GRPOConfig.num_generations default
GRPO_MAX_COMPLETION_LENGTH = 256  # shorter than TRL's 512: a cheaper first GRPO run; the Train tab can raise it

# learning rates: TRL's documented defaults / the trl-jobs presets (2e-5 full, 2e-4 LoRA for SFT);
# preference and RL methods use much smaller rates (TRL docs: DPO 5e-7 full, GRPO 1e-6)
_LR: dict[tuple[str, bool], float] = {
    ("sft", False): 2e-5,
    ("sft", True): 2e-4,
    ("dpo", False): 5e-7,
    ("dpo", True): 5e-6,
    ("grpo", False): 1e-6,
    ("grpo", True): 1e-5,
    ("reward", False): 1e-5,
    ("reward", True): 1e-4,
    ("kto", False): 5e-7,
    ("kto", True): 5e-6,
}


@dataclass(frozen=True)
class Preset:
    learning_rate: float
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    gradient_checkpointing: bool
    peft: str


def preset(method: str, params_b: float | None = None, peft: str | None = None) -> Preset:
    """Sensible starting hyperparameters by method and model size (billions of parameters)."""
    size = params_b or 1.0
    if peft is None:
        peft = "full" if size < 1.0 else "lora" if size < 14 else "qlora"
    batch = 8 if size < 1 else 4 if size < 4 else 2 if size < 14 else 1
    if method in ("dpo", "kto", "reward"):
        batch = max(1, batch // 2)  # pairs: twice the sequences
    if method == "grpo":
        batch = max(2, batch)
    effective = 16
    return Preset(
        learning_rate=_LR[(method, peft != "full")],
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=max(1, effective // batch),
        max_length=DEFAULT_MAX_LENGTH,
        gradient_checkpointing=size >= 1.0,
        peft=peft,
    )
