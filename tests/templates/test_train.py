"""job_templates/train.py: pure helpers (fast), every method on CPU with a tiny model, errors, the push path.

Training runs are subprocesses of the test venv's python (the job receives one file; `uv run` would fetch a
CUDA torch). Error cases that stop before the model loads run in-process through `cli()` to save processes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.templates.conftest import REPO_ROOT, TRAIN_SCRIPT, job_env


def _load_train() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_template", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_template"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


train = _load_train()
JobError = train.JobError


def pep723_header(text: str) -> dict:
    block = re.search(r"^# /// script\n(.*?)^# ///$", text, re.S | re.M)
    assert block, "no PEP 723 block"
    return tomllib.loads("".join(line[2:] + "\n" for line in block.group(1).splitlines()))


# ----------------------------------------------------------------------------- the script as a file
def test_pep723_header_pins_every_dependency_to_the_tested_versions() -> None:
    header = pep723_header(TRAIN_SCRIPT.read_text())
    assert header["requires-python"] == ">=3.11"
    pins = {}
    for dep in header["dependencies"]:
        name, sep, version = dep.partition("==")
        assert sep == "==" and version, f"not pinned exactly: {dep}"
        pins[name.lower().replace("_", "-")] = version
    assert {"trl", "transformers", "peft", "accelerate", "datasets", "trackio", "torch", "bitsandbytes"} <= set(pins)
    assert pins["trl"] == importlib.metadata.version("trl")
    for name, version in pins.items():  # everything installed here must be the pinned version
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # bitsandbytes (GPU only) and protobuf are not in the CPU test venv
        assert installed.split("+")[0] == version, f"{name}: pinned {version}, tests ran with {installed}"


def test_module_imports_with_the_standard_library_only() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('t', {str(TRAIN_SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['t'] = m; spec.loader.exec_module(m)\n"
        "heavy = {'torch', 'trl', 'transformers', 'datasets', 'peft'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ----------------------------------------------------------------------------- mapping (pure)
def test_parse_mapping_orders_transforms_and_accepts_a_dict() -> None:
    mapping = train.parse_mapping('{"columns": {"prompt": "q"}, "transforms": ["label_to_bool", "alpaca"]}')
    assert mapping.columns == {"prompt": "q"}
    assert mapping.transforms == ("alpaca", "label_to_bool")
    assert train.parse_mapping({"columns": {"text": "body"}}).columns == {"text": "body"}
    assert train.parse_mapping(None) == train.DatasetMapping()


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ('{"columns": {"question": "q"}}', "fields ['question']"),
        ('{"transforms": ["shout"]}', "transforms ['shout']"),
        ('{"colums": {}}', "unknown keys ['colums']"),
        ("{not json", "not valid JSON"),
    ],
)
def test_parse_mapping_refuses_unknown_names(raw: str, needle: str) -> None:
    with pytest.raises(train.MappingError) as err:  # the job's cli turns it into one "ERROR:" line, exit 2
        train.parse_mapping(raw)
    assert needle in str(err.value)


def test_mapping_problems_name_the_missing_columns() -> None:
    mapping = train.parse_mapping('{"columns": {"prompt": "question"}, "transforms": ["label_to_bool"]}')
    problems = train.mapping_problems(mapping, ["instruction", "output"])
    assert problems == ["prompt <- 'question': no such column", "label_to_bool needs label"]
    assert train.mapping_problems(mapping, ["question", "label"]) == []  # fits


def _map(row: dict, columns: dict | None = None, transforms: list[str] | None = None) -> dict:
    mapping = train.parse_mapping({"columns": columns or {}, "transforms": transforms or []})
    return train.map_example(row, mapping)


def test_rename_keeps_the_source_row_untouched() -> None:
    row = {"question": "q?", "solution": "4"}
    out = _map(row, {"prompt": "question", "answer": "solution"})
    assert out["prompt"] == "q?" and out["answer"] == "4"
    assert row == {"question": "q?", "solution": "4"}


def test_sharegpt_to_messages() -> None:
    row = {
        "conversations": [
            {"from": "system", "value": "s"},
            {"from": "human", "value": "hi"},
            {"from": "gpt", "value": "yo"},
        ]
    }
    out = _map(row, {"messages": "conversations"}, ["sharegpt_to_messages"])
    assert out["messages"] == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]
    assert _map(row, transforms=["sharegpt_to_messages"])["messages"] == out["messages"]  # conversations found


@pytest.mark.parametrize(
    ("extra", "prompt"), [("", "Add 2 and 2."), ("  ", "Add 2 and 2."), ("Show work.", "Add 2 and 2.\n\nShow work.")]
)
def test_alpaca(extra: str, prompt: str) -> None:
    out = _map({"instruction": "Add 2 and 2.", "input": extra, "output": "4"}, transforms=["alpaca"])
    assert (out["prompt"], out["completion"]) == (prompt, "4")


def test_extract_prompt_from_strings_and_conversations() -> None:
    out = _map({"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green"}, transforms=["extract_prompt"])
    assert (out["prompt"], out["chosen"], out["rejected"]) == ("Q: sky? A:", " blue", " green")
    user = {"role": "user", "content": "sky?"}
    row = {
        "chosen": [user, {"role": "assistant", "content": "blue"}],
        "rejected": [user, {"role": "assistant", "content": "red"}],
    }
    out = _map(row, transforms=["extract_prompt"])
    assert out["prompt"] == [user]
    assert out["chosen"] == [{"role": "assistant", "content": "blue"}]
    # HuggingFaceH4/ultrafeedback_binarized: a text prompt repeating the conversations' first turn is replaced
    out = _map({"prompt": "sky?", **row}, transforms=["extract_prompt"])
    assert out["prompt"] == [user] and out["rejected"] == [{"role": "assistant", "content": "red"}]
    # an explicit text prompt next to text answers is kept
    out = _map({"prompt": "Q", "chosen": "Q A", "rejected": "Q B"}, transforms=["extract_prompt"])
    assert out["prompt"] == "Q" and out["chosen"] == "Q A"


def test_wrapping_strings_into_messages() -> None:
    out = _map(
        {"prompt": "hi", "chosen": "a", "rejected": "b"},
        transforms=["prompt_to_messages", "chosen_to_messages", "rejected_to_messages"],
    )
    assert out["prompt"] == [{"role": "user", "content": "hi"}]
    assert out["chosen"] == [{"role": "assistant", "content": "a"}]
    assert out["rejected"] == [{"role": "assistant", "content": "b"}]
    already = [{"role": "user", "content": "x"}]
    assert _map({"prompt": already}, transforms=["prompt_to_messages"])["prompt"] == already


@pytest.mark.parametrize("system", ["Be brief.", ""])
def test_system_to_messages_always_gives_a_conversation(system: str) -> None:
    out = _map({"prompt": "hi", "system": system}, transforms=["system_to_messages"])
    expected = [{"role": "system", "content": system}] if system else []
    assert out["prompt"] == [*expected, {"role": "user", "content": "hi"}]


def test_transforms_run_in_the_documented_order() -> None:
    row = {"instruction": "Add.", "input": "2+2", "output": "4", "sys": "Be brief."}
    out = _map(row, {"system": "sys"}, ["system_to_messages", "completion_to_messages", "prompt_to_messages", "alpaca"])
    assert out["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add.\n\n2+2"}]
    assert out["completion"] == [{"role": "assistant", "content": "4"}]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, True), (0, False), (1.0, True), (True, True), ("good", True), ("Bad", False), ("true", True), ("no", False)],
)
def test_label_to_bool(value: object, expected: bool) -> None:
    assert _map({"label": value}, transforms=["label_to_bool"])["label"] is expected


def test_label_to_bool_refuses_other_values() -> None:
    with pytest.raises(train.MappingError, match="maybe"):
        train.label_to_bool("maybe")


@pytest.mark.parametrize(
    ("method", "columns", "expected"),
    [
        ("sft", ["text", "id"], ["text"]),
        ("sft", ["prompt", "completion", "text"], ["prompt", "completion"]),
        ("sft", ["messages", "prompt"], ["messages"]),
        ("dpo", ["prompt", "chosen", "rejected", "score"], ["prompt", "chosen", "rejected"]),
        ("reward", ["chosen", "rejected"], ["chosen", "rejected"]),
        ("grpo", ["prompt", "answer", "id"], ["prompt", "answer"]),
        ("grpo", ["prompt"], ["prompt"]),
        ("kto", ["prompt", "completion", "label"], ["prompt", "completion", "label"]),
        ("kto", ["prompt", "chosen", "rejected"], ["prompt", "chosen", "rejected"]),
    ],
)
def test_select_columns(method: str, columns: list[str], expected: list[str]) -> None:
    assert train.select_columns(method, columns) == expected


@pytest.mark.parametrize(
    ("method", "columns", "rewards", "needle"),
    [
        ("sft", ["question", "answer"], [], "'messages', or 'prompt' + 'completion', or 'text'"),
        ("dpo", ["prompt", "chosen"], [], "'chosen' + 'rejected'"),
        ("grpo", ["prompt"], ["accuracy"], "needs an `answer` field"),
        ("kto", ["prompt", "completion"], [], "label"),
    ],
)
def test_select_columns_errors_name_what_is_missing(method, columns, rewards, needle) -> None:
    with pytest.raises(JobError) as err:
        train.select_columns(method, columns, rewards)
    assert needle in err.value.message
    assert str(sorted(columns)) in err.value.message


def test_conversational_detection_and_sample_prompts() -> None:
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert train.is_conversational({"messages": turns})
    assert not train.is_conversational({"prompt": "hi", "completion": "yo"})
    assert train.sample_prompt({"messages": turns}) == turns[:1]
    assert train.sample_prompt({"prompt": "hi", "completion": "yo"}) == "hi"
    assert train.sample_prompt({"text": "one two three four"}) == "one two"
    assert train.one_line(turns) == "user: hi | assistant: yo"


# ----------------------------------------------------------------------------- rewards (pure)
@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so it is \\boxed{42}.", "42"),
        ("so \\boxed{\\frac{3}{2}} it is", "\\frac{3}{2}"),  # nested braces kept whole
        ("first \\boxed{1} then \\boxed{-\\frac{7}{3}}", "-\\frac{7}{3}"),  # the last one
        ("<answer> Paris </answer>", "Paris"),
        ("<answer>It is 5 cm.</answer>", "5"),
        ("Natalia sold 48 clips... #### 72", "72"),
        ("#### 1,000\nDone.", "1,000"),
        ("the answer is $\\sqrt{2}$.", "\\sqrt{2}"),
        ("2 + 2 = 4", "4"),
        ("it is -7/3", "-7/3"),
        ("bonjour", "bonjour"),
    ],
)
def test_final_answer(text: str, answer: str) -> None:
    assert train.final_answer(text) == answer


# (completion, gold answer, reward): TRL's math-verify compares LaTeX and numbers symbolically; the app adds GSM8K's
# "####", <answer> tags, plain final numbers and text answers
ACCURACY_TABLE = [
    # the three false positives of the old reward (both sides fell back to their last number): all wrong
    ("So \\boxed{\\frac{3}{2}}", "\\frac{1}{2}", 0.0),
    ("So \\boxed{-\\frac{7}{3}}", "\\frac{7}{3}", 0.0),
    ("So \\boxed{\\sqrt{2}}", "2", 0.0),
    # fractions: equal values in other forms are right
    ("So \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", 1.0),
    ("So \\boxed{0.5}", "\\frac{1}{2}", 1.0),
    ("So \\boxed{\\dfrac{2}{4}}", "1/2", 1.0),
    ("<answer>1/2</answer>", "0.5", 1.0),
    # nested braces and roots
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}", 1.0),
    ("\\boxed{\\frac{\\sqrt{3}}{3}}", "\\frac{\\sqrt{3}}{2}", 0.0),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", 1.0),
    # negatives
    ("\\boxed{-3}", "-3", 1.0),
    ("\\boxed{3}", "-3", 0.0),
    ("The answer is -3.", "-3", 1.0),
    # units
    ("\\boxed{5 \\text{ cm}}", "5", 1.0),
    ("<answer>5 cm</answer>", "5", 1.0),
    ("It costs 18 dollars.", "18", 1.0),
    # GSM8K: gold solutions end with '#### <number>', completions may too
    ("She has 48 / 2 = 24 left. #### 72", "Natalia sold 48/2 = 24 clips in May.\n#### 72", 1.0),
    ("#### 71", "Natalia sold 48/2 = 24 clips in May.\n#### 72", 0.0),
    ("The answer is 1,000.", "1000", 1.0),
    ("I think 999", "1000", 0.0),
    ("#### 1000", "1000.0", 1.0),
    # <answer> tags
    ("<think>2+2</think><answer>4</answer>", "4", 1.0),
    ("<answer>\\boxed{\\frac{1}{3}}</answer>", "\\frac{1}{3}", 1.0),
    ("<answer>5</answer> or maybe 4", "4", 0.0),
    # text answers (math-verify cannot read them): the final answer is, or ends with, the gold text
    ("It is Paris.", "Paris", 1.0),
    ("<answer>paris</answer>", "Paris", 1.0),
    ("It is Lyon.", "Paris", 0.0),
]


@pytest.mark.parametrize(("completion", "gold", "reward"), ACCURACY_TABLE)
def test_accuracy_reward_table(completion: str, gold: str, reward: float) -> None:
    assert train.accuracy_reward([completion], answer=[gold]) == [reward]


def test_accuracy_reward_for_text_and_conversational_completions() -> None:
    completions = ["The answer is 1,000.", "I think 999", [{"role": "assistant", "content": "#### 1000"}]]
    assert train.accuracy_reward(completions, answer=["1000", "1000", "1000.0"]) == [1.0, 0.0, 1.0]
    assert train.accuracy_reward(["It is Paris."], answer=["paris"]) == [1.0]


def test_accuracy_comes_from_trl_with_math_verify_in_the_job() -> None:
    """The job's accuracy is TRL's `accuracy_reward` (math-verify), and the header installs math-verify."""
    header = pep723_header(TRAIN_SCRIPT.read_text())
    assert any(dep.startswith("math-verify==") for dep in header["dependencies"])
    assert "trl.rewards import accuracy_reward" in TRAIN_SCRIPT.read_text()


def test_length_reward_prefers_the_target_length() -> None:
    reward = train.LengthReward(4)
    assert reward([[1] * 4, [1] * 2, [1] * 8, []]) == [1.0, 0.5, 0.0, 0.0]
    assert reward.__name__ == "length_reward"


def test_reward_names_are_checked() -> None:
    assert train.parse_reward_names(" accuracy, length ") == ["accuracy", "length"]
    assert train.parse_reward_names("") == train.parse_reward_names(None) == []  # the data's default, later
    with pytest.raises(JobError, match="think_format"):  # the message lists what exists
        train.parse_reward_names("accuracy,bogus")


def test_one_reward_table_with_the_fields_each_reads() -> None:
    """The job builds every reward of the shared table, and the table says which field each one reads."""
    built = train.build_reward_funcs(list(train.REWARD_FUNCS), 16)
    assert len(built) == len(train.REWARD_FUNCS)
    assert train.REWARD_FUNCS["accuracy"].needs == ("answer",)
    assert train.default_rewards(["prompt", "answer"]) == ["accuracy"]
    assert train.default_rewards(["prompt"]) == ["length"]
    assert train.select_columns("grpo", ["prompt", "answer", "id"], ["length"]) == ["prompt", "answer"]


# ----------------------------------------------------------------------------- arguments and card (pure)
def test_given_options_read_argv_then_the_yaml_config(tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("method: dpo\npeft_mode: lora\nlearning_rate: 1.0e-6\n")
    given = train.given_options(["--config", str(config)])
    assert given["method"] == "dpo" and "fsdp" not in given
    assert train.given_options(["--method=kto", "--config", str(config), "--fsdp"])["method"] == "kto"
    assert train.given_options(["--fsdp"])["fsdp"] == "true"
    keys = set(train.given_options(["--config", str(config), "--bf16", "true", "--max_length=64", "--eval-steps", "5"]))
    assert keys >= {"eval_steps", "bf16", "max_length", "learning_rate", "method"}
    # the `--config=PATH` spelling counts the YAML keys as explicit too
    assert {"learning_rate", "peft_mode"} <= set(train.given_options([f"--config={config}"]))
    with pytest.raises(JobError, match="orpo"):
        train.given_options(["--method", "orpo"])


@pytest.mark.parametrize(
    ("on_cuda", "bf16_ok", "bf16", "fp16"),
    [(False, False, False, False), (True, True, True, False), (True, False, False, True)],
)
def test_job_defaults_pick_precision_for_the_hardware(on_cuda: bool, bf16_ok: bool, bf16: bool, fp16: bool) -> None:
    defaults = train.job_defaults("sft", False, on_cuda, bf16_ok)
    assert (defaults["bf16"], defaults["fp16"]) == (bf16, fp16)
    assert defaults["hub_strategy"] == "checkpoint" and defaults["save_total_limit"] == 2
    assert defaults["report_to"] == "trackio"


def test_job_defaults_for_reward_models_and_fsdp() -> None:
    assert train.job_defaults("reward", False, False, False)["lora_task_type"] == "SEQ_CLS"
    fsdp = train.job_defaults("sft", True, True, True)
    assert fsdp["fsdp_config"] == {"activation_checkpointing": True} and fsdp["gradient_checkpointing"] is False


def test_model_card_for_an_adapter() -> None:
    card = train.model_card(
        method="dpo",
        base_model="Qwen/Qwen2.5-0.5B-Instruct",
        repo_id="alice/qwen-dpo",
        dataset="trl-lib/ultrafeedback_binarized",
        mapping=train.parse_mapping('{"transforms": ["extract_prompt"]}'),
        peft_mode="lora",
        params={"learning_rate": 5e-07, "lora_r": 16},
        trackio_url="https://huggingface.co/spaces/alice/trackio",
        samples=[("What is 2+2?", "4")],
    )
    assert card.startswith("---\nbase_model: Qwen/Qwen2.5-0.5B-Instruct\nlibrary_name: peft\n")
    assert "- trl-lib/ultrafeedback_binarized" in card and "DPOTrainer" in card
    assert "| learning_rate | 5e-07 |" in card and "| lora_r | 16 |" in card
    assert "https://huggingface.co/spaces/alice/trackio" in card
    assert "1. **What is 2+2?** → 4" in card
    assert 'PeftModel.from_pretrained(base, "alice/qwen-dpo")' in card
    assert '"transforms": ["extract_prompt"]' in card


def test_model_card_for_a_local_base_and_dataset(tmp_path: Path) -> None:
    card = train.model_card(
        method="reward",
        base_model=str(tmp_path),
        repo_id="rm",
        dataset=str(tmp_path),
        mapping=train.DatasetMapping(),
        peft_mode="full",
        params={},
        trackio_url=None,
        samples=[],
    )
    assert "base_model:" not in card and "datasets:" not in card
    assert "AutoModelForSequenceClassification" in card and "kept locally" in card


# ----------------------------------------------------------------------------- CPU runs (slow)
def logged(output_dir: Path, key: str = "loss") -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry[key] for entry in state["log_history"] if key in entry]


def assert_loads_back(output_dir: Path, *, adapter: bool, reward: bool = False) -> None:
    """The output loads with the usual classes (an adapter onto the base its config names) and runs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    auto = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    if adapter:
        from peft import PeftModel

        config = json.loads((output_dir / "adapter_config.json").read_text())
        base = auto.from_pretrained(config["base_model_name_or_path"], **({"num_labels": 1} if reward else {}))
        model = PeftModel.from_pretrained(base, output_dir)
        trained = [p for name, p in model.named_parameters() if "lora_B" in name]  # zeros before training
        assert trained and any(p.abs().sum() > 0 for p in trained)
    else:
        model = auto.from_pretrained(output_dir)
    with torch.no_grad():
        logits = model(**tokenizer("What is 3 + 5?", return_tensors="pt")).logits
    assert logits.shape[-1] == (1 if reward else model.config.vocab_size) and torch.isfinite(logits).all()


def assert_trained(proc: subprocess.CompletedProcess, output_dir: Path, method: str) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = logged(output_dir)
    assert losses and all(isinstance(x, float) for x in losses)
    assert not re.search(r"^SAMPLE \d", proc.stdout, re.M)  # the log never holds the data's text
    card = (output_dir / "README.md").read_text()
    assert f"`{train.TRAINER_CLASSES[method]}`" in card and "## Base vs tuned" in card
    compared = json.loads((output_dir / train.COMPARE_FILE).read_text())
    assert compared["items"] and all(i["base"] and i["tuned"] for i in compared["items"]), compared


RUNS = {
    "sft-alpaca-lora-eval": (
        "alpaca",
        ["--peft_mode", "lora", "--dataset_mapping", '{"transforms": ["alpaca"]}', "--eval_split_fraction", "0.25",
         "--eval_steps", "1"],
    ),
    "sft-sharegpt-full-trackio": (
        "sharegpt",
        ["--dataset_mapping", '{"columns": {"messages": "conversations"}, "transforms": ["sharegpt_to_messages"]}',
         "--report_to", "trackio"],
    ),
    "dpo-full": ("preference", ["--method", "dpo"]),
    "grpo-full": (
        "question_answer",
        ["--method", "grpo", "--dataset_mapping", '{"columns": {"prompt": "question"}, "transforms": ["prompt_to_messages"]}',
         "--reward_funcs", "accuracy,length,think_format", "--num_generations", "2", "--max_completion_length", "8"],
    ),
    "reward-lora": (
        "implicit_preference",
        ["--method", "reward", "--peft_mode", "lora", "--dataset_mapping", '{"transforms": ["extract_prompt"]}'],
    ),
    "kto-full": ("unpaired", ["--method", "kto", "--dataset_mapping", '{"transforms": ["label_to_bool"]}']),
    # TRL 1.16 refuses padding-free without packing while max_length is set (and the app always sets it)
    "sft-text-padding-free-lora": ("text", ["--peft_mode", "lora", "--padding_free", "true"]),
    # implicit prompts (hh-rlhf): READY as they are, no mapping; the samples take the prompt from the pair
    "dpo-implicit-lora": ("implicit_preference", ["--method", "dpo", "--peft_mode", "lora"]),
    "reward-implicit-full": ("implicit_preference", ["--method", "reward"]),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("run_id", list(RUNS))
def test_method_trains_on_cpu(run_id: str, run_train, tiny_model: Path, datasets_dir: Path, tmp_path: Path) -> None:
    dataset, args = RUNS[run_id]
    method = args[args.index("--method") + 1] if "--method" in args else "sft"
    out = tmp_path / "out"
    proc = run_train(
        "--model_name_or_path",
        str(tiny_model),
        "--dataset_name",
        str(datasets_dir / dataset),
        "--output_dir",
        str(out),
        *args,
    )
    assert_trained(proc, out, method)
    adapter = "--peft_mode" in args
    assert (out / ("adapter_config.json" if adapter else "model.safetensors")).exists()
    assert_loads_back(out, adapter=adapter, reward=method == "reward")
    if "--eval_split_fraction" in args:
        assert "data: 12 training rows, 4 eval rows" in proc.stdout
        assert logged(out, "eval_loss")
    if method == "grpo":
        assert logged(out, "rewards/accuracy_reward/mean") and logged(out, "rewards/length_reward/mean")
    if "--padding_free" in args:
        assert "padding_free: packing the examples (packing=True" in proc.stdout
    if "trackio" in args:  # offline Trackio (no Space when not pushing): metrics in TRACKIO_DIR, project = out dir
        assert (tmp_path / "trackio" / "out.db").exists()
    if dataset == "implicit_preference":  # the prompt comes from the pair: the comparison shows it
        prompts = [i["prompt"] for i in json.loads((out / train.COMPARE_FILE).read_text())["items"]]
        assert prompts and all(p.startswith("user: What is") or p.startswith("user: Translate") for p in prompts)
        assert "(no prompts)" not in (out / "README.md").read_text()


@pytest.mark.slow
def test_sft_text_then_resume_from_a_local_checkpoint(
    run_train, tiny_model: Path, datasets_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    common = [
        "--model_name_or_path",
        str(tiny_model),
        "--dataset_name",
        str(datasets_dir / "text"),
        "--output_dir",
        str(out),
    ]
    proc = run_train(*common)
    assert_trained(proc, out, "sft")
    assert_progress_lines(proc.stdout, total=2)
    assert (out / "checkpoint-2" / "optimizer.pt").exists()
    assert_loads_back(out, adapter=False)
    assert "Dataset prompts: held out of training" in (out / "README.md").read_text()  # no eval split

    proc = run_train(*common, "--max_steps", "3", "--resume_from_checkpoint", str(out / "checkpoint-2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3]  # steps 1-2 came from the checkpoint


def assert_progress_lines(stdout: str, total: int) -> None:
    """The run printed one progress line per logging step and one at the end, which My jobs reads as is."""
    from trainer_space.jobs.progress import PREFIX, latest_progress, parse_progress, progress_report

    assert PREFIX == train.PROGRESS_PREFIX
    every = [p for p in map(parse_progress, stdout.splitlines()) if p is not None]
    found = [p for p in every if p.checkpoint_step is None]  # the logging steps' lines and the last one
    assert [p.step for p in found] == [*range(1, total + 1), total], stdout[-2000:]
    saved = [p for p in every if p.checkpoint_step is not None]  # one line per checkpoint saved (save_steps=2)
    assert [(p.step, p.checkpoint_step, p.checkpoint_pushed_t) for p in saved] == [(total, total, None)]
    assert saved[0].checkpoint_saved_t and saved[0].checkpoint_saved_t <= found[-1].t
    assert all(p.total == total and p.t and p.peak_gpu_mem_gb is None for p in found)  # CPU: no GPU memory
    assert found[0].eta_s is not None and found[0].eta_s >= 0 and found[0].loss is not None
    last = latest_progress(stdout.splitlines())
    assert last.done and last.fraction == 1.0 and last.eta_now() == 0.0
    report = progress_report(last, "COMPLETED", started_at=last.t - 10)
    assert report.fraction == 1.0 and report.text.startswith(f"Training finished at step {total} of {total}")


def test_progress_line_is_one_json_line_with_an_eta_from_the_pace() -> None:
    from trainer_space.jobs.progress import parse_progress

    line = train.progress_line(25, 100, elapsed_s=50.0, steps_done=25, tokens_per_s=1234.56, peak_gpu_mem_gb=11.2345,
                               loss=1.23456, now=1000.0)  # fmt: skip
    assert line.startswith("TRAINER_SPACE_PROGRESS {") and "\n" not in line
    p = parse_progress("  3%|▍   | 25/100 [00:50<02:30]" + line)  # after a progress bar redrawn on the same line
    assert (p.step, p.total, p.eta_s, p.tokens_per_s, p.peak_gpu_mem_gb, p.loss, p.t) == (
        25, 100, 150.0, 1234.6, 11.235, 1.2346, 1000.0)  # fmt: skip
    assert p.eta_now(now=1100.0) == 50.0 and p.eta_now(now=2000.0) == 0.0
    resumed = parse_progress(train.progress_line(60, 100, elapsed_s=20.0, steps_done=10, now=1.0))
    assert resumed.eta_s == 80.0  # the pace of this run's own steps (resumed at step 50)
    assert parse_progress("TRAINER_SPACE_PROGRESS {not json") is None and parse_progress("loss 1.2") is None


# ----------------------------------------------------------------------------- push path (Hub stand-in, slow)
@pytest.mark.slow
def test_push_to_hub_then_resume_from_hub(hub, tiny_model: Path, datasets_dir: Path, tmp_path: Path) -> None:
    repo = "alice/tiny-sft"

    def run(output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable, str(TRAIN_SCRIPT), "--model_name_or_path", str(tiny_model),
            "--dataset_name", str(datasets_dir / "text"), "--output_dir", str(output_dir), "--peft_mode", "lora",
            "--push_to_hub", "true", "--hub_model_id", repo, "--hub_always_push", "true", "--report_to", "none",
            "--logging_steps", "1", "--save_steps", "1", "--per_device_train_batch_size", "2",
            "--num_sample_generations", "1", "--dataloader_pin_memory", "false", *extra,
        ]  # fmt: skip
        env = job_env(tmp_path, offline=False, token=hub.alice)
        return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)

    proc = run(tmp_path / "first", "--max_steps", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    files = hub.files(repo)
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json"):
        assert name in files, sorted(files)
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == str(tiny_model)
    card = files["README.md"].decode()
    assert "SFTTrainer" in card and "## Base vs tuned" in card and "LoRA adapter" in card
    assert json.loads(files[train.COMPARE_FILE])["items"]  # pushed with the model
    checkpoint_state = json.loads(files["last-checkpoint/trainer_state.json"])
    assert checkpoint_state["global_step"] == 2
    # each checkpoint's lines: saved (not pushed yet), then pushed the moment its upload finished
    from trainer_space.jobs.progress import last_checkpoint, parse_progress

    reported = [p for p in map(parse_progress, proc.stdout.splitlines()) if p and p.checkpoint_step is not None]
    for step in (1, 2):
        mine = [p for p in reported if p.checkpoint_step == step]
        assert [p.checkpoint_pushed_t is None for p in mine] == [True, False], proc.stdout[-3000:]
        assert mine[1].checkpoint_pushed_t >= mine[1].checkpoint_saved_t == mine[0].checkpoint_saved_t
    last = last_checkpoint(proc.stdout.splitlines())
    assert (last.saved_step, last.pushed_step) == (2, 2)
    assert "last-checkpoint/optimizer.pt" in files
    assert not any(name.startswith(("checkpoint-", "_resume")) for name in files)

    proc = run(tmp_path / "second", "--max_steps", "3", "--resume_from_hub", "true")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"resuming from {repo}/last-checkpoint" in proc.stdout
    state = json.loads((tmp_path / "second" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3]
    assert json.loads(hub.files(repo)["last-checkpoint/trainer_state.json"])["global_step"] == 3


# ----------------------------------------------------------------------------- early errors (slow: import trl)
@pytest.mark.slow
def test_a_missing_column_stops_the_process_before_the_model_loads(
    run_train, tiny_model: Path, datasets_dir: Path, tmp_path: Path
) -> None:
    proc = run_train(
        "--model_name_or_path", str(tiny_model), "--dataset_name", str(datasets_dir / "question_answer"),
        "--output_dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "['answer', 'question']" in errors[0]
    assert "Loading weights" not in proc.stdout + proc.stderr


QUESTION_AS_PROMPT = '{"columns": {"prompt": "question"}}'
ERRORS = {
    "missing-split": ("text", ["--dataset_train_split", "validation"], "available splits: ['train']"),
    "no-chat-template": ("messages", ["--model_name_or_path", "{base}"], "has no chat template"),
    "qlora-on-cpu": ("text", ["--peft_mode", "qlora"], "QLoRA needs a CUDA GPU"),
    "push-without-repo": ("text", ["--push_to_hub", "true"], "needs --hub_model_id"),
    "push-without-token": ("text", ["--push_to_hub", "true", "--hub_model_id", "alice/x"], "needs a token"),
    "max-length-too-small": ("text", ["--max_length", "8"], "max_length=8 is too small"),
    "grpo-unknown-reward": (
        "question_answer", ["--method", "grpo", "--num_generations", "2", "--reward_funcs", "bogus"], "unknown ['bogus']"
    ),
    "grpo-accuracy-without-answer": (
        "prompt_completion",
        ["--method", "grpo", "--num_generations", "2", "--reward_funcs", "accuracy"],
        "needs an `answer` field",
    ),
    "grpo-batch-vs-generations": (  # TRL's own config check, reported the same way
        "question_answer", ["--method", "grpo", "--reward_funcs", "length"], "divisible by num_generations (8)"
    ),
    "grpo-eval-batch-vs-generations": (  # the job: it crashed at its first evaluation, after step 100
        "question_answer",
        ["--method", "grpo", "--reward_funcs", "length", "--dataset_mapping", QUESTION_AS_PROMPT, "--num_generations", "16",
         "--per_device_train_batch_size",
         "4", "--gradient_accumulation_steps", "4", "--eval_split_fraction", "0.25"],
        "crash at its first evaluation (step 100)",
    ),
    "grpo-fewer-prompts-than-a-generation-batch": (  # it trained 0 steps and pushed an untrained adapter
        "question_answer",
        ["--method", "grpo", "--reward_funcs", "length", "--dataset_mapping", QUESTION_AS_PROMPT, "--num_generations", "2",
         "--gradient_accumulation_steps",
         "8", "--max_train_samples", "6"],
        "train 0 steps",
    ),
    "padding-free-without-packing": (
        "text", ["--padding_free", "true", "--packing", "false"], "padding_free without packing"
    ),
    "kto-batch-of-one": ("unpaired", ["--method", "kto", "--per_device_train_batch_size", "1"], "KTO needs"),
    "mapping-source-missing": ("text", ["--dataset_mapping", '{"columns": {"prompt": "q"}}'], "prompt <- 'q'"),
    "kto-label-not-bool": ("unpaired", ["--method", "kto"], 'add "label_to_bool"'),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", list(ERRORS))
def test_input_problems_fail_early_with_one_error_line(
    case: str, capsys, monkeypatch, tiny_model: Path, tiny_model_no_template: Path, datasets_dir: Path, tmp_path: Path
) -> None:
    dataset, extra, needle = ERRORS[case]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    import huggingface_hub.constants

    # the suite's process has a saved login (the machine's token, tests/conftest.py): a job would not
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token"))
    extra = [arg.replace("{base}", str(tiny_model_no_template)) for arg in extra]
    argv = [
        "--model_name_or_path", str(tiny_model), "--dataset_name", str(datasets_dir / dataset),
        "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--push_to_hub", "false",
        "--per_device_train_batch_size", "2", *extra,
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        train.cli(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ERROR:")]
    assert len(lines) == 1 and needle in lines[0], err[-2000:]
    assert not (tmp_path / "out" / "trainer_state.json").exists()


@pytest.mark.slow
def test_an_unknown_model_fails_before_training(hub, capsys, datasets_dir: Path, tmp_path: Path) -> None:
    argv = [
        "--model_name_or_path", "alice/no-such-model", "--dataset_name", str(datasets_dir / "text"),
        "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--push_to_hub", "false",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        train.cli(argv)
    assert exit_info.value.code == 2
    assert "ERROR: cannot load the tokenizer of 'alice/no-such-model'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_model_without_tokenizer_files_fails_before_training(
    capsys, tiny_model: Path, datasets_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"  # config and weights, no tokenizer: transformers would build an empty one
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(tiny_model / name, bare / name)
    argv = [
        "--model_name_or_path", str(bare), "--dataset_name", str(datasets_dir / "text"),
        "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--push_to_hub", "false",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        train.cli(argv)
    assert exit_info.value.code == 2
    assert f"ERROR: '{bare}' has no tokenizer files" in capsys.readouterr().err


@pytest.mark.slow
def test_help_lists_trl_and_our_options(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train.cli(["--method", "dpo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--beta", "--lora_r", "--dataset_mapping", "--reward_funcs", "--resume_from_hub", "--peft_mode"):
        assert option in out


@pytest.mark.slow
def test_extract_prompt_matches_trl() -> None:
    from trl.data_utils import extract_prompt

    user = {"role": "user", "content": "sky?"}
    examples = [
        {"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green"},
        {
            "chosen": [user, {"role": "assistant", "content": "b"}],
            "rejected": [user, {"role": "assistant", "content": "r"}],
        },
    ]
    for example in examples:
        ours = _map(example, transforms=["extract_prompt"])
        assert {k: ours[k] for k in ("prompt", "chosen", "rejected")} == extract_prompt(example)


# ----------------------------------------------------------------------------- environment guard (job start)
def test_gpu_guard_stops_a_cpu_only_machine_before_any_download(monkeypatch, capsys, tmp_path: Path) -> None:
    """A GPU flavor where PyTorch sees no GPU (an old driver for the CUDA build) stops in seconds, not at timeout."""
    import time

    monkeypatch.setenv(train.GPUS_ENV, "1")  # this CPU machine plays a T4 flavor whose CUDA is unusable
    argv = ["--model_name_or_path", "alice/never-downloaded", "--dataset_name", "alice/never-downloaded",
            "--output_dir", str(tmp_path / "out"), "--push_to_hub", "false"]  # fmt: skip
    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        train.cli(argv)
    assert exit_info.value.code == 2 and time.monotonic() - start < 30
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("ERROR:")]
    assert (
        "this job's flavor has 1 GPU(s) but PyTorch sees 0" in line
        and "before downloading the model or the data" in line
    )
    # this machine's torch is a CPU build: no driver would help, the job installed the wrong torch
    assert "is a CPU build, without CUDA" in line and "uv run" in line and "NVIDIA driver" not in line
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv(train.GPUS_ENV, "0")  # a CPU flavor: nothing to check
    assert train.gpu_problem(0) is None


def test_gpu_guard_names_the_driver_warning_and_unsupported_gpus(monkeypatch) -> None:
    import warnings

    import torch

    def old_driver() -> bool:
        warnings.warn(
            "CUDA initialization: The NVIDIA driver on your system is too old (found version 12020).", stacklevel=2
        )
        return False

    monkeypatch.setattr(torch.cuda, "is_available", old_driver)
    monkeypatch.setattr(torch.version, "cuda", "12.6")  # the header's CUDA build, on a driver too old for it
    monkeypatch.setattr(train, "nvidia_driver", lambda: "535.129.03")
    problem = train.gpu_problem(4)
    assert "needs an NVIDIA driver >= 525.60.13" in problem and "CPU build" not in problem
    assert (
        "has 4 GPU(s) but PyTorch sees 0 (CUDA initialization: The NVIDIA driver on your system is too old" in problem
    )
    assert "this machine's driver: 535.129.03" in problem
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_86", "sm_90"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA RTX PRO 6000 Blackwell")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (12, 0))
    assert "compute capability 12.0) has no kernels" in train.gpu_problem(1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: (8, 9))  # L4 / L40S run sm_86 code
    assert train.gpu_problem(1) is None


def test_several_gpus_start_one_process_each_in_the_script_environment(monkeypatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    argv = ["--method", "sft", "--fsdp"]
    launch = train.launch_argv(argv, 4)
    assert launch[:3] == [sys.executable, "-m", "accelerate.commands.launch"]  # this interpreter: this environment
    assert launch[launch.index("--num_processes") + 1] == "4" and "--multi_gpu" in launch
    assert launch[-4:] == [str(TRAIN_SCRIPT.resolve()), *argv]
    assert train.launch_argv(argv, 1) is None
    monkeypatch.setenv("LOCAL_RANK", "0")  # already one of the launched processes
    assert train.launch_argv(argv, 4) is None


# ----------------------------------------------------------------------------- stopping, precision, samples
@pytest.mark.slow
def test_a_base_model_trained_on_chats_learns_and_keeps_the_end_of_turn_token(
    run_train, tiny_base_model: Path, datasets_dir: Path, tmp_path: Path
) -> None:
    """EOS `<|endoftext|>` but turns end with `<|im_end|>` (Qwen2.5 base on Capybara): the job trains and saves with
    `<|im_end|>` as EOS (tokenizer and generation config), so generation stops after the answer."""
    out = tmp_path / "out"
    proc = run_train("--model_name_or_path", str(tiny_base_model), "--dataset_name", str(datasets_dir / "messages"),
                     "--output_dir", str(out), "--peft_mode", "lora")  # fmt: skip
    assert_trained(proc, out, "sft")
    assert "training and saving with <|im_end|> as EOS" in proc.stdout
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(out)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "<|im_end|>"
    eos_ids = GenerationConfig.from_pretrained(out).eos_token_id  # saved next to the adapter too
    assert (eos_ids if isinstance(eos_ids, list) else [eos_ids])[0] == im_end
    card = (out / "README.md").read_text()  # base vs tuned says whether each answer ended by itself
    assert re.search(r"^- Tuned: .+$", card, re.M), card
    tuned = [i["tuned"] for i in json.loads((out / train.COMPARE_FILE).read_text())["items"]]
    assert tuned and all(isinstance(t["stopped"], bool) for t in tuned)


@pytest.mark.slow
def test_the_end_of_turn_token_must_be_in_the_trained_part(
    capsys, monkeypatch, run_train, tiny_model: Path, datasets_dir: Path, tmp_path: Path
) -> None:
    """Answers cut by max_length lose the token that ends them: a warning naming how many; all of them: an error,
    before training (the model would never learn to stop)."""
    from datasets import Dataset

    proc = run_train("--model_name_or_path", str(tiny_model), "--dataset_name", str(datasets_dir / "messages"),
                     "--output_dir", str(tmp_path / "some"), "--max_length", "16")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 16 rows, one held out of training for base vs tuned (a tenth at most)
    assert re.search(r"1[12] of the first 15 training examples lose <\|im_end\|> \(the end of the answer\) to trunc",
                     proc.stdout), proc.stdout[-3000:]  # fmt: skip
    poems = [{"messages": [{"role": "user", "content": "Write a short poem about the sea."},
                           {"role": "assistant", "content": "The sea is wide and blue and deep."}]}] * 8  # fmt: skip
    Dataset.from_list(poems).save_to_disk(str(tmp_path / "poems"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    argv = ["--model_name_or_path", str(tiny_model), "--dataset_name", str(tmp_path / "poems"),
            "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--push_to_hub", "false",
            "--per_device_train_batch_size", "2", "--max_length", "16"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        train.cli(argv)
    assert exit_info.value.code == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ERROR:")]
    assert "none of the first 8 training examples has <|im_end|> (the token that ends an answer)" in line
    assert not (tmp_path / "out" / "trainer_state.json").exists()


@pytest.mark.slow
def test_documents_longer_than_max_length_are_truncated_not_refused(
    capsys, monkeypatch, tiny_model: Path, tmp_path: Path
) -> None:
    """Continued pre-training on plain text: documents longer than max_length lose their end (and its EOS) on
    purpose. The job says how many and trains; it used to refuse them all after the download."""
    from datasets import Dataset

    long_text = "The sea is wide and blue and deep. " * 6
    Dataset.from_list([{"text": long_text}] * 8).save_to_disk(str(tmp_path / "docs"))
    for key in ("HF_TOKEN", "RANK", "LOCAL_RANK", train.GPUS_ENV):
        monkeypatch.delenv(key, raising=False)
    argv = ["--model_name_or_path", str(tiny_model), "--dataset_name", str(tmp_path / "docs"),
            "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--push_to_hub", "false",
            "--per_device_train_batch_size", "2", "--max_length", "16", "--max_steps", "1",
            "--num_sample_generations", "0", "--dataloader_pin_memory", "false"]  # fmt: skip
    train.cli(argv)
    assert "8 of the first 8 documents are longer than max_length=16: each is truncated" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "trainer_state.json").read_text())["global_step"] == 1


@pytest.mark.slow
def test_fp16_training_keeps_every_trainable_parameter_in_float32(tiny_model: Path, datasets_dir: Path, tmp_path):
    """Reward modelling + LoRA on a T4: base loaded in fp16, fp16 AMP. The score head (PEFT modules_to_save) must be
    float32, or the gradient scaler raises "Attempting to unscale FP16 gradients" at the first optimizer step."""
    import torch

    argv = ["--method", "reward", "--peft_mode", "lora", "--dtype", "float16", "--fp16", "true",
            "--model_name_or_path", str(tiny_model), "--dataset_name", str(datasets_dir / "implicit_preference"),
            "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--push_to_hub", "false",
            "--per_device_train_batch_size", "2"]  # fmt: skip
    script_args, training_args, model_args, _ = train.parse_args(argv)
    data, test, _, rewards = train.load_data(script_args, [])
    training_args.model_init_kwargs = train.model_init_kwargs(training_args, model_args)
    trainer = train.build_trainer(script_args, training_args, model_args, data, test, rewards)
    trainable = {name: p.dtype for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert any("score" in name for name in trainable), sorted(trainable)
    assert set(trainable.values()) == {torch.float32}, {n: d for n, d in trainable.items() if d != torch.float32}
    frozen = {p.dtype for p in trainer.model.parameters() if not p.requires_grad}
    assert frozen == {torch.float16}  # the base stays in half precision


@pytest.mark.slow
def test_samples_pad_with_the_pad_token_even_when_its_id_is_zero(tiny_model: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id != 0
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    seen: dict = {}
    generate = model.generate

    def recording_generate(**kwargs):
        seen.update(kwargs)
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", recording_generate)
    trainer = SimpleNamespace(accelerator=SimpleNamespace(unwrap_model=lambda m: m), model=model,
                              processing_class=tokenizer)  # fmt: skip
    rows = [{"messages": [{"role": "user", "content": "What is 3 + 5?"}, {"role": "assistant", "content": "8"}]}]
    ((prompt, output),) = train.generate_samples(trainer, "sft", rows, 8)
    assert seen["pad_token_id"] == 0  # not the EOS: `pad_token_id or eos_token_id` took 0 for missing
    assert prompt == "user: What is 3 + 5?" and re.search(
        r"\[(stopped: <\|im_end\|>|no stop within 8 new tokens)\]$", output
    )
    user, answer = rows[0]["messages"]
    assert train.sample_prompt({"chosen": [user, answer], "rejected": [user, {**answer, "content": "9"}]}) == [user]
