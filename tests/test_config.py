"""The typed configs: every input an API caller may send -> the accepted value, or an error naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trainer_space.errors import InvalidInput
from trainer_space.jobs.config import CONFIG_ENV, ExportConfig, TrainingConfig

BASE = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara"}


def parse(**fields: Any) -> TrainingConfig:
    return TrainingConfig.from_dict({**BASE, **fields})


# (field, value sent, value accepted)
ACCEPTED = [
    ("fsdp", "false", False),
    ("fsdp", "False", False),
    ("quick_test", "true", True),
    ("resume_from_hub", False, False),
    ("private", "TRUE", True),
    ("per_device_train_batch_size", "8", 8),
    ("per_device_train_batch_size", 8.0, 8),
    ("max_steps", 0, None),
    ("max_steps", None, None),
    ("max_steps", "", None),
    ("max_steps", "120", 120),
    ("learning_rate", "2e-4", 2e-4),
    ("learning_rate", 0, None),
    ("num_train_epochs", "0.5", 0.5),
    ("lora_dropout", 0, 0.0),
    ("method", " DPO ", "dpo"),
    ("peft", "QLoRA", "qlora"),
    ("model", "https://huggingface.co/Qwen/Qwen2.5-0.5B/tree/main", "Qwen/Qwen2.5-0.5B"),
    ("dataset_config", "", None),
    ("split", " test ", "test"),
    ("timeout", "90m", "90m"),
    ("timeout", 7200, "2h"),
    ("timeout", "3.5h", "3.5h"),
    ("timeout", None, None),
    ("flavor", "A10G-Small", "a10g-small"),
    ("flavor", "", None),
    ("reward_funcs", "accuracy, length", ["accuracy", "length"]),
    ("reward_funcs", ["length", "length"], ["length"]),
    ("output_repo", "", None),
    ("advanced", '{"weight_decay": 0.01}', {"weight_decay": 0.01}),
    ("advanced", None, {}),
]


@pytest.mark.parametrize(("field", "sent", "accepted"), ACCEPTED)
def test_accepted_inputs_are_normalised(field: str, sent: Any, accepted: Any) -> None:
    assert getattr(parse(**{field: sent}), field) == accepted


# (field, value sent, what the message must say: the field's name and what is allowed)
REFUSED = [
    ("fsdp", "no", r"FSDP \(fsdp\) must be true or false"),
    ("quick_test", 1, r"Quick test \(quick_test\) must be true or false"),
    ("quick_test", None, r"Quick test \(quick_test\) must be true or false"),
    ("gradient_checkpointing", [], r"\(gradient_checkpointing\) must be one of: auto, on, off"),
    ("packing", "on", r"\(packing\) must be one of: auto, off"),
    ("per_device_train_batch_size", True, r"Batch size \(per_device_train_batch_size\) must be a whole number"),
    ("per_device_train_batch_size", 2.5, "must be a whole number between 1 and 1,024"),
    ("per_device_train_batch_size", "four", "must be a whole number"),
    ("per_device_train_batch_size", 10**30, "must be between 1 and 1,024"),
    ("per_device_train_batch_size", float("nan"), "must be a whole number"),
    ("per_device_train_batch_size", {"x": 1}, "must be a whole number"),
    ("gradient_accumulation_steps", -2, r"Gradient accumulation \(gradient_accumulation_steps\) must be between 1"),
    ("num_train_epochs", float("inf"), r"Epochs \(num_train_epochs\) must be a number"),
    ("num_train_epochs", 1e308, "must be between 0.01 and 100"),
    ("learning_rate", "fast", r"Learning rate \(learning_rate\) must be a number"),
    ("max_length", 1_000_000, "max_length must be between 32 and 262,144"),
    ("lora_r", "x" * 1000, r"LoRA rank \(lora_r\) must be a whole number"),
    ("method", 3, r"Method \(method\) must be one of: sft, dpo, grpo, reward, kto"),
    ("method", None, "'method' is required"),
    ("model", ["Qwen/Qwen2.5-0.5B"], r"Model \(model\) must be a model id like 'owner/name'"),
    ("model", "a" * 500, r"Model \(model\) must be a model id"),
    ("model", "../../etc/passwd", r"Model \(model\) /etc/passwd is not a model folder"),
    ("dataset", {"name": "x"}, r"Dataset \(dataset\) must be a dataset id"),
    ("split", 7, r"Split \(split\) must be a split name"),
    ("split", "train; rm -rf /", r"Split \(split\) must be a split name"),
    ("timeout", "forever", r"Timeout \(timeout\) is not a duration"),
    ("timeout", 10**12, r"Timeout \(timeout\) must be between 1 minute and 7 days"),
    ("timeout", True, r"Timeout \(timeout\) is not a duration"),
    ("flavor", "tpu-v5", r"Hardware \(flavor\) must be one of: a100-large"),
    ("reward_funcs", [1, 2], r"GRPO rewards \(reward_funcs\) must be a list of names"),
    ("reward_funcs", "magic", "unknown names"),
    ("mapping", ["prompt"], r"Column mapping \(mapping\) is not a valid mapping"),
    ("mapping", {"columns": {"question": "q"}}, "unknown mapping fields"),
    ("advanced", {"hub_token": "hf_x"}, r"Advanced options \(advanced\) cannot set 'hub_token'"),
    ("advanced", {"seed": {"nested": 1}}, "'seed' must be a whole number"),
    ("advanced", {f"k{i}": 1 for i in range(100)}, "at most 64"),
    ("output_repo", "noslash", r"Output repo \(output_repo\) needs a namespace"),
    ("trackio_project", "a b", r"Trackio project \(trackio_project\) must be letters"),
    ("namespace", "-bad-", r"Namespace \(namespace\) must be a user or org name"),
]


@pytest.mark.parametrize(("field", "sent", "message"), REFUSED)
def test_refused_inputs_name_the_field_and_what_is_allowed(field: str, sent: Any, message: str, monkeypatch) -> None:
    monkeypatch.chdir("/usr/share")  # relative paths resolve the same wherever the suite runs
    with pytest.raises(InvalidInput, match=message):
        parse(**{field: sent})


def test_unknown_keys_are_refused_with_the_list_of_valid_ones() -> None:
    with pytest.raises(InvalidInput) as err:
        parse(per_device_batch_size=4, batch=2)
    assert "Unknown config field(s): batch, per_device_batch_size." in err.value.message
    assert (
        "Valid fields: advanced, allow_many_running, allow_unfit, backend, compare, compare_prompts, continues, "
        "dataset,"
        in err.value.message
        and "per_device_train_batch_size" in err.value.message
    )


def test_several_errors_are_all_named() -> None:
    with pytest.raises(InvalidInput) as err:
        parse(fsdp="nope", lora_r=0)
    assert "(fsdp)" in err.value.message and "(lora_r)" in err.value.message


@pytest.mark.parametrize("text", ["", "[]", "42", '"sft"', "{not json", "x" * 200_000])
def test_json_text_that_is_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"JSON|object|required|too long"):
        TrainingConfig.from_dict(text)


def test_rules_across_fields() -> None:
    with pytest.raises(InvalidInput, match="multiple of the generations per prompt"):
        parse(method="grpo", reward_funcs=["length"], per_device_train_batch_size=3, gradient_accumulation_steps=1)
    with pytest.raises(InvalidInput, match="KTO needs a batch size of at least 2"):
        parse(method="kto", per_device_train_batch_size=1)


def test_a_config_is_immutable_and_changes_are_validated() -> None:
    cfg = parse()
    with pytest.raises(Exception, match="frozen"):
        cfg.max_length = 5  # type: ignore[misc]
    assert cfg.with_changes(max_length=2048).max_length == 2048 and cfg.max_length == 1024
    with pytest.raises(InvalidInput, match="max_length"):
        cfg.with_changes(max_length=1)


def test_the_job_carries_its_config_and_it_reads_back() -> None:
    cfg = parse(mapping={"columns": {"prompt": "q"}, "transforms": ["prompt_to_messages"]}, learning_rate=3e-4)
    env = {CONFIG_ENV: json.dumps(cfg.to_json())}
    assert TrainingConfig.from_job_env(env) == cfg
    assert TrainingConfig.from_job_env({}) is None
    assert TrainingConfig.from_job_env({CONFIG_ENV: '{"method": "ppo"}'}) is None  # an old or foreign config


def test_the_estimate_sees_the_same_job() -> None:
    cfg = parse(method="grpo", reward_funcs=["length"], per_device_train_batch_size=8, num_generations=8,
                max_completion_length=128, quick_test=True, advanced={"beta": 0.04})  # fmt: skip
    inputs = cfg.estimate_inputs()
    assert (inputs.per_device_train_batch_size, inputs.num_generations, inputs.max_completion_length) == (8, 8, 128)
    assert inputs.max_steps == 20 and inputs.beta == 0.04 and inputs.needs_reference


def test_the_schema_describes_every_field() -> None:
    schema = TrainingConfig.model_json_schema()
    assert schema["additionalProperties"] is False
    assert all(prop.get("description") for prop in schema["properties"].values())
    assert schema["properties"]["method"]["enum"] == ["sft", "dpo", "grpo", "reward", "kto"]


def test_export_config() -> None:
    cfg = ExportConfig.from_dict({"model": "alice/m", "quantizations": "q4_k_m, Q8_0 q8_0", "private": "false"})
    assert cfg.quantizations == ["Q4_K_M", "Q8_0"] and cfg.private is False
    assert ExportConfig.from_dict({"model": "alice/m"}).private is True  # private by default, like training output
    with pytest.raises(InvalidInput, match=r"Quantizations \(quantizations\) has unknown types"):
        ExportConfig.from_dict({"model": "alice/m", "quantizations": ["Q9"]})
    with pytest.raises(InvalidInput, match="Unknown config field"):
        ExportConfig.from_dict({"model": "alice/m", "dry_run_please": True})


@pytest.mark.parametrize("field", ["per_device_train_batch_size", "learning_rate", "max_cost_usd", "timeout",
                                   "lora_dropout", "max_steps"])  # fmt: skip
def test_a_huge_number_is_refused_by_field_as_a_value_and_in_json_text(field: str) -> None:
    with pytest.raises(InvalidInput, match=rf"\({field}\)|{field}|Timeout"):
        parse(**{field: 10**309})
    digits = "9" * 5001  # past Python's 4,300-digit limit for int(text): json.loads raises ValueError on it
    base = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara"}
    text = json.dumps(base)[:-1] + f', "{field}": {digits}}}'
    with pytest.raises(InvalidInput, match="number"):
        TrainingConfig.from_dict(text)
    with pytest.raises(InvalidInput, match="number"):
        parse(advanced=f'{{"seed": {digits}}}')
