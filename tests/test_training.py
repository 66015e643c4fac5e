"""Training configs: validation, the template arguments (accepted by the real template's parser), presets."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests import arg_values
from trainer_space.catalog import METHODS, PEFT_MODES, preset
from trainer_space.errors import InvalidInput
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.training import default_output_repo, trackio_url
from trainer_space.jobs.training import template_args as _template_args


def template_args(cfg: TrainingConfig, output_repo: str, trackio_space: str, project: str) -> list[str]:
    """The arguments of `cfg` resolved for a visitor (output repo and Trackio filled in, as the plan does)."""
    resolved = cfg.with_changes(output_repo=output_repo, trackio_space=trackio_space, trackio_project=project)
    return _template_args(resolved)


ROOT = Path(__file__).resolve().parents[1]


def _cfg(**kw) -> TrainingConfig:
    base = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara"}
    base.update(kw)
    return TrainingConfig.from_dict(base)


def test_defaults_and_json_text_are_accepted():
    cfg = TrainingConfig.from_dict(json.dumps({"method": "dpo", "model": " Qwen/Qwen2.5-0.5B ", "dataset": "a/b"}))
    assert cfg.model == "Qwen/Qwen2.5-0.5B" and cfg.peft == "lora"
    assert cfg.timeout is None and cfg.flavor is None  # from the estimate, unless given


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"method": "ppo"}, r"Method \(method\) must be one of: sft, dpo"),
        ({"peft": "dora"}, r"Fine-tuning \(peft\) must be one of: full, lora, qlora"),
        ({"model": "not a repo!"}, "must be a model id like 'owner/name'"),
        ({"dataset": ""}, "'dataset' is required"),
        ({"output_repo": "bad//repo"}, r"Output repo \(output_repo\) must be a model id"),
        ({"output_repo": "justaname"}, "needs a namespace"),
        ({"flavor": "tpu-v5"}, r"Hardware \(flavor\) must be one of"),
        ({"timeout": "forever"}, "not a duration"),
        ({"timeout": "10s"}, "between 1 minute and 7 days"),
        ({"per_device_train_batch_size": -3}, r"Batch size \(per_device_train_batch_size\) must be between 1 and"),
        ({"learning_rate": 1}, r"Learning rate \(learning_rate\) must be between"),
        ({"max_length": 8}, "max_length must be between 32"),
        ({"split": "train; rm -rf /"}, r"Split \(split\) must be a split name"),
        ({"method": "grpo", "reward_funcs": ["magic"]}, "unknown names"),
        ({"advanced": {"hub_token": "x"}}, "cannot set 'hub_token'"),
        ({"advanced": {"output_dir": "/"}}, "cannot set 'output_dir'"),
        ({"advanced": {"weight_decay": [1]}}, "'weight_decay' must be a number"),
        ({"mapping": {"columns": {"prompt": 3}}}, "field -> source column"),
        ({"mapping": "{not json"}, "not valid JSON"),
        ({"surprise": 1}, "Unknown config field"),
    ],
)
def test_invalid_configs_are_refused_with_a_clear_message(kw, match):
    with pytest.raises(InvalidInput, match=match):
        _cfg(**kw)


def test_template_args_cover_the_config():
    cfg = _cfg(
        method="grpo",
        reward_funcs="accuracy,length",
        mapping={"columns": {"prompt": "question", "answer": "answer"}, "transforms": ["prompt_to_messages"]},
        quick_test=True,
        advanced={"weight_decay": 0.1, "lr_scheduler_type": "cosine"},
        use_liger_kernel="off",
        packing="off",
    )
    args = template_args(cfg, "alice/out", "alice/trackio", "out")
    pairs = arg_values(args)
    assert all(a.startswith("--") for a in args)  # one `--name=value` each: no value can read as an option
    assert args[:3] == ["--method=grpo", "--model_name_or_path=Qwen/Qwen2.5-0.5B", "--dataset_name=trl-lib/Capybara"]
    assert json.loads(pairs["--dataset_mapping"]) == cfg.mapping.to_json()
    assert pairs["--learning_rate"] == "1e-05"  # GRPO + LoRA preset
    assert pairs["--max_steps"] == "20" and pairs["--max_train_samples"] == "200"
    assert pairs["--reward_funcs"] == "accuracy,length"
    assert pairs["--hub_model_id"] == "alice/out" and pairs["--push_to_hub"] == "true"
    assert pairs["--trackio_space_id"] == "alice/trackio"
    assert args[-2:] == ["--lr_scheduler_type=cosine", "--weight_decay=0.1"]
    assert pairs["--use_liger_kernel"] == "false"  # turned off: the job keeps it off
    assert "--packing" not in pairs  # GRPO's config has no packing (the job would refuse the flag)
    assert "--gradient_checkpointing" not in pairs  # auto, not resolved by a plan: the job keeps TRL's default (on)


def test_default_names():
    assert default_output_repo("alice", "Qwen/Qwen2.5-0.5B", "sft") == "alice/Qwen2.5-0.5B-sft"
    assert trackio_url("Alice/trackio_runs", "p") == "https://alice-trackio-runs.hf.space/?project=p"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("peft", PEFT_MODES)
def test_presets_are_valid_configs(method, peft):
    p = preset(method, 7.0, peft)
    cfg = _cfg(
        method=method,
        peft=peft,
        learning_rate=p.learning_rate,
        per_device_train_batch_size=p.per_device_train_batch_size,
        gradient_accumulation_steps=p.gradient_accumulation_steps,
        reward_funcs=["accuracy"] if method == "grpo" else [],
    )
    assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps >= 8
    assert p.learning_rate < 1e-3


def _load_template_module():
    spec = importlib.util.spec_from_file_location("train_template", ROOT / "job_templates" / "train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_real_template_parser_accepts_what_the_app_sends():
    """Every method x PEFT mode: the app's arguments parse with the template's own TrlParser."""
    module = _load_template_module()
    for method in METHODS:
        for peft in ("full", "lora"):
            cfg = _cfg(
                method=method,
                peft=peft,
                eval_split_fraction=0.1,
                mapping={"columns": {"prompt": "q"}, "transforms": []},
                reward_funcs=["accuracy", "think_format"] if method == "grpo" else [],
                advanced={"weight_decay": 0.05, "lr_scheduler_type": "cosine"},
                per_device_train_batch_size=2,
            )
            args = template_args(cfg, "alice/out", "alice/trackio", "out")
            script_args, training_args, model_args, _ = module.parse_args(args)
            assert script_args.method == method
            assert training_args.hub_model_id == "alice/out" and training_args.push_to_hub
            assert training_args.hub_strategy == "checkpoint"
            assert training_args.trackio_space_id == "alice/trackio"
            assert training_args.weight_decay == 0.05
            assert training_args.lr_scheduler_type == "cosine"
            assert bool(model_args.use_peft) == (peft != "full")


@pytest.mark.slow
def test_fsdp_and_quick_test_arguments_parse():
    module = _load_template_module()
    cfg = _cfg(fsdp=True, quick_test=True, peft="full")
    _, training_args, _, _ = module.parse_args(template_args(cfg, "alice/out", "alice/trackio", "out"))
    assert training_args.fsdp and training_args.max_steps == 20
