"""Base vs tuned in job_templates/train.py, run for real on CPU with the tiny model: the same prompts answered
before and after training, the eval loss before and after, `base_vs_tuned.json` and the card's section, and logs
that hold none of the dataset's text (a secret-looking marker in every row must never reach them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.templates.test_train import train

MARKER = "zq-SECRET-7f3a9c"  # in every prompt and answer of the data: never in a log line
N = 20


def _rows(kind: str) -> list[dict]:
    qa = [(f"{MARKER} question {i}: what is {i} + {i}?", f" {MARKER} {2 * i}.") for i in range(N)]
    if kind == "prompt_completion":
        return [{"prompt": q, "completion": a} for q, a in qa]
    if kind == "messages":
        return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in qa]
    if kind == "preference":
        return [{"prompt": q, "chosen": a, "rejected": f" {MARKER} no idea."} for q, a in qa]
    raise ValueError(kind)


@pytest.fixture(scope="module")
def marked_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each shape twice: with a test split (`<kind>-split`) and train only (`<kind>`)."""
    from datasets import Dataset, DatasetDict

    root = tmp_path_factory.mktemp("marked")
    for kind in ("prompt_completion", "messages", "preference"):
        rows = _rows(kind)
        Dataset.from_list(rows).save_to_disk(str(root / kind))
        split = DatasetDict({"train": Dataset.from_list(rows[:16]), "test": Dataset.from_list(rows[16:])})
        split.save_to_disk(str(root / f"{kind}-split"))
    return root


def _run(run_train, tiny_model: Path, data: Path, out: Path, *extra: str):
    proc = run_train(
        "--model_name_or_path", str(tiny_model), "--dataset_name", str(data), "--output_dir", str(out), *extra
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = proc.stdout + proc.stderr
    assert MARKER not in logs, [line for line in logs.splitlines() if MARKER in line][:3]
    return proc, json.loads((out / train.COMPARE_FILE).read_text()), (out / "README.md").read_text()


@pytest.mark.slow
def test_sft_lora_with_an_eval_split_and_your_prompts(run_train, tiny_model: Path, marked_data: Path, tmp_path):
    mine = ["Write one word about the sea.", "Count to three."]
    proc, data, card = _run(
        run_train, tiny_model, marked_data / "messages-split", tmp_path / "out",
        "--peft_mode", "lora", "--num_sample_generations", "3", "--compare_prompts", json.dumps(mine),
    )  # fmt: skip
    assert data["version"] == 1 and data["method"] == "sft" and data["kind"] == "answers"
    assert data["source"] == "eval split" and data["decoding"]["chat_template"] is True
    items = data["items"]
    assert [i["origin"] for i in items] == ["dataset"] * 3 + ["yours"] * 2
    assert MARKER in items[0]["prompt"] and [i["prompt"] for i in items[3:]] == mine
    for item in items:
        for side in ("base", "tuned"):
            assert isinstance(item[side]["text"], str) and isinstance(item[side]["stopped"], bool)
            assert len(item[side]["text"]) <= train.COMPARE_MAX_TEXT_CHARS
    loss = data["eval_loss"]
    assert loss["rows"] == 1  # the trainer's eval rows: packed SFT packs the 4 examples into one row
    assert loss["before"] > 0 and loss["after"] > 0 and loss["before"] != loss["after"]
    assert set(data["seconds"]) == {"before", "after"} and data["notes"] == []
    assert "## Base vs tuned" in card and "## Sample generations" not in card
    assert f"Eval loss (1 eval row, as the trainer measures it): {loss['before']:.4f} → {loss['after']:.4f}" in card
    assert "**4. (your prompt)** Write one word about the sea." in card and "- Base: " in card
    assert "base vs tuned: 5 prompts answered before training, eval loss on 1 eval row" in proc.stdout
    assert "base vs tuned: 5 prompts answered after training" in proc.stdout
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2]  # the comparison logged no step


@pytest.mark.slow
def test_full_sft_without_an_eval_split_holds_rows_out_of_training(
    run_train, tiny_model: Path, marked_data: Path, tmp_path: Path
) -> None:
    proc, data, card = _run(run_train, tiny_model, marked_data / "prompt_completion", tmp_path / "out")
    assert data["source"] == "held out of training" and data["eval_loss"] is None
    assert len(data["items"]) == 2  # --num_sample_generations 2, at most a tenth of the 20 rows
    assert "base vs tuned: 2 rows held out of training (18 left)" in proc.stdout
    assert "data: 20 training rows" in proc.stdout
    assert all(i["base"] and i["tuned"] for i in data["items"]) and "## Base vs tuned" in card


@pytest.mark.slow
def test_reward_model_scores_pairs_before_and_after(run_train, tiny_model: Path, marked_data: Path, tmp_path):
    _, data, card = _run(
        run_train, tiny_model, marked_data / "preference-split", tmp_path / "out",
        "--method", "reward", "--compare_prompts", '["ignored for a reward model"]',
    )  # fmt: skip
    assert data["kind"] == "scores" and len(data["items"]) == 2  # FAST_ARGS: --num_sample_generations 2
    for item in data["items"]:
        for side in ("base", "tuned"):
            assert set(item[side]) == {"chosen", "rejected", "prefers_chosen"}
    assert data["eval_loss"]["before"] is not None and data["eval_loss"]["after"] is not None
    assert any("does not write them" in n for n in data["notes"])
    assert "chosen " in card and "prefers" in card


@pytest.mark.slow
def test_dpo_compares_and_compare_false_writes_none(run_train, tiny_model: Path, marked_data: Path, tmp_path):
    _, data, _ = _run(run_train, tiny_model, marked_data / "preference-split", tmp_path / "dpo", "--method", "dpo")
    assert data["kind"] == "answers" and len(data["items"]) == 2
    assert abs(data["eval_loss"]["before"] - 0.6931) < 0.01  # DPO's loss with the policy as its own reference
    proc = run_train(
        "--model_name_or_path", str(tiny_model), "--dataset_name", str(marked_data / "prompt_completion"),
        "--output_dir", str(tmp_path / "off"), "--compare", "false",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "off" / train.COMPARE_FILE).exists()
    assert "## Sample generations" in (tmp_path / "off" / "README.md").read_text()
    assert MARKER not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_failing_comparison_never_fails_the_training(
    run_train, tiny_model: Path, marked_data: Path, tmp_path: Path
) -> None:
    # GRPO: answers only (no eval loss); a bad --compare_prompts is a note, the job trains
    _, data, _ = _run(
        run_train, tiny_model, marked_data / "messages-split", tmp_path / "out",
        "--method", "grpo", "--dataset_mapping", '{"columns": {"prompt": "messages"}}',
        "--num_generations", "2", "--max_completion_length", "8", "--compare_prompts", "{not json",
    )  # fmt: skip
    assert data["eval_loss"] is None and len(data["items"]) == 2
    assert any("not a JSON list" in n for n in data["notes"]) and any("GRPO" in n for n in data["notes"])


@pytest.mark.slow
def test_kto_with_an_eval_fraction_measures_its_loss_before_and_after(
    run_train, tiny_model: Path, marked_data: Path, tmp_path: Path
) -> None:
    from datasets import Dataset

    rows = [{**r, "label": i % 2 == 0} for i, r in enumerate(_rows("prompt_completion"))]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "unpaired"))
    _, data, card = _run(
        run_train, tiny_model, tmp_path / "unpaired", tmp_path / "out",
        "--method", "kto", "--eval_split_fraction", "0.2", "--per_device_train_batch_size", "4",
    )  # fmt: skip
    assert data["source"] == "eval split" and len(data["items"]) == 2
    assert data["eval_loss"]["rows"] == 4 and data["eval_loss"]["before"] is not None, data["notes"]
    assert data["eval_loss"]["after"] is not None and "Eval loss (4 eval rows" in card


# ----------------------------------------------------------------------------- pure helpers (fast)
def test_parse_compare_prompts_bounds_count_and_length() -> None:
    many = json.dumps([f"p{i}" for i in range(9)] + ["x" * 900])
    prompts, notes = train.parse_compare_prompts(many)
    assert prompts == [f"p{i}" for i in range(train.COMPARE_MAX_PROMPTS)] and "first 5" in notes[0]
    assert train.parse_compare_prompts('["a", "a", "", 3, "  b\\n c "]') == (
        ["a", "b c"], ["empty, repeated or non-text prompts were left out"])  # fmt: skip
    assert train.parse_compare_prompts(json.dumps(["y" * 900]))[0] == ["y" * train.COMPARE_MAX_PROMPT_CHARS]
    assert train.parse_compare_prompts(None) == ([], [])
    assert train.parse_compare_prompts('{"a": 1}')[0] == [] and train.parse_compare_prompts("[[[[")[0] == []


def test_comparison_card_escapes_html_and_says_what_is_missing() -> None:
    cmp = train.Comparison(method="sft", source="eval split", prompts=["<b>hi</b>"])
    cmp.base = [{"text": "<script>x</script>", "stopped": False}]
    data = train.comparison_json(cmp)
    assert data["items"][0]["tuned"] is None and data["eval_loss"] is None
    card = train.comparison_card(data)
    assert "<script>" not in card and "&lt;script&gt;" in card and "[no stop]" in card
    assert "- Tuned: (not available)" in card
