"""Pure tests of trainer_space.data.detect: verdicts per shape, the mapping round trip through the generated
`datasets.map` snippet, agreement with the job template's `map_example`, and agreement with `trl.data_utils`."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.format_shapes import SHAPES, as_viewer_rows
from trainer_space.data import detect as formats
from trainer_space.data.detect import METHODS, Verdict, check_mapping, detect, detect_method, readiness
from trainer_space.data.mapping import map_example, parse_mapping, trainer_columns
from trainer_space.data.mapping import map_rows as _map_rows
from trainer_space.data.snippet import mapping_code
from trainer_space.errors import InvalidInput


def map_rows(rows: list[dict[str, Any]], mapping: Any) -> list[dict[str, Any]]:
    return _map_rows(rows, parse_mapping(mapping))


def apply_mapping(row: dict[str, Any], mapping: Any) -> dict[str, Any]:
    return map_example(row, parse_mapping(mapping))


ROOT = Path(__file__).resolve().parent.parent
CASES = [(shape, method) for shape in SHAPES for method in METHODS]
MAPPED = [
    (shape, method)
    for shape, method in CASES
    if SHAPES[shape]["expect"][method] == "NEEDS_MAPPING"
]  # fmt: skip


def rows_of(shape: str) -> list[dict[str, Any]]:
    return as_viewer_rows(copy.deepcopy(SHAPES[shape]["rows"]))


def project(rows: list[dict[str, Any]], method: str) -> list[dict[str, Any]]:
    group = trainer_columns(method, rows[0])
    assert group is not None
    return [{k: r[k] for k in group} for r in rows]


def run_snippet(code: str, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Exec the snippet as a visitor would, with `load_dataset` answering the preview rows."""
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(rows))
    namespace: dict[str, Any] = {}
    exec(compile(code, "<mapping_code>", "exec"), namespace)
    return namespace["ds"].to_list()


@pytest.fixture(scope="module")
def job_template():
    path = ROOT / "job_templates" / "train.py"
    if not path.exists():
        pytest.skip("job_templates/train.py is not there yet")
    spec = importlib.util.spec_from_file_location("train_template_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def trl_data_utils():
    return pytest.importorskip("trl.data_utils")


# ----------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize(("shape", "method"), CASES)
def test_verdict_for_every_shape_and_method(shape: str, method: str) -> None:
    report = detect_method(method, rows_of(shape), dataset="alice/data")
    assert report.verdict == SHAPES[shape]["expect"][method], report.reason
    assert report.reason and "\n" not in report.reason
    if report.verdict == Verdict.NEEDS_MAPPING:
        assert report.mapping and report.mapping_code
    else:
        assert report.mapping is None and report.mapping_code is None
    assert "input_ids" not in str(report.mapping)


def test_detect_returns_all_methods_as_json() -> None:
    out = {m: r.to_json() for m, r in detect(rows_of("alpaca")).items()}
    assert set(out) == {"sft", "dpo", "grpo", "reward", "kto"}
    assert out["sft"]["mapping"] == {
        "columns": {"prompt": "instruction", "completion": "output"},
        "transforms": ["alpaca"],
    }
    assert set(out["dpo"]) == {"verdict", "reason", "mapping", "mapping_code"}


def test_expected_mappings_for_common_shapes() -> None:
    assert detect_method("sft", rows_of("sharegpt")).mapping.to_json() == {
        "columns": {"messages": "conversations"},
        "transforms": ["sharegpt_to_messages"],
    }
    assert detect_method("sft", rows_of("question_answer")).mapping.to_json() == {
        "columns": {"prompt": "question", "completion": "answer"},
        "transforms": [],
    }
    assert detect_method("grpo", rows_of("question_answer")).mapping.to_json()["columns"] == {
        "prompt": "question",
        "answer": "answer",
    }
    assert detect_method("kto", rows_of("kto_strings")).mapping.to_json()["transforms"] == ["label_to_bool"]
    dpo = detect_method("dpo", rows_of("preference_system")).mapping.to_json()
    assert dpo["columns"] == {"chosen": "chosen", "rejected": "rejected", "prompt": "question", "system": "system"}
    assert dpo["transforms"] == [
        "prompt_to_messages",
        "chosen_to_messages",
        "rejected_to_messages",
        "system_to_messages",
    ]
    assert detect_method("grpo", rows_of("hh_rlhf_strings")).mapping.to_json()["transforms"] == ["extract_prompt"]


def test_empty_split_is_incompatible_everywhere() -> None:
    for report in detect([]).values():
        assert report.verdict == Verdict.INCOMPATIBLE and "no rows" in report.reason


def test_pretokenised_is_never_a_prompt() -> None:
    rows = [{"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "label": True}]
    for report in detect(rows).values():
        assert report.verdict == Verdict.INCOMPATIBLE
        assert "prompt" not in str(report.mapping)
    assert "pre-tokenised" in detect_method("sft", [{"input_ids": [1], "attention_mask": [1]}]).reason


def test_media_columns_are_named_and_not_used() -> None:
    report = detect_method("sft", rows_of("image_text"))
    assert report.verdict == Verdict.READY and "'image'" in report.reason
    assert "image/audio" in detect_method("sft", rows_of("audio_only")).reason


def test_features_mark_media_even_without_values() -> None:
    cols = formats.analyze([{"img": None, "text": "a"}], {"img": {"_type": "Image"}, "text": {"dtype": "string"}})
    assert cols["img"].kind == formats.Kind.MEDIA


def test_h4_ultrafeedback_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """prompt text + full conversations in chosen/rejected: SFT uses 'messages'; DPO takes the prompt from them."""
    rows = []
    for q, c, r in (("Hi?", "Hello!", "Go away."), ("2+2?", "4", "5")):
        convo = [{"role": "user", "content": q}]
        rows.append({"prompt": q, "chosen": [*convo, {"role": "assistant", "content": c}],
                     "rejected": [*convo, {"role": "assistant", "content": r}],
                     "messages": [*convo, {"role": "assistant", "content": c}], "score_chosen": 8.0})  # fmt: skip
    assert detect_method("sft", rows).verdict == Verdict.READY
    dpo = detect_method("dpo", rows)
    assert dpo.verdict == Verdict.NEEDS_MAPPING, dpo.reason
    assert dpo.mapping.to_json() == {
        "columns": {"chosen": "chosen", "rejected": "rejected"},
        "transforms": ["extract_prompt"],
    }
    mapped = formats.map_rows(rows, dpo.mapping)
    assert mapped[0]["prompt"] == [{"role": "user", "content": "Hi?"}]
    assert mapped[0]["chosen"] == [{"role": "assistant", "content": "Hello!"}]
    assert formats.check_mapping("dpo", rows, dpo.mapping).verdict == Verdict.READY
    out = run_snippet(dpo.mapping_code, rows, monkeypatch)  # the snippet gives the same rows
    assert out[0]["prompt"] == mapped[0]["prompt"] and out[0]["rejected"] == mapped[0]["rejected"]


def test_redundant_prompt_column_under_another_name_becomes_implicit() -> None:
    rows = [
        {"question": q, "chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": c}],
         "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": r}]}
        for q, c, r in (("Hi?", "Hello!", "No."), ("2+2?", "4", "5"))
    ]  # fmt: skip
    report = detect_method("dpo", rows)
    assert report.verdict == Verdict.READY  # chosen/rejected already hold the prompt; 'question' is not read


def test_dolly_shape_uses_instruction_and_response() -> None:
    rows = [{"instruction": "Summarise.", "context": "A long text.", "response": "Short."}]
    report = detect_method("sft", rows)
    assert report.verdict == Verdict.NEEDS_MAPPING
    assert report.mapping.columns == {"prompt": "instruction", "completion": "response"}


def test_rating_labels_are_not_guessed() -> None:
    rows = [{"prompt": "a", "completion": "b", "label": v} for v in (1, 3, 5)]
    report = detect_method("kto", rows)
    assert report.verdict == Verdict.INCOMPATIBLE and "label" in report.reason


def test_sharegpt_with_standard_roles_still_needs_role_content() -> None:
    rows = [{"conversations": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Hello"}]}]
    assert detect_method("sft", rows).verdict == Verdict.NEEDS_MAPPING  # the job reads 'messages' only


def test_implicit_prompt_needs_a_common_start() -> None:
    rows = [{"chosen": "Yes.", "rejected": "No."}]
    report = detect_method("dpo", rows)
    assert report.verdict == Verdict.INCOMPATIBLE and "common start" in report.reason


# ----------------------------------------------------------------------------- mapping round trip
@pytest.mark.parametrize(("shape", "method"), MAPPED)
def test_snippet_round_trip_is_ready(shape: str, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = rows_of(shape)
    report = detect_method(method, rows, dataset="alice/data", config="main")
    assert "load_dataset('alice/data', 'main', split='train')" in report.mapping_code
    mapped = run_snippet(report.mapping_code, rows, monkeypatch)
    assert detect_method(method, mapped).verdict == Verdict.READY
    assert mapped == project(map_rows(rows, report.mapping), method)


@pytest.mark.parametrize(("shape", "method"), MAPPED)
def test_mapping_agrees_with_job_template(shape: str, method: str, job_template) -> None:
    rows = rows_of(shape)
    mapping = detect_method(method, rows).mapping
    job_mapping = job_template.parse_mapping(mapping.to_json())
    assert job_template.mapping_problems(job_mapping, rows[0].keys()) == []  # the job would accept it
    for row in rows:
        ours = apply_mapping(row, mapping)
        assert ours == job_template.map_example(row, job_mapping)
        assert list(trainer_columns(method, ours)) == job_template.select_columns(
            method, ours, ["accuracy"] if "answer" in ours else []
        )


def test_unpair_round_trip(monkeypatch: pytest.MonkeyPatch, job_template) -> None:
    rows = rows_of("preference_explicit")
    mapping = {"columns": {}, "transforms": ["unpair_preference"]}
    ours = map_rows(rows, mapping)
    assert readiness("kto", ours)[0]
    code = mapping_code(mapping, method="kto")
    assert run_snippet(code, rows, monkeypatch) == ours
    import datasets

    job = job_template.prepare_dataset(
        datasets.Dataset.from_list(rows), job_template.parse_mapping(mapping), "kto", [], None
    )
    assert job.to_list() == ours


def test_odd_column_names_are_safe_in_the_snippet(monkeypatch: pytest.MonkeyPatch) -> None:
    odd_q, odd_a = "it's a \"question\"\n');import os;('", "answer {x} \\ ünï"
    rows = [{odd_q: "What is 2+2?", odd_a: "4"}, {odd_q: "Capital of France?", odd_a: "Paris"}]
    mapping = {
        "columns": {"prompt": odd_q, "completion": odd_a},
        "transforms": ["prompt_to_messages", "completion_to_messages"],
    }
    report = check_mapping("sft", rows, mapping)
    assert report.verdict == Verdict.READY, report.reason
    mapped = run_snippet(report.mapping_code, rows, monkeypatch)
    assert mapped[0] == {"prompt": [{"role": "user", "content": "What is 2+2?"}],
                         "completion": [{"role": "assistant", "content": "4"}]}  # fmt: skip


def test_edited_mapping_is_revalidated() -> None:
    rows = rows_of("question_answer")
    wrong = check_mapping("sft", rows, {"columns": {"prompt": "question"}, "transforms": []})
    assert wrong.verdict == Verdict.INCOMPATIBLE and "SFT needs" in wrong.reason
    missing = check_mapping("sft", rows, {"columns": {"prompt": "question", "completion": "nope"}, "transforms": []})
    assert missing.verdict == Verdict.INCOMPATIBLE and "'nope'" in missing.reason
    fixed = check_mapping("sft", rows, {"columns": {"prompt": "question", "completion": "answer"}, "transforms": []})
    assert fixed.verdict == Verdict.READY
    bad_label = check_mapping("kto", [{"prompt": "a", "completion": "b", "label": "meh"}],
                              {"columns": {}, "transforms": ["label_to_bool"]})  # fmt: skip
    assert bad_label.verdict == Verdict.INCOMPATIBLE and "meh" in bad_label.reason


def test_normalize_mapping_rejects_unknown_names() -> None:
    with pytest.raises(InvalidInput):
        formats.normalize_mapping({"columns": {"question": "q"}, "transforms": []})
    with pytest.raises(InvalidInput):
        formats.normalize_mapping({"columns": {}, "transforms": ["shout"]})
    clean = formats.normalize_mapping(
        {"columns": {"prompt": "q", "completion": ""}, "transforms": ["label_to_bool", "alpaca"]}
    )
    assert clean.to_json() == {"columns": {"prompt": "q"}, "transforms": ["alpaca", "label_to_bool"]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (0, False), (1, True), (1.0, True), ("good", True), ("Bad", False), (" yes ", True), ("0", False)],
)
def test_label_to_bool(value: Any, expected: bool) -> None:
    from trainer_space.data.mapping import label_to_bool

    assert label_to_bool(value) is expected


# ----------------------------------------------------------------------------- agreement with trl.data_utils
def _ready_rows() -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(shape, method, rows as the trainer sees them) for every READY or mapped case."""
    out = []
    for shape, method in CASES:
        report = detect_method(method, rows_of(shape))
        if report.verdict != Verdict.INCOMPATIBLE:
            out.append((shape, method, project(map_rows(rows_of(shape), report.mapping), method)))
    return out


def test_conversational_agrees_with_trl(trl_data_utils) -> None:
    for shape, method, rows in _ready_rows():
        ok, reason = readiness(method, rows)
        assert ok, (shape, method, reason)
        for row in rows:
            assert trl_data_utils.is_conversational(row) == ("conversational" in reason), (shape, method)


def test_sharegpt_agrees_with_trl(trl_data_utils) -> None:
    for row in rows_of("sharegpt"):
        assert trl_data_utils.is_conversational_from_value(row)
        assert formats.analyze([row])["conversations"].kind == formats.Kind.SHAREGPT
        theirs = trl_data_utils.maybe_convert_to_chatml(copy.deepcopy(row))["messages"]
        ours = apply_mapping(row, {"columns": {}, "transforms": ["sharegpt_to_messages"]})["messages"]
        from trainer_space.data.mapping import SHAREGPT_ROLES

        assert ours == [{"role": SHAREGPT_ROLES.get(m["role"], m["role"]), "content": m["content"]} for m in theirs]
    for row in rows_of("messages"):
        assert not trl_data_utils.is_conversational_from_value({"conversations": row["messages"]})


@pytest.mark.parametrize("shape", ["hh_rlhf_strings", "hh_rlhf_messages"])
def test_extract_prompt_agrees_with_trl(shape: str, trl_data_utils) -> None:
    for row in rows_of(shape):
        theirs = trl_data_utils.extract_prompt(row)
        prompt, chosen, rejected = formats.extract_prompt(row["chosen"], row["rejected"])
        assert (prompt, chosen, rejected) == (theirs["prompt"], theirs["chosen"], theirs["rejected"])
        assert prompt


def test_unpair_agrees_with_trl(trl_data_utils) -> None:
    import datasets

    rows = rows_of("preference_explicit")
    theirs = trl_data_utils.unpair_preference_dataset(datasets.Dataset.from_list(rows)).to_list()
    ours = map_rows(rows, {"columns": {}, "transforms": ["unpair_preference"]})
    assert [{k: r[k] for k in sorted(r)} for r in ours] == [{k: r[k] for k in sorted(r)} for r in theirs]


def test_sft_on_a_prompt_beside_whole_conversations_does_not_repeat_the_user_turn() -> None:
    """mlabonne/orpo-dpo-mix-40k: `prompt` text plus `chosen`/`rejected` chats that already open with it. SFT trains
    on the chosen conversations as they are (user, assistant), not prompt -> completion (user, user, assistant)."""
    rows = rows_of("prompt_beside_conversations")
    report = detect_method("sft", rows)
    assert report.mapping.to_json() == {"columns": {"messages": "chosen"}, "transforms": []}
    for row, mapped in zip(rows, map_rows(rows, report.mapping), strict=True):
        trained = project([mapped], "sft")[0]
        assert [m["role"] for m in trained["messages"]] == ["user", "assistant"]
        assert trained["messages"] == row["chosen"]
