"""job_templates/train.py's speed settings in the job's real TRL config (issue 24).

Run on CPU with tiny models built here: SFT packs (BFD, padding-free) with SDPA one packed row per micro-batch and
keeps Liger off (no CUDA GPU), other methods keep padded batches, a linear-attention model (a tiny Qwen3-Next) and a
model with a vision tower keep the padded path; on a (pretended) Ampere GPU the flash kernel and Liger are chosen,
and a kernel that cannot load falls back to SDPA. The configs read are the ones the trainer got: `training_args.bin`
of a real run, or `final_config` (TRL rebuilds its config from the job's arguments plus what the job changed).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.templates.conftest import FAST_ARGS
from tests.templates.test_train import train


def _trained_args(out: Path):
    import torch

    return torch.load(out / "training_args.bin", weights_only=False)


def _final(argv: list[str]):
    """The job's config as the trainer gets it, without training: parse, decide the speed settings, final_config."""
    script_args, training_args, model_args, explicit = train.parse_args(argv)
    parsed = dict(vars(training_args))
    choices = train.use_speed_settings(script_args, training_args, model_args, explicit)
    final = train.final_config(argv, parsed, training_args, script_args.method, explicit, 16)
    return final, model_args, choices


def _argv(model: Path, dataset: Path, *extra: str) -> list[str]:
    return [*FAST_ARGS, "--model_name_or_path", str(model), "--dataset_name", str(dataset), "--output_dir",
            "/tmp/unused-out", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_linear_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3-Next: one Gated DeltaNet (linear attention) layer, one full-attention layer, 2 experts."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tests.tiny_model import build_tiny_tokenizer

    path = tmp_path_factory.mktemp("models") / "tiny-next"
    tokenizer = build_tiny_tokenizer(path)
    config = AutoConfig.for_model(
        "qwen3_next", vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, linear_num_value_heads=4, linear_num_key_heads=2,
        linear_key_head_dim=16, linear_value_head_dim=16, num_experts=2, num_experts_per_tok=1,
        moe_intermediate_size=32, shared_expert_intermediate_size=32, max_position_embeddings=512,
        layer_types=["linear_attention", "full_attention"], eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    return path


@pytest.mark.slow
def test_sft_packs_padding_free_in_the_trainers_real_config(run_train, tiny_model, datasets_dir, tmp_path) -> None:
    out = tmp_path / "out"
    proc = run_train("--model_name_or_path", str(tiny_model), "--dataset_name", str(datasets_dir / "messages"),
                     "--output_dir", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    args = _trained_args(out)
    assert args.packing and args.padding_free and args.packing_strategy == "bfd"
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (1, 2)  # SDPA: one row each
    assert args.per_device_eval_batch_size == 1  # evaluation packs too: one flattened row (one mask) per batch
    assert args.use_liger_kernel is False and args.gradient_checkpointing is True  # CPU; TRL's default (not told)
    log = proc.stdout
    assert "batch 2 x 1 accumulation -> 1 x 2 (the same 2 rows per optimizer step)" in log
    assert "speed: packing on: BFD packing, padding-free" in log
    assert "Liger kernels off: no CUDA GPU" in log and "chunked loss on" in log
    state = json.loads((out / "trainer_state.json").read_text())
    assert all(e["loss"] > 0 for e in state["log_history"] if "loss" in e)


@pytest.mark.slow
def test_a_linear_attention_model_trains_on_the_padded_path(run_train, tiny_linear_model, datasets_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_train("--model_name_or_path", str(tiny_linear_model), "--dataset_name", str(datasets_dir / "messages"),
                     "--output_dir", str(out), "--num_sample_generations", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    args = _trained_args(out)
    assert not args.packing and not args.padding_free and args.per_device_train_batch_size == 2
    assert "packing off: unsafe for this model: linear attention or recurrent layers (layer types " in proc.stdout


@pytest.mark.parametrize(
    ("method", "dataset", "extra"),
    [
        ("dpo", "preference", []),
        ("kto", "unpaired", ["--dataset_mapping", '{"transforms": ["label_to_bool"]}']),
        ("reward", "implicit_preference", ["--dataset_mapping", '{"transforms": ["extract_prompt"]}']),
        ("grpo", "question_answer", ["--dataset_mapping", '{"columns": {"prompt": "question"}}',
                                     "--num_generations", "2", "--max_completion_length", "8"]),
    ],
)  # fmt: skip
def test_other_methods_keep_padded_batches(method, dataset, extra, tiny_model, datasets_dir, capsys) -> None:
    final, _, choices = _final(_argv(tiny_model, datasets_dir / dataset, "--method", method, *extra))
    assert not choices["packing"].on and f"TRL 1.16 packs SFT only, not {method}" in choices["packing"].reason
    assert not getattr(final, "packing", False) and not getattr(final, "padding_free", False)
    assert final.use_liger_kernel is False and final.per_device_train_batch_size == 2
    assert f"packing off: TRL 1.16 packs SFT only, not {method}" in capsys.readouterr().out


def test_a_vision_tower_keeps_the_padded_path(tiny_model, datasets_dir, tmp_path) -> None:
    model = tmp_path / "vlm"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "vision_config": {"hidden_size": 32, "depth": 1}}))
    final, _, choices = _final(_argv(model, datasets_dir / "messages"))
    assert not final.packing and not final.padding_free
    assert "a vision or audio tower (vision_config)" in choices["packing"].reason


def test_off_and_given_options_are_kept(tiny_model, datasets_dir) -> None:
    final, _, choices = _final(_argv(tiny_model, datasets_dir / "messages", "--packing", "false",
                                     "--use_liger_kernel", "false", "--gradient_checkpointing", "false"))  # fmt: skip
    assert not final.packing and not final.use_liger_kernel and not final.gradient_checkpointing
    assert final.per_device_train_batch_size == 2 and choices["packing"].reason == "as given"


@pytest.mark.parametrize("kernel_loads", [True, False])
def test_on_an_ampere_gpu_the_flash_kernel_and_liger_are_chosen(kernel_loads, tiny_model, datasets_dir, monkeypatch):
    """No GPU here: CUDA is pretended after parsing, the kernel's load is replaced (it comes from the Hub)."""
    import torch

    script_args, training_args, model_args, explicit = train.parse_args(_argv(tiny_model, datasets_dir / "messages"))
    training_args.bf16 = True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 6))
    loaded = []
    monkeypatch.setattr(train, "load_attention_kernel",
                        lambda name: loaded.append(name) or (None if kernel_loads else "OSError: offline"))  # fmt: skip
    choices = train.use_speed_settings(script_args, training_args, model_args, explicit)
    assert loaded == ["kernels-community/flash-attn2"]
    assert training_args.packing and training_args.use_liger_kernel
    if kernel_loads:
        assert model_args.attn_implementation == "kernels-community/flash-attn2"
        assert training_args.per_device_train_batch_size == 2  # each document attends to itself: no mask, no split
    else:
        assert model_args.attn_implementation in (None, "sdpa") and "did not load (OSError: offline)" in (
            choices["attention"].reason
        )
        assert (training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps) == (1, 2)


def test_liger_keeps_the_models_own_forward(tiny_model, datasets_dir) -> None:
    """A reward model's score head must stay: Liger's fused cross-entropy (which replaces forward) is turned off."""
    script_args, training_args, model_args, _ = train.parse_args(_argv(tiny_model, datasets_dir / "messages"))
    training_args.use_liger_kernel = True
    assert training_args.liger_kernel_config is None
    import trl

    calls = {}
    trainer_class = getattr(trl, train.TRAINER_CLASSES["sft"])
    original = trainer_class.__init__

    def capture(self, *a, args=None, **k):
        calls["config"] = args.liger_kernel_config
        raise RuntimeError("stop before loading")

    trainer_class.__init__ = capture
    try:
        with pytest.raises(RuntimeError, match="stop before loading"):
            train.build_trainer(script_args, training_args, model_args, None, None, [])
    finally:
        trainer_class.__init__ = original
    assert calls["config"] == {"fused_linear_cross_entropy": False}


def test_padding_free_sdpa_equals_each_document_alone(tiny_model) -> None:
    """The CPU path is exact: TRL's padding-free collator with SDPA scores each document as if it were alone."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa").eval()
    torch.manual_seed(0)
    docs = [torch.randint(5, 300, (n,)).tolist() for n in (20, 13, 7)]
    packed = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": d} for d in docs])
    with torch.no_grad():
        together = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits
        alone = [model(input_ids=torch.tensor([d]), use_cache=False).logits for d in docs]
    start = 0
    for doc, logits in zip(docs, alone, strict=True):
        assert torch.allclose(together[0, start : start + len(doc)], logits[0], atol=1e-5)
        start += len(doc)


def test_packed_documents_are_checked_for_their_stop_token() -> None:
    row = {"input_ids": [1, 2, 9, 3, 9, 4, 5], "labels": [-100, 2, 9, -100, 9, 4, 5], "seq_lengths": [3, 2, 2]}
    assert train.packed_documents(row) == [[2, 9], [9], [4, 5]]
    from datasets import Dataset

    assert train.packed_stop_rows(Dataset.from_list([row]), 9, 10) == (2, 3)


@pytest.mark.slow
def test_the_speed_benchmark_runs_in_smoke_mode(tmp_path) -> None:
    """bench/train_gpu.py --smoke --speed: both runs train the same tokens, and the comparison is printed."""
    import subprocess
    import sys

    from tests.templates.conftest import REPO_ROOT, job_env

    env = job_env(tmp_path) | {"TRAINER_SPACE_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "train_gpu.py"), "--smoke", "--speed",
                           "--out", str(tmp_path / "bench")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"run"')]
    assert [r["run"] for r in runs] == ["sft-plain", "sft-defaults"]
    assert runs[0]["tokens"] == runs[1]["tokens"] > 0  # one epoch over the same chats: the same trained tokens
    assert runs[0]["padding_share"] > 0 and runs[1]["steps"] <= runs[0]["steps"]  # packed rows: no more steps
    assert "packing on: BFD packing" in runs[1]["speed_line"] and "packing off: as given" in runs[0]["speed_line"]
    assert re.search(
        r"sft-defaults / plain: tokens per cpu s x[\d.]+ \(wall tokens/s x[\d.]+\), peak RSS in training x[\d.]+, eval loss",
        proc.stdout,
    )
