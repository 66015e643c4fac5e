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
