"""Every (dataset shape, method) pair the detector accepts trains, with the detector's own proposed mapping.

The shapes are the real-world ones of tests/format_shapes.py (alpaca, ShareGPT, question/answer, hh-rlhf as text and
as messages, preference with a system column, explicit preference, KTO labels as bools, ints and strings, a text
prompt beside whole conversations, prompt-completion, GRPO prompts with answers or solutions, ...). Each pair runs
train.py in this process (one interpreter: no torch import per run) for 2 LoRA steps with the tiny model, exactly
as the Space would submit it: the mapping the Dataset tab proposes, GRPO with the rewards its plan would default to.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from tests.format_shapes import SHAPES, as_viewer_rows
from tests.templates.test_train import train
from trainer_space.data.detect import Verdict, detect_method, mapped_fields
from trainer_space.data.mapping import default_rewards

ACCEPTED = [
    (shape, method)
    for shape, spec in SHAPES.items()
    for method, verdict in spec["expect"].items()
    if verdict != Verdict.INCOMPATIBLE
]
# All 50 pairs take about 9 minutes on 2 CPU cores: CI runs this representative set (about 5), every shape at least
# once and every method on each kind of data it meets (text / messages, explicit / implicit prompt, system column,
# labels as bools, ints and strings, answers and solutions); TRAINER_SPACE_ALL_SHAPES=1 runs every pair.
REPRESENTATIVE = {
    ("alpaca", "sft"), ("alpaca", "grpo"), ("sharegpt", "sft"), ("question_answer", "sft"), ("question_answer", "grpo"),
    ("hh_rlhf_strings", "sft"), ("hh_rlhf_strings", "dpo"), ("hh_rlhf_strings", "reward"), ("hh_rlhf_strings", "kto"),
    ("hh_rlhf_messages", "dpo"), ("hh_rlhf_messages", "reward"), ("hh_rlhf_messages", "kto"),
    ("hh_rlhf_messages", "grpo"), ("preference_system", "sft"), ("preference_system", "dpo"),
    ("preference_system", "kto"), ("preference_system", "grpo"), ("prompt_beside_conversations", "sft"),
    ("prompt_beside_conversations", "dpo"), ("prompt_beside_conversations", "reward"), ("preference_explicit", "kto"),
    ("preference_explicit", "reward"), ("kto_bool", "kto"), ("kto_int", "kto"), ("kto_strings", "kto"),
    ("kto_strings", "sft"), ("text_only", "sft"), ("messages", "sft"), ("prompt_completion", "grpo"),
    ("prompt_completion_conversational", "sft"), ("grpo_prompt_answer", "grpo"), ("grpo_prompt_solution", "grpo"),
    ("image_text", "sft"),
}  # fmt: skip
RUN = ACCEPTED if os.environ.get("TRAINER_SPACE_ALL_SHAPES") else [p for p in ACCEPTED if p in REPRESENTATIVE]
REPEAT = 4  # a few rows per shape, repeated: enough for two batches of two (KTO mixes a batch, GRPO groups of two)


@pytest.fixture(scope="module")
def shape_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each accepted shape saved with `save_to_disk`, as the job loads a dataset."""
    from datasets import Dataset

    root = tmp_path_factory.mktemp("shapes")
    out = {}
    for shape in dict.fromkeys(s for s, _ in RUN):
        rows = copy.deepcopy(SHAPES[shape]["rows"]) * REPEAT
        Dataset.from_list(rows).save_to_disk(str(root / shape))
        out[shape] = root / shape
    return out


def test_the_representative_set_covers_every_shape_and_method() -> None:
    """The README's shapes are among those trained here, and the CI set leaves no accepted shape or method out."""
    assert set(ACCEPTED) >= REPRESENTATIVE and len(ACCEPTED) >= 45
    assert {s for s, _ in REPRESENTATIVE} == {s for s, _ in ACCEPTED}
    assert {m for _, m in REPRESENTATIVE} == {m for _, m in ACCEPTED}
    for method in ("dpo", "reward", "kto"):  # preference methods: text and messages, implicit and explicit prompts
        shapes = {s for s, m in REPRESENTATIVE if m == method}
        assert {"hh_rlhf_strings", "hh_rlhf_messages"} & shapes and {"preference_explicit", "preference_system",
                                                                     "prompt_beside_conversations"} & shapes  # fmt: skip
    assert {"alpaca", "sharegpt", "question_answer", "hh_rlhf_strings", "hh_rlhf_messages", "preference_system",
            "kto_strings", "prompt_beside_conversations"} <= {s for s, _ in REPRESENTATIVE}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "method"), RUN)
def test_accepted_shape_trains_with_the_proposed_mapping(
    shape: str, method: str, shape_dirs: dict[str, Path], tiny_model: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    rows = as_viewer_rows(copy.deepcopy(SHAPES[shape]["rows"]))
    report = detect_method(method, rows)
    assert report.verdict in (Verdict.READY, Verdict.NEEDS_MAPPING), report.reason
    for key in ("HF_TOKEN", "RANK", "LOCAL_RANK", train.GPUS_ENV):
        monkeypatch.delenv(key, raising=False)
    out = tmp_path / "out"
    argv = ["--method", method, "--peft_mode", "lora", "--model_name_or_path", str(tiny_model),
            "--dataset_name", str(shape_dirs[shape]), "--output_dir", str(out), "--max_steps", "2",
            "--per_device_train_batch_size", "2", "--logging_steps", "1", "--report_to", "none",
            "--push_to_hub", "false", "--num_sample_generations", "1", "--dataloader_pin_memory", "false"]  # fmt: skip
    if report.mapping:
        argv += ["--dataset_mapping", json.dumps(report.mapping.to_json())]
    if method == "grpo":  # no --reward_funcs: the data's default, as the Space's plan fills it in
        argv += ["--num_generations", "2", "--max_completion_length", "8"]
    train.cli(argv)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2, capsys.readouterr().err[-3000:]
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert losses and all(isinstance(x, float) for x in losses)
    assert (out / "adapter_config.json").is_file() and (out / "README.md").is_file()
    if method == "grpo":  # the job's default is the one the Space's plan shows for the same mapped data
        (expected,) = default_rewards(mapped_fields(rows, report.mapping))
        assert f"using the default for this data: {expected}" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the final config, with real shapes
def _argv(method: str, model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["--method", method, "--peft_mode", "lora", "--model_name_or_path", str(model), "--dataset_name", str(data),
            "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps", "1",
            "--report_to", "none", "--push_to_hub", "false", "--num_sample_generations", "1",
            "--dataloader_pin_memory", "false", *extra]  # fmt: skip


@pytest.fixture
def no_job_env(monkeypatch) -> None:
    for key in ("HF_TOKEN", "RANK", "LOCAL_RANK", train.GPUS_ENV):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.slow
def test_grpo_with_evaluation_on(tiny_model: Path, tmp_path: Path, no_job_env, capsys) -> None:
    """GRPO prompts with answers and a `test` split (gsm8k's shape): the job turns evaluation on, TRL rebuilds the
    config with it, and the evaluation runs (it crashed at step 100 when the eval batch did not fit the groups)."""
    from datasets import Dataset, DatasetDict

    rows = SHAPES["grpo_prompt_answer"]["rows"] * 4
    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:4])}).save_to_disk(
        str(tmp_path / "gsm")
    )
    out = tmp_path / "out"
    train.cli(_argv("grpo", tiny_model, tmp_path / "gsm", out, "--num_generations", "2", "--max_completion_length",
                    "8", "--eval_steps", "1", "--per_device_eval_batch_size", "2"))  # fmt: skip
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    evaluations = [e for e in state["log_history"] if any(k.startswith("eval_") for k in e)]
    assert evaluations and any("eval_rewards/accuracy_reward/mean" in e for e in evaluations), state["log_history"]
    assert "data: 8 training rows, 4 eval rows" in capsys.readouterr().out


@pytest.mark.slow
def test_reward_pairs_over_max_length_are_counted_then_refused_when_none_remain(
    tiny_model: Path, tmp_path: Path, no_job_env, capsys
) -> None:
    """The reward trainer drops pairs longer than max_length (it does not truncate them): the job counts them before
    the model loads and after TRL tokenized them, trains on the rest, and refuses when none would remain."""
    from datasets import Dataset

    short = SHAPES["preference_explicit"]["rows"]
    long = [{**r, "rejected": r["rejected"] + " and so on" * 12} for r in short]
    Dataset.from_list((short + long) * 2).save_to_disk(str(tmp_path / "half"))
    Dataset.from_list(long * 4).save_to_disk(str(tmp_path / "all"))
    n = len(short) * 2
    out = tmp_path / "out"
    # every pair trains (base vs tuned off: it would hold one pair out of these 12)
    train.cli(_argv("reward", tiny_model, tmp_path / "half", out, "--max_length", "48", "--compare", "false"))
    said = capsys.readouterr().out
    assert f"WARNING: {n} of {2 * n} pairs (50%) are too long for max_length=48" in said  # before the model loads
    assert f"WARNING: training set: {n} of {2 * n} pairs (50%) are too long" in said  # TRL's own count
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    with pytest.raises(SystemExit) as exit_info:
        train.cli(_argv("reward", tiny_model, tmp_path / "all", tmp_path / "none", "--max_length", "48", "--compare",
                        "false"))  # fmt: skip
    assert exit_info.value.code == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ERROR:")]
    assert f"all {len(long) * 4} pairs are too long for max_length=48" in line
    assert not (tmp_path / "none").exists()  # refused before the model loaded


@pytest.mark.slow
def test_full_fine_tune_pushed_with_its_checkpoint_exports_to_gguf(hub, tiny_model: Path, tmp_path: Path) -> None:
    """A full fine-tune as the app makes it (pushed to the Hub with `last-checkpoint/` beside the final weights) is
    exported to GGUF from the Hub: only the final weights are downloaded, and the GGUF reads back."""
    import subprocess
    import sys

    from tests.templates.conftest import REPO_ROOT, TRAIN_SCRIPT, job_env
    from trainer_space.jobs.backends.llama_cpp import llama_cpp_converter

    repo = "alice/tiny-full-sft"
    cmd = [sys.executable, str(TRAIN_SCRIPT), "--method", "sft", "--model_name_or_path", str(tiny_model),
           "--dataset_name", str(_text_dir(tmp_path)), "--output_dir", str(tmp_path / "trained"), "--max_steps", "2",
           "--save_steps", "1", "--per_device_train_batch_size", "2", "--report_to", "none", "--push_to_hub", "true",
           "--hub_model_id", repo, "--hub_always_push", "true", "--num_sample_generations", "0",
           "--dataloader_pin_memory", "false"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=job_env(tmp_path, offline=False, token=hub.alice),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    pushed = hub.files(repo)
    assert "model.safetensors" in pushed and "last-checkpoint/model.safetensors" in pushed

    converter = llama_cpp_converter()
    work = tmp_path / "work"
    env = {**job_env(tmp_path, offline=False, token=hub.alice), "PYTHONPATH": str(converter / "gguf-py")}
    script = REPO_ROOT / "job_templates" / "export_gguf.py"
    done = subprocess.run(
        [sys.executable, str(script), "--llama_cpp_dir", str(converter), "--model", repo, "--quantizations", "F16",
         "--pre_tokenizer", "qwen2", "--push", "false", "--output_dir", str(tmp_path / "gguf"),
         "--work_dir", str(work)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    downloaded = sorted(str(p.relative_to(work / "input")) for p in (work / "input").rglob("*") if p.is_file())
    assert "model.safetensors" in downloaded
    assert not [p for p in downloaded if p.startswith(("last-checkpoint", "checkpoint-"))], downloaded
    assert (tmp_path / "gguf" / "tiny-full-sft-F16.gguf").stat().st_size > 0


def _text_dir(tmp_path: Path) -> Path:
    from datasets import Dataset

    rows = [{"text": f"{r['prompt']} {r['completion']}"} for r in SHAPES["prompt_completion"]["rows"]] * REPEAT
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "text"))
    return tmp_path / "text"
