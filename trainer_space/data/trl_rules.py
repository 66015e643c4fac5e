"""What TRL refuses in a job's final config, and what becomes of rows longer than `max_length`.

One source for two checks: the pre-flight (in the Space, before anything is paid, with the flavor's GPU count) and
the job itself (right before the trainer is built, on the config TRL rebuilt from the job's arguments and its own
decisions, with the real number of processes). The Space cannot let TRL judge the config: TRL's config classes
need torch (their `__post_init__` reads the device and the world size) and the Space installs no torch; so these
rules are written once here, in the standard library only, and the part between the SHARED markers is spliced, as
text, into `job_templates/train.py` (`python -m trainer_space.data.splice`; a test fails while the copy is stale).
The job also lets TRL check its final config (it rebuilds it), so a rule missing here still stops the job before
the model loads. `tests/test_trl_rules.py` checks every rule against TRL's own classes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

# ----- BEGIN SHARED WITH job_templates/train.py (trl_rules; stdlib only; edit here, then `python -m trainer_space.data.splice`)
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


# ----- END SHARED WITH job_templates/train.py (trl_rules)
