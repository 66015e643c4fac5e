"""Base vs tuned in the app: the config's options (typed, bounded, hostile input refused), the arguments the job gets,
the service reading a finished job's `base_vs_tuned.json` through the Hub stand-in (present, 404, too large,
malformed, a running job, a local folder), `/base_vs_tuned` through gradio_client and as an MCP tool."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gradio_client import Client

from trainer_space.errors import InvalidInput
from trainer_space.jobs import compare
from trainer_space.jobs.config import COMPARE_MAX_PROMPT_CHARS, COMPARE_MAX_PROMPTS, CONFIG_ENV, TrainingConfig
from trainer_space.jobs.spec import template_constants
from trainer_space.jobs.training import template_args

BASE = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara"}
TRAIN_LABELS = {"trainer-space": "train", "method": "sft", "model": "Qwen/Qwen2.5-0.5B", "output": "alice/out"}


def _cfg(**kw: Any) -> TrainingConfig:
    return TrainingConfig.from_dict({**BASE, **kw})


# ----------------------------------------------------------------------------- config
def test_limits_come_from_the_template() -> None:
    limits = template_constants("train.py")
    assert limits["COMPARE_MAX_PROMPTS"] == COMPARE_MAX_PROMPTS
    assert limits["COMPARE_MAX_PROMPT_CHARS"] == COMPARE_MAX_PROMPT_CHARS
    assert compare.COMPARE_FILE == limits["COMPARE_FILE"] == "base_vs_tuned.json"


def test_compare_is_on_by_default_and_prompts_are_normalised() -> None:
    cfg = _cfg()
    assert cfg.compare is True and cfg.compare_prompts == []
    cfg = _cfg(compare_prompts=["  Write a haiku   about\tthe sea ", "", "Count to three.", "Count to three."])
    assert cfg.compare_prompts == ["Write a haiku about the sea", "Count to three."]
    assert _cfg(compare_prompts="one\n\n two \nthree").compare_prompts == ["one", "two", "three"]  # the form's text
    assert _cfg(compare=False).compare is False
    assert TrainingConfig.from_dict(cfg.to_json()) == cfg  # round trip (the job carries it)


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ([f"p{i}" for i in range(COMPARE_MAX_PROMPTS + 1)], f"holds at most {COMPARE_MAX_PROMPTS} prompts"),
        (["x" * (COMPARE_MAX_PROMPT_CHARS + 1)], f"prompt 1 is longer than {COMPARE_MAX_PROMPT_CHARS} characters"),
        (["fine", "bell\x07"], "prompt 2 holds control characters"),
        (["my token is hf_" + "aB3" * 12], "looks like an access token"),
        ([1, 2], "must be a list of texts"),
        ({"a": "b"}, "must be a list of texts"),
        ([["nested"]], "must be a list of texts"),
        ("x" * 200_000, "is too long"),
        (["a"] * 5000, "holds at most"),
    ],
)
def test_hostile_prompts_are_refused_naming_the_field(sent: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as err:
        _cfg(compare_prompts=sent)
    assert "Your prompts (compare_prompts)" in str(err.value)


def test_compare_must_be_a_boolean_and_the_schema_bounds_the_prompts() -> None:
    with pytest.raises(InvalidInput, match=r"Base vs tuned \(compare\)"):
        _cfg(compare="maybe")
    schema = TrainingConfig.model_json_schema()["properties"]["compare_prompts"]
    assert schema["maxItems"] == COMPARE_MAX_PROMPTS and schema["items"]["maxLength"] == COMPARE_MAX_PROMPT_CHARS
    with pytest.raises(InvalidInput, match="cannot set 'compare_prompts'"):
        _cfg(advanced={"compare_prompts": ["x"]})  # its own field, never an advanced option


def test_the_job_gets_the_prompts_as_one_json_argument_or_compare_false() -> None:
    mine = ["--output_dir=/tmp/x", 'say "hi"', "é ünïcode"]
    args = template_args(_cfg(backend="local", push_to_hub=False, compare_prompts=mine))
    (arg,) = [a for a in args if a.startswith("--compare")]
    assert json.loads(arg.split("=", 1)[1]) == mine  # one --name=value: a prompt never reads as an option
    assert "--compare=false" in template_args(_cfg(backend="local", push_to_hub=False, compare=False))
    assert not any(a.startswith("--compare") for a in template_args(_cfg(backend="local", push_to_hub=False)))


@pytest.mark.slow
def test_the_real_template_parses_them() -> None:
    from tests.templates.test_train import train

    mine = ["--output_dir=/tmp/x", "two"]
    args = template_args(_cfg(backend="local", push_to_hub=False, compare_prompts=mine))
    script_args, training_args, _, _ = train.parse_args(args)
    assert script_args.compare and train.parse_compare_prompts(script_args.compare_prompts) == (mine, [])
    assert training_args.output_dir != "/tmp/x"
    script_args, *_ = train.parse_args(template_args(_cfg(backend="local", push_to_hub=False, compare=False)))
    assert script_args.compare is False


# ----------------------------------------------------------------------------- the service (Hub stand-in)
GOOD = {
    "version": 1, "method": "sft", "kind": "answers", "source": "eval split",
    "decoding": {"greedy": True, "max_new_tokens": 128, "chat_template": True},
    "items": [
        {"prompt": "user: What is 2 + 2?", "origin": "dataset", "base": {"text": "potato " * 40, "stopped": False},
         "tuned": {"text": "4", "stopped": True}},
        {"prompt": "Count to three.", "origin": "yours", "base": {"text": "one", "stopped": True}, "tuned": None},
    ],
    "eval_loss": {"before": 2.5, "after": 2.0, "rows": 64}, "seconds": {"before": 1.2, "after": 1.1},
    "notes": ["answers after training failed: RuntimeError: x"],
}  # fmt: skip


def _job(hub, *, labels: dict[str, str] = TRAIN_LABELS, env: dict[str, str] | None = None, running: bool = False):
    from trainer_space.hub.session import HubSession, JobRequest

    if running:
        hub.plan_next_job(lines=[f"step {i}" for i in range(200)], line_interval_s=0.5)
    else:
        hub.plan_next_job(lines=["done"], schedule_s=0.05, line_interval_s=0.01)
    session = HubSession(hub.alice)
    job = session.submit_job(JobRequest(image="python:3.12", command=["python", "train.py"], flavor="t4-small",
                                        labels=dict(labels), env=dict(env or {})))  # fmt: skip
    if not running:
        deadline = time.time() + 10
        while session.inspect_job(job.id).status.stage != "COMPLETED":
            assert time.time() < deadline, "the job did not complete"
            time.sleep(0.1)
    return session, job.id


def test_a_finished_jobs_comparison_is_read_from_its_output_repo(hub) -> None:
    hub.add_model("alice/out", files={compare.COMPARE_FILE: json.dumps(GOOD)}, private=True)
    session, job_id = _job(hub)
    answer = compare.base_vs_tuned(session, job_id)
    assert answer.status == "ready" and answer.where == "output repo alice/out"
    assert answer.message == (
        "2 prompts answered by the model before training (base) and after (tuned): the same greedy decoding, at most "
        "128 new tokens. Eval loss on 64 eval rows: 2.5000 → 2.0000 (-20%)."
    )
    first, second = answer.items
    assert (first.origin, first.tuned, first.base_stopped, first.tuned_stopped) == ("dataset", "4", False, True)
    assert (second.origin, second.tuned, second.tuned_stopped) == ("yours", "(not available)", None)
    assert answer.eval_loss == {"before": 2.5, "after": 2.0, "rows": 64} and len(answer.notes) == 1
    assert set(answer.to_json()) == {"job_id", "status", "message", "where", "method", "kind", "source",
                                     "max_new_tokens", "items", "eval_loss", "notes"}  # fmt: skip


def test_a_reward_models_scores_are_said_in_words(hub) -> None:
    scores = {**GOOD, "kind": "scores", "method": "reward", "eval_loss": None, "notes": [], "items": [
        {"prompt": "p", "origin": "dataset", "base": {"chosen": 0.1, "rejected": 0.3, "prefers_chosen": False},
         "tuned": {"chosen": 1.25, "rejected": -0.5, "prefers_chosen": True}}]}  # fmt: skip
    hub.add_model("alice/out", files={compare.COMPARE_FILE: json.dumps(scores)}, private=True)
    answer = compare.base_vs_tuned(*_job(hub))
    assert answer.message == "1 held-out pair scored by the reward model before and after training."
    assert answer.items[0].base == "chosen 0.100, rejected 0.300: prefers rejected"
    assert answer.items[0].tuned == "chosen 1.250, rejected -0.500: prefers chosen"


def test_no_file_or_no_repo_is_said_plainly(hub) -> None:
    session, job_id = _job(hub)  # alice/out does not exist
    answer = compare.base_vs_tuned(session, job_id)
    assert (answer.status, answer.message) == ("none", compare.NONE_WRITTEN)
    assert answer.message == "This job wrote no comparison (an older job, or it did not finish)."
    hub.add_model("alice/out", files={"README.md": "# out"}, private=True)
    assert compare.base_vs_tuned(session, job_id).status == "none"


def test_a_file_too_large_is_not_downloaded(hub) -> None:
    hub.add_model("alice/out", files={compare.COMPARE_FILE: b" " * (compare.MAX_BYTES + 1)}, private=True)
    session, job_id = _job(hub)
    answer = compare.base_vs_tuned(session, job_id)
    assert answer.status == "unreadable" and "more than the 524,288 read" in answer.message
    assert not [r for r in hub.requests if r.method == "GET" and compare.COMPARE_FILE in r.path]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "it is not JSON"),
        (b"\xff\xfe", "it is not JSON"),
        (json.dumps({**GOOD, "version": 2}), "not a version 1 comparison"),
        (json.dumps({**GOOD, "kind": "essay"}), "neither answers nor scores"),
        (json.dumps({**GOOD, "items": [GOOD["items"][0]] * 50}), "at most 13"),
        (json.dumps({**GOOD, "items": [{"prompt": 3, "base": None, "tuned": None}]}), "not a string"),
        (json.dumps({**GOOD, "eval_loss": {"before": "x", "after": 1, "rows": 2}}), "not a finite number"),
        (json.dumps({**GOOD, "items": [{"prompt": "p", "base": "a string", "tuned": None}]}), "not an object"),
        ("[" * 100_000, "it is not JSON"),
    ],
)
def test_a_malformed_file_is_said_and_nothing_breaks(hub, content: Any, why: str) -> None:
    hub.add_model("alice/out", files={compare.COMPARE_FILE: content}, private=True)
    answer = compare.base_vs_tuned(*_job(hub))
    assert answer.status == "unreadable" and answer.message.startswith("The comparison file is malformed: ")
    assert why in answer.message


def test_long_texts_are_cut_to_the_bound(hub) -> None:
    long = {**GOOD, "items": [{"prompt": "p" * 10_000, "origin": "x", "base": {"text": "b" * 10_000, "stopped": 1},
                              "tuned": {"text": "t", "stopped": True}}]}  # fmt: skip
    hub.add_model("alice/out", files={compare.COMPARE_FILE: json.dumps(long)}, private=True)
    item = compare.base_vs_tuned(*_job(hub)).items[0]
    assert len(item.prompt) == len(item.base) == compare.MAX_TEXT and item.base.endswith("…")
    assert item.origin == "dataset" and item.base_stopped is None


def test_a_running_job_reads_nothing_and_other_jobs_are_refused(hub) -> None:
    session, job_id = _job(hub, running=True)
    before = len(hub.requests)
    answer = compare.base_vs_tuned(session, job_id)
    assert answer.status == "pending" and "appears when the job finishes" in answer.message
    assert not [r for r in hub.requests[before:] if "alice/out" in r.path]
    session, job_id = _job(hub, labels={"trainer-space": "export_gguf", "output": "alice/out"})
    with pytest.raises(InvalidInput, match="not a training job"):
        compare.base_vs_tuned(session, job_id)
    with pytest.raises(InvalidInput):
        compare.base_vs_tuned(session, "../../etc")


def test_a_job_submitted_with_compare_false_says_so(hub) -> None:
    cfg = _cfg(compare=False, output_repo="alice/out")
    session, job_id = _job(hub, env={CONFIG_ENV: json.dumps(cfg.to_json())})
    answer = compare.base_vs_tuned(session, job_id)
    assert answer.status == "off" and "compare false" in answer.message


def test_a_local_jobs_folder_is_read_first(tmp_path: Path) -> None:
    (tmp_path / compare.COMPARE_FILE).write_text(json.dumps(GOOD))
    details = SimpleNamespace(output_dir=str(tmp_path), output_repo=None)
    data, where = compare._read(None, details, None)  # no Hub call: no session needed
    assert where == f"output folder {tmp_path}" and compare.parse_comparison(data)["items"]
    (tmp_path / compare.COMPARE_FILE).write_bytes(b" " * (compare.MAX_BYTES + 1))
    with pytest.raises(ValueError, match="more than the 524,288 read"):
        compare._read(None, details, None)
    (tmp_path / compare.COMPARE_FILE).unlink()
    assert compare._read(None, details, None) == (None, f"output folder {tmp_path}")


# ----------------------------------------------------------------------------- the endpoint, the MCP tool
def test_the_endpoint_answers_what_my_jobs_shows(hub, app_url) -> None:
    hub.add_model("alice/out", files={compare.COMPARE_FILE: json.dumps(GOOD)}, private=True)
    session, job_id = _job(hub)
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    answer = client.predict(job_id, api_name="/base_vs_tuned")
    assert answer == json.loads(json.dumps(compare.base_vs_tuned(session, job_id).to_json()))
    from typing import get_type_hints

    from trainer_space.ui import api_types

    assert set(answer) == set(get_type_hints(api_types.BaseVsTunedAnswer))
    assert set(answer["items"][0]) == set(get_type_hints(api_types.CompareItem))
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    (param,) = endpoints["/base_vs_tuned"]["parameters"]
    assert param["parameter_name"] == "job_id" and "training job's id" in param["type"]["description"]
    (returned,) = endpoints["/base_vs_tuned"]["returns"]
    assert set(returned["type"]["properties"]) == set(get_type_hints(api_types.BaseVsTunedAnswer))
    with pytest.raises(Exception, match="That is not a job id"):
        client.predict("not/valid", api_name="/base_vs_tuned")


def test_the_mcp_tool_is_listed_with_its_parameter(hub, app_url) -> None:
    from tests.test_mcp import run_mcp

    hub.add_model("alice/out", files={compare.COMPARE_FILE: json.dumps(GOOD)}, private=True)
    _, job_id = _job(hub)

    async def steps(mcp):
        tools = {t.name: t for t in await mcp.tools()}
        return tools["base_vs_tuned"], await mcp.call("base_vs_tuned", job_id=job_id)

    tool, (error, answer) = run_mcp(app_url, hub.alice, steps)
    assert "training job's id" in tool.inputSchema["properties"]["job_id"]["description"]
    assert not error and answer["status"] == "ready" and answer["items"][1]["origin"] == "yours"


# ----------------------------------------------------------------------------- My jobs in a browser
WIDE = {**GOOD, "items": [
    {"prompt": "user: Explain gradient accumulation in one paragraph.", "origin": "dataset",
     "base": {"text": "Gradient accumulation is " + "a very long answer that keeps going " * 12
              + "supercalifragilisticexpialidocious_unbroken_token_" * 4, "stopped": False},
     "tuned": {"text": "It sums the gradients of several micro-batches before one optimizer step.", "stopped": True}},
    GOOD["items"][0],
    {"prompt": "Count to three.", "origin": "yours", "base": {"text": "one two", "stopped": True},
     "tuned": {"text": "1, 2, 3.", "stopped": True}},
]}  # fmt: skip


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 420])
def test_my_jobs_shows_base_and_tuned_side_by_side(hub, app_url, page, width) -> None:
    from tests.conftest import sign_in
    from tests.journey import Journey

    hub.add_model("alice/out", files={compare.COMPARE_FILE: json.dumps(WIDE)}, private=True)
    _, job_id = _job(hub)
    page.set_viewport_size({"width": width, "height": 900})
    journey = Journey(page, "base-vs-tuned", width)
    sign_in(page, app_url)
    journey.tab("My jobs")
    journey.visible(page.get_by_text(job_id)).click()
    block = page.locator("#base-vs-tuned")
    block.get_by_text("3 prompts answered by the model before training").wait_for(timeout=20_000)
    block.get_by_text("Eval loss on 64 eval rows: 2.5000 → 2.0000 (-20%).").wait_for()
    journey.settled()
    assert block.get_by_text("(your prompt)").count() == 1
    assert block.get_by_text("did not stop within 128 new tokens").count() == 2
    boxes = [page.locator("#base-vs-tuned .bvt-side").nth(i).bounding_box() for i in (0, 1)]
    if width > 700:  # side by side
        assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[1]["x"] > boxes[0]["x"] + 100
    else:  # one above the other, each as wide as the block
        assert boxes[1]["y"] > boxes[0]["y"] + 20 and abs(boxes[0]["x"] - boxes[1]["x"]) < 2
    # the long answer wraps inside its box: nothing is clipped or scrolls sideways
    clipped = page.evaluate("""() => [...document.querySelectorAll('#base-vs-tuned .bvt-text')]
        .filter((e) => e.scrollWidth > e.clientWidth + 1).length""")
    assert clipped == 0
    block.scroll_into_view_if_needed()
    journey.shot("finished-job")
    journey.finish()


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 420])
def test_the_train_tab_takes_your_prompts_one_per_line(hub, app_url, page, tokenizer_files, width) -> None:
    from tests.conftest import add_qwen, sign_in
    from tests.journey import Journey

    model = f"alice/compare-model-{width}"
    add_qwen(hub, tokenizer_files, repo_id=model)
    rows = [{"messages": [{"role": "user", "content": f"q {i}"}, {"role": "assistant", "content": f"a {i}"}]}
            for i in range(20)]  # fmt: skip
    hub.add_dataset("alice/chat", {"train": rows}, num_rows={"train": 2000})
    page.set_viewport_size({"width": width, "height": 900})
    journey = Journey(page, "compare-prompts", width)
    sign_in(page, app_url)
    journey.tab("Train")
    journey.fill("Model (Hub id, or a model folder on this machine)", model)
    journey.fill("Dataset", "alice/chat")
    journey.fill("Hardware", "a10g-small", exact=False)
    journey.visible(page.get_by_text("Base vs tuned: the same prompts before and after training")).click()
    label = (
        f"Your own prompts, one per line (at most {COMPARE_MAX_PROMPTS}, {COMPARE_MAX_PROMPT_CHARS} characters each)"
    )
    journey.fill(label, "\n".join(f"prompt {i}" for i in range(COMPARE_MAX_PROMPTS + 1)))
    journey.step("Preview", refused="Your prompts (compare_prompts) holds at most 5 prompts")
    journey.fill(label, "Write one word about the sea.\nCount to three.")
    journey.step("Preview", expect="Ready to submit")
    journey.visible(page.get_by_text("Reproduce without the app")).click()
    journey.visible(
        page.get_by_text('--compare_prompts=["Write one word about the sea.","Count to three."]')
    ).wait_for()
    journey.shot("train-prompts")
    journey.finish()
