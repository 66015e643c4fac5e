"""The shared rules (data/trl_rules.py) against TRL's own config classes: they refuse exactly what TRL refuses.

The Space cannot build TRL's configs (they need torch); these tests build the real `GRPOConfig` for a grid of
batch sizes, generations and evaluation, and check the rules say "no" exactly where TRL raises, with the same
generation batch. The job checks the same rules again (spliced into train.py) and then lets TRL rebuild its config.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import pytest

from trainer_space.data.trl_rules import (
    OVER_LENGTH_DROPPED,
    TRL_DEFAULTS,
    config_problems,
    dropped_rows_problem,
    grpo_generation_batch,
    grpo_prompt_problem,
    padding_free_changes,
)


def test_the_defaults_are_trls() -> None:
    import trl

    for cls in (trl.GRPOConfig, trl.SFTConfig):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for name, value in TRL_DEFAULTS.items():
            if name in defaults:
                assert defaults[name] == value, (cls.__name__, name)
    grpo = {f.name for f in dataclasses.fields(trl.GRPOConfig)}
    sft = {f.name for f in dataclasses.fields(trl.SFTConfig)}
    assert set(TRL_DEFAULTS) <= grpo | sft


def _trl_refuses(tmp_path, **options) -> tuple[bool, int | None]:
    """(TRL's GRPOConfig refuses these options, its generation batch)."""
    import trl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            config = trl.GRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, **options)
        except ValueError:
            return True, None
    return False, config.generation_batch_size


GRID = list(
    itertools.product([1, 2, 4], [1, 2, 4], [2, 3, 4, 8, 16], [2, 8, 16], [False, True], [None, 8])
)  # batch, accumulation, generations, eval batch, evaluation on, steps_per_generation


@pytest.mark.parametrize("steps_per_generation", [None, 8])
def test_grpo_rules_refuse_exactly_what_trl_refuses(tmp_path, steps_per_generation) -> None:
    disagree = []
    for batch, accum, n, eval_batch, evaluates, steps in GRID:
        if steps != steps_per_generation:
            continue
        options = {"per_device_train_batch_size": batch, "gradient_accumulation_steps": accum, "num_generations": n,
                   "per_device_eval_batch_size": eval_batch, "steps_per_generation": steps}  # fmt: skip
        refused, generation = _trl_refuses(
            tmp_path, **options, eval_strategy="steps" if evaluates else "no", eval_steps=10
        )
        problems = config_problems("grpo", options, 1, evaluates=evaluates)
        if refused != bool(problems) or (generation is not None and generation != grpo_generation_batch(options, 1)):
            disagree.append((options, evaluates, refused, problems))
    assert not disagree, disagree[:5]


def test_the_issues_crash_is_named_with_its_fix() -> None:
    options = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 4, "num_generations": 16,
               "save_steps": 100}  # fmt: skip
    assert config_problems("grpo", options, 1, evaluates=False) == []  # TRL's check, before evaluation was on
    (problem,) = config_problems("grpo", options, 1, evaluates=True)
    assert "crash at its first evaluation (step 100)" in problem and '"per_device_eval_batch_size": 16' in problem
    assert config_problems("grpo", options, 2, evaluates=True) == []  # 2 GPUs x 8 = 16
    (problem,) = config_problems("grpo", options, 3, evaluates=True)  # 3 GPUs: 16 / gcd(16, 3) = 16 per GPU
    assert "eval batch (8 x 3 GPU(s))" in problem and '"per_device_eval_batch_size": 16' in problem
    given = {"generation_batch_size", "steps_per_generation"}
    both = {**options, "generation_batch_size": 32, "steps_per_generation": 2}
    assert any("not both" in p for p in config_problems("grpo", both, 1, evaluates=False, given=given))


def test_grpo_prompts_per_generation_batch() -> None:
    assert grpo_prompt_problem(16, 16, 2) is None  # 8 prompts of 2 completions
    assert grpo_prompt_problem(8, 16, 2) is None
    assert "GRPO draws 8 different prompts per generation batch" in grpo_prompt_problem(7, 16, 2)


def test_padding_free_sft_packs_unless_packing_is_given() -> None:
    assert padding_free_changes("sft", {"padding_free": True}) == {"packing": True}
    assert padding_free_changes("sft", {"padding_free": "true", "packing": False}) == {}
    assert padding_free_changes("sft", {}) == {} and padding_free_changes("dpo", {"padding_free": True}) == {}
    refused = {"padding_free": True, "packing": False, "max_length": 1024}
    assert "padding_free without packing" in config_problems("sft", refused, 1, evaluates=False)[0]
    assert config_problems("sft", {**refused, "packing": True}, 1, evaluates=False) == []
    assert config_problems("sft", {**refused, "max_length": None}, 1, evaluates=False) == []


def test_dropped_rows_are_counted_and_fatal_when_none_remain() -> None:
    assert dropped_rows_problem("reward", 0, 10, 512) is None
    assert dropped_rows_problem("grpo", 5, 10, 512) is None  # GRPO drops nothing (and has no max_length)
    fatal, message = dropped_rows_problem("reward", 3, 10, 512)
    assert not fatal and message.startswith("3 of 10 pairs (30%) are too long for max_length=512")
    fatal, message = dropped_rows_problem("reward", 10, 10, 512)
    assert fatal and "nothing would be left" in message
    assert set(OVER_LENGTH_DROPPED) <= {"sft", "dpo", "reward", "kto"}


def test_the_rules_read_trl_values_as_the_job_has_them(tmp_path) -> None:
    """In the job the rules read a real (already built) GRPOConfig: an enum eval_strategy, both derived batch
    fields set. They must read it as TRL does."""
    import trl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = trl.GRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, num_generations=4,
                               per_device_train_batch_size=2, gradient_accumulation_steps=2)  # fmt: skip
    options = dict(vars(built))
    assert grpo_generation_batch(options, 1) == built.generation_batch_size == 4
    assert config_problems("grpo", options, 1, evaluates=False) == []
    assert "eval batch (8 x 1 GPU(s))" not in " ".join(config_problems("grpo", options, 1, evaluates=True))
    assert config_problems("grpo", {**options, "per_device_eval_batch_size": 2}, 1, evaluates=True)
