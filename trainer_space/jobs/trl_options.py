"""The TRL options the Train tab's "Advanced" JSON may set: each typed against the TRL field it sets.

The Space does not install TRL, so this is a static table: option name -> for each method whose config has it,
its kind (bool, int, float, str, enum, list), the values an enum or a list takes, and the package a value needs
in the job's environment. `tests/test_trl_options.py` checks every entry against TRL's real dataclasses
(`SFTConfig`, ..., `ModelConfig`) and train.py's own arguments, so the table cannot drift from TRL unnoticed.

Values are checked and normalised here (`parse_option`), then sent to the job as single `--name=value`
arguments (a list as one JSON array, which train.py spreads): no value can ever be read as another option.
Options the app sets itself (the output repo, the token, pushing, the method, model, dataset, hub strategy and
every option that is a config field of its own) are refused with the field to use instead (`RESERVED`).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Literal

from ..catalog import METHOD_NAMES, METHODS
from ..validation import finite_number, parse_bool, whole_number

Kind = Literal["bool", "int", "float", "str", "enum", "list"]
MAX_TEXT = 500
MAX_ITEMS = 64


@dataclass(frozen=True)
class TrlOption:
    """One option as one method's config declares it."""

    kind: Kind
    source: Literal["config", "model", "script"] = "config"  # the method's TRL config, ModelConfig, or train.py's own
    choices: tuple[str, ...] = ()  # enum values; for a list, the values its items take (empty: any)
    item: Literal["str", "int", "float"] = "str"  # a list's items
    needs: tuple[tuple[Any, str], ...] = ()  # (value, package): a value the job can honour only with that package


ALL = METHOD_NAMES
NO_GRPO = tuple(m for m in METHOD_NAMES if m != "grpo")
REFERENCE = ("dpo", "kto", "grpo")  # methods with a reference model (GRPO: when beta > 0)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt")  # fmt: skip
# optimizers the job's environment runs (bitsandbytes is installed; galore, torchao, lomo... are not)
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop", "adamw_bnb_8bit",
              "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "lion_8bit", "lion_32bit", "paged_lion_8bit",
              "paged_lion_32bit")  # fmt: skip
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")  # fmt: skip
GRPO_LOSSES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")


def _opt(methods: tuple[str, ...], kind: Kind, **kw: Any) -> dict[str, TrlOption]:
    return dict.fromkeys(methods, TrlOption(kind, **kw))


# name -> {method: the option as that method's config declares it}
ADVANCED_OPTIONS: dict[str, dict[str, TrlOption]] = {
    # optimisation and schedule (transformers' TrainingArguments, shared by every TRL config)
    "lr_scheduler_type": _opt(ALL, "enum", choices=SCHEDULERS),
    "warmup_steps": _opt(ALL, "float"),  # steps, or a share of the steps when below 1
    "weight_decay": _opt(ALL, "float"),
    "max_grad_norm": _opt(ALL, "float"),
    "adam_beta1": _opt(ALL, "float"),
    "adam_beta2": _opt(ALL, "float"),
    "adam_epsilon": _opt(ALL, "float"),
    "optim": _opt(ALL, "enum", choices=OPTIMIZERS),
    "label_smoothing_factor": _opt(ALL, "float"),
    "neftune_noise_alpha": _opt(ALL, "float"),
    "seed": _opt(ALL, "int"),
    "data_seed": _opt(ALL, "int"),
    "logging_steps": _opt(ALL, "float"),
    "save_steps": _opt(ALL, "float"),
    "save_total_limit": _opt(ALL, "int"),
    "eval_steps": _opt(ALL, "float"),
    "per_device_eval_batch_size": _opt(ALL, "int"),
    "dataloader_num_workers": _opt(ALL, "int"),
    "ddp_find_unused_parameters": _opt(ALL, "bool"),
    "average_tokens_across_devices": _opt(ALL, "bool"),
    "torch_compile": _opt(ALL, "bool"),
    "run_name": _opt(ALL, "str"),
    # the model (TRL's ModelConfig)
    "dtype": _opt(ALL, "enum", source="model", choices=("auto", "bfloat16", "float16", "float32")),
    "attn_implementation": _opt(
        ALL,
        "enum",
        source="model",
        choices=("eager", "sdpa", "flex_attention", "flash_attention_2"),
        needs=(("flash_attention_2", "flash-attn"),),
    ),
    "model_revision": _opt(ALL, "str", source="model"),
    "use_rslora": _opt(ALL, "bool", source="model"),
    "use_dora": _opt(ALL, "bool", source="model"),
    "lora_target_modules": _opt(ALL, "list", source="model"),
    "lora_modules_to_save": _opt(ALL, "list", source="model"),
    "bnb_4bit_quant_type": _opt(ALL, "enum", source="model", choices=("fp4", "nf4")),
    "use_bnb_nested_quant": _opt(ALL, "bool", source="model"),
    # data handling and losses, per method
    "dataset_num_proc": _opt(NO_GRPO, "int"),
    "activation_offloading": _opt(NO_GRPO, "bool"),
    "disable_dropout": _opt(("dpo", "grpo", "reward", "kto"), "bool"),
    "padding_free": _opt(("sft", "dpo"), "bool"),
    "chat_template_path": _opt(("sft", "reward"), "str"),
    "eos_token": _opt(("sft", "reward"), "str"),
    "shuffle_dataset": _opt(("sft", "grpo"), "bool"),
    "packing_strategy": _opt(("sft",), "enum", choices=("bfd", "bfd_split", "wrapped")),
    "completion_only_loss": _opt(("sft",), "bool"),
    "assistant_only_loss": _opt(("sft",), "bool"),
    "center_rewards_coefficient": _opt(("reward",), "float"),
    "beta": _opt(REFERENCE, "float"),
    "loss_type": {
        **_opt(("sft",), "enum", choices=("nll", "dft", "chunked_nll")),
        **_opt(("dpo",), "list", choices=DPO_LOSSES),
        **_opt(("kto",), "enum", choices=("kto", "apo_zero_unpaired")),
        **_opt(("grpo",), "enum", choices=GRPO_LOSSES),
    },
    "precompute_ref_log_probs": _opt(("dpo", "kto"), "bool"),
    "sync_ref_model": _opt(REFERENCE, "bool"),
    "ref_model_mixup_alpha": _opt(REFERENCE, "float"),
    "ref_model_sync_steps": _opt(REFERENCE, "int"),
    "loss_weights": _opt(("dpo",), "list", item="float"),
    "label_smoothing": _opt(("dpo",), "float"),
    "use_weighting": _opt(("dpo",), "bool"),
    "f_divergence_type": _opt(
        ("dpo",), "enum", choices=("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
    ),
    "f_alpha_divergence_coef": _opt(("dpo",), "float"),
    "ld_alpha": _opt(("dpo",), "float"),
    "discopop_tau": _opt(("dpo",), "float"),
    "desirable_weight": _opt(("kto",), "float"),
    "undesirable_weight": _opt(("kto",), "float"),
    # GRPO: generation and the policy loss
    "temperature": _opt(("grpo",), "float"),
    "top_p": _opt(("grpo",), "float"),
    "top_k": _opt(("grpo",), "int"),
    "min_p": _opt(("grpo",), "float"),
    "repetition_penalty": _opt(("grpo",), "float"),
    "num_iterations": _opt(("grpo",), "int"),
    "epsilon": _opt(("grpo",), "float"),
    "epsilon_high": _opt(("grpo",), "float"),
    "delta": _opt(("grpo",), "float"),
    "scale_rewards": _opt(("grpo",), "enum", choices=("group", "batch", "none")),
    "importance_sampling_level": _opt(("grpo",), "enum", choices=("token", "sequence")),
    "multi_objective_aggregation": _opt(("grpo",), "enum", choices=("sum_then_normalize", "normalize_then_sum")),
    "reward_weights": _opt(("grpo",), "list", item="float"),
    "mask_truncated_completions": _opt(("grpo",), "bool"),
    "top_entropy_quantile": _opt(("grpo",), "float"),
    "steps_per_generation": _opt(("grpo",), "int"),
    "generation_batch_size": _opt(("grpo",), "int"),
    "cast_lm_head_to_fp32": _opt(("grpo",), "bool"),
    "log_completions": _opt(("grpo",), "bool"),
    "num_completions_to_print": _opt(("grpo",), "int"),
    "use_vllm": _opt(("grpo",), "bool", needs=((True, "vllm"),)),
    "vllm_mode": _opt(("grpo",), "enum", choices=("server", "colocate")),
    # train.py's own
    "num_sample_generations": _opt(ALL, "int", source="script"),
    "max_eval_samples": _opt(ALL, "int", source="script"),
}

# Options the app sets itself, and what to use instead: an "advanced" override would contradict the checks
_FIELD = "a field of its own: set '{}'"
RESERVED: dict[str, str] = {
    "method": _FIELD.format("method"),
    "model_name_or_path": _FIELD.format("model"),
    "dataset_name": _FIELD.format("dataset"),
    "dataset_config": _FIELD.format("dataset_config"),
    "dataset_train_split": _FIELD.format("split"),
    "dataset_test_split": "the job evaluates on a 'test' split when there is one, else on 'eval_split_fraction'",
    "dataset_mapping": _FIELD.format("mapping"),
    "hub_model_id": "the output repo: set 'output_repo'",
    "hub_token": "your sign-in's token reaches the job only as its HF_TOKEN secret",
    "push_to_hub": "always true: checkpoints and the model are pushed to the output repo, so nothing is lost",
    "hub_strategy": "always 'checkpoint': the last checkpoint is pushed at every save, so a killed job can resume",
    "hub_private_repo": _FIELD.format("private"),
    "hub_always_push": "set by the job",
    "output_dir": "the job's own folder",
    "config": "the app passes every option itself",
    "report_to": "always Trackio: set 'trackio_space' and 'trackio_project'",
    "trackio_space_id": _FIELD.format("trackio_space"),
    "project": _FIELD.format("trackio_project"),
    "peft_mode": _FIELD.format("peft"),
    "use_peft": _FIELD.format("peft"),
    "load_in_4bit": _FIELD.format("peft") + " (qlora)",
    "load_in_8bit": "not offered: use 'peft': 'qlora' (4-bit)",
    "resume_from_hub": _FIELD.format("resume_from_hub"),
    "resume_from_checkpoint": "set 'resume_from_hub' to resume from the output repo's last checkpoint",
    "resume_from_dir": "set by the app when you continue a job on this machine ('continues', or Continue in My jobs)",
    "max_train_samples": _FIELD.format("quick_test"),
    "learning_rate": _FIELD.format("learning_rate"),
    "num_train_epochs": _FIELD.format("num_train_epochs"),
    "max_steps": _FIELD.format("max_steps"),
    "per_device_train_batch_size": _FIELD.format("per_device_train_batch_size"),
    "gradient_accumulation_steps": _FIELD.format("gradient_accumulation_steps"),
    "max_length": _FIELD.format("max_length"),
    "gradient_checkpointing": _FIELD.format("gradient_checkpointing"),
    "activation_checkpointing": _FIELD.format("gradient_checkpointing"),
    "packing": _FIELD.format("packing"),
    "use_liger_kernel": _FIELD.format("use_liger_kernel"),
    "lora_r": _FIELD.format("lora_r"),
    "lora_alpha": _FIELD.format("lora_alpha"),
    "lora_dropout": _FIELD.format("lora_dropout"),
    "eval_split_fraction": _FIELD.format("eval_split_fraction"),
    "reward_funcs": _FIELD.format("reward_funcs"),
    "num_generations": _FIELD.format("num_generations"),
    "max_completion_length": _FIELD.format("max_completion_length"),
    "fsdp": _FIELD.format("fsdp"),
    "compare": _FIELD.format("compare"),
    "compare_prompts": _FIELD.format("compare_prompts"),
    "bf16": "picked by the job for its GPU (bf16 from Ampere on, fp16 on T4)",
    "fp16": "picked by the job for its GPU (bf16 from Ampere on, fp16 on T4)",
}


def _int(value: Any) -> int:
    try:
        return whole_number(value, -(2**63), 2**63 - 1)
    except ValueError:
        raise ValueError("must be a whole number") from None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(f"must be text of 1 to {MAX_TEXT} printable characters")
    return value


def _enum(value: Any, choices: tuple[str, ...]) -> str:
    text = value.strip() if isinstance(value, str) else None
    found = next((c for c in choices if text is not None and c.lower() == text.lower()), None)
    if found is None:
        raise ValueError(f"must be one of: {', '.join(choices)}")
    return found


_SCALARS = {"int": _int, "float": finite_number, "str": _text}


def _list(value: Any, spec: TrlOption) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not 1 <= len(items) <= MAX_ITEMS:
        raise ValueError(f"must be a list of 1 to {MAX_ITEMS} values")
    out = [_enum(i, spec.choices) if spec.choices else _SCALARS[spec.item](i) for i in items]
    if any(isinstance(i, str) and i.startswith("-") for i in out):
        raise ValueError("cannot hold a value starting with '-'")
    return out


def coerce(spec: TrlOption, value: Any) -> Any:
    """The value as the option's type (ValueError saying what it must be)."""
    if spec.kind == "bool":
        return parse_bool(value)
    if spec.kind == "enum":
        return _enum(value, spec.choices)
    if spec.kind == "list":
        return _list(value, spec)
    return _SCALARS[spec.kind](value)


def parse_option(method: str, name: Any, value: Any) -> Any:
    """`value` checked and normalised for option `name` of `method`; ValueError naming the problem and the fix."""
    if not isinstance(name, str) or not name:
        raise ValueError("option names are text")
    if name in RESERVED:
        raise ValueError(f"cannot set '{name}': {RESERVED[name]}")
    by_method = ADVANCED_OPTIONS.get(name)
    if by_method is None:
        close = difflib.get_close_matches(name, [*ADVANCED_OPTIONS, *RESERVED], n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ValueError(f"cannot set '{name[:64]}': not a TRL option the app passes{hint}")
    spec = by_method.get(method)
    if spec is None:
        owners = ", ".join(METHODS[m].title for m in by_method)
        raise ValueError(f"'{name}' is not an option of {METHODS[method].title} (it is one of {owners})")
    try:
        return coerce(spec, value)
    except ValueError as err:
        raise ValueError(f"'{name}' {err}") from None


def unmet_needs(method: str, options: dict[str, Any], installed: set[str]) -> list[tuple[str, Any, str]]:
    """(option, value, package) for each option value the job's environment cannot honour."""
    out = []
    for name, value in options.items():
        spec = ADVANCED_OPTIONS.get(name, {}).get(method)
        for needed_value, package in spec.needs if spec else ():
            if value == needed_value and package not in installed:
                out.append((name, value, package))
    return out


def as_argument(name: str, value: Any) -> str:
    """One `--name=value` argument: true/false, numbers as written, a list as one JSON array (train.py spreads it)."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, list):
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = str(value)
    return f"--{name}={text}"
