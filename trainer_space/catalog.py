"""One source of truth for training methods, PEFT modes, the defaults the app proposes and the timeout rule.

Everything that differs between TRL methods (which trainer, whether a reference model is loaded, how many
sequences one example becomes, whether it generates, which learning rate to start from) lives in `METHODS`:
code asks the table (`method_spec("dpo").sequences_per_example`) instead of branching on method names.
What each method reads from a dataset, and GRPO's reward functions with the fields each reads, live in
`data/mapping.py` (the job template shares that module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MethodSpec:
    """What the app needs to know about one TRL training method."""

    name: str  # "sft": the value of `--method` and of the config's `method`
    title: str  # "SFT"
    label: str  # for method pickers
    trl_trainer: str  # TRL's trainer class
    reference: Literal["always", "beta", "never"]  # reference model: always (DPO, KTO), when beta > 0 (GRPO), never
    default_beta: float | None  # TRL's default beta (None: the method has none)
    sequences_per_example: int  # forward passes per example: DPO concatenates chosen+rejected, KTO adds KL rows
    generates: bool  # samples completions while training (GRPO)
    score_head: bool  # a one-output score head instead of the LM head (reward modelling)
    min_batch_size: int  # KTO's KL term mixes the examples of a batch
    lr_full: float  # learning rates to start from (TRL docs and trl-jobs presets)
    lr_lora: float

    @property
    def truncates(self) -> bool:
        """Whether `max_length` cuts examples (GRPO has no max_length: prompts are never cut)."""
        return not self.generates

    def needs_reference(self, beta: float | None = None) -> bool:
        if self.reference == "beta":
            return (self.default_beta if beta is None else beta) > 0
        return self.reference == "always"

    def learning_rate(self, peft: str) -> float:
        return self.lr_full if peft == "full" else self.lr_lora


# TRL 1.16 defaults: DPOConfig.beta 0.1, KTOConfig.beta 0.1, GRPOConfig.beta 0.0 ("the reference model is not
# loaded"). Learning rates: 2e-5 full / 2e-4 LoRA for SFT (trl-jobs presets); DPO 5e-7, GRPO 1e-6 (TRL docs).
METHODS: dict[str, MethodSpec] = {
    m.name: m
    for m in (
        MethodSpec("sft", "SFT", "SFT (supervised fine-tuning)", "SFTTrainer", "never", None, 1, False, False, 1,
                   2e-5, 2e-4),
        MethodSpec("dpo", "DPO", "DPO (preference pairs)", "DPOTrainer", "always", 0.1, 2, False, False, 1,
                   5e-7, 5e-6),
        MethodSpec("grpo", "GRPO", "GRPO (online RL with rewards)", "GRPOTrainer", "beta", 0.0, 1, True, False, 1,
                   1e-6, 1e-5),
        MethodSpec("reward", "Reward modelling", "Reward modelling", "RewardTrainer", "never", None, 2, False, True,
                   1, 1e-5, 1e-4),
        MethodSpec("kto", "KTO", "KTO (unpaired preferences)", "KTOTrainer", "always", 0.1, 2, False, False, 2,
                   5e-7, 5e-6),
    )
}  # fmt: skip
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
PEFT_MODES: tuple[str, ...] = ("full", "lora", "qlora")


def method_spec(name: str) -> MethodSpec:
    """The table entry of a method (KeyError for an unknown name: validate input before asking)."""
    return METHODS[name]


# defaults the Train tab submits and the Estimate tab assumes (one place, so both describe the same job)
DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B"
DEFAULT_DATASET = "trl-lib/Capybara"
DEFAULT_FLAVOR = "a10g-small"
DEFAULT_METHOD = "sft"
DEFAULT_PEFT = "lora"
DEFAULT_MAX_LENGTH = 1024
MAX_LENGTH_RANGE = (32, 262_144)  # tokens; the job template refuses anything under 16
DEFAULT_BATCH_SIZE = 4  # per GPU
DEFAULT_GRAD_ACCUM = 4
LORA_R = 16  # trl ModelConfig.lora_r default
LORA_ALPHA = 32  # trl ModelConfig.lora_alpha default
LORA_DROPOUT = 0.05  # trl ModelConfig.lora_dropout default
GRPO_NUM_GENERATIONS = 8  # trl GRPOConfig.num_generations default
GRPO_MAX_COMPLETION_LENGTH = 256  # shorter than TRL's 512: a cheaper first GRPO run; the Train tab can raise it
QUICK_TEST_STEPS = 20  # the "quick test" switch: a few steps on a few rows, to see the job run end to end
QUICK_TEST_ROWS = 200

# ----------------------------------------------------------------------------- timeouts
# A job is submitted with its estimated duration plus 30%, and never less than 30 minutes (Jobs' own default).
TIMEOUT_MARGIN = 1.3
MIN_TIMEOUT_S = 30 * 60
MAX_TIMEOUT_S = 7 * 86400  # the longest timeout the app accepts
DEFAULT_TIMEOUT_S = 2 * 3600  # when nothing is known about the job's duration


def submit_timeout_s(estimated_s: float | None) -> int:
    """The timeout to submit a job with: the estimate + 30%, at least 30 minutes, rounded up.

    Rounded to 5 minutes below 2 hours and to half hours above, so the figure reads well ("45m", "3.5h").
    No estimate: the 2-hour default.
    """
    if estimated_s is None:
        return DEFAULT_TIMEOUT_S
    minutes = math.ceil(max(estimated_s * TIMEOUT_MARGIN, MIN_TIMEOUT_S) / 60 - 1e-9)
    if minutes < 120:
        return 5 * math.ceil(minutes / 5) * 60
    return math.ceil(minutes / 30) * 1800


# ----------------------------------------------------------------------------- presets
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
    spec = method_spec(method)
    size = params_b or 1.0
    if peft is None:
        peft = "full" if size < 1.0 else "lora" if size < 14 else "qlora"
    batch = 8 if size < 1 else 4 if size < 4 else 2 if size < 14 else 1
    batch = max(spec.min_batch_size, batch // spec.sequences_per_example)  # pairs: twice the sequences
    if spec.generates:
        batch = max(2, batch)
    effective = 16
    return Preset(
        learning_rate=spec.learning_rate(peft),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=max(1, effective // batch),
        max_length=DEFAULT_MAX_LENGTH,
        gradient_checkpointing=size >= 1.0,
        peft=peft,
    )


# ----------------------------------------------------------------------------- auto settings
# Epochs: OpenAI's fine-tuning API chooses `n_epochs: "auto"` from the dataset's size; its data-preparation guide
# (the chat fine-tuning cookbook) gives the rule: 3 epochs, raised so at least 100 examples are seen (at most 25
# epochs) and lowered so at most 25,000 are (at least 1). Preference methods overfit sooner (Zephyr, Tulu 2: 1 to 3
# epochs of DPO); reward models train one epoch (InstructGPT, Ouyang et al. 2022, sec. C.2: more overfits); GRPO one
# pass over its prompts (TRL's GRPO examples).
AUTO_EPOCHS = 3
AUTO_MIN_SEEN, AUTO_MAX_SEEN = 100, 25_000
AUTO_MAX_EPOCHS = {"sft": 25, "dpo": 3, "kto": 3, "reward": 1, "grpo": 1}
# Effective batch (sequences per optimizer step; packed rows for packed SFT): a power of two giving about 100
# optimizer steps over the run, between 8 and 64 (OpenAI's auto batch is ~0.2% of the examples, at most 256; ours
# keeps small sets above 8 so a step averages a few examples, and large ones under 64, TRL's usual 16-64).
AUTO_STEPS = 100
AUTO_BATCH_RANGE = (8, 64)
# Micro-batch (per GPU) from a token budget by model size: 8 x 1024 tokens below 1B, 4 x 1024 below 4B, 2 x 1024
# below 14B, 1 x 1024 above (what the presets used); whether it fits, and with or without gradient checkpointing,
# is the estimate's to say.
AUTO_TOKEN_BUDGET = ((1.0, 8192), (4.0, 4096), (14.0, 2048), (math.inf, 1024))
# Learning rate: the method's rate (MethodSpec.lr_full / lr_lora), halved for large models: QLoRA (Dettmers et al.
# 2023, app. B.2) uses 2e-4 for 7B and 13B adapters and 1e-4 for 33B and 65B; Alpaca full fine-tuning 2e-5 at 7B and
# 1e-5 at 13B.
AUTO_LR_HALVED_FROM_B = {"full": 13.0, "lora": 30.0, "qlora": 30.0}
GRPO_AUTO_PROMPTS = 2  # prompts per optimizer step (x num_generations completions)
PACKED_FILL = 0.95  # BFD packing fills a packed row to about 95% of max_length (best-fit decreasing)


@dataclass(frozen=True)
class AutoSettings:
    """Epochs, batch, accumulation and learning rate of a job: the visitor's where given, else the rule's, with the
    reason of each ("auto: 3 epochs because 600 rows")."""

    num_train_epochs: float
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    reasons: tuple[str, ...]


def _pow2_floor(value: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(value, 1.0))))


def packed_rows(rows: int, mean_tokens: float, max_length: int) -> int:
    """Rows of `max_length` tokens that BFD packing makes of `rows` examples of `mean_tokens` on average."""
    return max(1, math.ceil(rows * min(mean_tokens, max_length) / (max_length * PACKED_FILL)))


def auto_settings(
    method: str,
    peft: str,
    *,
    params_b: float | None,
    rows: int | None,
    mean_tokens: float | None,
    max_length: int,
    packed: bool = False,
    num_generations: int = GRPO_NUM_GENERATIONS,
    num_train_epochs: float | None = None,
    per_device_train_batch_size: int | None = None,
    gradient_accumulation_steps: int | None = None,
    learning_rate: float | None = None,
) -> AutoSettings:
    """The rule (written above, and in the README): each value the visitor left empty is chosen from the method, the
    PEFT mode, the model size (billions), the training rows and their mean length; `packed`: SFT packs its rows."""
    spec = method_spec(method)
    reasons: list[str] = []
    size = params_b or 1.0
    epochs = num_train_epochs
    if epochs is None:
        cap = AUTO_MAX_EPOCHS[method]
        if not rows:
            epochs = 1.0
            reasons.append("auto: 1 epoch (the row count is unknown)")
        else:
            epochs = float(AUTO_EPOCHS)
            if rows * epochs < AUTO_MIN_SEEN:
                epochs = float(min(AUTO_MAX_EPOCHS["sft"], math.ceil(AUTO_MIN_SEEN / rows)))
            elif rows * epochs > AUTO_MAX_SEEN:
                epochs = float(max(1, AUTO_MAX_SEEN // rows))
            epochs = min(epochs, float(cap))
            why = f"because {rows:,} rows" + (f" ({spec.title} trains at most {cap})" if epochs == cap < 3 else "")
            reasons.append(f"auto: {epochs:g} epoch{'s' if epochs != 1 else ''} {why}")
    budget = next(tokens for limit, tokens in AUTO_TOKEN_BUDGET if size < limit)
    micro = per_device_train_batch_size
    if micro is None:
        micro = max(1, min(16, budget // max(max_length, 1)) // spec.sequences_per_example)
        micro = max(micro, spec.min_batch_size)
        if spec.generates:
            micro = math.gcd(max(micro, 2), num_generations) or 1
    accum = gradient_accumulation_steps
    if accum is None:
        if spec.generates:
            target = num_generations * GRPO_AUTO_PROMPTS
            why = f"{GRPO_AUTO_PROMPTS} prompts x {num_generations} generations per step"
        elif rows:
            target = _pow2_floor(rows * epochs / AUTO_STEPS)
            target = min(max(target, AUTO_BATCH_RANGE[0]), AUTO_BATCH_RANGE[1])
            why = f"about {max(1, math.ceil(rows * epochs / target)):,} steps over {rows:,} rows x {epochs:g}"
            if packed and mean_tokens:  # the same tokens per step in packed rows: the same number of steps
                examples, target = target, packed_rows(target, mean_tokens, max_length)
                if per_device_train_batch_size is None:
                    micro = min(micro, target)
                why = f"{target} packed row{'s' if target > 1 else ''} hold about {examples} examples: {why}"
        else:
            target, why = 16, "the row count is unknown"
        accum = max(1, math.ceil(target / micro))
        if spec.generates:
            while (micro * accum) % num_generations:
                accum += 1
        reasons.append(f"auto: batch {micro} x {accum} accumulation = {micro * accum} per step ({why})")
    elif per_device_train_batch_size is None:
        reasons.append(f"auto: batch {micro} per GPU ({budget:,}-token budget for a {size:.2g}B model)")
    lr = learning_rate
    if lr is None:
        lr = spec.learning_rate(peft)
        halved = size >= AUTO_LR_HALVED_FROM_B[peft]
        lr = lr / 2 if halved else lr
        reasons.append(
            f"auto: learning rate {lr:g} ({spec.title}, {peft}, {size:.2g}B parameters{': halved for its size' if halved else ''})"
        )
    return AutoSettings(float(epochs), int(micro), int(accum), float(lr), tuple(reasons))
