"""Speed settings (packing, attention kernel, Liger, gradient checkpointing) and the auto settings: the rules shared
with the job, the auto rule, and what each changes in the estimate (memory and time, term by term)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trainer_space.catalog import auto_settings, packed_rows
from trainer_space.estimate.model import (
    EstimateInputs,
    estimate_flavor,
    estimate_from_facts,
    memory_breakdown,
    time_breakdown,
)
from trainer_space.estimate.model_facts import facts_from_config
from trainer_space.estimate.speed_rules import choose_speed, model_hazards, packed_micro_batch
from trainer_space.hub.hardware import FALLBACK_FLAVORS, get_flavor

QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "tie_word_embeddings": True, "max_position_embeddings": 32768,
}  # fmt: skip
# Qwen3-Next and Qwen3.5: hybrid layers, 3 of 4 with linear attention (Gated DeltaNet), from their config.json
QWEN3_NEXT = {
    **QWEN25_05B, "model_type": "qwen3_next", "architectures": ["Qwen3NextForCausalLM"],
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "full_attention"] * 6,
    "linear_conv_kernel_dim": 4,
}  # fmt: skip
QWEN35_VL = {  # Qwen3.5: a vision tower beside a hybrid text model
    "model_type": "qwen3_5", "vision_config": {"depth": 2, "hidden_size": 64},
    "text_config": {**QWEN25_05B, "model_type": "qwen3_5_text", "layer_types": ["linear_attention", "full_attention"]},
}  # fmt: skip
LLAVA = {"model_type": "llava", "vision_config": {"hidden_size": 64}, "text_config": QWEN25_05B}
GEMMA2 = {**QWEN25_05B, "model_type": "gemma2", "layer_types": ["sliding_attention", "full_attention"] * 12}
FACTS = facts_from_config("Qwen/Qwen2.5-0.5B", QWEN25_05B, safetensors_total=494_032_768)
A10G, L4, T4 = get_flavor("a10g-small"), get_flavor("l4x1"), get_flavor("t4-small")


# ----------------------------------------------------------------------------- which models are unsafe
@pytest.mark.parametrize(
    ("config", "unsafe", "needle"),
    [
        (QWEN25_05B, set(), ""),
        (GEMMA2, set(), ""),  # sliding-window attention is attention: packing is fine
        (QWEN3_NEXT, {"packing"}, "linear attention or recurrent layers (layer types linear_attention)"),
        (QWEN35_VL, {"packing", "attention", "liger"}, "linear_attention"),
        (LLAVA, {"packing", "attention", "liger"}, "a vision or audio tower (vision_config)"),
        ({**QWEN25_05B, "model_type": "mamba"}, {"packing"}, "model type mamba"),
        ({**QWEN25_05B, "model_type": "nemotron_h", "hybrid_override_pattern": "M-M*-"}, {"packing"}, "nemotron_h"),
        ({**QWEN25_05B, "model_type": "falcon", "alibi": True}, {"packing"}, "ALiBi"),
        ({**QWEN25_05B, "auto_map": {"AutoModelForCausalLM": "m.M"}}, {"packing", "attention"}, "custom modelling"),
    ],
)
def test_unsafe_settings_are_read_from_config_json(config: dict, unsafe: set[str], needle: str) -> None:
    hazards = model_hazards(config)
    assert set(hazards) == unsafe
    assert needle in " ".join(hazards.values())


def test_model_facts_carry_the_hazards() -> None:
    assert facts_from_config("Qwen/Qwen3-Next", QWEN3_NEXT).hazards.keys() == {"packing"}
    assert FACTS.hazards == {}


# ----------------------------------------------------------------------------- what the job turns on
@pytest.mark.parametrize("method", ["dpo", "grpo", "reward", "kto"])
def test_only_sft_packs(method: str) -> None:
    choices = choose_speed(method, gpu=True, capability=90, hazards={})
    assert not choices["packing"].on and f"not {method}" in choices["packing"].reason
    assert choices["liger"].on  # Liger applies to every method on a CUDA GPU


def test_sft_on_an_ampere_gpu_packs_with_the_flash_kernel_and_liger() -> None:
    choices = choose_speed("sft", gpu=True, capability=86, hazards={})
    assert choices["packing"].on and choices["packing"].value == "bfd"
    assert choices["attention"].on and choices["attention"].value == "kernels-community/flash-attn2"
    assert choices["liger"].on
    assert packed_micro_batch(4, 4, choices) == (4, 4)  # varlen kernel: each document attends to itself only


@pytest.mark.parametrize(("gpu", "capability", "half", "why"), [
    (False, None, False, "no CUDA GPU"), (True, 75, True, "older than Ampere"), (True, 90, False, "not 16-bit"),
])  # fmt: skip
def test_without_a_flash_kernel_packed_rows_go_one_per_micro_batch(gpu, capability, half, why) -> None:
    choices = choose_speed("sft", gpu=gpu, capability=capability, half_precision=half, hazards={})
    assert choices["packing"].on and not choices["attention"].on and why in choices["attention"].reason
    assert packed_micro_batch(4, 4, choices) == (1, 16)  # the same 16 rows per optimizer step
    assert choices["liger"].on == gpu
    if not gpu:
        assert "no CUDA GPU" in choices["liger"].reason


def test_unsafe_models_and_off_keep_the_padded_path() -> None:
    linear = choose_speed("sft", gpu=True, capability=90, hazards=model_hazards(QWEN3_NEXT))
    assert not linear["packing"].on and "unsafe for this model: linear attention" in linear["packing"].reason
    assert linear["liger"].on  # Liger supports Qwen3-Next; only packing mixes samples there
    vision = choose_speed("sft", gpu=True, capability=90, hazards=model_hazards(LLAVA))
    assert not any(c.on for c in vision.values())
    off = choose_speed("sft", packing="off", liger="off", gpu=True, capability=90, hazards={})
    assert not any(c.on for c in off.values()) and off["packing"].reason.startswith("turned off")


# ----------------------------------------------------------------------------- the auto rule
@pytest.mark.parametrize(("rows", "epochs"), [(600, 3), (20, 5), (10, 10), (40_000, 1), (5_000, 3), (10_000, 2)])
def test_auto_epochs_follow_the_data_size(rows: int, epochs: int) -> None:
    auto = auto_settings("sft", "lora", params_b=0.5, rows=rows, mean_tokens=300, max_length=1024)
    assert auto.num_train_epochs == epochs
    assert f"auto: {epochs} epoch{'s' if epochs != 1 else ''} because {rows:,} rows" in auto.reasons


def test_auto_rule_per_method_size_and_data() -> None:
    sft = auto_settings("sft", "lora", params_b=0.5, rows=600, mean_tokens=300, max_length=1024, packed=True)
    assert packed_rows(600, 300, 1024) == 186  # 600 examples of ~300 tokens fill 186 rows of 1024
    # 16 examples per step (about 100 steps over 600 x 3), in packed rows: 16 x 300 tokens fill 5 rows of 1024
    assert (sft.per_device_train_batch_size, sft.gradient_accumulation_steps, sft.learning_rate) == (5, 1, 2e-4)
    assert "5 packed rows hold about 16 examples: about 113 steps over 600 rows x 3" in sft.reasons[1]
    assert auto_settings("dpo", "lora", params_b=0.5, rows=600, mean_tokens=300, max_length=1024).num_train_epochs == 3
    assert (
        auto_settings("reward", "full", params_b=0.5, rows=600, mean_tokens=300, max_length=1024).num_train_epochs == 1
    )
    big = auto_settings("sft", "qlora", params_b=70, rows=100_000, mean_tokens=800, max_length=2048)
    assert big.per_device_train_batch_size == 1 and big.learning_rate == 1e-4 and "halved" in big.reasons[-1]
    assert big.per_device_train_batch_size * big.gradient_accumulation_steps == 64
    grpo = auto_settings("grpo", "lora", params_b=1.5, rows=5000, mean_tokens=100, max_length=1024, num_generations=8)
    assert (grpo.per_device_train_batch_size * grpo.gradient_accumulation_steps) % 8 == 0
    kto = auto_settings("kto", "lora", params_b=30, rows=None, mean_tokens=None, max_length=4096)
    assert kto.per_device_train_batch_size >= 2 and kto.num_train_epochs == 1  # KTO's KL term needs 2 rows


def test_given_values_are_kept() -> None:
    auto = auto_settings("sft", "lora", params_b=0.5, rows=600, mean_tokens=300, max_length=1024,
                         num_train_epochs=2, per_device_train_batch_size=3, gradient_accumulation_steps=5,
                         learning_rate=1e-5)  # fmt: skip
    assert (auto.num_train_epochs, auto.per_device_train_batch_size, auto.gradient_accumulation_steps) == (2, 3, 5)
    assert auto.learning_rate == 1e-5 and auto.reasons == ()


# ----------------------------------------------------------------------------- the estimate, term by term
VARIED = EstimateInputs(method="sft", peft="lora", num_rows=10_000, mean_tokens=460, p95_tokens=856, max_length=1024,
                        per_device_train_batch_size=4, gradient_accumulation_steps=4)  # fmt: skip


def test_packing_removes_the_padding_from_the_time() -> None:
    padded = time_breakdown(FACTS, VARIED, A10G)
    packed = time_breakdown(FACTS, replace(VARIED, packed=True, flash=True), A10G)
    assert packed.tokens == pytest.approx(padded.tokens, rel=0.01)  # the same documents
    # padded rows are 460 + (856 - 460) x 3/4 = 757 wide: 39% of the computed tokens are padding
    assert padded.train / packed.train == pytest.approx(757 / 460, rel=0.08)
    assert packed.steps < padded.steps / 2  # a packed row holds about 2 documents of 460 tokens


def test_padding_follows_the_measured_lengths() -> None:
    uniform = time_breakdown(FACTS, replace(VARIED, p95_tokens=None), A10G)
    skewed = time_breakdown(FACTS, VARIED, A10G)
    assert skewed.train > uniform.train  # 15% assumed vs 65% from the length distribution


def test_liger_lowers_mlp_activations_and_time() -> None:
    base = replace(VARIED, gradient_checkpointing=False)
    plain, liger = memory_breakdown(FACTS, base), memory_breakdown(FACTS, replace(base, liger=True))
    a = FACTS.arch
    saved = 4 * 1024 * a.num_layers * 2 * a.intermediate_size  # 2 bytes of I per token per layer, 4 x 1024 tokens
    assert plain.activations - liger.activations == pytest.approx(saved, rel=0.01)
    assert time_breakdown(FACTS, replace(base, liger=True), A10G).train < time_breakdown(FACTS, base, A10G).train


def test_packed_rows_under_sdpa_hold_a_mask() -> None:
    sdpa = memory_breakdown(FACTS, replace(VARIED, packed=True, per_device_train_batch_size=1))
    flash = memory_breakdown(FACTS, replace(VARIED, packed=True, flash=True, per_device_train_batch_size=1))
    assert sdpa.mask == 1024**2 * 3 and flash.mask == 0


def test_auto_checkpointing_is_off_where_it_fits_and_on_where_it_must() -> None:
    auto = replace(VARIED, gradient_checkpointing="auto")
    small = estimate_flavor(FACTS, auto, A10G)
    assert small.gradient_checkpointing is False  # fits in 24 GB without: a quarter less compute
    assert small.time.train < estimate_flavor(FACTS, replace(VARIED, gradient_checkpointing=True), A10G).time.train
    long = replace(auto, peft="full", max_length=8192, per_device_train_batch_size=8)
    assert estimate_flavor(FACTS, long, A10G).gradient_checkpointing is True  # needed to fit (or to come closest)


def test_the_flavor_decides_the_speed_settings_and_the_recommendation_follows() -> None:
    job = replace(VARIED, packing="auto", use_liger_kernel="auto", gradient_checkpointing="auto")
    on_l4, on_t4 = estimate_flavor(FACTS, job, L4), estimate_flavor(FACTS, job, T4)
    assert on_l4.speed["attention"].on and on_l4.inputs.liger and on_l4.inputs.per_device_train_batch_size == 4
    assert not on_t4.speed["attention"].on and on_t4.inputs.per_device_train_batch_size == 1
    fast = estimate_from_facts(FACTS, job, FALLBACK_FLAVORS)
    plain = estimate_from_facts(FACTS, replace(job, packing="off", use_liger_kernel="off", gradient_checkpointing=True),
                                FALLBACK_FLAVORS)  # fmt: skip
    assert fast.best.hours < plain.best.hours * 0.75 and fast.timeout_s <= plain.timeout_s
    linear = facts_from_config("Qwen/Qwen3-Next-like", QWEN3_NEXT, safetensors_total=494_032_768)
    guarded = estimate_flavor(linear, job, L4)
    assert not guarded.inputs.packed and "linear attention" in guarded.speed["packing"].reason


def test_auto_values_are_resolved_by_the_estimate() -> None:
    job = replace(VARIED, num_train_epochs=None, per_device_train_batch_size=None, gradient_accumulation_steps=None,
                  num_rows=600, packing="auto")  # fmt: skip
    result = estimate_from_facts(FACTS, job, FALLBACK_FLAVORS)
    assert result.inputs.num_train_epochs == 3 and result.auto.reasons[0] == "auto: 3 epochs because 600 rows"
    assert result.inputs.per_device_train_batch_size == 8 and result.inputs.learning_rate == 2e-4  # 16 x 460 tokens
