"""The advanced-options table against TRL's real dataclasses, its typing, and what reaches the job's parser."""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from typing import Any

import pytest

from trainer_space.catalog import METHOD_NAMES
from trainer_space.errors import InvalidInput
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.preflight import check_advanced, job_packages
from trainer_space.jobs.training import template_args
from trainer_space.jobs.trl_options import ADVANCED_OPTIONS, RESERVED, TrlOption, as_argument, parse_option

CONFIG_CLASSES = {"sft": "SFTConfig", "dpo": "DPOConfig", "grpo": "GRPOConfig", "reward": "RewardConfig",
                  "kto": "KTOConfig"}  # fmt: skip
BASE = {"model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara", "output_repo": "alice/out",
        "trackio_space": "alice/trackio", "trackio_project": "out", "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1}  # fmt: skip


@pytest.fixture(scope="module")
def train():
    from tests.test_training import _load_template_module

    return _load_template_module()


def _fields(method: str, source: str, train) -> dict[str, dataclasses.Field]:
    import trl

    cls = {"model": trl.ModelConfig, "script": train.TrainScriptArguments}.get(source)
    return {f.name: f for f in dataclasses.fields(cls or getattr(trl, CONFIG_CLASSES[method]))}


def _type_text(field: dataclasses.Field) -> str:
    text = field.type if isinstance(field.type, str) else str(field.type)
    text = re.sub(r"<class '(\w+)'>", r"\1", text).removesuffix(" | None")
    return re.sub(r"^typing\.Optional\[(.*)\]$", r"\1", text)  # HfArgumentParser narrows `X | None` in place


def _documented_choices(name: str, field: dataclasses.Field) -> set[str]:
    """The values TRL accepts: declared choices, an Enum's values, or the quoted values its help lists."""
    if field.metadata.get("choices"):
        return set(field.metadata["choices"])
    types = (field.type, *getattr(field.type, "__args__", ()))  # HfArgumentParser narrows `Enum | str` in place
    enum = next((t for t in types if isinstance(t, type) and issubclass(t, Enum)), None)
    if enum is not None:
        return {e.value for e in enum}
    if name == "attn_implementation":
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        return {"eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()}
    return set(re.findall(r"[`']([a-z0-9_]+)[`']", field.metadata.get("help", "")))


@pytest.mark.slow
def test_every_advanced_option_is_the_trl_field_it_claims_to_be(train) -> None:
    """Name, methods, kind and allowed values of each table entry, read off TRL 1.16's dataclasses."""
    problems = []
    for name, by_method in ADVANCED_OPTIONS.items():
        sources = {spec.source for spec in by_method.values()}
        for method in METHOD_NAMES:
            has = name in _fields(method, next(iter(sources)), train)
            if has != (method in by_method):  # offered exactly for the methods whose config has it
                problems.append(f"{name}: {method} config has it: {has}, table: {method in by_method}")
        for method, spec in by_method.items():
            field = _fields(method, spec.source, train).get(name)
            if field is None:
                continue
            text = _type_text(field)
            expected = {"bool": ("bool",), "int": ("int",), "float": ("float",), "str": ("str",)}.get(spec.kind)
            if expected and text not in expected:
                problems.append(f"{name} ({method}): table {spec.kind}, TRL {text}")
            if spec.kind == "list" and not text.startswith(f"list[{spec.item}]"):
                problems.append(f"{name} ({method}): table list of {spec.item}, TRL {text}")
            if spec.choices and not set(spec.choices) <= _documented_choices(name, field):
                problems.append(f"{name} ({method}): {set(spec.choices) - _documented_choices(name, field)} unknown")
    assert not problems, "\n".join(problems)


def _sample(spec: TrlOption) -> Any:
    blocked = {value for value, _ in spec.needs}
    if spec.kind == "bool":
        return True not in blocked
    if spec.kind == "enum":
        return next(c for c in spec.choices if c not in blocked)
    if spec.kind == "list":
        return [spec.choices[0]] if spec.choices else ([0.5] if spec.item == "float" else ["q_proj"])
    return {"int": 3, "float": 0.25, "str": "text-value"}[spec.kind]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_option_reaches_the_job_parser_as_typed(method: str, train) -> None:
    """Each option of the method, sent as the app sends it, is parsed by train.py into the value the app checked."""
    advanced = {name: _sample(by_method[method]) for name, by_method in ADVANCED_OPTIONS.items() if method in by_method}
    advanced.pop("run_name")  # the app's own run name is sent too; the override is checked below
    advanced.pop("generation_batch_size", None)  # TRL refuses it together with steps_per_generation
    cfg = TrainingConfig.from_dict({**BASE, "method": method, "peft": "lora", "advanced": advanced})
    script_args, training_args, model_args, _ = train.parse_args(template_args(cfg))
    for name, value in cfg.advanced.items():
        holder = next(h for h in (training_args, model_args, script_args) if hasattr(h, name))
        parsed = getattr(holder, name)
        parsed = parsed.value if isinstance(parsed, Enum) else parsed
        if isinstance(value, list) and isinstance(parsed, str):  # ModelConfig keeps a one-module list as a string
            parsed = [parsed]
        assert parsed == value or (isinstance(value, list) and list(parsed) == value), (name, parsed, value)


@pytest.mark.slow
def test_a_value_starting_with_dashes_stays_a_value(train) -> None:
    """The issue's exploit: an advanced value that reads like an option cannot change the output repo or push."""
    with pytest.raises(InvalidInput, match=r"'use_rslora' must be true or false"):
        TrainingConfig.from_dict({**BASE, "method": "sft", "advanced": {"use_rslora": "--hub_model_id=someone/else"}})
    cfg = TrainingConfig.from_dict({**BASE, "method": "sft", "advanced": {"run_name": "--hub_model_id=someone/else"},
                                    "dataset_config": "--push_to_hub"})  # fmt: skip
    args = template_args(cfg)
    assert "--run_name=--hub_model_id=someone/else" in args and all(a.startswith("--") for a in args)
    script_args, training_args, _, _ = train.parse_args(args)
    assert training_args.hub_model_id == "alice/out" and training_args.push_to_hub is True
    assert training_args.run_name == "--hub_model_id=someone/else"
    assert script_args.dataset_config == "--push_to_hub"


@pytest.mark.parametrize(
    ("advanced", "message"),
    [
        ({"hub_model_id": "someone/else"}, "cannot set 'hub_model_id': the output repo: set 'output_repo'"),
        ({"hub_token": "hf_x"}, "cannot set 'hub_token': your sign-in's token reaches the job only as its HF_TOKEN"),
        ({"push_to_hub": False}, "cannot set 'push_to_hub': always true"),
        ({"hub_strategy": "end"}, "cannot set 'hub_strategy': always 'checkpoint'"),
        ({"model_name_or_path": "x/y"}, "cannot set 'model_name_or_path': a field of its own: set 'model'"),
        ({"dataset_name": "x/y"}, "cannot set 'dataset_name': a field of its own: set 'dataset'"),
        ({"method": "dpo"}, "cannot set 'method'"),
        ({"learning_rate": 1e-4}, "cannot set 'learning_rate': a field of its own: set 'learning_rate'"),
        ({"warmup_ratio": 0.1}, "not a TRL option the app passes (did you mean 'warmup_steps'"),
        ({"beta": 0.1}, "'beta' is not an option of SFT (it is one of DPO, KTO, GRPO)"),
        ({"lr_scheduler_type": "sometimes"}, "'lr_scheduler_type' must be one of: linear, cosine"),
        ({"optim": "galore_adamw"}, "'optim' must be one of: adamw_torch"),
        ({"seed": 1.5}, "'seed' must be a whole number"),
        ({"weight_decay": "lots"}, "'weight_decay' must be a number"),
        ({"lora_target_modules": ["q_proj", "--hub_model_id=x"]}, "cannot hold a value starting with '-'"),
        ({"run_name": "a\nb"}, "'run_name' must be text of 1 to 500 printable characters"),
    ],
)
def test_advanced_options_are_refused_with_the_field_to_use(advanced: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        TrainingConfig.from_dict({**BASE, "method": "sft", "advanced": advanced})
    assert "Advanced options (advanced)" in err.value.message and message in err.value.message, err.value.message


def test_advanced_values_are_typed_and_normalised() -> None:
    cfg = TrainingConfig.from_dict({**BASE, "method": "dpo", "advanced": {
        "beta": "0.2", "use_rslora": "TRUE", "lr_scheduler_type": "Cosine", "seed": 7.0, "loss_type": "ipo",
        "lora_target_modules": "q_proj"}})  # fmt: skip
    assert cfg.advanced == {"beta": 0.2, "use_rslora": True, "lr_scheduler_type": "cosine", "seed": 7,
                            "loss_type": ["ipo"], "lora_target_modules": ["q_proj"]}  # fmt: skip
    assert as_argument("loss_type", ["ipo", "sigmoid"]) == '--loss_type=["ipo","sigmoid"]'
    assert as_argument("use_rslora", True) == "--use_rslora=true"
    assert parse_option("grpo", "reward_weights", [1, "0.5"]) == [1.0, 0.5]
    assert not set(RESERVED) & set(ADVANCED_OPTIONS)


@pytest.mark.parametrize(
    ("method", "advanced", "package"),
    [
        ("sft", {"attn_implementation": "flash_attention_2"}, "flash-attn"),
        ("grpo", {"use_vllm": True}, "vllm"),
    ],
)
def test_options_the_job_environment_cannot_honour_are_refused_by_preflight(method, advanced, package) -> None:
    cfg = TrainingConfig.from_dict({**BASE, "method": method, "advanced": advanced})
    check = check_advanced(cfg)
    assert check.status == "error" and f"needs the {package} package" in check.message
    assert package not in job_packages()  # the header really lacks it (else this entry must go)
    fine = TrainingConfig.from_dict({**BASE, "method": method, "advanced": {k: False if v is True else "sdpa"
                                                                            for k, v in advanced.items()}})  # fmt: skip
    assert check_advanced(fine).status == "ok"


@pytest.mark.slow
def test_the_job_refuses_list_items_that_read_as_options(train) -> None:
    with pytest.raises(train.JobError, match="none of which starts with '-'"):
        train.parse_args(["--method=sft", '--lora_target_modules=["q_proj","--hub_model_id=x"]'])
    *_, model_args, _ = train.parse_args(["--method=sft", '--lora_target_modules=["q_proj","v_proj"]'])
    assert model_args.lora_target_modules == ["q_proj", "v_proj"]
