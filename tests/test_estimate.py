"""The memory / time / cost model against published rules of thumb, and the /estimate API end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.test_model_facts import LLAMA2_7B, LLAMA31_8B, QWEN25_05B, QWEN25_7B
from trainer_space.catalog import MIN_TIMEOUT_S, submit_timeout_s
from trainer_space.errors import InvalidInput
from trainer_space.estimate import model_facts
from trainer_space.estimate.model import (
    EstimateInputs,
    estimate_from_facts,
    flops_per_token,
    memory_breakdown,
    recommend,
    time_breakdown,
)
from trainer_space.estimate.model_facts import facts_from_config
from trainer_space.hub import hardware
from trainer_space.hub.hardware import FALLBACK_FLAVORS, get_flavor
from trainer_space.hub.session import HubSession
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.preflight import estimate_config
from trainer_space.validation import format_timeout


def timeout_for(seconds: float) -> tuple[int, str]:
    s = submit_timeout_s(seconds)
    return s, format_timeout(s)


def estimate(*, model: str, num_rows: int | None = None, **fields) -> object:
    """The service the Estimate tab and /estimate call: a config, estimated with an anonymous session."""
    cfg = TrainingConfig.from_dict({"model": model, **fields}, required=("model",))
    return estimate_config(HubSession(None), cfg, num_rows=num_rows)


ROOT = Path(__file__).resolve().parents[1]
LLAMA70 = {**LLAMA31_8B, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
           "num_attention_heads": 64}  # meta-llama/Llama-3.1-70B  # fmt: skip
QWEN05 = facts_from_config("Qwen/Qwen2.5-0.5B", QWEN25_05B, safetensors_total=494_032_768)
LLAMA7 = facts_from_config("meta-llama/Llama-2-7b-hf", LLAMA2_7B, safetensors_total=6_738_415_616)
SMALL = EstimateInputs(per_device_train_batch_size=1, gradient_accumulation_steps=16, max_length=512)


def static_bytes(m) -> float:
    return m.weights + m.gradients + m.optimizer + m.adapter


# ----------------------------------------------------------------------------- rules of thumb
def test_full_fine_tuning_with_adamw_in_mixed_precision_is_16_bytes_per_param_before_activations():
    # ZeRO (Rajbhandari et al. 2020, sec. 3.1): fp32 master weights 4 + gradients 4 + Adam moments 8 = 16 bytes;
    # HF accelerate's memory calculator: "Adam ~ 4x model size" in fp32 (1x weights, 1x grads, 2x optimizer)
    m = memory_breakdown(LLAMA7, replace(SMALL, peft="full"))
    assert static_bytes(m) / LLAMA7.params == pytest.approx(16.0)
    assert m.optimizer == 2 * m.weights and m.gradients == m.weights


def test_llama_factory_7b_table_is_reproduced_within_15_percent():
    # LLaMA-Factory README "Hardware Requirement" (anchors.md): 7B -> full AMP 120 GB, pure bf16 60 GB,
    # LoRA 16 GB, QLoRA-4bit 6 GB. Their rows are the rounded rules 18x / 8x / 2x / x/2 GB plus a little
    # headroom, so they agree with their own formulas only to ~15%: that is our tolerance. Small batch
    # (1 x 512 tokens) with checkpointing, as their figures assume.
    expect = {("full", "mixed"): 120, ("full", "half"): 60, ("lora", "auto"): 16, ("qlora", "auto"): 6}
    for (peft, precision), gb in expect.items():
        peak = memory_breakdown(LLAMA7, replace(SMALL, peft=peft, precision=precision)).peak_gib
        assert peak == pytest.approx(gb, rel=0.15), (peft, precision, peak)


def test_mixed_precision_adds_the_autocast_copies_llama_factory_counts_as_18x():
    m = memory_breakdown(LLAMA7, replace(SMALL, peft="full"))
    assert (static_bytes(m) + m.autocast_copies) / LLAMA7.params == pytest.approx(18.0, rel=0.01)


def test_lora_is_about_2_bytes_per_param_plus_adapter_plus_activations():
    m = memory_breakdown(LLAMA7, replace(SMALL, peft="lora"))
    assert m.weights / LLAMA7.params == 2.0
    assert 2.0 < static_bytes(m) / LLAMA7.params < 2.2  # r=16 adapters in fp32 with AdamW: 16 bytes each
    assert m.gradients == 0 and m.optimizer == 0 and m.activations > 0


def test_qlora_is_about_half_a_byte_per_quantised_param():
    # QLoRA paper (Dettmers et al. 2023): NF4 = 4 bits + 0.127 bits of double-quantised constants
    m = memory_breakdown(LLAMA7, replace(SMALL, peft="qlora"))
    assert 0.5 <= m.weights / LLAMA7.params <= 0.65  # embeddings and head stay 16-bit
    linear_only = LLAMA7.linear_params * (4.127 / 8)
    assert m.weights - linear_only == pytest.approx(2 * (LLAMA7.params - LLAMA7.linear_params))


def test_trls_fused_lm_head_keeps_large_vocabularies_cheap():
    # Qwen2.5's 151,936-token vocabulary: 4 x 1024 tokens of plain logits would peak at 14 bytes per entry
    # (8.1 GiB, measured on CPU by bench/memory_cpu.py); TRL 1.16's chunked head holds a 4096 x 32768 tile instead
    inp = EstimateInputs(peft="lora", per_device_train_batch_size=4, max_length=1024)
    plain = memory_breakdown(QWEN05, inp, fused_lm_head=False)
    fused = memory_breakdown(QWEN05, inp)
    assert plain.logits == pytest.approx(4 * 1024 * 151936 * 14)
    tile = 4096 * 32768 * 2 + 32768 * 896 * 2
    assert fused.logits == pytest.approx(tile + 4096 * 896 * 6)  # + fp32 hidden-state gradient, cast to bf16
    # full fine-tuning also trains the (tied) head: an fp32 gradient of the whole [vocab, hidden] matrix
    full = memory_breakdown(QWEN05, replace(inp, peft="full"))
    assert full.logits - tile == pytest.approx(4096 * 896 * 4 + 151936 * 896 * 4)


def test_dpo_needs_more_than_sft_and_full_dpo_holds_a_reference_model():
    sft = memory_breakdown(QWEN05, replace(SMALL, peft="full"))
    dpo = memory_breakdown(QWEN05, replace(SMALL, peft="full", method="dpo"))
    assert dpo.peak > sft.peak
    assert dpo.reference == QWEN05.params * 4  # loaded like the policy (fp32)
    assert dpo.activations == pytest.approx(2 * sft.activations)  # chosen + rejected
    lora_dpo = memory_breakdown(QWEN05, replace(SMALL, peft="lora", method="dpo"))
    assert lora_dpo.reference == 0  # the reference is the base with the adapter disabled


def test_grpo_counts_generations_and_loads_a_reference_only_when_beta_is_positive():
    grpo = memory_breakdown(QWEN05, EstimateInputs(method="grpo", peft="lora", per_device_train_batch_size=8))
    assert grpo.generation > 0 and grpo.reference == 0  # TRL 1.16 GRPOConfig.beta defaults to 0.0
    full_kl = memory_breakdown(QWEN05, EstimateInputs(method="grpo", peft="full", beta=0.04))
    assert full_kl.reference > 0
    # the head only scores completion tokens (the app's 256 of max_length 1024): 8 x 256 = 2,048 tokens, one tile
    # smaller than the 4,096-token chunk
    assert grpo.logits == pytest.approx(2048 * 32768 * 2 + 32768 * 896 * 2 + 8 * 256 * 896 * 6)


def test_reward_models_have_no_lm_head_logits():
    m = memory_breakdown(QWEN05, replace(SMALL, method="reward", peft="full"))
    assert m.logits == 0


def test_gradient_checkpointing_reduces_activations():
    on = memory_breakdown(LLAMA7, EstimateInputs(peft="lora", gradient_checkpointing=True))
    off = memory_breakdown(LLAMA7, EstimateInputs(peft="lora", gradient_checkpointing=False))
    assert on.activations < off.activations / 4


def test_more_gpus_lower_per_gpu_memory_only_when_sharded():
    inp = replace(SMALL, peft="full")
    one = memory_breakdown(LLAMA7, inp, gpus=1)
    ddp = memory_breakdown(LLAMA7, inp, gpus=4)
    fsdp = memory_breakdown(LLAMA7, replace(inp, fsdp=True), gpus=4)
    assert ddp.peak >= one.peak  # DDP: a full replica per GPU (plus gradient buckets)
    assert fsdp.peak < one.peak / 2.5  # FSDP FULL_SHARD: states split over 4 GPUs


# ----------------------------------------------------------------------------- time
def test_flops_per_token_follow_6n_full_and_4n_lora_plus_recompute():
    head = 151936 * 896  # tied: the head multiplies through the embedding matrix
    n = QWEN05.params - head  # the decoder layers
    base = replace(SMALL, gradient_checkpointing=False)
    attn = 3 * 2 * 24 * 896 * 100

    def f(**kw):
        return flops_per_token(QWEN05, replace(base, **kw), 100)

    # Kaplan et al. 2020: 6N; the fused head recomputes its tile in backward (+2 x vocab x hidden)
    assert f(peft="full") == pytest.approx(6 * n + 8 * head + attn, rel=0.001)
    assert f(peft="lora") == pytest.approx(4 * n + 6 * head + attn, rel=0.001)
    assert f(peft="full", gradient_checkpointing=True) == pytest.approx(8 * n + 8 * head + attn * 4 / 3, rel=0.001)
    assert 6 * QWEN05.params <= f(peft="full") <= 7 * QWEN05.params  # the rule of thumb still holds


def test_time_scales_with_rows_and_epochs_and_shrinks_on_faster_gpus():
    inp = EstimateInputs(num_rows=10_000, mean_tokens=400)
    a10g, h200 = get_flavor("a10g-small"), get_flavor("h200")
    t1 = time_breakdown(QWEN05, inp, a10g)
    t2 = time_breakdown(QWEN05, replace(inp, num_train_epochs=2), a10g)
    t3 = time_breakdown(QWEN05, replace(inp, num_rows=20_000), a10g)
    assert t2.train == pytest.approx(2 * t1.train, rel=0.02) and t3.train == pytest.approx(2 * t1.train, rel=0.02)
    assert t1.tokens == 10_000 * 400
    assert time_breakdown(QWEN05, inp, h200).train < t1.train / 5
    assert time_breakdown(QWEN05, replace(inp, max_steps=10), a10g).steps == 10


def test_grpo_adds_generation_time():
    t = time_breakdown(QWEN05, EstimateInputs(method="grpo", num_rows=1000), get_flavor("a10g-small"))
    assert t.generation > 0 and t.tokens > 1000 * 8 * 256


def test_timeout_is_the_estimate_plus_30_percent_and_never_below_30_minutes():
    pattern = re.compile(r"^(\d+m|\d+(\.5)?h)$")
    for seconds in (60, 600, 1500, 3000, 4000, 5400, 7000, 20_000, 100_000):
        s, text = timeout_for(seconds)
        assert s >= seconds * 1.3 and s >= MIN_TIMEOUT_S and pattern.match(text), (seconds, text)
        value, unit = float(text[:-1]), text[-1]
        assert value * {"m": 60, "h": 3600}[unit] == s  # what huggingface_hub will send as timeoutSeconds
    assert timeout_for(60) == (1800, "30m")
    assert timeout_for(3600)[1] == "80m"
    assert timeout_for(3 * 3600)[1] == "4h"


# ----------------------------------------------------------------------------- recommendation
def test_the_cheapest_flavor_that_fits_is_recommended():
    result = estimate_from_facts(QWEN05, EstimateInputs(peft="lora"), FALLBACK_FLAVORS)
    fitting = [f for f in result.flavors if f.fits]
    assert fitting and result.recommended == min(fitting, key=lambda f: f.cost_usd).flavor.name
    best = result.best
    assert best.peak_gib <= 0.9 * best.flavor.vram_gb
    assert result.timeout_s >= 1.3 * best.time.total
    assert all(not f.fits for f in result.flavors if f.peak_gib > 0.9 * f.flavor.vram_gb)
    assert not any(f.flavor.gpus == 0 for f in result.flavors)  # CPU flavors are not listed
    assert recommend(()) is None


def test_nothing_fits_for_a_70b_full_fine_tune_and_settings_that_would_fit_are_suggested():
    facts = facts_from_config("meta-llama/Llama-3.1-70B", LLAMA70)
    result = estimate_from_facts(facts, EstimateInputs(peft="full"), FALLBACK_FLAVORS)
    assert result.recommended is None and result.timeout is None
    assert any("QLoRA" in s for s in result.suggestions)
    assert "Does not fit" in result.verdict()
    assert result.to_json()["notes"][-len(result.suggestions) :] == list(result.suggestions)


def test_a_7b_full_fine_tune_is_pointed_to_lora_or_fsdp():
    result = estimate_from_facts(
        facts_from_config("Qwen/Qwen2.5-7B", QWEN25_7B), EstimateInputs(peft="full"), FALLBACK_FLAVORS
    )
    text = " ".join(result.suggestions)
    assert result.recommended is None and "LoRA" in text and "FSDP" in text


def test_the_verdict_is_plain_language():
    result = estimate_from_facts(QWEN05, EstimateInputs(peft="lora"), FALLBACK_FLAVORS)
    assert re.match(r"\*\*Fits on [a-z0-9-]+\*\* \(peak [\d.]+ of [\d.]+ GB per GPU\), about .+, about \$[\d.,]+\. "
                    r"Submit with timeout \*\*\d+(m|h|\.5h)\*\*\.", result.verdict())  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("per_device_train_batch_size", -3, "Batch size"),
        ("per_device_train_batch_size", 2000, "Batch size"),
        ("max_length", 8, "max_length"),
        ("num_train_epochs", -1, "Epochs"),
        ("num_train_epochs", 101, "Epochs"),
        ("gradient_accumulation_steps", 1.5, "whole number"),
        ("method", "ppo", r"\(method\) must be one of"),
        ("peft", "dora", r"Fine-tuning \(peft\) must be one of: full, lora, qlora"),
    ],
)
def test_out_of_range_numbers_are_refused_with_a_clear_message(field, value, message):
    with pytest.raises(InvalidInput, match=message):
        TrainingConfig.from_dict({"model": "a/b", field: value}, required=("model",))


def test_to_json_has_exactly_the_api_shape():
    data = estimate_from_facts(QWEN05, EstimateInputs(), FALLBACK_FLAVORS).to_json()
    assert set(data) == {"model", "params", "tokens", "backend", "flavors", "recommended", "timeout",
                         "cheapest_jobs_flavor", "notes", "prices"}  # fmt: skip
    keys = {"flavor", "gpus", "vram_gb", "peak_vram_gb", "fits", "hours", "cost_usd", "usd_per_hour"}
    assert all(set(f) == keys for f in data["flavors"])
    json.dumps(data)


# ----------------------------------------------------------------------------- through the Hub stand-in
@pytest.fixture
def qwen_hub(hub):
    model_facts.clear_cache()
    hardware.clear_cache()
    hub.add_model(
        "Qwen/Qwen2.5-0.5B",
        files={"config.json": json.dumps(QWEN25_05B)},
        safetensors={"parameters": {"BF16": 494_032_768}, "total": 494_032_768},
    )
    hub.add_dataset("trl-lib/Capybara", {"train": [{"messages": []}] * 5}, num_rows={"train": 15_806})
    yield hub
    model_facts.clear_cache()
    hardware.clear_cache()


def test_estimate_service_reads_model_rows_and_prices_from_the_hub(qwen_hub):
    result = estimate(model="Qwen/Qwen2.5-0.5B", dataset="trl-lib/Capybara", peft="lora")
    assert result.params == 494_032_768 and result.prices_from_hub
    assert result.inputs.num_rows == 15_806
    assert any("15,806 rows" in n for n in result.notes)
    assert any("Assumed 512 tokens" in n for n in result.notes)
    assert result.recommended and result.timeout


def test_estimate_falls_back_to_the_built_in_prices_and_says_so(qwen_hub):
    qwen_hub.fail_next(500, "/api/jobs/hardware", times=100)  # one failure is retried; a lasting one falls back
    result = estimate(model="Qwen/Qwen2.5-0.5B", num_rows=1000)
    assert not result.prices_from_hub and result.flavors
    assert any("built-in table" in n for n in result.notes)


def test_bad_numbers_are_refused_before_any_hub_call(qwen_hub):
    n = len(qwen_hub.requests)
    with pytest.raises(InvalidInput, match="Batch size"):
        estimate(model="Qwen/Qwen2.5-0.5B", per_device_train_batch_size=-3)
    assert len(qwen_hub.requests) == n


def test_estimate_api_answers_fast_through_gradio_client(qwen_hub):
    import gradio as gr
    from gradio_client import Client

    from tests.hub_standin import free_port
    from trainer_space.ui import api, estimate_tab

    with gr.Blocks() as demo, gr.Tab("Estimate"):
        tab = estimate_tab.build_tab()
        gr.api(api.estimate, api_name="estimate")
    assert tab.recommended_flavor is not None and tab.timeout is not None
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        ssr_mode=False)  # fmt: skip
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        args = ("Qwen/Qwen2.5-0.5B", "trl-lib/Capybara", "sft", "lora", 1024, 1, 4, 4, True, None)
        client.predict(*args, api_name="/estimate")  # warm-up: Hub answers get cached
        start = time.perf_counter()
        data = client.predict(*args, api_name="/estimate")
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0, elapsed
        assert data["model"] == "Qwen/Qwen2.5-0.5B" and data["params"] == 494_032_768
        assert data["recommended"] in {f["flavor"] for f in data["flavors"] if f["fits"]}
        assert data["timeout"] and data["tokens"] == 15_806 * 512
        with pytest.raises(Exception, match="Batch size"):
            client.predict("Qwen/Qwen2.5-0.5B", None, "sft", "lora", 1024, 1, -3, 4, True, 100, api_name="/estimate")
    finally:
        demo.close()


def test_the_estimate_path_never_imports_torch(qwen_hub):
    code = textwrap.dedent(
        """
        import sys
        from trainer_space.hub.session import HubSession
        from trainer_space.jobs.config import TrainingConfig
        from trainer_space.jobs.preflight import estimate_config
        cfg = TrainingConfig.from_dict(
            {"model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara", "method": "dpo", "peft": "qlora"}
        )
        result = estimate_config(HubSession(None), cfg)
        assert result.params == 494032768, result.params
        print("TORCH", "torch" in sys.modules, "TRANSFORMERS", "transformers" in sys.modules)
        """
    )
    env = {**os.environ}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TORCH False TRANSFORMERS False" in out.stdout


def test_the_tab_prefills_from_the_dataset_tab_and_renders_table_and_verdict(qwen_hub):
    from types import SimpleNamespace

    import gradio as gr

    from trainer_space.ui import estimate_tab

    with gr.Blocks():
        data = SimpleNamespace(
            dataset=gr.Textbox(), split=gr.Textbox(), method=gr.Dropdown(["sft"]), model=gr.Textbox(),
            max_length=gr.Number(), inspection=gr.State(),
        )  # fmt: skip
        tab = estimate_tab.build_tab(dataset_tab=data)
    assert tab.table is not None and tab.verdict is not None
    # the inspection's row count (not its preview rows) and a measured mean, when statistics carry one
    assert estimate_tab.from_stats(SimpleNamespace(num_rows=1234, rows=[{"a": 1}]))[0] == 1234
    assert estimate_tab.from_stats({"num_rows": None, "rows": [{}], "mean_tokens": 300.5})[1] == 300.5

    form = {"backend": "hf-jobs", "model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara", "split": "train", "method": "sft",
            "peft": "lora", "max_length": 1024, "num_train_epochs": 1, "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 4, "gradient_checkpointing": True, "fsdp": False}  # fmt: skip
    values = {tab.config_fields[k]: v for k, v in form.items()} | {tab.num_rows: None, tab.mean_tokens: 300}
    out = tab.on_estimate(values)
    table, verdict, info = out[tab.table], out[tab.verdict], out[tab.info]
    flavor, timeout = out[tab.recommended_flavor], out[tab.timeout]
    assert list(table.columns) == estimate_tab.COLUMNS and len(table) > 3
    assert table["Fits"].isin(["✓", "✗"]).all() and table["Flavor"].str.endswith("★").sum() == 1
    assert verdict.startswith(f"**Fits on {flavor}**") and timeout in verdict
    assert "15,806 rows" in verdict and info["memory_gb_per_gpu"]["peak"] > 0


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 420])
def test_the_estimate_table_shows_flavor_fit_cost_and_hours_first_on_any_screen(qwen_hub, app_url, page, width):
    from tests.conftest import SCREENSHOTS
    from tests.test_jobs_tab import BROKEN_WORDS_JS, headers_in_view, open_tab

    page.set_viewport_size({"width": width, "height": 900})
    page.goto(app_url)
    open_tab(page, "Estimate")
    page.get_by_role("button", name="Estimate", exact=True).click()
    page.locator("#estimate-table").get_by_text("★").first.wait_for(timeout=20_000)
    assert headers_in_view(page, "#estimate-table", width)[:4] == ["Flavor", "Fits", "Cost ($)", "Hours"]
    assert page.evaluate(BROKEN_WORDS_JS, "#estimate-table th, #estimate-table td") == []
    # the chosen method is readable in its dropdown (not cut to "SFT (supervised fi")
    clipped = "(e) => e.scrollWidth > e.clientWidth + 1"
    assert not page.locator("#estimate-method input").first.evaluate(clipped)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    name = "estimate-table" + ("" if width > 700 else "-phone") + ".png"
    page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=True)
