"""Dataset inspection end to end through the Hub stand-in: every shape, the mapping round trip, discovery,
bad input, the streaming fallback, token statistics and chat templates with the tiny tokenizer, the
`/inspect_dataset` API through gradio_client, and the tab in a browser."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.format_shapes import SHAPES
from tests.hub_standin import free_port
from trainer_space.data import tokens as inspection
from trainer_space.data.detect import METHODS, Verdict, detect_method
from trainer_space.data.inspection import fetch_sample, inspect_dataset, revalidate, trainer_rows
from trainer_space.data.tokens import render_example, token_stats
from trainer_space.errors import GatedRepo, HubUnavailable, InvalidInput, RateLimited, RepoNotFound
from trainer_space.hub.session import HubSession
from trainer_space.settings import get_settings

ANON = HubSession(None)  # a signed-out visitor

QA = SHAPES["question_answer"]["rows"]
MESSAGES = SHAPES["messages"]["rows"]


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory) -> dict[str, Path]:
    """The tiny test tokenizer (ChatML template) and a variant without a chat template, built once."""
    from tests.tiny_model import build_tiny_tokenizer

    out = {}
    for name, chat in (("chat", True), ("base", False)):
        path = tmp_path_factory.mktemp(f"tiny-{name}")
        build_tiny_tokenizer(path, chat_template=chat)
        out[name] = path
    return out


@pytest.fixture
def models(hub, tokenizer_dirs) -> dict[str, str]:
    hub.add_model("alice/tiny", files=tokenizer_dirs["chat"])
    hub.add_model("alice/tiny-base", files=tokenizer_dirs["base"])
    hub.add_model("alice/tiny-gated", files=tokenizer_dirs["chat"], gated=True)
    inspection.TOKENIZER_CACHE.clear()
    return {"chat": "alice/tiny", "base": "alice/tiny-base", "gated": "alice/tiny-gated"}


def viewer_calls(hub, endpoint: str) -> list[Any]:
    return hub.requests_to(f"/datasets-server/{endpoint}")


# ----------------------------------------------------------------------------- every shape, end to end
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_through_the_viewer(shape: str, hub, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = SHAPES[shape]["rows"]
    hub.add_dataset(f"alice/{shape}", {"train": rows}, num_rows={"train": 12345})
    result = inspect_dataset(ANON, dataset=f"alice/{shape}")
    assert (result.config, result.split, result.num_rows, result.source) == ("default", "train", 12345, "viewer")
    assert result.columns == list(rows[0])
    for method in METHODS:
        assert result.methods[method].verdict == SHAPES[shape]["expect"][method], (
            method,
            result.methods[method].reason,
        )
    body = result.to_json()
    assert set(body) >= {"dataset", "config", "split", "num_rows", "columns", "methods", "preview"}
    assert set(body["methods"]) == set(METHODS)
    assert body["preview"] and json.dumps(body)  # JSON-safe, media included
    # the mapping round trip on the preview rows: snippet -> rows the detector calls READY
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(result.sample))
    for method, report in result.methods.items():
        if report.verdict == Verdict.NEEDS_MAPPING:
            assert f"load_dataset('alice/{shape}', split='train')" in report.mapping_code
            namespace: dict[str, Any] = {}
            exec(compile(report.mapping_code, "<mapping_code>", "exec"), namespace)
            assert detect_method(method, namespace["ds"].to_list()).verdict == Verdict.READY, method
            assert revalidate(inspection=result, method=method, mapping=report.mapping).verdict == Verdict.READY


def test_calls_are_concurrent_and_sent_once(hub) -> None:
    hub.add_dataset("alice/qa", {"train": QA})
    hub.state.viewer_delay_s = 0.3
    result = inspect_dataset(ANON, dataset="alice/qa")
    assert result.elapsed_s < 0.55  # three viewer calls of 0.3 s each, in parallel
    assert [len(viewer_calls(hub, e)) for e in ("splits", "size", "first-rows")] == [1, 1, 1]


def test_who_answered_is_said_as_it_is(hub, tmp_path) -> None:
    """A Hub dataset is answered by the dataset viewer; a file on this machine is read here, and nothing says the
    viewer answered for it (nor the prompt before an inspection, where files can be named)."""
    from trainer_space.data.inspection import inspect_prompt

    hub.add_dataset("alice/qa", {"train": QA})
    assert inspect_dataset(ANON, dataset="alice/qa").answered_by == "the dataset viewer"
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in QA) + "\n")
    asked = len(hub.requests_to("/datasets-server/"))
    here = inspect_dataset(ANON, dataset=str(path))
    assert here.source == "local" and "viewer" not in here.answered_by and "this machine" in here.answered_by
    assert len(hub.requests_to("/datasets-server/")) == asked  # the viewer was not asked
    assert "file is read here" in inspect_prompt(True) and "the dataset viewer answers for a Hub dataset" in (
        inspect_prompt(True)
    )
    assert "file" not in inspect_prompt(False)


def test_visitor_token_is_sent_to_the_viewer_only_when_given(hub) -> None:
    hub.add_dataset("alice/qa", {"train": QA})
    inspect_dataset(ANON, dataset="alice/qa")
    assert all(r.token is None for r in hub.requests)
    inspect_dataset(HubSession(hub.alice), dataset="alice/qa")
    assert viewer_calls(hub, "first-rows")[-1].token == hub.alice


# ----------------------------------------------------------------------------- configs, splits, row counts
def test_config_and_split_discovery(hub) -> None:
    hub.add_dataset("alice/gsm", {"train": QA, "test": QA[:1]}, config="main", num_rows={"train": 7473, "test": 1319})
    hub.add_dataset("alice/gsm", {"train": QA}, config="socratic")
    result = inspect_dataset(ANON, dataset="alice/gsm", split=None)
    assert (result.config, result.split, result.num_rows) == ("main", "train", 7473)
    assert result.configs == ["main", "socratic"] and result.split_names() == ["train", "test"]
    assert "load_dataset('alice/gsm', 'main', split='train')" in result.methods["sft"].mapping_code
    test = inspect_dataset(ANON, dataset="alice/gsm", config="main", split="test")
    assert (test.split, test.num_rows) == ("test", 1319)
    with pytest.raises(InvalidInput, match=r"no config 'nope'.*main, socratic"):
        inspect_dataset(ANON, dataset="alice/gsm", config="nope")
    with pytest.raises(InvalidInput, match=r"no split 'validation'.*train, test"):
        inspect_dataset(ANON, dataset="alice/gsm", config="main", split="validation")


def test_row_count_falls_back_to_info_then_unknown(hub) -> None:
    hub.add_dataset("alice/qa", {"train": QA}, num_rows={"train": 999})
    hub.fail_next(500, "/datasets-server/size", times=100)  # lasting failures (a single one is retried)
    assert inspect_dataset(ANON, dataset="alice/qa").num_rows == 999  # from /info
    hub.fail_next(500, "/datasets-server/info", times=100)
    result = inspect_dataset(ANON, dataset="alice/qa")
    assert result.num_rows is None and any("number of rows" in n for n in result.notes)


def test_full_url_is_accepted(hub) -> None:
    hub.add_dataset("alice/qa", {"train": QA})
    assert inspect_dataset(ANON, dataset="  https://huggingface.co/datasets/alice/qa/tree/main ").dataset == "alice/qa"


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", ["", "   ", "not a valid id!", "a/b/c", "https://example.com/x/y", "../etc"])
def test_invalid_id_sends_nothing(bad: str, hub) -> None:
    with pytest.raises(InvalidInput):
        inspect_dataset(ANON, dataset=bad)
    assert hub.requests == []


def test_dataset_that_does_not_exist(hub) -> None:
    with pytest.raises(RepoNotFound, match="alice/nope"):
        inspect_dataset(ANON, dataset="alice/nope")


def test_gated_without_access_then_granted(hub) -> None:
    repo = hub.add_dataset("alice/gated", {"train": QA}, gated=True)
    with pytest.raises(GatedRepo, match="request access"):
        inspect_dataset(HubSession(hub.bob), dataset="alice/gated")
    with pytest.raises(GatedRepo):
        inspect_dataset(ANON, dataset="alice/gated")
    repo.granted.add("bob")
    assert inspect_dataset(HubSession(hub.bob), dataset="alice/gated").num_rows == 2


def test_private_dataset_is_not_found_for_others(hub) -> None:
    hub.add_dataset("alice/private", {"train": QA}, private=True)
    with pytest.raises(RepoNotFound):
        inspect_dataset(HubSession(hub.bob), dataset="alice/private")
    assert inspect_dataset(HubSession(hub.alice), dataset="alice/private").num_rows == 2


@pytest.mark.parametrize("endpoint", ["splits", "first-rows"])
def test_viewer_error_is_a_clear_message(endpoint: str, hub) -> None:
    hub.add_dataset("alice/qa", {"train": QA})
    hub.fail_next(500, f"/datasets-server/{endpoint}", times=100)  # lasting: a single failure is retried
    with pytest.raises(HubUnavailable, match="dataset viewer answered 500"):
        inspect_dataset(ANON, dataset="alice/qa")


def test_viewer_rate_limit(hub) -> None:
    hub.add_dataset("alice/qa", {"train": QA})
    hub.fail_next(429, "/datasets-server/splits", times=100, headers={"Retry-After": "30"})
    with pytest.raises(RateLimited, match=r"429.*about 30 seconds"):  # longer than the budget: said at once
        inspect_dataset(ANON, dataset="alice/qa")


def test_viewer_timeout_is_a_clear_message(hub, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = dataclasses.replace(get_settings(), viewer_timeout_s=0.2)
    from trainer_space.hub import viewer

    monkeypatch.setattr(viewer, "get_settings", lambda: fast)
    hub.add_dataset("alice/qa", {"train": QA})
    hub.state.viewer_delay_s = 1.0
    with pytest.raises(HubUnavailable, match=r"did not answer in time \(0.2 s limit\)"):
        inspect_dataset(ANON, dataset="alice/qa")


def test_empty_split(hub) -> None:
    hub.add_dataset("alice/empty", {"train": []})
    result = inspect_dataset(ANON, dataset="alice/empty")
    assert result.num_rows == 0 and "The split is empty." in result.notes
    assert all(r.verdict == Verdict.INCOMPATIBLE and "no rows" in r.reason for r in result.methods.values())


def test_huge_cells_are_cut_and_left_out_of_the_verdicts(hub) -> None:
    rows = [{"text": "x" * 50_000}, *SHAPES["text_only"]["rows"]]
    hub.add_dataset("alice/huge", {"train": rows})
    result = inspect_dataset(ANON, dataset="alice/huge")
    assert result.truncated_cells == 1 and any("cut by the viewer" in n for n in result.notes)
    assert result.methods["sft"].verdict == Verdict.READY
    assert len(result.sample) == 2
    cell = result.to_json()["preview"][0]["text"]
    assert len(cell) < 1100 and cell.endswith("more characters]")


def test_media_columns_in_the_preview(hub) -> None:
    hub.add_dataset("alice/pics", {"train": SHAPES["image_text"]["rows"]})
    body = inspect_dataset(ANON, dataset="alice/pics").to_json()
    assert body["preview"][0]["image"] == "[image]"
    assert body["column_types"]["image"] == "media"
    assert "'image'" in body["methods"]["sft"]["reason"]


# ----------------------------------------------------------------------------- streaming fallback
def test_streaming_fallback_when_the_viewer_has_no_data(hub) -> None:
    files = {"data/train.jsonl": "\n".join(json.dumps(r) for r in QA) + "\n"}
    hub.add_dataset("alice/noviewer", {"train": QA}, viewer=False, files=files)
    result = inspect_dataset(ANON, dataset="alice/noviewer")
    assert result.source == "streaming" and result.num_rows is None
    assert result.sample == QA
    assert result.methods["sft"].verdict == Verdict.NEEDS_MAPPING
    assert any("streaming" in n for n in result.notes)


def test_failing_fallback_is_a_clear_message(hub) -> None:
    hub.add_dataset("alice/nofiles", {"train": QA}, viewer=False)
    with pytest.raises(
        HubUnavailable, match=r"viewer has no data for 'alice/nofiles'.*reading it with `datasets` failed"
    ):
        inspect_dataset(ANON, dataset="alice/nofiles")


# ----------------------------------------------------------------------------- mapping edits
def test_edited_mapping_is_revalidated(hub) -> None:
    hub.add_dataset("alice/qa", {"train": QA})
    result = inspect_dataset(ANON, dataset="alice/qa")
    bad = revalidate(inspection=result, method="sft", mapping={"columns": {"prompt": "answer"}, "transforms": []})
    assert bad.verdict == Verdict.INCOMPATIBLE
    good = {
        "columns": {"prompt": "question", "completion": "answer"},
        "transforms": ["prompt_to_messages", "completion_to_messages"],
    }
    report = revalidate(inspection=result, method="sft", mapping=good)
    assert report.verdict == Verdict.READY and "conversational" in report.reason
    with pytest.raises(InvalidInput):
        revalidate(inspection=result, method="ppo", mapping=None)


# ----------------------------------------------------------------------------- chat template and token stats
def test_chat_template_rendering(hub, models) -> None:
    hub.add_dataset("alice/chat", {"train": MESSAGES})
    result = inspect_dataset(ANON, dataset="alice/chat")
    row = trainer_rows(result.sample, "sft", None)[0]
    rendered = render_example(ANON, row=row, model=models["chat"])
    assert rendered.conversational and rendered.text.startswith("<|im_start|>user\nWhat is 2+2?<|im_end|>")
    base = render_example(ANON, row=row, model=models["base"])
    assert "no chat template" in base.note and "user: What is 2+2?" in base.text
    assert "Name a model" in render_example(ANON, row=row, model=None).note


def test_prompt_only_is_rendered_with_a_generation_prompt(models) -> None:
    rendered = render_example(ANON, row={"prompt": [{"role": "user", "content": "Hi"}]}, model=models["chat"])
    assert rendered.text.endswith("<|im_start|>assistant\n")


def test_standard_text_shows_the_eos_token(models) -> None:
    rendered = render_example(ANON, row={"prompt": "The sky is", "completion": " blue."}, model=models["chat"])
    assert rendered.text == "The sky is blue.<|im_end|>" and not rendered.conversational


def test_token_stats_over_a_sampled_split(hub, models) -> None:
    rows = [{"question": f"What is {i} plus {i}? " + "Think. " * (i % 7), "answer": str(2 * i)} for i in range(250)]
    hub.add_dataset("alice/many", {"train": rows})
    result = inspect_dataset(ANON, dataset="alice/many")
    sample = fetch_sample(ANON, inspection=result)
    assert len(sample) == 250 and sample[-1] == rows[-1]
    assert sorted(int(dict(x.split("=") for x in r.query.split("&"))["offset"]) for r in viewer_calls(hub, "rows")) == [
        100,
        200,
    ]
    mapping = result.methods["sft"].mapping
    stats = token_stats(ANON, rows=sample, method="sft", mapping=mapping, model=models["chat"], max_length=12)
    assert stats.rows == 250 and stats.min <= stats.median <= stats.p95 <= stats.max
    assert 0 < stats.over_max_length < 250 and stats.measured == "prompt + completion"
    assert stats.to_json()["share_over_max_length"] == round(stats.over_max_length / 250, 4)
    everything = token_stats(ANON, rows=sample, method="sft", mapping=mapping, model=models["chat"], max_length=10_000)
    assert everything.over_max_length == 0


def test_token_stats_conversational_and_base_model(hub, models) -> None:
    chat = token_stats(ANON, rows=MESSAGES, method="sft", mapping=None, model=models["chat"], max_length=100)
    base = token_stats(ANON, rows=MESSAGES, method="sft", mapping=None, model=models["base"], max_length=100)
    assert chat.min > base.min  # the template's special tokens count
    assert "no chat template" in base.note


def test_token_stats_input_errors(models) -> None:
    with pytest.raises(InvalidInput, match="Name a model"):
        token_stats(ANON, rows=QA, method="sft", mapping=None, model="", max_length=10)
    with pytest.raises(InvalidInput, match="SFT needs"):
        token_stats(ANON, rows=QA, method="sft", mapping=None, model=models["chat"], max_length=10)
    with pytest.raises(RepoNotFound):
        token_stats(ANON, rows=MESSAGES, method="sft", mapping=None, model="alice/missing", max_length=10)


def test_a_model_repo_without_tokenizer_files_is_named(hub) -> None:
    hub.add_model("alice/weights-only", files={"config.json": '{"model_type": "qwen2", "vocab_size": 400}'})
    with pytest.raises(InvalidInput, match="'alice/weights-only' has no tokenizer files"):
        token_stats(ANON, rows=MESSAGES, method="sft", mapping=None, model="alice/weights-only", max_length=10)


def test_gated_model_without_access(hub, models) -> None:
    refused = render_example(HubSession(hub.bob), row=MESSAGES[0], model=models["gated"])
    assert "alice/tiny-gated" in refused.tokenizer_error and "What is 2+2?" in refused.text  # raw example, and why
    assert render_example(HubSession(hub.alice), row=MESSAGES[0], model=models["gated"]).conversational


def test_signed_out_reads_never_borrow_the_machines_token(hub, models, monkeypatch) -> None:
    """A token saved on the Space's machine (HF_TOKEN) must not open a gated repo for a signed-out visitor."""
    from trainer_space.estimate.model_facts import get_model_facts

    monkeypatch.setenv("HF_TOKEN", hub.alice)  # alice has access to the gated tokenizer
    assert render_example(HubSession(None), row=MESSAGES[0], model=models["gated"]).tokenizer_error
    with pytest.raises(GatedRepo):
        get_model_facts(HubSession(None), models["gated"])
    assert not [r for r in hub.requests if r.token == hub.alice]


def test_tokenizer_is_cached_per_revision(hub, models) -> None:
    render_example(ANON, row=MESSAGES[0], model=models["chat"])
    downloads = len(hub.requests_to("/alice/tiny/resolve"))
    render_example(ANON, row=MESSAGES[0], model=models["chat"])
    assert len(hub.requests_to("/alice/tiny/resolve")) == downloads


# ----------------------------------------------------------------------------- the tab: API and browser
@pytest.fixture(scope="module")
def tab_url(hub_server):
    """The Dataset tab alone, launched once."""
    import gradio as gr

    from trainer_space.ui import api
    from trainer_space.ui.dataset_tab import build_tab

    with gr.Blocks() as demo, gr.Tab("Dataset"):
        build_tab()
        gr.api(api.inspect_dataset, api_name="inspect_dataset")
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_inspect_dataset_api(hub, tab_url) -> None:
    from gradio_client import Client

    hub.add_dataset("alice/alpaca", {"train": SHAPES["alpaca"]["rows"]}, num_rows={"train": 52002})
    hub.add_dataset("alice/gated", {"train": QA}, gated=True)
    client = Client(tab_url, verbose=False)
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/inspect_dataset"]
    assert [p["parameter_name"] for p in info["parameters"]] == ["dataset", "split", "dataset_config", "method"]
    body = client.predict("alice/alpaca", "train", "", "sft", api_name="/inspect_dataset")
    assert body["num_rows"] == 52002 and body["methods"]["sft"]["verdict"] == "NEEDS_MAPPING"
    assert body["methods"]["sft"]["mapping"] == {
        "columns": {"prompt": "instruction", "completion": "output"},
        "transforms": ["alpaca"],
    }
    with pytest.raises(Exception, match="request access"):
        client.predict("alice/gated", "train", "", "sft", api_name="/inspect_dataset")
    owner = Client(tab_url, oauth_token=hub.alice, verbose=False)
    assert owner.predict("alice/gated", "", "", "kto", api_name="/inspect_dataset")["num_rows"] == 2
    with pytest.raises(Exception, match="not a valid dataset id"):
        client.predict("not a valid id!", "train", "", "sft", api_name="/inspect_dataset")


@pytest.mark.browser
def test_dataset_tab_in_a_browser(hub, tab_url, browser, models) -> None:
    hub.add_dataset("alice/qa", {"train": QA, "test": QA[:1]}, num_rows={"train": 7473, "test": 1})
    context = browser.new_context(viewport={"width": 1300, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(tab_url)
        page.get_by_label("Dataset", exact=True).fill("alice/qa")
        page.get_by_role("button", name="Inspect").click()
        page.get_by_text("7,473 rows").locator("visible=true").first.wait_for()
        page.get_by_text("NEEDS_MAPPING").locator("visible=true").first.wait_for()
        page.get_by_text("map question -> prompt, answer -> completion").locator("visible=true").first.wait_for()
        page.get_by_text("What is 2+2?").locator("visible=true").first.wait_for()  # the preview table
        # the editor starts from the proposal: check a transform, the verdict is re-checked
        page.get_by_label("prompt_to_messages — plain-string prompt -> one user message").check()
        page.get_by_text("fields mix plain text and messages").locator("visible=true").first.wait_for()
        page.get_by_label("completion_to_messages — plain-string completion -> one assistant message").check()
        page.get_by_text("with this mapping: prompt-completion (conversational)").locator(
            "visible=true"
        ).first.wait_for()
        page.get_by_text("SFT: ✓ READY").locator("visible=true").first.wait_for()
        page.get_by_label("Model (tokenizer, chat template)").fill(models["chat"])
        page.get_by_role("button", name="Show example & count tokens").click()
        page.get_by_text("Measured on").locator("visible=true").first.wait_for()
        os.makedirs(os.path.join(os.path.dirname(__file__), "..", "test-output"), exist_ok=True)
        page.screenshot(
            path=os.path.join(os.path.dirname(__file__), "..", "test-output", "dataset-tab.png"), full_page=True
        )
        assert "<|im_start|>user" in page.get_by_label("First example as the model sees it").input_value()
    finally:
        context.close()
