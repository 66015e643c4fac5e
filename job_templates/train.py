# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "trl==1.16.0",
#     "transformers==5.23.0",
#     "peft==0.21.2",
#     "accelerate==1.15.0",
#     "datasets==5.2.0",
#     "trackio==0.43.0",
#     "huggingface_hub==2.4.0",
#     "torch==2.13.0",
#     "bitsandbytes==0.50.2",
#     "sentencepiece==0.2.3",
#     "protobuf==7.36.2",
#     "math-verify==0.9.0",
#     "liger-kernel==0.8.5; sys_platform == 'linux'",
#     "kernels==0.18.3; sys_platform == 'linux'",
# ]
#
# # torch from PyTorch's CUDA 12.6 index (driver >= 525), not PyPI's CUDA 13.0 build (driver >= 580): see TORCH_BUILD
# [tool.uv.sources]
# torch = [{ index = "pytorch-cu126", marker = "sys_platform == 'linux'" }]
#
# [[tool.uv.index]]
# name = "pytorch-cu126"
# url = "https://download.pytorch.org/whl/cu126"
# explicit = true
# ///
"""Fine-tune a causal LM with TRL inside a Hugging Face Job: SFT, DPO, GRPO, reward modelling or KTO.

One self-contained script (no import of the Space). Arguments follow TRL's own scripts: `TrlParser` over
`TrainScriptArguments`, the method's config class (`SFTConfig`, `DPOConfig`, ...) and `ModelConfig`, so every
TRL / transformers option is reachable from the command line or a YAML `--config`. Ours on top:
`--method`, `--dataset_mapping` (JSON), `--eval_split_fraction`, `--max_train_samples`, `--max_eval_samples`,
`--reward_funcs` (GRPO, see REWARD_FUNCS), `--resume_from_hub`, `--num_sample_generations`, `--peft_mode`,
`--compare` and `--compare_prompts` (base vs tuned: the same prompts answered before and after training, the eval
loss before and after, into `base_vs_tuned.json` and the card; see `compare_before`).

Fast by default (`use_speed_settings`, rules shared with the Space in the spliced `speed_rules`): SFT packs its
examples (BFD, padding-free) with a flash-attention kernel on Ampere+ GPUs, else SDPA with one packed row per
micro-batch; Liger kernels on CUDA GPUs; models whose config.json makes a setting unsafe keep the padded path. Every
option given on the command line (`--packing false`, `--use_liger_kernel false`, ...) is kept as given.

Input problems (unusable GPUs, a missing column or split, conversational data for a model without a chat template,
a tiny `max_length`, QLoRA on CPU, pushing without a repo or token) stop the job in seconds, before the model is
downloaded, with one line starting with "ERROR:" and exit code 2.

SFT with LoRA on a single GPU:

    hf jobs uv run --flavor a10g-small --secrets HF_TOKEN train.py \
        --method sft --peft_mode lora --model_name_or_path Qwen/Qwen2.5-0.5B \
        --dataset_name trl-lib/Capybara --output_dir out --hub_model_id you/qwen-capybara-sft

DPO, GRPO (rewards by name), a mapped dataset and an eval split:

    hf jobs uv run --flavor a10g-large --secrets HF_TOKEN train.py --method dpo \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct --dataset_name trl-lib/ultrafeedback_binarized \
        --learning_rate 5e-7 --output_dir out --hub_model_id you/qwen-dpo
    hf jobs uv run --flavor a10g-large --secrets HF_TOKEN train.py --method grpo \
        --model_name_or_path Qwen/Qwen2.5-0.5B-Instruct --dataset_name openai/gsm8k --dataset_config main \
        --dataset_mapping '{"columns": {"prompt": "question"}, "transforms": ["prompt_to_messages"]}' \
        --reward_funcs accuracy,think_format --eval_split_fraction 0.05 --output_dir out --hub_model_id you/qwen-grpo

Tell the job its flavor's GPU count with `TRAINER_SPACE_GPUS` (the Space always does): it stops within seconds,
before any download, when PyTorch sees another number of GPUs (CUDA unusable, e.g. an NVIDIA driver too old for
the CUDA build: see TORCH_BUILD), and with several GPUs it starts one process per GPU itself (`accelerate launch`
of this script, in this script's own environment). Add `--fsdp` when the model does not fit on one GPU:

    hf jobs uv run --flavor a10g-largex4 --secrets HF_TOKEN --env TRAINER_SPACE_GPUS=4 train.py \
        --method sft --fsdp ... (same arguments)

Resume a killed job: run the same command with `--resume_from_hub true` (checkpoints are pushed to
`<hub_model_id>/last-checkpoint` while training), or, on the same machine, `--resume_from_dir <its output_dir>`.
Progress lines say when each checkpoint is saved and when its upload to the Hub finished (`"checkpoint"`).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # heavy imports stay inside functions: the module itself needs the standard library only
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments
    from trl import ModelConfig

METHODS = ("sft", "dpo", "grpo", "reward", "kto")
CONFIG_CLASSES = {
    "sft": "SFTConfig",
    "dpo": "DPOConfig",
    "grpo": "GRPOConfig",
    "reward": "RewardConfig",
    "kto": "KTOConfig",
}
TRAINER_CLASSES = {m: c.replace("Config", "Trainer") for m, c in CONFIG_CLASSES.items()}
MIN_MAX_LENGTH = 16
SAMPLE_NEW_TOKENS = 64
# Base vs tuned (`compare_before` / `compare_after`): the Space reads these literals (jobs/compare.py, jobs/config.py)
COMPARE_FILE = "base_vs_tuned.json"  # written into output_dir, so it is pushed with the model
COMPARE_DEFAULT_ROWS = 3  # held-out prompts of the dataset (--num_sample_generations), at most COMPARE_MAX_ROWS
COMPARE_MAX_ROWS = 8
COMPARE_MAX_PROMPTS = 5  # the visitor's own prompts (--compare_prompts), each at most COMPARE_MAX_PROMPT_CHARS
COMPARE_MAX_PROMPT_CHARS = 500
COMPARE_NEW_TOKENS = 128  # greedy, the same before and after
COMPARE_MAX_TEXT_CHARS = 1500  # a prompt or an answer kept in the JSON and the card (longer: cut, with "…")
COMPARE_EVAL_ROWS = 64  # the eval loss before and after is measured on at most this many eval rows
PROGRESS_PREFIX = "TRAINER_SPACE_PROGRESS "  # one JSON line per logging step, read by My jobs (jobs/progress.py)
GPUS_ENV = "TRAINER_SPACE_GPUS"  # the flavor's GPU count, set by the Space: checked at start, one process per GPU
# The torch the header installs: PyTorch's CUDA 12.6 build, which runs on NVIDIA drivers >= 525.60.13 (CUDA 12
# minor-version compatibility); PyPI's torch 2.13 is a CUDA 13.0 build that needs >= 580.65.06, and an older driver
# means no CUDA at all. Its kernels cover compute capabilities 5.0 to 9.0 (T4 7.5, A100 8.0, A10G 8.6, L4 and L40S
# 8.9, H100 and H200 9.0), not Blackwell (RTX PRO 6000: 12.0); the Space refuses flavors it cannot run on.
TORCH_BUILD = {"cuda": "12.6", "min_driver": "525.60.13", "compute_capabilities": [50, 60, 70, 75, 80, 86, 90]}


# ----- BEGIN SPLICED from trainer_space/data/mapping.py (edit it there, then: python -m trainer_space.data.splice)
FIELDS = ("prompt", "completion", "chosen", "rejected", "text", "messages", "label", "answer", "system")
CONVERSATIONAL_FIELDS = ("messages", "prompt", "completion", "chosen", "rejected")
TRANSFORMS = {  # name -> what it does; they always run in this order
    "sharegpt_to_messages": "from/value turns -> role/content (human -> user, gpt -> assistant)",
    "alpaca": 'prompt = instruction + "\\n\\n" + input (when non-empty); completion = output',
    "extract_prompt": "implicit prompt: the common start of chosen and rejected becomes the prompt",
    "prompt_to_messages": "plain-string prompt -> one user message",
    "completion_to_messages": "plain-string completion -> one assistant message",
    "chosen_to_messages": "plain-string chosen -> one assistant message",
    "rejected_to_messages": "plain-string rejected -> one assistant message",
    "system_to_messages": "prepend the system column as a system message (prompt / messages)",
    "label_to_bool": "0/1, good/bad, yes/no, true/false -> bool",
    "unpair_preference": "prompt/chosen/rejected -> prompt/completion/label (two rows per pair)",
}
TRANSFORM_NEEDS = {  # fields (alternatives per group) a transform needs, after the columns are copied
    "sharegpt_to_messages": [("messages", "conversations")],
    "alpaca": [("prompt", "instruction"), ("completion", "output")],
    "extract_prompt": [("chosen",), ("rejected",)],
    "prompt_to_messages": [("prompt",)],
    "completion_to_messages": [("completion",)],
    "chosen_to_messages": [("chosen",)],
    "rejected_to_messages": [("rejected",)],
    "system_to_messages": [("system",), ("prompt", "messages")],
    "label_to_bool": [("label",)],
    "unpair_preference": [("chosen",), ("rejected",)],
}
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant", "function": "tool"}
TRUE_LABELS = frozenset({"1", "true", "yes", "y", "good", "chosen", "positive", "pos", "desirable", "accept",
                         "accepted"})  # fmt: skip
FALSE_LABELS = frozenset({"0", "false", "no", "n", "bad", "rejected", "negative", "neg", "undesirable", "reject"})
# What each trainer reads, in order of preference (the first group the data has wins)
TRAINER_COLUMNS: dict[str, list[tuple[str, ...]]] = {
    "sft": [("messages",), ("prompt", "completion"), ("text",)],
    "dpo": [("prompt", "chosen", "rejected"), ("chosen", "rejected")],
    "reward": [("prompt", "chosen", "rejected"), ("chosen", "rejected")],
    "grpo": [("prompt", "answer"), ("prompt",)],
    "kto": [("prompt", "completion", "label"), ("prompt", "chosen", "rejected"), ("chosen", "rejected")],
}
DATA_FORMATS = {  # the same, in words (for messages)
    "sft": "'messages', or 'prompt' + 'completion', or 'text'",
    "dpo": "'chosen' + 'rejected' (+ 'prompt', else taken from their common start)",
    "reward": "'chosen' + 'rejected' (+ 'prompt', else taken from their common start)",
    "grpo": "'prompt' (+ 'answer' for the accuracy reward)",
    "kto": "'prompt' + 'completion' + 'label', or preference pairs",
}


@dataclass(frozen=True)
class RewardFunc:
    """A GRPO reward function the job offers: the fields it reads besides the prompt, and what it rewards."""

    needs: tuple[str, ...]
    description: str


REWARD_FUNCS: dict[str, RewardFunc] = {  # the job builds them by these names (train.py: build_reward_funcs)
    "accuracy": RewardFunc(
        ("answer",),
        "TRL's accuracy_reward (math-verify: LaTeX and numbers compared symbolically, \\frac{1}{2} = 0.5) on the "
        "completion's final answer (\\boxed{...}, <answer>...</answer>, the text after '####', else its last number) "
        "and the `answer` field's (a GSM8K solution's '####'): 1.0 when equal, else 0.0; a text answer that is no math "
        "(Paris) matches when the completion's final answer is or ends with it",
    ),
    "think_format": RewardFunc(
        (), "TRL's think_format_reward: 1.0 when the completion is '<think>...</think>' then the answer"
    ),
    "length": RewardFunc(
        (), "1.0 for a completion of max_completion_length // 2 tokens, falling linearly to 0 at 0 and at twice that"
    ),
    "overlong": RewardFunc(
        (),
        "TRL's get_soft_overlong_punishment(max_completion_length, max_completion_length // 4): 0 when short "
        "enough, down to -1 at the limit",
    ),
    "repetition": RewardFunc(
        (), "TRL's get_repetition_penalty_reward(ngram_size=3, max_penalty=-1): 0 with no repeated 3-gram"
    ),
}


class MappingError(ValueError):
    """A mapping that is malformed, or that does not fit the data."""


@dataclass(frozen=True)
class DatasetMapping:
    """Column copies (`field <- source column`) and transforms (in TRANSFORMS order)."""

    columns: dict[str, str] = field(default_factory=dict)
    transforms: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.columns or self.transforms)

    def to_json(self) -> dict[str, Any]:
        return {"columns": dict(self.columns), "transforms": list(self.transforms)}


def parse_mapping(raw: Any) -> DatasetMapping:
    """A DatasetMapping from its JSON text, a dict, another DatasetMapping or None; MappingError if malformed.

    Empty column assignments are dropped; transforms are put in TRANSFORMS order.
    """
    if isinstance(raw, DatasetMapping):
        return raw
    if raw in (None, "", {}):
        return DatasetMapping()
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise MappingError(f"the dataset mapping is not valid JSON ({exc.msg})") from None
    shape = 'a dataset mapping is {"columns": {"<field>": "<source column>"}, "transforms": [...]}'
    if not isinstance(data, dict):
        raise MappingError(shape)
    if set(data) - {"columns", "transforms"}:
        raise MappingError(f"unknown keys {sorted(map(str, set(data) - {'columns', 'transforms'}))}; {shape}")
    columns, transforms = data.get("columns") or {}, data.get("transforms") or []
    if not isinstance(columns, dict) or not all(isinstance(c, (str, type(None))) for c in columns.values()):
        raise MappingError("mapping columns must be field -> source column names (text)")
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        raise MappingError("mapping transforms must be a list of names")
    columns = {str(f): c for f, c in columns.items() if c not in (None, "")}
    bad_fields = sorted(set(columns) - set(FIELDS))
    bad_transforms = [t for t in transforms if t not in TRANSFORMS]
    if bad_fields or bad_transforms:
        raise MappingError(
            f"unknown mapping fields {bad_fields} or transforms {bad_transforms}; "
            f"fields are {', '.join(FIELDS)}; transforms are {', '.join(TRANSFORMS)}"
        )
    return DatasetMapping(columns=columns, transforms=tuple(t for t in TRANSFORMS if t in transforms))


def mapping_problems(mapping: DatasetMapping, column_names: Iterable[str]) -> list[str]:
    """What does not fit: mapped source columns the data lacks, transforms missing the fields they need."""
    names = list(column_names)
    problems = [f"{fld} <- {src!r}: no such column" for fld, src in mapping.columns.items() if src not in names]
    available = set(names) | set(mapping.columns)
    for name in mapping.transforms:
        problems += [f"{name} needs {' or '.join(g)}" for g in TRANSFORM_NEEDS[name] if not available & set(g)]
    return problems


def normalise_label(value: Any) -> str:
    """A label as text: bools and integral floats as 1/0, then lower-cased text."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(int(value) if isinstance(value, float) and value.is_integer() else value).strip().lower()


def label_to_bool(value: Any) -> bool:
    """Read 0/1, True/False, "good"/"bad", "yes"/"no" ... as a KTO label; MappingError otherwise."""
    if isinstance(value, bool):
        return value
    text = normalise_label(value)
    if text in TRUE_LABELS or text in FALSE_LABELS:
        return text in TRUE_LABELS
    raise MappingError(
        f"label_to_bool: cannot read label {value!r} as true/false (true: {', '.join(sorted(TRUE_LABELS))}; "
        f"false: {', '.join(sorted(FALSE_LABELS))})"
    )


def extract_prompt(chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
    """(prompt, chosen, rejected): the longest common start of chosen and rejected is the prompt.

    The same rule as `trl.data_utils.extract_prompt`; a space before the answers stays with them.
    """
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if isinstance(chosen, str) and n > 0 and chosen[n - 1] == " ":
        n -= 1
    return chosen[:n], chosen[n:], rejected[n:]


def _chatml(message: dict[str, Any]) -> dict[str, Any]:
    role = str(message.get("role") or message.get("from") or "user")
    content = message.get("content") if message.get("content") is not None else message.get("value")
    return {"role": SHAREGPT_ROLES.get(role.lower(), role.lower()), "content": content}


def _sharegpt_to_messages(ex: dict[str, Any]) -> None:
    if "messages" not in ex and "conversations" in ex:
        ex["messages"] = ex["conversations"]
    for key in CONVERSATIONAL_FIELDS:
        if isinstance(ex.get(key), list):
            ex[key] = [_chatml(m) for m in ex[key]]


def _alpaca(ex: dict[str, Any]) -> None:
    instruction = ex["prompt"] if "prompt" in ex else ex["instruction"]
    extra = ex.get("input")
    ex["prompt"] = f"{instruction}\n\n{extra}" if extra and str(extra).strip() else instruction
    ex["completion"] = ex["completion"] if "completion" in ex else ex["output"]


def _extract_prompt(ex: dict[str, Any]) -> None:
    """The implicit prompt of a pair. A text prompt beside whole conversations (ultrafeedback_binarized) repeats
    their first turn: it is replaced by the conversations' common start, so prompt and answers are all messages."""
    prompt = ex.get("prompt")
    if prompt and not (isinstance(prompt, str) and isinstance(ex["chosen"], list)):
        return
    ex["prompt"], ex["chosen"], ex["rejected"] = extract_prompt(ex["chosen"], ex["rejected"])


def _to_messages(key: str, role: str) -> Any:
    def wrap(ex: dict[str, Any]) -> None:
        if isinstance(ex[key], str):
            ex[key] = [{"role": role, "content": ex[key]}]

    return wrap


def _system_to_messages(ex: dict[str, Any]) -> None:
    system = ex.get("system")
    for key in ("messages", "prompt"):
        if key not in ex:
            continue
        turns = [{"role": "user", "content": ex[key]}] if isinstance(ex[key], str) else list(ex[key])
        if system and not (turns and turns[0].get("role") == "system"):
            turns.insert(0, {"role": "system", "content": system})
        ex[key] = turns


def _label_to_bool(ex: dict[str, Any]) -> None:
    ex["label"] = label_to_bool(ex["label"])


ROW_TRANSFORMS = {  # every transform but unpair_preference, which turns one row into two (see `unpair`)
    "sharegpt_to_messages": _sharegpt_to_messages,
    "alpaca": _alpaca,
    "extract_prompt": _extract_prompt,
    "prompt_to_messages": _to_messages("prompt", "user"),
    "completion_to_messages": _to_messages("completion", "assistant"),
    "chosen_to_messages": _to_messages("chosen", "assistant"),
    "rejected_to_messages": _to_messages("rejected", "assistant"),
    "system_to_messages": _system_to_messages,
    "label_to_bool": _label_to_bool,
}


def map_example(example: dict[str, Any], mapping: DatasetMapping) -> dict[str, Any]:
    """One row through the mapping (a new dict): columns copied to fields, then the row transforms in order.

    Raises KeyError / TypeError / MappingError when the row does not fit the mapping.
    """
    out = dict(example)
    out.update({fld: example[src] for fld, src in mapping.columns.items()})
    for name in mapping.transforms:
        if name in ROW_TRANSFORMS:
            ROW_TRANSFORMS[name](out)
    return out


def unpair(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """prompt/chosen/rejected pairs -> prompt/completion/label rows (as `trl.unpair_preference_dataset`)."""
    keep = [c for c in ("prompt", "chosen", "rejected") if rows and c in rows[0]]
    out = []
    for label, key in ((True, "chosen"), (False, "rejected")):
        for r in rows:
            row = {"completion": r[key], "label": label}
            if "prompt" in keep:
                row = {"prompt": r["prompt"], **row}
            out.append(row)
    return out


def map_rows(rows: Sequence[dict[str, Any]], mapping: DatasetMapping) -> list[dict[str, Any]]:
    """All rows through the mapping, `unpair_preference` included."""
    mapped = [map_example(r, mapping) for r in rows]
    return unpair(mapped) if "unpair_preference" in mapping.transforms else mapped


def trainer_columns(method: str, column_names: Iterable[str]) -> tuple[str, ...] | None:
    """The columns the trainer of `method` reads from data with these columns, or None when none fit."""
    names = set(column_names)
    return next((group for group in TRAINER_COLUMNS[method] if names.issuperset(group)), None)


def reward_problems(names: Iterable[str], fields: Iterable[str]) -> list[tuple[str, str]]:
    """(reward, field) for every field a chosen reward reads that the (mapped) data lacks."""
    have = set(fields)
    return [(name, need) for name in names for need in REWARD_FUNCS[name].needs if need not in have]


def default_rewards(fields: Iterable[str]) -> list[str]:
    """GRPO's rewards when none are chosen: `accuracy` when the mapped data has an `answer`, else `length`."""
    return ["accuracy"] if "answer" in set(fields) else ["length"]


def is_conversational(example: dict[str, Any]) -> bool:
    """True when a prompt/completion/messages/chosen/rejected field holds a list of role/content messages."""
    return any(
        isinstance(v, list) and v and isinstance(v[0], dict) and "role" in v[0]
        for k, v in example.items()
        if k in CONVERSATIONAL_FIELDS
    )


# ----- END SPLICED from trainer_space/data/mapping.py


# ----- BEGIN SPLICED from trainer_space/data/trl_rules.py (edit it there, then: python -m trainer_space.data.splice)
# TRL 1.16 / transformers 5.23 defaults of the options these rules read (the tests compare them with the dataclasses)
TRL_DEFAULTS: dict[str, Any] = {
    "per_device_eval_batch_size": 8,
    "num_generations_eval": None,
    "generation_batch_size": None,
    "steps_per_generation": None,
    "padding_free": False,
    "packing": False,
    "eval_steps": None,
    "save_steps": 500,
}
# The rows a trainer drops at max_length (the rest are truncated): (what they are, the rule, the consequence)
OVER_LENGTH_DROPPED = {
    "reward": (
        "pairs",
        "the reward trainer drops a pair whose chosen or rejected answer (with the prompt) is longer, it does not "
        "truncate it",
        "the pairs left lean toward short answers",
    ),
    "dpo": ("examples", "the DPO trainer drops an example whose prompt alone fills it", "their answers are not learnt"),
    "kto": ("examples", "the KTO trainer drops an example whose prompt alone fills it", "their answers are not learnt"),
    "sft": (
        "examples",
        "the SFT trainer drops an example left with no trained token (its prompt alone fills it)",
        "their answers are not learnt",
    ),
}


def _option(options: Mapping[str, Any], name: str) -> Any:
    value = options.get(name, TRL_DEFAULTS.get(name))
    return value.value if hasattr(value, "value") else value  # an enum (IntervalStrategy) as its value


def grpo_generation_batch(options: Mapping[str, Any], world_size: int) -> int:
    """Completions GRPO generates at once: `generation_batch_size`, else batch x processes x steps per generation
    (`steps_per_generation`, else the gradient accumulation), as `GRPOConfig.__post_init__` derives it."""
    given = _option(options, "generation_batch_size")
    if given:
        return int(given)
    steps = _option(options, "steps_per_generation") or _option(options, "gradient_accumulation_steps") or 1
    return int(_option(options, "per_device_train_batch_size")) * max(1, world_size) * int(steps)


def padding_free_changes(method: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """What the job adds so `padding_free` works: TRL 1.16's SFT refuses padding-free without packing when
    `max_length` is set (and the app always sets it), so padding-free SFT packs, with BFD (TRL's padding-free
    packing), unless `packing` was given."""
    if method == "sft" and _truthy(given.get("padding_free")) and "packing" not in given:
        return {"packing": True}
    return {}


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def config_problems(
    method: str, options: Mapping[str, Any], world_size: int, *, evaluates: bool, given: Collection[str] = ()
) -> list[str]:
    """What TRL would refuse in this final config, each with the fix; `options` are TRL field values (the missing
    ones TRL's defaults), `world_size` the training processes (GPUs), `given` the options the caller set."""
    problems: list[str] = []
    world = max(1, world_size)
    if method == "grpo":
        n = int(_option(options, "num_generations"))
        batch, accum = (
            int(_option(options, "per_device_train_batch_size")),
            _option(options, "gradient_accumulation_steps"),
        )
        if {"generation_batch_size", "steps_per_generation"} <= set(given):
            problems.append("set generation_batch_size or steps_per_generation, not both (TRL refuses the pair)")
        generation = grpo_generation_batch(options, world)
        if n < 2:
            problems.append(f"GRPO needs at least 2 generations per prompt (num_generations={n})")
        elif generation % n:
            problems.append(
                f"GRPO generates {generation} completions at once (batch {batch} x {world} GPU(s) x "
                f"{_option(options, 'steps_per_generation') or accum} steps) and that must be a multiple of "
                f"num_generations ({n}): make batch x gradient accumulation a multiple of {n}"
            )
        n_eval = int(_option(options, "num_generations_eval") or n)
        eval_batch = int(_option(options, "per_device_eval_batch_size"))
        if evaluates and n_eval >= 2 and (eval_batch * world) % n_eval:
            fix = n_eval // math.gcd(n_eval, world)
            every = _option(options, "eval_steps") or _option(options, "save_steps")
            problems.append(
                f"with evaluation on, GRPO's eval batch ({eval_batch} x {world} GPU(s)) must be a multiple of the "
                f"generations per prompt ({n_eval}): the job would crash at its first evaluation (step {every}) and "
                f"lose that step's checkpoint. Set per_device_eval_batch_size to {fix} or a multiple of it "
                f'(advanced: {{"per_device_eval_batch_size": {fix}}}), or lower num_generations'
            )
    if method == "sft":
        max_length = _option(options, "max_length")
        if _truthy(_option(options, "padding_free")) and not _truthy(_option(options, "packing")) and max_length:
            problems.append(
                f"padding_free without packing: TRL 1.16 does not enforce max_length ({max_length}) then, and refuses "
                "it. Remove packing: false (padding-free SFT then packs with BFD, TRL's padding-free packing), or "
                "remove padding_free"
            )
    return problems


def grpo_prompt_problem(rows: int, generation_batch: int, num_generations: int) -> str | None:
    """Why GRPO would train 0 steps on `rows` prompts: each generation batch draws whole groups of distinct prompts
    (`RepeatSampler` drops an incomplete one), so fewer prompts than one batch's share means no step at all."""
    prompts = generation_batch // max(1, num_generations)
    if rows >= prompts:
        return None
    return (
        f"GRPO draws {prompts} different prompts per generation batch ({generation_batch} completions, "
        f"{num_generations} per prompt) and the training set has {rows}: it would train 0 steps and push an untrained "
        "model. Lower the batch size x gradient accumulation, or train on more rows"
    )


def dropped_rows_problem(method: str, dropped: int, total: int, max_length: int) -> tuple[bool, str] | None:
    """(fatal, message) when the trainer of `method` drops `dropped` of `total` rows at max_length (fatal: none
    remain); None when it drops none."""
    if method not in OVER_LENGTH_DROPPED or dropped <= 0 or total <= 0:
        return None
    what, rule, consequence = OVER_LENGTH_DROPPED[method]
    if dropped >= total:
        return True, (
            f"all {total} {what} are too long for max_length={max_length} ({rule}): nothing would be left to train "
            "on. Raise max_length"
        )
    return False, (
        f"{dropped} of {total} {what} ({dropped / total:.0%}) are too long for max_length={max_length} ({rule}): "
        f"{consequence}. Raise max_length to keep them"
    )


# ----- END SPLICED from trainer_space/data/trl_rules.py


# ----- BEGIN SPLICED from trainer_space/estimate/speed_rules.py (edit it there, then: python -m trainer_space.data.splice)
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


# ----- END SPLICED from trainer_space/estimate/speed_rules.py


class JobError(SystemExit):
    """A problem with the job's inputs: reported as one line starting with "ERROR:", exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def log(message: str) -> None:
    """Print on the main process only (RANK is set by `accelerate launch`)."""
    if os.environ.get("RANK", "0") == "0":
        print(message, flush=True)


@dataclass
class TrainScriptArguments:
    """Our script arguments: TRL's `ScriptArguments` dataset fields plus the Space's options."""

    method: Literal["sft", "dpo", "grpo", "reward", "kto"] = field(
        default="sft", metadata={"help": "Training method: sft, dpo, grpo, reward or kto."}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id, a folder saved with `save_to_disk`, or a .json/.jsonl file."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset configuration (subset) name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(default="test", metadata={"help": "Split to evaluate on, when it exists."})
    dataset_mapping: str | None = field(
        default=None,
        metadata={
            "help": 'JSON: {"columns": {"<field>": "<source column>"}, "transforms": [...]}. '
            f"Fields: {', '.join(FIELDS)}. Transforms (run in this order): {', '.join(TRANSFORMS)}."
        },
    )
    eval_split_fraction: float = field(
        default=0.0, metadata={"help": "Hold out this fraction of the train split for evaluation (0 = none)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=1000, metadata={"help": "Evaluate on at most N rows."})
    reward_funcs: str | None = field(
        default=None,
        metadata={
            "help": f"GRPO rewards, comma separated, from: {', '.join(REWARD_FUNCS)} (default: accuracy when the "
            "data has an `answer`, else length)."
        },
    )
    resume_from_hub: bool = field(
        default=False, metadata={"help": "Resume from <hub_model_id>/last-checkpoint when the repo has one."}
    )
    resume_from_dir: str | None = field(
        default=None,
        metadata={
            "help": "Resume from the last checkpoint-N folder inside this folder (an earlier run's output_dir on "
            "this machine); the job stops when it holds none."
        },
    )
    num_sample_generations: int = field(
        default=COMPARE_DEFAULT_ROWS,
        metadata={
            "help": "Held-out prompts answered before and after training (base vs tuned, at most 8; "
            "with --compare false: generations after training, in the card)."
        },
    )
    compare: bool = field(
        default=True,
        metadata={"help": f"Base vs tuned: answer the same prompts before and after training, into {COMPARE_FILE}."},
    )
    compare_prompts: str | None = field(
        default=None, metadata={"help": "JSON list of your own prompts for base vs tuned (at most 5, 500 chars each)."}
    )
    peft_mode: Literal["full", "lora", "qlora"] = field(
        default="full", metadata={"help": "full fine-tuning, lora, or qlora (4-bit base, needs a CUDA GPU)."}
    )


# ----------------------------------------------------------------------------- dataset columns
def select_columns(method: str, column_names: Iterable[str], reward_names: Iterable[str] = ()) -> list[str]:
    """The columns the method trains on (with the fields GRPO's rewards read), or a JobError naming what is missing."""
    names = set(column_names)
    group = trainer_columns(method, names)
    reward_names = list(reward_names) if method == "grpo" else []
    missing = reward_problems(reward_names, names)
    if group is not None and not missing:
        return list(dict.fromkeys([*group, *(f for n in reward_names for f in REWARD_FUNCS[n].needs)]))
    hint = "".join(f"the '{reward}' reward needs an `{need}` field; " for reward, need in missing)
    field_name = missing[0][1] if missing else "<field>"
    raise JobError(
        f"method '{method}' needs {DATA_FORMATS[method]}; {hint}after mapping the dataset has columns "
        f'{sorted(names)}. Map yours with --dataset_mapping \'{{"columns": {{"{field_name}": "<your column>"}}}}\''
    )


def preference_parts(example: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(prompt, chosen, rejected) of a preference row; an implicit prompt is the common start of the answers."""
    if example.get("prompt"):
        return example["prompt"], example["chosen"], example["rejected"]
    return extract_prompt(example["chosen"], example["rejected"])


def sample_prompt(example: dict[str, Any]) -> str | list[dict[str, Any]] | None:
    """The prompt part of a row, to generate from: prompt, the implicit prompt of a preference pair, the messages
    before the last assistant turn, or the start of a text."""
    if example.get("prompt"):
        return example["prompt"]
    if example.get("chosen") and example.get("rejected"):
        return preference_parts(example)[0] or None
    if example.get("messages"):
        turns = list(example["messages"])
        last = max((i for i, m in enumerate(turns) if m.get("role") == "assistant"), default=len(turns))
        return turns[:last] or turns[:1]
    if example.get("text"):
        words = str(example["text"]).split(" ")
        return " ".join(words[: max(1, len(words) // 2)])
    return None


def one_line(value: Any, limit: int = 200) -> str:
    """A prompt or completion as one short line for the log."""
    if isinstance(value, list):
        value = " | ".join(f"{m.get('role')}: {m.get('content')}" for m in value)
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- GRPO rewards
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_LATEX_SPAN = re.compile(r"\$([^$]+)\$|\\\((.+?)\\\)", re.DOTALL)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+(?:\.\d+)?)?")


def last_boxed(text: str) -> str | None:
    """The content of the last `\boxed{...}` (nested braces kept whole), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j].strip()
    return None  # unbalanced: no answer


def marked_answer(text: str) -> str | None:
    """The answer a text marks as final: the last `\boxed{}`, else the last <answer> tag, else what follows the last
    '####' (GSM8K); None when none. A tag or '####' holding words and a number gives the number ("5 cm" -> "5"),
    one holding only words keeps them."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    if found := _ANSWER_TAG.findall(text):
        span = found[-1].strip()
    elif "####" in text:
        span = (text.rsplit("####", 1)[1].strip().splitlines() or [""])[0].strip()
    else:
        return None
    inner = last_boxed(span)
    if inner is not None or "\\" in span or "$" in span:
        return inner if inner is not None else span.strip("$ ")
    numbers = _NUMBER.findall(span)
    return numbers[-1] if numbers else span


def final_answer(text: str) -> str:
    """A completion's final answer: the marked one (`marked_answer`), else its last $...$, else its last number,
    else the text itself."""
    marked = marked_answer(text)
    if marked is not None:
        return marked
    if found := _LATEX_SPAN.findall(text):
        return next(part for part in found[-1] if part).strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else text.strip()


def gold_answer(text: str) -> str:
    """The `answer` field's answer: the marked one (a GSM8K solution's '####'), else the whole field."""
    marked = marked_answer(text)
    return marked if marked is not None else text.strip()


def normalise_answer(text: str) -> str:
    """Lower-case, drop $ and a final period, collapse spaces (text answers)."""
    return " ".join(text.strip().lower().replace("$", "").rstrip(".").split())


def _completion_texts(completions: list[Any]) -> list[str]:
    return [c if isinstance(c, str) else "".join(str(m.get("content") or "") for m in c) for c in completions]


def text_answers_match(completion: str, gold: str) -> bool:
    """A text answer (one math-verify cannot read): the completion's final answer is, or ends with, the gold's."""
    predicted, expected = normalise_answer(final_answer(completion)), normalise_answer(gold_answer(gold))
    return predicted == expected or (bool(expected) and predicted.endswith(" " + expected))


def accuracy_reward(completions: list[Any], answer: list[Any], **kwargs: Any) -> list[float]:
    """TRL's `accuracy_reward` (math-verify: LaTeX and numbers compared symbolically) on each side's final answer
    (`final_answer`: `\boxed{}`, <answer> tags, GSM8K's '####', a last number), given to it as `\boxed{...}`;
    a gold answer math-verify cannot read (text such as "Paris") is compared as text (see REWARD_FUNCS)."""
    from trl.rewards import accuracy_reward as trl_accuracy

    texts = _completion_texts(completions)
    golds = [gold_answer(str(gold)) for gold in answer]
    boxed = [[{"content": f"\\boxed{{{final_answer(text)}}}"}] for text in texts]
    scores = trl_accuracy(boxed, [f"${gold}$" if "\\" in gold else gold for gold in golds])
    return [
        float(score) if score is not None else float(text_answers_match(text, gold))
        for text, gold, score in zip(texts, golds, scores, strict=True)
    ]


def think_format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """TRL's think_format_reward, for text and conversational completions alike."""
    from trl.rewards import think_format_reward as trl_think_format

    return trl_think_format([[{"content": text}] for text in _completion_texts(completions)])


class LengthReward:
    """1.0 at `target` completion tokens, falling linearly to 0 at 0 and at 2 x target (dependency-free)."""

    __name__ = "length_reward"

    def __init__(self, target: int) -> None:
        self.target = max(1, target)

    def __call__(self, completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
        return [max(0.0, 1.0 - abs(len(ids) - self.target) / self.target) for ids in completion_ids]


def parse_reward_names(raw: str | None) -> list[str]:
    """Split `--reward_funcs` and check every name is in REWARD_FUNCS (none given: the data's default, later)."""
    names = list(dict.fromkeys(n.strip() for n in (raw or "").split(",") if n.strip()))
    unknown = [n for n in names if n not in REWARD_FUNCS]
    if unknown:
        listing = "; ".join(f"{k}: {v.description}" for k, v in REWARD_FUNCS.items())
        raise JobError(f"--reward_funcs must name rewards from the list (got {raw!r}, unknown {unknown}). {listing}")
    return names


def build_reward_funcs(names: list[str], max_completion_length: int) -> list[Callable]:
    """The reward callables for GRPOTrainer, in the order given."""
    from trl.rewards import get_repetition_penalty_reward, get_soft_overlong_punishment

    factories: dict[str, Callable[[], Callable]] = {  # one per REWARD_FUNCS entry
        "accuracy": lambda: accuracy_reward,
        "think_format": lambda: think_format_reward,
        "length": lambda: LengthReward(max_completion_length // 2),
        "overlong": lambda: get_soft_overlong_punishment(max_completion_length, max(1, max_completion_length // 4)),
        "repetition": lambda: get_repetition_penalty_reward(ngram_size=3, max_penalty=-1.0),
    }
    return [factories[name]() for name in names]


# ----------------------------------------------------------------------------- data loading and checks
def load_splits(args: TrainScriptArguments) -> tuple[Dataset, Dataset | None]:
    """(train, test or None) from a Hub id, a `save_to_disk` folder or a .json/.jsonl file; clear errors."""
    from datasets import Dataset, get_dataset_split_names, load_dataset, load_from_disk

    name, config = args.dataset_name, args.dataset_config
    if not name:
        raise JobError("no dataset: pass --dataset_name (a Hub dataset id, a saved folder or a .json/.jsonl file)")
    path = Path(name)
    if path.is_dir() and any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
        saved = load_from_disk(name)
        splits = {"train": saved} if isinstance(saved, Dataset) else dict(saved)
        available, load = list(splits), splits.__getitem__
    elif path.is_file() and path.suffix in (".json", ".jsonl"):
        available, load = ["train"], lambda split: load_dataset("json", data_files=name, split=split)
    else:
        try:
            available = get_dataset_split_names(name, config)
        except Exception as exc:  # DatasetNotFoundError, a missing config, no access ... all stop the job here
            raise JobError(f"cannot open dataset '{name}' (config {config!r}): {exc}") from None
        load = lambda split: load_dataset(name, config, split=split)  # noqa: E731
    if args.dataset_train_split not in available:
        raise JobError(f"split '{args.dataset_train_split}' not in dataset '{name}'; available splits: {available}")
    test_split = args.dataset_test_split
    test = load(test_split) if test_split in available and test_split != args.dataset_train_split else None
    return load(args.dataset_train_split), test


def prepare_dataset(
    ds: Dataset, mapping: DatasetMapping, method: str, reward_names: list[str], limit: int | None
) -> Dataset:
    """Cut to `limit` rows, apply the mapping (rename, transforms, unpair) and keep the method's columns."""
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    if len(ds) == 0:
        raise JobError("the dataset split is empty")
    problems = mapping_problems(mapping, ds.column_names)
    if problems:
        raise JobError(f"dataset mapping does not fit the data: {'; '.join(problems)}. Columns: {ds.column_names}")
    if mapping.columns or set(mapping.transforms) - {"unpair_preference"}:
        map_example(ds[0], mapping)  # fail on the first row with a clear message before mapping them all
        ds = ds.map(map_example, fn_kwargs={"mapping": mapping}, remove_columns=ds.column_names, desc="Mapping")
    if "unpair_preference" in mapping.transforms:
        from trl.data_utils import unpair_preference_dataset

        keep = [c for c in ("prompt", "chosen", "rejected") if c in ds.column_names]
        ds = unpair_preference_dataset(ds.select_columns(keep))
    ds = ds.select_columns(select_columns(method, ds.column_names, reward_names))
    if "label" in ds.column_names and not isinstance(ds[0]["label"], bool):
        labels = set(ds.unique("label"))
        if not labels <= {0, 1} or any(isinstance(v, str) for v in labels):
            raise JobError(f'KTO labels must be true/false or 0/1, got {ds[0]["label"]!r}: add "label_to_bool" to '
                           "the transforms")  # fmt: skip
        from datasets import Value

        ds = ds.cast_column("label", Value("bool"))  # 0/1, as TRL reads them (the Space calls such data READY)
    return ds


def split_for_eval(train: Dataset, test: Dataset | None, args: TrainScriptArguments) -> tuple[Dataset, Dataset | None]:
    """Use the test split when it exists, else hold out `eval_split_fraction` of train; cap with max_eval_samples."""
    if test is None and args.eval_split_fraction > 0:
        n_eval = max(1, round(len(train) * args.eval_split_fraction))
        if n_eval >= len(train):
            raise JobError(f"eval_split_fraction={args.eval_split_fraction} leaves no training rows ({len(train)})")
        parts = train.train_test_split(test_size=n_eval, seed=42)
        train, test = parts["train"], parts["test"]
    if test is not None and args.max_eval_samples is not None:
        test = test.select(range(min(args.max_eval_samples, len(test))))
    return train, test


def render(
    value: str | list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, *, generation_prompt: bool = False
) -> str:
    """A text or a conversation as the model sees it (chat template for conversations)."""
    if isinstance(value, str):
        return value
    return tokenizer.apply_chat_template(value, tokenize=False, add_generation_prompt=generation_prompt)


def load_tokenizer(model_args: ModelConfig) -> PreTrainedTokenizerBase:
    """The model's tokenizer: a small download that proves the model id exists and is accessible."""
    from transformers import AutoTokenizer

    name = model_args.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, revision=model_args.model_revision)
    except (OSError, ValueError) as exc:  # not found, gated, no access, no tokenizer files, a malformed id
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(
            f"cannot load the tokenizer of '{name}' (a typo, a gated model or no access?): {reason}"
        ) from None
    if len(tokenizer) <= 1:  # transformers builds an empty tokenizer from a repo with only config.json
        raise JobError(f"'{name}' has no tokenizer files (tokenizer.json or tokenizer_config.json)")
    return tokenizer


def check_chat_template(
    tokenizer: PreTrainedTokenizerBase, example: dict[str, Any], model_name: str, training_args: TrainingArguments
) -> None:
    """Conversational data needs a tokenizer with a chat template (or SFT's --chat_template_path)."""
    if is_conversational(example) and not tokenizer.chat_template:
        if getattr(training_args, "chat_template_path", None):
            return
        raise JobError(
            f"the data is conversational (role/content messages) but the tokenizer of '{model_name}' has no chat "
            "template: use an instruct/chat model (e.g. Qwen/Qwen2.5-0.5B-Instruct), or map the data to plain text "
            "(a `text` column or string prompt/completion), or for SFT pass --chat_template_path <model with one>"
        )


def check_max_length(
    method: str, training_args: TrainingArguments, tokenizer: PreTrainedTokenizerBase, ds: Dataset
) -> None:
    """Error when max_length < 16 tokens; a warning with numbers when it truncates most prompts (95th pct)."""
    max_length = getattr(training_args, "max_length", None) if method != "grpo" else None
    if max_length is None:
        return
    if max_length < MIN_MAX_LENGTH:
        raise JobError(f"max_length={max_length} is too small to train on anything (minimum {MIN_MAX_LENGTH} tokens)")
    if method == "reward":  # the trainer drops the pairs longer than max_length: count them before the model loads
        sample = ds.select(range(min(256, len(ds))))
        over = sum(n > max_length for n in pair_lengths(tokenizer, sample))
        problem = dropped_rows_problem(method, over, len(sample), max_length)
        if problem is not None:
            fatal, message = problem
            if fatal and len(sample) == len(ds):
                raise JobError(message)
            sampled = f"(the first {len(sample)} of {len(ds)} rows measured) " if len(sample) < len(ds) else ""
            log(f"WARNING: {sampled}{message}")
    rows = ds.select(range(min(64, len(ds))))
    key = "prompt" if "prompt" in ds.column_names else ds.column_names[0]
    lengths = sorted(len(tokenizer(render(row[key], tokenizer), add_special_tokens=False)["input_ids"]) for row in rows)
    p95 = lengths[min(len(lengths) - 1, math.ceil(0.95 * len(lengths)) - 1)]
    if max_length < max(32, p95):
        log(
            f"WARNING: max_length={max_length} while the 95th percentile `{key}` length is {p95} tokens "
            f"(max {lengths[-1]}, {len(lengths)} rows sampled): most examples will be truncated"
        )


def pair_lengths(tokenizer: PreTrainedTokenizerBase, rows: Iterable[dict[str, Any]]) -> list[int]:
    """Tokens of the longer of prompt + chosen and prompt + rejected, as the reward trainer tokenizes each pair (chat
    template for conversations, the EOS appended to text)."""
    lengths = []
    for row in rows:
        prompt, chosen, rejected = preference_parts(row)
        sizes = []
        for answer in (chosen, rejected):
            if isinstance(answer, list):
                text = render([*(prompt or []), *answer], tokenizer)
            else:
                text = f"{prompt or ''}{answer}{tokenizer.eos_token or ''}"
            sizes.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        lengths.append(max(sizes))
    return lengths


def check_environment(
    args: TrainScriptArguments, training_args: TrainingArguments, model_args: ModelConfig, on_cuda: bool
) -> None:
    """Hardware and method constraints that TRL would only report after the model has loaded."""
    if model_args.load_in_4bit and not on_cuda:
        raise JobError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit): use --peft_mode lora on CPU, or a GPU flavor")
    if model_args.load_in_4bit:
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise JobError("QLoRA needs the bitsandbytes package, which is not installed")
    if not model_args.model_name_or_path:
        raise JobError("no model: pass --model_name_or_path")
    if args.method == "kto" and training_args.per_device_train_batch_size < 2:
        raise JobError("KTO needs --per_device_train_batch_size >= 2 (its KL term mixes examples of a batch)")


def expected_gpus() -> int | None:
    """The GPU count of the job's flavor (`TRAINER_SPACE_GPUS`, set by the Space), or None when not told."""
    raw = os.environ.get(GPUS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise JobError(f"{GPUS_ENV} must be the flavor's GPU count (0, 1, 2, ...), got {raw!r}")
    return int(raw)


def nvidia_driver() -> str | None:
    """This machine's NVIDIA driver version, when it can be read (for the guard's message)."""
    try:
        found = re.search(
            r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", Path("/proc/driver/nvidia/version").read_text()
        )
        if found:
            return found.group(1)
    except OSError:
        pass
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)  # fmt: skip
            return out.stdout.split()[0] if out.returncode == 0 and out.stdout.split() else None
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def capability_supported(capability: tuple[int, int], arch_list: Iterable[str]) -> bool:
    """Whether a build with these `torch.cuda.get_arch_list()` entries has kernels for a GPU of this capability.

    Code for sm_XY runs on X.Y and on later minors of the same major; PTX (compute_XY) on any later GPU.
    """
    major, minor = capability
    for arch in arch_list:
        kind, _, number = arch.partition("_")
        if not number.isdigit():
            continue
        code_major, code_minor = int(number[:-1]), int(number[-1])
        if kind == "sm" and code_major == major and code_minor <= minor:
            return True
        if kind == "compute" and (code_major, code_minor) <= (major, minor):
            return True
    return False


def gpu_problem(expected: int) -> str | None:
    """Why this machine cannot run the job on its `expected` GPUs (CUDA unusable, fewer GPUs, no kernels), or None."""
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:  # torch warns why CUDA is unusable (e.g. an old driver)
        warnings.simplefilter("always")
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    build = f"torch {torch.__version__} (CUDA {torch.version.cuda})"
    if found != expected:
        why = "; ".join(dict.fromkeys(" ".join(str(w.message).split()) for w in caught if "CUDA" in str(w.message)))
        stop = (
            "The job stops now, before downloading the model or the data, instead of training on the CPU until its "
            "timeout. "
        )
        seen = f"this job's flavor has {expected} GPU(s) but PyTorch sees {found}{f' ({why[:400]})' if why else ''}. "
        if torch.version.cuda is None:  # no driver can help a CPU build
            return (
                f"{seen}torch {torch.__version__} is a CPU build, without CUDA: the job's environment did not install "
                f"the CUDA {TORCH_BUILD['cuda']} build its header names. {stop}Run the script with `uv run` (it reads "
                "the header's [tool.uv] sources), or install PyTorch's CUDA build"
            )
        driver = nvidia_driver() or "unknown (no NVIDIA driver is visible)"
        return (
            f"{seen}{build} needs an NVIDIA driver >= {TORCH_BUILD['min_driver']}; this machine's driver: {driver}. "
            f"{stop}Run it again on another GPU flavor; if it happens again, report the flavor's driver to Hugging Face"
        )
    arch_list = torch.cuda.get_arch_list() if found else []
    for index in range(found):
        capability = torch.cuda.get_device_capability(index)
        if not capability_supported(capability, arch_list):
            name = torch.cuda.get_device_name(index)
            return (
                f"GPU {index} ({name}, compute capability {capability[0]}.{capability[1]}) has no kernels in {build}, "
                f"which is built for {', '.join(arch_list) or 'no GPU'}. The job stops now, before downloading "
                "anything: pick a flavor with another GPU (T4, L4, A10G, L40S, A100 or H200)"
            )
    return None


def launch_argv(argv: list[str], gpus: int) -> list[str] | None:
    """`accelerate launch` of this same script, one process per GPU, when a multi-GPU job starts; else None.

    The processes run in this script's own environment (its PEP 723 header, `[tool.uv]` sources included), so
    nothing is installed twice and the launcher needs no `--with` list of its own.
    """
    if gpus < 2 or os.environ.get("LOCAL_RANK") is not None:  # one GPU, or already one of the launched processes
        return None
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1"]
    return [*launcher, "--num_processes", str(gpus), str(Path(__file__).resolve()), *argv]


def resolve_hub(args: TrainScriptArguments, training_args: TrainingArguments) -> str | None:
    """When pushing (or resuming from the Hub): check the repo id and the token, and return the user name."""
    if not (training_args.push_to_hub or args.resume_from_hub):
        return None
    from huggingface_hub import HfApi, get_token

    if not training_args.hub_model_id:
        raise JobError("pushing to the Hub needs --hub_model_id <user>/<repo> (or pass --push_to_hub false)")
    token = training_args.hub_token or get_token()
    if training_args.push_to_hub and not token:
        raise JobError("pushing to the Hub needs a token: set HF_TOKEN (hf jobs run ... --secrets HF_TOKEN)")
    if not token:
        return None
    try:
        user = HfApi(token=token).whoami()["name"]
    except Exception as exc:  # an invalid token (401) or an unreachable Hub: both stop the job now
        raise JobError(f"the Hugging Face token was refused or the Hub is unreachable: {exc}") from None
    if "/" not in training_args.hub_model_id:
        training_args.hub_model_id = f"{user}/{training_args.hub_model_id}"
    return user


def download_last_checkpoint(repo_id: str, dest: Path, token: str | None) -> str | None:
    """Fetch `<repo>/last-checkpoint/` into `dest`; None (start fresh) when the repo or the folder is missing."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        folder = snapshot_download(repo_id, allow_patterns=["last-checkpoint/*"], local_dir=dest, token=token)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        log(f"resume_from_hub: {repo_id} does not exist yet, starting fresh")
        return None
    checkpoint = Path(folder) / "last-checkpoint"
    if not (checkpoint / "trainer_state.json").exists():
        log(f"resume_from_hub: {repo_id} has no last-checkpoint/, starting fresh")
        return None
    log(f"resume_from_hub: resuming from {repo_id}/last-checkpoint")
    return str(checkpoint)


def last_local_checkpoint(folder: Path) -> str:
    """The `checkpoint-N` folder with the largest N in `folder` (an earlier run's output_dir on this machine)."""
    found = [
        (int(p.name.split("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
        if p.name.split("-", 1)[1].isdigit() and (p / "trainer_state.json").is_file()
    ]  # fmt: skip
    if not found:
        raise JobError(f"--resume_from_dir: {folder} holds no checkpoint-N folder with a trainer_state.json")
    step, path = max(found)
    log(f"resume_from_dir: resuming from {path} (step {step})")
    return str(path)


# ----------------------------------------------------------------------------- samples and model card
def stop_token_ids(model: Any, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends a generation: the generation config's EOS ids, then the tokenizer's EOS."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    return list(dict.fromkeys([*ids, *([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])]))


def generate_samples(
    trainer: Trainer, method: str, rows: list[dict[str, Any]], max_new_tokens: int
) -> list[tuple[str, str]]:
    """(prompt, output) pairs: greedy generations that say whether the model stopped by itself, or chosen/rejected
    scores for a reward model."""
    import torch

    model = trainer.accelerator.unwrap_model(trainer.model)
    tokenizer = trainer.processing_class
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    model.eval()
    stops = stop_token_ids(model, tokenizer) if method != "reward" else []  # a reward model scores, never generates
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops or [None])[0]  # 0 is an id
    samples = []
    for row in rows:
        with torch.no_grad():
            if method == "reward":
                prompt, chosen, rejected = preference_parts(row)
                scores = []
                for answer in (chosen, rejected):
                    full = prompt + answer if isinstance(answer, list) else render(prompt, tokenizer) + answer
                    inputs = tokenizer(render(full, tokenizer), return_tensors="pt").to(model.device)
                    scores.append(model(**inputs).logits[0, 0].item())
                samples.append((one_line(prompt), f"score(chosen)={scores[0]:.3f} score(rejected)={scores[1]:.3f}"))
                continue
            prompt = sample_prompt(row) or ""
            text = render(prompt, tokenizer, generation_prompt=True)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
            output = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, eos_token_id=stops
            )
        new_ids = output[0, inputs["input_ids"].shape[1] :].tolist()
        stop = next((i for i in new_ids if i in stops), None)
        ending = (
            f"[stopped: {tokenizer.convert_ids_to_tokens(stop)}]"
            if stop is not None
            else f"[no stop within {max_new_tokens} new tokens]"
        )
        completion = tokenizer.decode(new_ids, skip_special_tokens=True)
        samples.append((one_line(prompt), f"{one_line(completion, 400)} {ending}"))
    return samples


def hyperparameters(method: str, training_args: TrainingArguments, model_args: ModelConfig) -> dict[str, Any]:
    """The settings worth recording in the model card."""
    keys = ["learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size"]
    keys += ["gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_length"]
    keys += {"dpo": ["beta", "loss_type"], "kto": ["beta"], "grpo": ["num_generations", "max_completion_length"]}.get(
        method, []
    )
    keys += ["bf16", "fp16", "seed", "world_size"]
    values = {k: getattr(training_args, k) for k in keys if getattr(training_args, k, None) is not None}
    if model_args.use_peft:
        values |= {k: getattr(model_args, k) for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")}
    return {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}


def model_card(
    *,
    method: str,
    base_model: str,
    repo_id: str,
    dataset: str,
    mapping: DatasetMapping,
    peft_mode: str,
    params: dict[str, Any],
    trackio_url: str | None,
    samples: list[tuple[str, str]],
    sample_source: str = "held-out prompts",
    comparison: str = "",
) -> str:
    """README.md for the trained model: what was trained on what, how, where the metrics are, and how to load it.

    `comparison`: the "Base vs tuned" section (`comparison_card`), in place of the sample generations."""
    adapter = peft_mode != "full"
    on_hub = not Path(base_model).exists()  # a local folder is no Hub id: no link, no base_model metadata
    auto = "AutoModelForSequenceClassification" if method == "reward" else "AutoModelForCausalLM"
    load = f'model = {auto}.from_pretrained("{repo_id}")'
    if adapter:
        load = f'base = {auto}.from_pretrained("{base_model}")\nmodel = PeftModel.from_pretrained(base, "{repo_id}")'
    imports = f"from transformers import AutoTokenizer, {auto}" + ("\nfrom peft import PeftModel" if adapter else "")
    metadata = {
        "base_model": base_model if on_hub else None,
        "library_name": "peft" if adapter else "transformers",
        "pipeline_tag": "text-classification" if method == "reward" else "text-generation",
    }
    front = "".join(f"{k}: {v}\n" for k, v in metadata.items() if v)
    front += "tags:\n- trl\n- " + method + "\n- trainer-space\n"
    front += f"datasets:\n- {dataset}\n" if not Path(dataset).exists() else ""
    base_link = f"[{base_model}](https://huggingface.co/{base_model})" if on_hub else f"`{base_model}`"
    table = "\n".join(f"| {k} | {v} |" for k, v in params.items())
    mapping_text = json.dumps({"columns": mapping.columns, "transforms": list(mapping.transforms)})
    if not (mapping.columns or mapping.transforms):
        mapping_text = "none (columns used as they are)"
    sample_lines = "\n".join(f"{i}. **{p}** → {c}" for i, (p, c) in enumerate(samples, 1)) or "(none)"
    samples_section = (
        comparison
        or f"""## Sample generations ({sample_source}, greedy)

Each generation ends with `[stopped: <token>]` when the model ended its answer itself, or says it did not stop.

{sample_lines}
"""
    )
    metrics = f"Training metrics (Trackio): {trackio_url}" if trackio_url else "Training metrics were kept locally."
    return f"""---
{front}---

# {repo_id.split("/")[-1]}

{"A LoRA adapter for" if adapter else "A fine-tune of"} {base_link}, trained with
TRL's `{TRAINER_CLASSES[method]}` ({method.upper()}, {peft_mode}) on `{dataset}`.

- Dataset mapping: `{mapping_text}`
- {metrics}

## Hyperparameters

| setting | value |
|---|---|
{table}

{samples_section}
## How to load

```python
{imports}

tokenizer = AutoTokenizer.from_pretrained("{repo_id}")
{load}
```
"""


# ----------------------------------------------------------------------------- base vs tuned
@dataclass
class Comparison:
    """Base vs tuned: the same prompts answered before and after training (same greedy decoding), and the eval
    loss before and after on the same eval rows. Never fails the job: a failure becomes a note."""

    method: str
    source: str  # where the dataset's prompts come from, in words
    rows: list[dict[str, Any]] = field(default_factory=list)  # dataset rows (mapped): their prompts, or reward pairs
    prompts: list[str] = field(default_factory=list)  # the visitor's own prompts
    base: list[dict[str, Any]] = field(default_factory=list)  # one per row, then one per prompt
    tuned: list[dict[str, Any]] = field(default_factory=list)
    eval_before: float | None = None
    eval_after: float | None = None
    eval_rows: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    chat_template: bool = False


def parse_compare_prompts(raw: str | None) -> tuple[list[str], list[str]]:
    """(prompts, notes): the visitor's prompts from a JSON list, bounded (count, length); never raises."""
    if raw in (None, ""):
        return [], []
    try:
        items = json.loads(raw)
    except (ValueError, RecursionError):
        return [], ["--compare_prompts is not a JSON list of texts: your prompts were not used"]
    if not isinstance(items, list):
        return [], ["--compare_prompts is not a JSON list of texts: your prompts were not used"]
    notes, prompts = [], []
    for item in items:
        text = " ".join(item.split()) if isinstance(item, str) else ""
        if text and text not in prompts:
            prompts.append(text[:COMPARE_MAX_PROMPT_CHARS])
    if len(prompts) > COMPARE_MAX_PROMPTS:
        notes.append(f"only the first {COMPARE_MAX_PROMPTS} of your {len(prompts)} prompts were used")
        prompts = prompts[:COMPARE_MAX_PROMPTS]
    if len(prompts) < len(items) and not notes:
        notes.append("empty, repeated or non-text prompts were left out")
    return prompts, notes


def compare_rows(
    args: TrainScriptArguments, train: Dataset, test: Dataset | None
) -> tuple[Dataset, list[dict[str, Any]], str]:
    """(train, rows, source): `--num_sample_generations` (at most COMPARE_MAX_ROWS) rows of the eval split, else as
    many held out of training (never more than a tenth of it: a smaller dataset gives fewer rows, or none)."""
    wanted = max(0, min(args.num_sample_generations, COMPARE_MAX_ROWS))
    if test is not None:
        return train, [test[i] for i in range(min(wanted, len(test)))], "eval split"
    held = min(wanted, len(train) // 10)
    if held == 0:
        return train, [], "none (no eval split, and too few rows to hold some out)" if wanted else "none"
    rows = [train[i] for i in range(len(train) - held, len(train))]
    log(f"base vs tuned: {held} rows held out of training ({len(train) - held} left)")
    return train.select(range(len(train) - held)), rows, "held out of training"


def _clip(text: str) -> str:
    return text if len(text) <= COMPARE_MAX_TEXT_CHARS else text[: COMPARE_MAX_TEXT_CHARS - 1] + "…"


def _answer(model: Any, tokenizer: PreTrainedTokenizerBase, prompt: Any, stops: list[int], pad: Any) -> dict:
    """One greedy answer: its text (cut to COMPARE_MAX_TEXT_CHARS) and whether the model stopped by itself."""
    import torch

    text = render(prompt, tokenizer, generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=COMPARE_NEW_TOKENS, do_sample=False, pad_token_id=pad, eos_token_id=stops
        )
    new_ids = output[0, inputs["input_ids"].shape[1] :].tolist()
    stopped = any(i in stops for i in new_ids)
    if stopped:
        new_ids = new_ids[: next(n for n, i in enumerate(new_ids) if i in stops)]
    return {"text": _clip(tokenizer.decode(new_ids, skip_special_tokens=True).strip()), "stopped": stopped}


def _scores(model: Any, tokenizer: PreTrainedTokenizerBase, row: dict[str, Any]) -> dict:
    """A reward model's scores of a held-out pair's chosen and rejected answers."""
    import torch

    prompt, chosen, rejected = preference_parts(row)
    scores = []
    for answer in (chosen, rejected):
        full = prompt + answer if isinstance(answer, list) else render(prompt, tokenizer) + answer
        inputs = tokenizer(render(full, tokenizer), return_tensors="pt").to(model.device)
        with torch.no_grad():
            scores.append(round(model(**inputs).logits[0, 0].item(), 4))
    return {"chosen": scores[0], "rejected": scores[1], "prefers_chosen": scores[0] > scores[1]}


def _answers(trainer: Trainer, cmp: Comparison) -> list[dict[str, Any]]:
    """Main process: the model's answers (or a reward model's scores) for every row then every prompt."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    tokenizer = trainer.processing_class
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    was_training = model.training
    model.eval()
    try:
        if cmp.method == "reward":
            return [_scores(model, tokenizer, row) for row in cmp.rows]
        stops = stop_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops or [None])[0]
        cmp.chat_template = bool(getattr(tokenizer, "chat_template", None))
        asked = [sample_prompt(row) or "" for row in cmp.rows]
        asked += [[{"role": "user", "content": p}] if cmp.chat_template else p for p in cmp.prompts]
        return [_answer(model, tokenizer, prompt, stops, pad) for prompt in asked]
    finally:
        model.train(was_training)


def _eval_loss(trainer: Trainer) -> tuple[float | None, int]:
    """Every process: the loss on the first COMPARE_EVAL_ROWS eval rows, as the trainer computes its eval loss."""
    dataset = trainer.eval_dataset
    if dataset is None or isinstance(dataset, dict) or len(dataset) == 0:
        return None, 0
    subset = dataset.select(range(min(COMPARE_EVAL_ROWS, len(dataset))))
    output = trainer.evaluation_loop(
        trainer.get_eval_dataloader(subset), description="Base vs tuned", prediction_loss_only=True
    )
    metrics = getattr(trainer, "_metrics", None)  # TRL's per-mode metrics would join the run's next eval log
    if isinstance(metrics, dict) and hasattr(metrics.get("eval"), "clear"):
        metrics["eval"].clear()
    for callback in trainer.callback_handler.callbacks:  # transformers' progress bar waits for an on_evaluate
        bar = getattr(callback, "prediction_bar", None)
        if bar is not None:
            bar.close()
            callback.prediction_bar = None
    loss = output.metrics.get("eval_loss")
    return (round(float(loss), 4) if loss is not None and math.isfinite(loss) else None), len(subset)


def _compare_step(trainer: Trainer, cmp: Comparison, when: Literal["before", "after"]) -> None:
    """Answer every prompt and measure the eval loss, now; a failure is noted, never raised."""
    start = time.time()
    if trainer.args.fsdp:
        if when == "before":
            cmp.notes.append("skipped: the model is sharded across GPUs (FSDP)")
        return
    if cmp.method != "grpo":  # GRPO's loss is a policy-gradient objective, not a measure of fit to the data
        try:
            loss, rows = _eval_loss(trainer)
            if when == "before":
                cmp.eval_before, cmp.eval_rows = loss, rows
            else:
                cmp.eval_after = loss
        except Exception as exc:  # a courtesy: never lose a training run over it
            cmp.notes.append(f"eval loss {when} training failed: {type(exc).__name__}: {str(exc)[:300]}")
    if trainer.accelerator.is_main_process and (cmp.rows or cmp.prompts):
        try:
            setattr(cmp, "base" if when == "before" else "tuned", _answers(trainer, cmp))
        except Exception as exc:
            cmp.notes.append(f"answers {when} training failed: {type(exc).__name__}: {str(exc)[:300]}")
    cmp.seconds[when] = round(time.time() - start, 1)
    answered = len(cmp.base if when == "before" else cmp.tuned)
    loss_rows = f", eval loss on {cmp.eval_rows} eval row{'s' * (cmp.eval_rows != 1)}" if cmp.eval_rows else ""
    log(f"base vs tuned: {answered} prompts answered {when} training{loss_rows} ({cmp.seconds[when]} s)")


def compare_before(
    trainer: Trainer, args: TrainScriptArguments, rows: list[dict[str, Any]], source: str
) -> Comparison | None:
    """Base vs tuned, first half: the model as loaded (for LoRA: the base with its untrained adapter, a no-op)."""
    if not args.compare:
        return None
    prompts, notes = parse_compare_prompts(args.compare_prompts)
    cmp = Comparison(method=args.method, source=source, rows=rows, prompts=prompts, notes=notes)
    if args.method == "reward":
        if prompts:
            cmp.notes.append("your prompts are not used: a reward model scores answers, it does not write them")
            cmp.prompts = []
        cmp.notes.append("a reward model's base is the model with a new, untrained score head")
    if args.method == "grpo":
        cmp.notes.append("no eval loss: GRPO's loss does not measure fit to the data")
    _compare_step(trainer, cmp, "before")
    return cmp


def compare_after(trainer: Trainer, cmp: Comparison | None) -> None:
    """Base vs tuned, second half (every process: the eval loss is measured by all of them)."""
    if cmp is not None:
        _compare_step(trainer, cmp, "after")


def comparison_json(cmp: Comparison) -> dict[str, Any]:
    """The comparison as written to COMPARE_FILE (and read by the Space's jobs/compare.py)."""
    items: list[dict[str, Any]] = []
    asked = [(one_line(sample_prompt(r) or "", COMPARE_MAX_TEXT_CHARS), "dataset") for r in cmp.rows]
    asked += [(p, "yours") for p in cmp.prompts]
    for i, (prompt, origin) in enumerate(asked):
        item: dict[str, Any] = {"prompt": prompt, "origin": origin}
        for side, answers in (("base", cmp.base), ("tuned", cmp.tuned)):
            item[side] = answers[i] if i < len(answers) else None
        items.append(item)
    return {
        "version": 1,
        "method": cmp.method,
        "kind": "scores" if cmp.method == "reward" else "answers",
        "source": cmp.source,
        "decoding": {"greedy": True, "max_new_tokens": COMPARE_NEW_TOKENS, "chat_template": cmp.chat_template},
        "items": items,
        "eval_loss": {"before": cmp.eval_before, "after": cmp.eval_after, "rows": cmp.eval_rows}
        if cmp.eval_rows
        else None,
        "seconds": cmp.seconds,
        "notes": cmp.notes,
    }


def _card_text(value: Any) -> str:
    """An answer or prompt for the card: one line, no HTML."""
    return one_line(value, COMPARE_MAX_TEXT_CHARS).replace("<", "&lt;").replace(">", "&gt;") or "(empty)"


def _card_side(value: dict[str, Any] | None, kind: str) -> str:
    if value is None:
        return "(not available)"
    if kind == "scores":
        prefers = "prefers chosen" if value["prefers_chosen"] else "prefers rejected"
        return f"chosen {value['chosen']:.3f}, rejected {value['rejected']:.3f} ({prefers})"
    return _card_text(value["text"]) + ("" if value["stopped"] else " [no stop]")


def comparison_card(data: dict[str, Any]) -> str:
    """The model card's "Base vs tuned" section, from `comparison_json`'s dict."""
    kind = data["kind"]
    how = (
        "A reward model scores the held-out pairs' chosen and rejected answers before and after training."
        if kind == "scores"
        else f"The same prompts answered before and after training: greedy, at most {COMPARE_NEW_TOKENS} new tokens"
        + (", with the chat template" if data["decoding"]["chat_template"] else "")
        + ". `[no stop]`: the answer did not end by itself."
    )
    lines = ["## Base vs tuned", "", how, f"Dataset prompts: {data['source']}. Also in `{COMPARE_FILE}`.", ""]
    loss = data.get("eval_loss")
    if loss:
        fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
        rows = f"{loss['rows']} eval row{'s' * (loss['rows'] != 1)}"
        lines += [f"Eval loss ({rows}, as the trainer measures it): {fmt(loss['before'])} → {fmt(loss['after'])}", ""]
    for i, item in enumerate(data["items"], 1):
        mark = " (your prompt)" if item["origin"] == "yours" else ""
        lines += [f"**{i}.{mark}** {_card_text(item['prompt'])}", ""]
        lines += [f"- Base: {_card_side(item['base'], kind)}", f"- Tuned: {_card_side(item['tuned'], kind)}", ""]
    if not data["items"]:
        lines += ["(no prompts)", ""]
    lines += [f"Note: {n}" for n in data["notes"]]
    return "\n".join(lines).rstrip() + "\n"


def write_comparison(cmp: Comparison, output_dir: str) -> dict[str, Any] | None:
    """Main process: COMPARE_FILE into output_dir; the dict for the card (None when it could not be written)."""
    try:
        data = comparison_json(cmp)
        (Path(output_dir) / COMPARE_FILE).write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")
        return data
    except Exception as exc:
        log(f"WARNING: base vs tuned was not written ({type(exc).__name__})")
        return None


# ----------------------------------------------------------------------------- arguments
def given_options(argv: list[str]) -> dict[str, Any]:
    """The options set on the command line and in the YAML `--config` it names (the command line wins), by name.

    One pass before TRL's parser is built: it says which method's config class to parse with, and which of our
    defaults the caller overrode (those are never changed afterwards).
    """
    given: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            key, eq, value = argv[i][2:].partition("=")
            if not eq:
                has_value = i + 1 < len(argv) and not argv[i + 1].startswith("--")
                value, i = (argv[i + 1], i + 1) if has_value else ("true", i)
            given[key.replace("-", "_")] = value
        i += 1
    if given.get("config"):
        import yaml

        with open(given["config"], encoding="utf-8") as fh:
            given = {**(yaml.safe_load(fh) or {}), **given}
    method = str(given.setdefault("method", "sft"))
    if method not in METHODS:
        raise JobError(f"--method must be one of {list(METHODS)}, got {method!r}")
    return given


def spread_lists(parser: Any, argv: list[str]) -> list[str]:
    """`--name=["a","b"]` for a list option becomes `--name a b` (the Space sends each option as one `--name=value`).

    Items that would read as options (a leading '-', other than a number) are refused.
    """
    lists = {opt for action in parser._actions if action.nargs in ("+", "*") for opt in action.option_strings}
    out: list[str] = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        if not (eq and name in lists and value.startswith("[")):
            out.append(arg)
            continue
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            raise JobError(f"{name}: {value!r} is not a JSON list") from None
        texts = [str(i) for i in items] if isinstance(items, list) and items else None
        if texts is None or any(t.startswith("-") and not re.fullmatch(r"-[\d.e+-]+", t) for t in texts):
            raise JobError(f"{name}: expected a non-empty list of values none of which starts with '-', got {value}")
        out += [name, *texts]
    return out


def _true(value: Any) -> bool:
    return str(value).strip().lower() not in ("", "false", "0", "none")


def job_defaults(method: str, fsdp: bool, on_cuda: bool, bf16_ok: bool) -> dict[str, Any]:
    """Parser defaults for a job that loses nothing: precision for the hardware, checkpoints pushed, Trackio."""
    defaults: dict[str, Any] = {
        "bf16": on_cuda and bf16_ok,
        "fp16": on_cuda and not bf16_ok,
        "save_strategy": "steps",
        "save_steps": 100,
        "save_total_limit": 2,
        "hub_strategy": "checkpoint",
        "report_to": "trackio",
        "logging_steps": 10,
    }
    if method == "reward":
        defaults["lora_task_type"] = "SEQ_CLS"
    if fsdp:  # FSDP's own activation checkpointing avoids the extra all-gather of the Trainer's one
        defaults |= {"fsdp_config": {"activation_checkpointing": True}, "gradient_checkpointing": False}
    return defaults


def hardware() -> tuple[bool, bool]:
    """(CUDA usable, bf16 supported): T4 (sm75) only emulates bf16, so fp16 there."""
    import torch

    on_cuda = torch.cuda.is_available()
    return on_cuda, on_cuda and torch.cuda.get_device_capability()[0] >= 8


def make_parser(given: dict[str, Any]) -> Any:
    """TrlParser over (our arguments, the method's config class, ModelConfig), with the job's defaults."""
    import trl

    on_cuda, bf16_ok = hardware()
    method = given["method"]
    parser = trl.TrlParser((TrainScriptArguments, getattr(trl, CONFIG_CLASSES[method]), trl.ModelConfig))
    parser.set_defaults(**job_defaults(method, _true(given.get("fsdp", False)), on_cuda, bf16_ok))
    return parser


def parse_args(
    argv: list[str] | None = None,
) -> tuple[TrainScriptArguments, TrainingArguments, ModelConfig, set[str]]:
    """(script_args, training_args, model_args, explicit keys) via TrlParser, method config chosen by --method."""
    argv = list(sys.argv[1:] if argv is None else argv)
    given = given_options(argv)
    parser = make_parser(given)
    argv = spread_lists(parser, argv)
    try:
        script_args, training_args, model_args = parser.parse_args_and_config(argv)
    except ValueError as exc:  # TRL / transformers config validation (e.g. GRPO batch vs num_generations)
        raise JobError(f"invalid training arguments: {exc}") from None
    explicit = set(given)
    apply_peft_mode(script_args, model_args, explicit, *hardware())
    return script_args, training_args, model_args, explicit


def as_flag(name: str, value: Any) -> str:
    """One `--name=value` argument for a config value the job decided (an enum as its value, a bool as true/false)."""
    value = getattr(value, "value", value)
    return f"--{name}={str(value).lower() if isinstance(value, bool) else value}"


def final_config(
    argv: list[str], parsed: dict[str, Any], training_args: TrainingArguments, method: str, explicit: set[str],
    train_rows: int,
) -> TrainingArguments:  # fmt: skip
    """The config the trainer really gets, checked before the model loads.

    What the job changed on the parsed config (`parsed`: its values as TRL first built them; evaluation turned on for
    an eval set, the output repo's owner, Trackio, packing for padding-free) is checked by the shared rules (each
    with its fix), then TRL builds the config again from the job's arguments plus those changes, so every check of
    TRL's config class runs on the final values; then GRPO's prompts are counted against its generation batch.
    """
    names = [f.name for f in fields(training_args) if f.init and f.name in parsed]
    changes = {k: getattr(training_args, k) for k in names if getattr(training_args, k) != parsed[k]}
    options = {**parsed, **changes}
    evaluates = str(getattr(options.get("eval_strategy"), "value", options.get("eval_strategy"))) != "no"
    problems = config_problems(method, options, training_args.world_size, evaluates=evaluates, given=explicit)
    if problems:
        raise JobError("; ".join(problems))
    parser = make_parser(given_options(argv))
    try:
        _, final, _ = parser.parse_args_and_config(
            spread_lists(parser, [*argv, *(as_flag(k, v) for k, v in changes.items())])
        )
    except ValueError as exc:
        raise JobError(f"invalid training arguments once the job set {', '.join(changes)}: {exc}") from None
    if method == "grpo":
        problem = grpo_prompt_problem(train_rows, final.generation_batch_size, final.num_generations)
        if problem:
            raise JobError(problem)
    return final


def apply_peft_mode(
    args: TrainScriptArguments, model_args: ModelConfig, explicit: set[str], on_cuda: bool, bf16_ok: bool
) -> None:
    """Map --peft_mode onto ModelConfig (TRL's --use_peft / --load_in_4bit also work) and fill LoRA defaults."""
    if args.peft_mode in ("lora", "qlora"):
        model_args.use_peft = True
    if args.peft_mode == "qlora":
        model_args.load_in_4bit = True
    if args.peft_mode == "full" and model_args.use_peft:
        args.peft_mode = "qlora" if model_args.load_in_4bit else "lora"
    if not model_args.use_peft:
        return
    if model_args.lora_target_modules in (None, ["all-linear"]):
        model_args.lora_target_modules = "all-linear"
    if on_cuda and "dtype" not in explicit:  # a frozen base in half precision; adapters stay in float32
        model_args.dtype = "bfloat16" if bf16_ok else "float16"
    if model_args.load_in_4bit and "bnb_4bit_quant_storage" not in explicit:
        model_args.bnb_4bit_quant_storage = model_args.dtype  # lets FSDP shard the 4-bit weights


def use_padding_free(method: str, training_args: TrainingArguments, explicit: set[str]) -> None:
    """`padding_free` SFT packs (BFD, TRL's padding-free packing) unless `packing` was given (`padding_free_changes`):
    TRL refuses padding-free without packing while `max_length` is set."""
    given = {name: getattr(training_args, name, None) for name in explicit}
    for name, value in padding_free_changes(method, given).items():
        setattr(training_args, name, value)
        log(f"padding_free: packing the examples ({name}={value}, BFD: padding-free and max_length kept)")


def model_config_dict(model_args: ModelConfig) -> dict[str, Any] | None:
    """The model's config.json (a local folder's, else the Hub's: a few kB, no weights); None when unreadable."""
    name = model_args.model_name_or_path or ""
    try:
        path = Path(name) / "config.json"
        if not path.is_file():
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name, "config.json", revision=model_args.model_revision))
        config = json.loads(path.read_text(encoding="utf-8"))
        return config if isinstance(config, dict) else None
    except Exception:  # not found, gated, offline: the tokenizer's load says why, right after
        return None


def load_attention_kernel(name: str) -> str | None:
    """Load and register a Hub attention kernel (transformers' `kernels` integration); None when it loaded, else why
    not (no `kernels` package, no network, no build for this GPU)."""
    try:
        from transformers.integrations.hub_kernels import load_and_register_attn_kernel

        load_and_register_attn_kernel(name)
    except Exception as exc:  # the job trains without it: SDPA with one packed row per micro-batch
        return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return None


def use_speed_settings(
    args: TrainScriptArguments, training_args: TrainingArguments, model_args: ModelConfig, explicit: set[str]
) -> dict[str, SpeedChoice]:
    """Turn on what makes this job faster where its method, its GPU and its model allow it (`choose_speed`, shared
    with the Space's pre-flight), and say each choice in the log: SFT packs (BFD, padding-free) with a flash-attention
    kernel (else SDPA, one packed row per micro-batch, the same effective batch); Liger kernels on a CUDA GPU. An
    option given on the command line is never changed; models whose config.json makes a setting unsafe (linear
    attention, vision towers, ...: `model_hazards`) keep the padded path."""
    import torch

    use_padding_free(args.method, training_args, explicit)
    config = model_config_dict(model_args)
    hazards = model_hazards(config)
    if config is None:
        why = "config.json could not be read"
        hazards = {"packing": why, "attention": why, "liger": why}
    on_cuda = torch.cuda.is_available()
    major, minor = torch.cuda.get_device_capability() if on_cuda else (0, 0)
    half = bool(training_args.bf16 or training_args.fp16)
    packing_given = bool({"packing", "padding_free"} & explicit)  # as given: packing forced on, or off
    if packing_given and getattr(training_args, "packing", False):
        hazards = {k: v for k, v in hazards.items() if k != "packing"}
    packing = "off" if packing_given and not getattr(training_args, "packing", False) else "auto"
    liger = "off" if "use_liger_kernel" in explicit else "auto"
    choices = choose_speed(args.method, packing=packing, liger=liger, gpu=on_cuda, capability=major * 10 + minor,
                           half_precision=half, hazards=hazards)  # fmt: skip
    if packing_given:
        choices["packing"] = SpeedChoice("packing", bool(getattr(training_args, "packing", False)), None, "as given")
    if choices["packing"].on:
        training_args.packing = True
        if training_args.packing_strategy in ("bfd", "bfd_split"):
            training_args.padding_free = True
    if choices["attention"].on and "attn_implementation" not in explicit:
        failed = load_attention_kernel(choices["attention"].value)
        if failed is None:
            model_args.attn_implementation = choices["attention"].value
        else:
            reason = f"SDPA with one packed row per micro-batch: the flash kernel did not load ({failed})"
            choices["attention"] = SpeedChoice("attention", False, "sdpa", reason)
    elif "attn_implementation" in explicit:
        choices["attention"] = SpeedChoice("attention", False, model_args.attn_implementation, "as given")
    attention = str(model_args.attn_implementation or "sdpa")
    if getattr(training_args, "packing", False) and not (
        "flash" in attention or "/" in attention
    ):  # SDPA / eager: a mask per row
        batch, accumulation = training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps
        new_batch, new_accumulation = packed_micro_batch(batch, accumulation, choices)
        if (new_batch, new_accumulation) != (batch, accumulation):
            training_args.per_device_train_batch_size = new_batch
            training_args.gradient_accumulation_steps = new_accumulation
            log(f"packed rows one per micro-batch without a flash kernel: batch {batch} x {accumulation} accumulation "
                f"-> {new_batch} x {new_accumulation} (the same {batch * accumulation} rows per optimizer step)")  # fmt: skip
        if "per_device_eval_batch_size" not in explicit and training_args.per_device_eval_batch_size > 1:
            training_args.per_device_eval_batch_size = 1  # eval packs too: one flattened row per batch, one mask
    if choices["liger"].on:
        training_args.use_liger_kernel = True
    elif "use_liger_kernel" in explicit:
        choices["liger"] = SpeedChoice("liger", bool(training_args.use_liger_kernel), None, "as given")
    checkpointing = "on" if training_args.gradient_checkpointing else "off"
    why = "as given" if {"gradient_checkpointing", "activation_checkpointing"} & explicit else "TRL's default"
    if getattr(training_args, "fsdp", None):
        checkpointing, why = "FSDP's", "FSDP's own activation checkpointing"
    log(f"speed: {speed_summary(choices)}; gradient checkpointing {checkpointing} ({why}); chunked loss on (TRL's "
        "fused LM head)")  # fmt: skip
    return choices


def configure_run(
    args: TrainScriptArguments, training_args: TrainingArguments, explicit: set[str], has_eval: bool, user: str | None
) -> str | None:
    """Evaluation only with an eval set; Trackio project / run / Space; returns the Trackio URL (or None)."""
    from transformers.trainer_utils import IntervalStrategy

    if has_eval and "eval_strategy" not in explicit:
        training_args.eval_strategy = IntervalStrategy.STEPS
        training_args.eval_steps = training_args.eval_steps or training_args.save_steps
        training_args.do_eval = True
    elif not has_eval and training_args.eval_strategy != IntervalStrategy.NO:
        log("no eval split (no test split, eval_split_fraction=0): evaluation turned off")
        training_args.eval_strategy = IntervalStrategy.NO
    name = (training_args.hub_model_id or Path(training_args.output_dir).name or "train").split("/")[-1]
    if "project" not in explicit:
        training_args.project = name
    if not training_args.run_name:
        training_args.run_name = f"{args.method}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if "trackio" not in training_args.report_to:
        return None
    if not training_args.trackio_space_id and user and training_args.push_to_hub:
        training_args.trackio_space_id = f"{user}/trackio"
    if not training_args.trackio_space_id:
        log("Trackio: no Space id (not pushing), metrics stay in the job's local storage")
        return None
    return f"https://huggingface.co/spaces/{training_args.trackio_space_id}"


def model_init_kwargs(training_args: TrainingArguments, model_args: ModelConfig) -> dict[str, Any]:
    """What the trainer passes to from_pretrained (as in TRL's scripts)."""
    kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": getattr(training_args, "trust_remote_code", False),
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    return kwargs | (training_args.model_init_kwargs or {})


# ----------------------------------------------------------------------------- stopping, precision, trainer
def end_of_turn_token(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The special token the chat template closes an assistant turn with, when it is not the tokenizer's EOS.

    A base model's tokenizer often stops on `<|endoftext|>` while its template ends turns with `<|im_end|>` (Qwen),
    `<|eot_id|>` (Llama 3) or `<end_of_turn>` (Gemma): trained on chats, it would never stop generating.
    """
    probe = "ANSWER_PROBE_7"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Q"}, {"role": "assistant", "content": probe}], tokenize=False
        )
    except Exception:  # no template, or one that refuses a plain exchange: nothing to learn from it
        return None
    if not isinstance(text, str) or probe not in text:
        return None
    after = text.split(probe, 1)[1].lstrip()
    specials = {
        *tokenizer.all_special_tokens,
        *(t.content for t in tokenizer.added_tokens_decoder.values() if t.special),
    }
    token = next((t for t in sorted(specials, key=len, reverse=True) if t and after.startswith(t)), None)
    return token if token and token != tokenizer.eos_token else None


def use_stop_token(trainer: Trainer, token: str) -> None:
    """Train and save with `token` as EOS: tokenizer, model config, generation config (first), GRPO's rollouts."""
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    tokenizer.eos_token = token
    token_id = tokenizer.convert_tokens_to_ids(token)
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.config.get_text_config().eos_token_id = token_id
    generation = getattr(model, "generation_config", None)  # a reward model has none: it scores, never generates
    if generation is not None:
        ids = generation.eos_token_id
        ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
        generation.eos_token_id = list(dict.fromkeys([token_id, *ids]))
    if isinstance(getattr(trainer, "eos_token_ids", None), list):  # GRPO ends its completions on these
        trainer.eos_token_ids = list(dict.fromkeys([token_id, *trainer.eos_token_ids]))


def trained_stop_rows(trainer: Trainer, method: str, token_id: int, limit: int = 256) -> tuple[int, int] | None:
    """(rows whose trained tokens end with `token_id`, rows checked), over the trainer's tokenized data.

    Trained tokens: SFT's labels that are not masked (-100, after truncation), DPO's chosen and KTO's desirable
    completions as far as `max_length` keeps them; packed SFT rows are split back into their documents
    (`seq_lengths`). None when the method learns no stop from its data (GRPO, reward models).
    """
    ds = trainer.train_dataset
    args = trainer.args
    if method not in ("sft", "dpo", "kto") or ds is None:
        return None
    if getattr(args, "packing", False):
        return packed_stop_rows(ds, token_id, limit)
    rows = ds.select(range(min(limit, len(ds))))
    max_length = getattr(args, "max_length", None)
    keep_end = getattr(args, "truncation_mode", "keep_start") == "keep_end"
    found = checked = 0
    for row in rows:
        if method == "sft":
            if "labels" not in row:
                return None
            trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=False) if label != -100]
        elif method == "kto" and not row.get("label", True):
            continue  # an undesirable completion: nothing to learn to say
        else:
            answer = row["chosen_ids"] if method == "dpo" else row["completion_ids"]
            room = len(answer) if max_length is None or keep_end else max(0, max_length - len(row["prompt_ids"]))
            trained = answer[:room]
        checked += 1
        found += token_id in trained[-3:]  # at the end of the answer (ChatML adds a newline after it), not cut off
    return found, checked


def packed_documents(row: dict[str, Any]) -> list[list[int]]:
    """The trained tokens (labels not -100) of each document of one packed SFT row, split by its `seq_lengths`."""
    labels = row.get("labels") or row["input_ids"]
    out, start = [], 0
    for length in row.get("seq_lengths") or [len(labels)]:
        out.append([t for t in labels[start : start + length] if t != -100])
        start += length
    return out


def packed_stop_rows(ds: Dataset, token_id: int, limit: int) -> tuple[int, int] | None:
    """`trained_stop_rows` over packed rows: (documents whose trained tokens end with `token_id`, documents)."""
    if "seq_lengths" not in ds.column_names:
        return None
    found = checked = 0
    for row in ds.select(range(min(limit, len(ds)))):
        for trained in packed_documents(row):
            checked += 1
            found += token_id in trained[-3:]
    return found, checked


def check_stop_trained(trainer: Trainer, method: str, max_length: int | None, documents: bool = False) -> None:
    """The EOS the job trains with is in the trained part of the examples: an error when in none, a warning when
    some lose it (cut by max_length): the model would not learn to stop. Plain-text documents (`documents`: SFT on
    a `text` column, continued pre-training) are truncated on purpose: their count is said, never refused."""
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    counts = trained_stop_rows(trainer, method, tokenizer.eos_token_id)
    if not counts or not counts[1]:
        return
    found, checked = counts
    token = tokenizer.eos_token
    if documents:
        if found < checked:
            log(
                f"{checked - found} of the first {checked} documents are longer than max_length={max_length}: each is "
                f"truncated to its first {max_length} tokens (continued pre-training), the rest of it is not trained on"
            )
        return
    if found == 0:
        raise JobError(
            f"none of the first {checked} training examples has {token} (the token that ends an answer) in the part "
            f"the loss is computed on, so the model would never learn to stop: raise max_length (now {max_length}) "
            "so answers are not cut, or check the chat template and the completion/assistant-only loss settings"
        )
    if found < checked:
        log(
            f"WARNING: {checked - found} of the first {checked} training examples lose {token} (the end of the answer) "
            f"to truncation at max_length={max_length}: on those the model does not learn to stop"
        )


def check_kept_rows(trainer: Trainer, method: str, train_rows: int, test: Dataset | None) -> None:
    """Rows the trainer dropped at max_length (`dropped_rows_problem`), counted and said: an error when none remain
    (train or eval), a warning with the count otherwise. Packed rows are counted by the documents they hold."""
    max_length = getattr(trainer.args, "max_length", None)
    if max_length is None:
        return
    sets = [("training", trainer.train_dataset, train_rows)]
    if test is not None and isinstance(trainer.eval_dataset, type(trainer.train_dataset)):
        sets.append(("eval", trainer.eval_dataset, len(test)))
    for name, kept, total in sets:
        documents = len(kept)
        if "seq_lengths" in getattr(kept, "column_names", ()):  # packed: each row holds several documents
            documents = sum(len(n) for n in kept["seq_lengths"])
        problem = dropped_rows_problem(method, total - documents, total, max_length)
        if problem is None:
            continue
        fatal, message = problem
        if fatal:
            raise JobError(f"{name} set: {message}")
        log(f"WARNING: {name} set: {message}")


def upcast_trainable(model: Any) -> int:
    """Trainable parameters in float32 (returns how many were cast).

    Under fp16 mixed precision (T4) the gradient scaler refuses fp16 gradients: a LoRA base loaded in fp16 keeps its
    trainable extras (a reward model's score head, PEFT's modules_to_save) in fp16 unless they are cast.
    """
    import torch

    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()
            cast += 1
    return cast


def build_trainer(
    args: TrainScriptArguments,
    training_args: TrainingArguments,
    model_args: ModelConfig,
    train: Dataset,
    test: Dataset | None,
    reward_names: list[str],
    stop_token: str | None = None,
) -> Trainer:
    """The method's TRL trainer, with the model, precision and stop token the job trains and saves with."""
    import trl

    extra: dict[str, Any] = {}
    if args.method == "grpo":
        extra["reward_funcs"] = build_reward_funcs(reward_names, training_args.max_completion_length)
    if stop_token and hasattr(training_args, "eos_token"):  # SFT and reward modelling set it up themselves
        training_args.eos_token = stop_token
    if training_args.use_liger_kernel and not training_args.liger_kernel_config:
        # Liger's fused linear cross-entropy would replace the model's forward: TRL's chunked LM head computes the
        # loss already (TRL sets this for SFT, DPO, KTO and GRPO), and a reward model's score head must stay
        training_args.liger_kernel_config = {"fused_linear_cross_entropy": False}
    trainer = getattr(trl, TRAINER_CLASSES[args.method])(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train,
        eval_dataset=test,
        quantization_config=trl.get_quantization_config(model_args),
        peft_config=trl.get_peft_config(model_args),
        **extra,
    )
    if stop_token:
        use_stop_token(trainer, stop_token)
    if training_args.fp16:
        cast = upcast_trainable(trainer.model)
        if cast:
            log(f"fp16 training: {cast} trainable tensors cast to float32 (the gradient scaler needs fp32 weights)")
    return trainer


def save_generation_config(trainer: Trainer) -> None:
    """Next to an adapter too: the EOS ids generation stops on (a full model's save writes it already)."""
    generation = getattr(trainer.accelerator.unwrap_model(trainer.model), "generation_config", None)
    if generation is not None:  # a reward model has none
        generation.save_pretrained(trainer.args.output_dir)


# ----------------------------------------------------------------------------- progress lines
def progress_line(
    step: int,
    total: int | None,
    *,
    elapsed_s: float,
    steps_done: int,
    tokens_per_s: float | None = None,
    peak_gpu_mem_gb: float | None = None,
    loss: float | None = None,
    done: bool = False,
    now: float | None = None,
    checkpoint: dict[str, Any] | None = None,
) -> str:
    """One machine-readable progress line: PROGRESS_PREFIX then JSON (step, total, tokens_per_s, peak_gpu_mem_gb
    in GiB, eta_s from the pace of the `steps_done` steps of this run, loss, done, t: when it was written), and the
    `checkpoint` it reports, if any: {"step": N, "saved_t": unix s, "pushed_t": unix s or null}."""
    eta = None
    if done:
        eta = 0.0
    elif total and steps_done > 0 and elapsed_s > 0:
        eta = round(elapsed_s / steps_done * max(0, total - step), 1)

    def rounded(value: float | None, digits: int) -> float | None:
        return round(value, digits) if value is not None and math.isfinite(value) else None

    payload = {
        "step": step,
        "total": total or None,
        "tokens_per_s": rounded(tokens_per_s, 1),
        "peak_gpu_mem_gb": rounded(peak_gpu_mem_gb, 3),
        "eta_s": eta,
        "loss": rounded(loss, 4),
        "done": done,
        "t": round(time.time() if now is None else now, 3),
    }
    if checkpoint is not None:
        payload["checkpoint"] = checkpoint
    return PROGRESS_PREFIX + json.dumps(payload, separators=(",", ":"))


def progress_callback() -> Any:
    """A TrainerCallback printing `progress_line`s on the main process: at every logging step, at the end, when a
    checkpoint is saved, and when its upload to the Hub (hub_strategy=checkpoint: transformers pushes it in the
    background, `trainer.push_in_progress`) has finished. Set `.trainer` to the trainer to report uploads."""
    import threading

    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self) -> None:
            self.start: float | None = None
            self.start_step = 0
            self.first_tokens: tuple[float, float] | None = None  # (time, num_tokens) at the first log
            self.tokens_per_s: float | None = None
            self.loss: float | None = None
            self.trainer: Any = None
            self.state: Any = None  # the trainer's state, for lines printed from an upload's thread
            self.args: Any = None
            self.push_step: int | None = None  # the step whose checkpoint upload began (on_push_begin)
            self.seen: set[int] = set()  # the upload futures already followed
            self.lock = threading.Lock()

        def on_train_begin(self, args, state, control, **kwargs):
            self.start, self.start_step = time.time(), state.global_step
            self.state, self.args = state, args

        def _emit(self, args, state, done: bool = False, checkpoint: dict[str, Any] | None = None) -> None:
            if not state.is_world_process_zero:
                return
            peak = None
            import torch

            if torch.cuda.is_available():
                peak = torch.cuda.max_memory_reserved() / 1024**3
            start = self.start or time.time()
            line = progress_line(
                state.global_step, state.max_steps or None, elapsed_s=time.time() - start,
                steps_done=state.global_step - self.start_step, tokens_per_s=self.tokens_per_s,
                peak_gpu_mem_gb=peak, loss=self.loss, done=done, checkpoint=checkpoint,
            )  # fmt: skip
            with self.lock:  # an upload's thread prints too
                print(line, flush=True)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if isinstance(logs.get("loss"), (int, float)):
                self.loss = float(logs["loss"])
            tokens = logs.get("num_tokens")
            if isinstance(tokens, (int, float)):
                now = time.time()
                if self.first_tokens is None:
                    self.first_tokens = (self.start or now, 0.0)
                t0, n0 = self.first_tokens
                self.tokens_per_s = (tokens - n0) / (now - t0) if now > t0 else None
            if "train_runtime" not in logs:  # the final summary log comes with on_train_end's line
                self._emit(args, state)

        def on_push_begin(self, args, state, control, **kwargs):
            self.push_step = state.global_step

        def on_save(self, args, state, control, **kwargs):
            step, saved_t = state.global_step, round(time.time(), 3)
            self._emit(args, state, checkpoint={"step": step, "saved_t": saved_t, "pushed_t": None})
            pushing = getattr(self.trainer, "push_in_progress", None) if self.push_step == step else None
            jobs = [j for j in getattr(pushing, "jobs", []) if id(j) not in self.seen]
            if not jobs:
                return
            self.seen.update(id(j) for j in jobs)
            left = [len(jobs)]

            def finished(future: Any) -> None:  # in the upload's thread: a line the moment the last part is done
                with self.lock:
                    left[0] -= 1
                    if left[0]:
                        return
                if any(j.cancelled() or j.exception() is not None for j in jobs):
                    log(f"WARNING: the upload of checkpoint {step} to the Hub failed; the next one is tried")
                    return
                pushed = {"step": step, "saved_t": saved_t, "pushed_t": round(time.time(), 3)}
                self._emit(self.args or args, self.state or state, checkpoint=pushed)

            for job in jobs:
                job.add_done_callback(finished)

        def on_train_end(self, args, state, control, **kwargs):
            self._emit(args, state, done=True)

    return ProgressCallback()


# ----------------------------------------------------------------------------- main
def load_data(
    args: TrainScriptArguments, reward_names: list[str]
) -> tuple[Dataset, Dataset | None, DatasetMapping, list[str]]:
    """(train, eval or None, mapping, GRPO rewards): loaded, mapped, checked and split, before the model is touched.

    GRPO without `--reward_funcs` uses the data's default (`default_rewards`: accuracy with an `answer`, else length).
    """
    try:
        mapping = parse_mapping(args.dataset_mapping)
    except MappingError as exc:
        raise JobError(f"bad --dataset_mapping: {exc}") from None
    train_raw, test_raw = load_splits(args)
    train = prepare_dataset(train_raw, mapping, args.method, reward_names, args.max_train_samples)
    if args.method == "grpo" and not reward_names:
        reward_names = default_rewards(train.column_names)
        log(f"GRPO rewards: none given, using the default for this data: {', '.join(reward_names)}")
    test = prepare_dataset(test_raw, mapping, args.method, reward_names, None) if test_raw is not None else None
    train, test = split_for_eval(train, test, args)
    log(f"data: {len(train)} training rows, {len(test) if test is not None else 0} eval rows, {train.column_names}")
    return train, test, mapping, reward_names


def samples_and_card(
    trainer: Trainer,
    args: TrainScriptArguments,
    model_args: ModelConfig,
    mapping: DatasetMapping,
    test: Dataset | None,
    train: Dataset,
    trackio_url: str | None,
    comparison: Comparison | None = None,
) -> None:
    """Main process: write the base vs tuned comparison (or, without one, a few generations) and README.md (the
    model card) into output_dir. The log says counts only: never a prompt or an answer (the data's text)."""
    training_args = trainer.args
    samples: list[tuple[str, str]] = []
    pool = test if test is not None else train
    rows = [pool[i] for i in range(max(0, len(pool) - args.num_sample_generations), len(pool))]
    compared = write_comparison(comparison, training_args.output_dir) if comparison is not None else None
    if compared is not None:
        rows = []  # the tuned answers are the samples
    if training_args.fsdp:
        log("sample generations skipped: the model is sharded (FSDP)")
    elif rows:
        try:
            samples = generate_samples(trainer, args.method, rows, SAMPLE_NEW_TOKENS)
        except Exception as exc:  # samples are a courtesy: never lose a finished training run over them
            log(f"WARNING: sample generation failed ({type(exc).__name__}: {exc}); the model is saved anyway")
    if samples:
        log(f"{len(samples)} sample generations written to the model card")
    card = model_card(
        method=args.method,
        base_model=model_args.model_name_or_path,
        repo_id=training_args.hub_model_id or Path(training_args.output_dir).name,
        dataset=args.dataset_name,
        mapping=mapping,
        peft_mode=args.peft_mode,
        params=hyperparameters(args.method, training_args, model_args),
        trackio_url=trackio_url,
        samples=samples,
        sample_source="held-out prompts" if test is not None else "last training prompts",
        comparison=comparison_card(compared) if compared is not None else "",
    )
    (Path(training_args.output_dir) / "README.md").write_text(card, encoding="utf-8")


def main(
    args: TrainScriptArguments, training_args: TrainingArguments, model_args: ModelConfig, explicit: set[str],
    argv: list[str],
) -> None:  # fmt: skip
    """Check everything, load data, train, save, sample, write the card, push."""
    import torch

    parsed = dict(vars(training_args))  # as TRL first built it: what the job changes is checked again (final_config)
    check_environment(args, training_args, model_args, torch.cuda.is_available())
    use_speed_settings(args, training_args, model_args, explicit)
    user = resolve_hub(args, training_args)
    reward_names = parse_reward_names(args.reward_funcs) if args.method == "grpo" else []
    train, test, mapping, reward_names = load_data(args, reward_names)
    train, compare_with, compare_source = compare_rows(args, train, test) if args.compare else (train, [], "")
    tokenizer = load_tokenizer(model_args)
    check_chat_template(tokenizer, train[0], model_args.model_name_or_path, training_args)
    check_max_length(args.method, training_args, tokenizer, train)
    stop_token = None
    if is_conversational(train[0]) and "eos_token" not in explicit:
        stop_token = end_of_turn_token(tokenizer)
        if stop_token:
            log(
                f"the chat template ends a turn with {stop_token}, the tokenizer's EOS is {tokenizer.eos_token}: "
                f"training and saving with {stop_token} as EOS, so the model stops after its answer"
            )
    trackio_url = configure_run(args, training_args, explicit, test is not None, user)
    training_args = final_config(argv, parsed, training_args, args.method, explicit, len(train))
    training_args.model_init_kwargs = model_init_kwargs(training_args, model_args)

    resume = training_args.resume_from_checkpoint
    if args.resume_from_dir and not resume:
        resume = last_local_checkpoint(Path(args.resume_from_dir))
    if args.resume_from_hub and not resume:
        from accelerate import PartialState

        with PartialState().main_process_first():
            dest = Path(training_args.output_dir) / "_resume"  # "_*" is never uploaded by push_to_hub
            resume = download_last_checkpoint(training_args.hub_model_id, dest, training_args.hub_token)

    trainer = build_trainer(args, training_args, model_args, train, test, reward_names, stop_token)
    check_kept_rows(trainer, args.method, len(train), test)
    check_stop_trained(trainer, args.method, getattr(training_args, "max_length", None), "text" in train.column_names)
    progress = progress_callback()
    progress.trainer = trainer  # to follow its checkpoint uploads
    trainer.add_callback(progress)
    comparison = compare_before(trainer, args, compare_with, compare_source)
    trainer.train(resume_from_checkpoint=resume)
    if not training_args.push_to_hub:  # push_to_hub() saves the model itself (save_model() would push twice)
        trainer.save_model(training_args.output_dir)
    trainer.save_state()
    compare_after(trainer, comparison)
    if trainer.accelerator.is_main_process:
        save_generation_config(trainer)
        samples_and_card(trainer, args, model_args, mapping, test, train, trackio_url, comparison)
    if training_args.push_to_hub:
        trainer.create_model_card = lambda *a, **k: None  # keep our card: TRL's would overwrite README.md
        trainer.push_to_hub(commit_message=f"{args.method.upper()} training done")
        log(f"pushed to https://huggingface.co/{trainer.hub_model_id}")
    log(f"model saved to {training_args.output_dir}")
    trainer.end()


def cli(argv: list[str] | None = None) -> None:
    """Check the GPUs, start one process per GPU, parse, run; a JobError (or data that does not fit the mapping)
    becomes one "ERROR:" line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        gpus = expected_gpus()
        if gpus is not None:  # the environment guard: seconds after start, before any download
            problem = gpu_problem(gpus)
            if problem:
                raise JobError(problem)
            launch = launch_argv(argv, gpus)
            if launch:
                log(f"{gpus} GPUs: one training process per GPU ({' '.join(launch[1:5])} ...)")
                os.execv(launch[0], launch)
        main(*parse_args(argv), argv=argv)
    except (JobError, MappingError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    cli()
