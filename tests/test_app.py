"""The app as a whole: starts light and without any token, API endpoints, sign-in in a browser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gradio_client import Client

from tests import arg_values
from tests.conftest import SCREENSHOTS, sign_in

ROOT = Path(__file__).resolve().parents[1]


def test_app_builds_and_launches_without_any_token_without_heavy_imports_and_without_gradio_warnings(tmp_path):
    code = textwrap.dedent(
        """
        import os, sys, time
        t = time.time()
        import app
        from tests.hub_standin import free_port
        from trainer_space.ui import launch_options, queue_options
        heavy = [m for m in ("torch", "trl", "transformers", "datasets", "trackio", "peft") if m in sys.modules]
        print("HEAVY", heavy, "SECONDS", round(time.time() - t, 1))
        app.demo.queue(**queue_options()).launch(server_port=free_port(), prevent_thread_lock=True, quiet=True,
                                                 **launch_options())
        app.demo.close()
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "TRAINER_SPACE_LOCAL_TOKEN")}
    env["HF_HOME"] = str(tmp_path)  # no cached login either
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("HEAVY"))
    assert "HEAVY []" in line
    assert "must be logged in" not in out.stderr and "OAuth" not in out.stderr, out.stderr[-2000:]


def test_list_jobs_api_uses_the_callers_token_only(hub, app_url):
    from trainer_space.hub.session import HubSession, JobRequest

    req = JobRequest(image="python:3.12", command=["true"], flavor="t4-small", labels={"trainer-space": "train"})
    alice_job = HubSession(hub.alice).submit_job(req)
    bob_job = HubSession(hub.bob).submit_job(req)

    alice = Client(app_url, oauth_token=hub.alice, verbose=False).predict("", False, api_name="/list_jobs")
    assert alice["user"] == "alice"
    assert [j["id"] for j in alice["jobs"]] == [alice_job.id]
    assert alice["jobs"][0]["kind"] == "train"
    bob = Client(app_url, oauth_token=hub.bob, verbose=False).predict("", False, api_name="/list_jobs")
    assert [j["id"] for j in bob["jobs"]] == [bob_job.id]


def test_list_jobs_api_without_sign_in_lists_this_machine_only_and_sends_nothing(hub, app_url):
    n = len(hub.requests)
    client = Client(app_url, verbose=False)
    answer = client.predict("", False, api_name="/list_jobs")  # off Spaces: the jobs of this machine
    assert answer["user"] == "local" and all(j["backend"] == "local" for j in answer["jobs"])
    with pytest.raises(Exception, match="A token is needed to list your organizations' jobs"):
        client.predict("acme", False, api_name="/list_jobs")
    assert len(hub.requests) == n


@pytest.mark.browser
def test_sign_in_and_see_my_jobs_in_a_browser(hub, app_url, page):
    from trainer_space.hub.session import HubSession, JobRequest

    job = HubSession(hub.alice).submit_job(
        JobRequest(image="python:3.12", command=["true"], flavor="t4-small", labels={"trainer-space": "train"})
    )
    page.goto(app_url)
    page.get_by_text("Not signed in: jobs run").wait_for()  # off Spaces: this machine needs no account
    sign_in(page, app_url)
    page.get_by_role("tab", name="My jobs").click()
    page.get_by_text(job.id).locator("visible=true").first.wait_for()
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, "my-jobs.png"))
    assert page.get_by_text("1 job(s) for alice").count() == 1


def _visible(locator):
    return locator.locator("visible=true").first


@pytest.mark.browser
def test_dataset_to_train_to_my_jobs_in_a_browser(hub, app_url, page, tmp_path):
    """The visitor's path: inspect a dataset that needs a mapping, carry it to Train, preview, submit, see the job."""
    import json

    from tests.test_train_submit import QWEN_05B
    from tests.tiny_model import build_tiny_tokenizer

    build_tiny_tokenizer(tmp_path)  # standing in for Qwen's tokenizer: the pre-flight counts tokens with it
    tokenizer = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    hub.add_model(
        "Qwen/Qwen2.5-0.5B",
        files={**tokenizer, "config.json": json.dumps(QWEN_05B)},
        safetensors={"parameters": {"BF16": 494_032_768}, "total": 494_032_768},
    )
    rows = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(30)]
    hub.add_dataset("alice/qa", {"train": rows}, num_rows={"train": 3000})
    sign_in(page, app_url)

    _visible(page.get_by_label("Dataset", exact=True)).fill("alice/qa")
    _visible(page.get_by_role("button", name="Inspect")).click()
    _visible(page.get_by_text("map question -> prompt, answer -> completion")).wait_for()
    # the token count, signed in (the leak scan checks that no request carries the machine's token)
    _visible(page.get_by_label("Model (tokenizer, chat template)")).fill("Qwen/Qwen2.5-0.5B")
    _visible(page.get_by_role("button", name="Show example & count tokens")).click()
    _visible(page.get_by_text("Measured on")).wait_for()

    page.get_by_role("tab", name="Train").click()
    dataset_box = _visible(page.get_by_label("Dataset", exact=True))
    assert dataset_box.input_value() == "alice/qa"  # carried over from the Dataset tab
    _visible(page.get_by_role("button", name="Preview")).click()
    _visible(page.get_by_text("Ready to submit")).wait_for()
    _visible(page.get_by_text("READY for sft with your mapping")).wait_for()
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, "train-preview.png"), full_page=True)
    assert hub.requests_to("/api/jobs", "POST") == []

    _visible(page.get_by_text("Prompt + completion averages")).wait_for()  # lengths counted for the estimate
    _visible(page.get_by_role("button", name="Submit training job")).click()
    _visible(page.get_by_text("It can cost at most")).wait_for()  # the worst case, to confirm
    assert hub.requests_to("/api/jobs", "POST") == []  # nothing created before the confirmation
    page.screenshot(path=os.path.join(SCREENSHOTS, "train-confirm.png"), full_page=True)
    _visible(page.get_by_role("button", name="Yes, start it")).dblclick()  # an impatient double click
    _visible(page.get_by_text("Submitted:")).wait_for()
    page.wait_for_timeout(1500)
    (post,) = hub.requests_to("/api/jobs/alice", "POST")  # one job, not two
    args = arg_values(post.json()["command"])
    assert json.loads(args["--dataset_mapping"])["columns"] == {
        "prompt": "question",
        "completion": "answer",
    }

    page.get_by_role("tab", name="My jobs").click()
    job_id = next(iter(hub.jobs))
    _visible(page.get_by_text(job_id)).wait_for()


def test_a_config_fills_every_field_of_the_train_tab():
    import gradio as gr

    from trainer_space.jobs.config import TrainingConfig
    from trainer_space.ui import _apply_fix, train_tab

    with gr.Blocks():
        tab = train_tab.build_tab()
    cfg = TrainingConfig.from_dict({
        "method": "dpo", "model": "Qwen/Qwen2.5-0.5B", "dataset": "yahma/alpaca-cleaned", "learning_rate": 3e-4,
        "max_steps": 500, "mapping": {"columns": {}, "transforms": ["alpaca"]}, "timeout": "4h", "flavor": "l4x1",
        "resume_from_hub": True, "advanced": {"weight_decay": 0.1},
    })  # fmt: skip
    values = _apply_fix(tab, None, {"kind": "train", "config": cfg.to_json()})
    assert set(values) == set(tab.fields.values())  # every field: nothing of the previous form survives
    by_name = {name: values[c] for name, c in tab.fields.items()}
    assert by_name["dataset"] == "yahma/alpaca-cleaned" and by_name["learning_rate"] == 3e-4
    assert by_name["max_steps"] == 500 and by_name["mapping"] == {"columns": {}, "transforms": ["alpaca"]}
    assert by_name["timeout"] == "4h" and by_name["flavor"] == "l4x1" and by_name["resume_from_hub"] is True
    assert tab.config(values) == cfg  # the form round-trips to the same config
    assert _apply_fix(tab, None, None) == gr.skip()


@pytest.mark.browser
def test_a_failed_jobs_fix_restores_its_whole_config_in_the_train_tab(hub, app_url, page, tmp_path):
    """My jobs -> "Open the Train tab": the job's dataset, mapping, learning rate and max_steps, with the fix."""
    import json

    from tests.test_train_submit import QWEN_05B
    from tests.tiny_model import build_tiny_tokenizer
    from trainer_space.hub.session import HubSession
    from trainer_space.jobs.config import TrainingConfig
    from trainer_space.jobs.training import submit_training

    build_tiny_tokenizer(tmp_path)
    tokenizer = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    hub.add_model("Qwen/Qwen2.5-0.5B", files={**tokenizer, "config.json": json.dumps(QWEN_05B)},
                  safetensors={"parameters": {"BF16": 494_032_768}, "total": 494_032_768})  # fmt: skip
    rows = [{"instruction": f"Add {i} and 1.", "input": "", "output": str(i + 1)} for i in range(30)]
    hub.add_dataset("alice/alpaca-cleaned", {"train": rows}, num_rows={"train": 3000})
    hub.plan_next_job(lines=["Loading model", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"],
                      final_stage="ERROR", message="Job failed with exit code: 1")  # fmt: skip
    cfg = TrainingConfig.from_dict({
        "method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/alpaca-cleaned", "learning_rate": 3e-4,
        "max_steps": 500, "per_device_train_batch_size": 8, "flavor": "t4-small", "timeout": "2h", "max_cost_usd": 2,
        "mapping": {"columns": {"prompt": "instruction", "completion": "output"}, "transforms": ["alpaca"]},
    })  # fmt: skip
    job = submit_training(HubSession(hub.alice), cfg).job
    sign_in(page, app_url)
    page.get_by_role("tab", name="My jobs").click()
    _visible(page.get_by_text(job.id)).click()
    _visible(page.get_by_role("button", name="Open the Train tab")).click()
    dataset = _visible(page.get_by_label("Dataset", exact=True))
    page.wait_for_function("(el) => el.value === 'alice/alpaca-cleaned'", arg=dataset.element_handle())
    assert _visible(page.get_by_label("Learning rate (0: auto)")).input_value() == "0.0003"
    assert _visible(page.get_by_label("Max steps (0: use epochs)")).input_value() == "500"
    batch = int(_visible(page.get_by_label("Batch size per GPU")).input_value())
    assert batch < 8  # the fix: a smaller batch
    _visible(page.get_by_role("button", name="Preview")).click()
    _visible(page.get_by_text("READY for sft with your mapping")).wait_for()
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, "fix-restores-config.png"), full_page=True)


def test_api_endpoints_are_also_mcp_tools(app_url):
    import httpx

    schema = httpx.get(f"{app_url}gradio_api/mcp/schema", timeout=30).json()
    names = {tool["name"] for tool in schema} if isinstance(schema, list) else set(schema)
    for endpoint in ("inspect_dataset", "estimate", "submit_training", "list_jobs", "job_status", "job_logs",
                     "cancel_job", "export_gguf", "estimate_accuracy", "continue_job", "stop_after_checkpoint",
                     "base_vs_tuned"):  # fmt: skip
        assert any(endpoint in name for name in names), (endpoint, sorted(names))


@pytest.mark.browser
def test_the_app_fits_a_phone_screen(hub, app_url, page):
    """On a 420 px screen the sign-in button sits above the title and no checkbox loses its label."""
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(app_url)
    login = page.get_by_role("button", name="Sign in with Hugging Face")
    title = page.get_by_role("heading", name="TRL Trainer")
    assert login.bounding_box()["y"] + login.bounding_box()["height"] <= title.bounding_box()["y"]
    page.get_by_role("tab", name="Estimate").click()
    for label in ("Shard with FSDP (several GPUs)",):  # gradient checkpointing is a radio now (auto, on, off)
        box = page.get_by_label(label).locator("visible=true").first.locator("xpath=..").bounding_box()
        assert box["width"] >= 120, (label, box)  # the label is readable, not squeezed to the box alone
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, "phone-estimate.png"), full_page=True)


@pytest.mark.browser
def test_gguf_export_asks_to_confirm_the_worst_case_in_a_browser(hub, app_url, page):
    import json

    hub.add_model(
        "alice/qwen-sft",
        files={"config.json": json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}),
               "model.safetensors": b"\0" * 64},
        safetensors={"parameters": {"BF16": 494_032_768}, "total": 494_032_768},
    )  # fmt: skip
    sign_in(page, app_url)
    page.get_by_role("tab", name="GGUF export").click()
    _visible(page.get_by_label("Model or LoRA adapter repo")).fill("alice/qwen-sft")
    _visible(page.get_by_role("button", name="Export to GGUF")).click()
    _visible(page.get_by_text("Start this export job?")).wait_for()
    _visible(page.get_by_text("It can cost at most")).wait_for()
    assert hub.requests_to("/api/jobs", "POST") == []
    _visible(page.get_by_role("button", name="Cancel").last).click()  # changed their mind: nothing created
    page.wait_for_timeout(500)
    assert hub.requests_to("/api/jobs", "POST") == []
    _visible(page.get_by_role("button", name="Export to GGUF")).click()
    _visible(page.get_by_role("button", name="Yes, start it")).click()
    _visible(page.get_by_text("Submitted:")).wait_for()
    (post,) = hub.requests_to("/api/jobs/alice", "POST")
    assert post.json()["labels"]["trainer-space"] == "export_gguf"


def test_sessions_kept_in_memory_are_bounded():
    """Gradio keeps each session's state (about 0.43 MiB, bench/session_memory.py) for 10,000 sessions by default."""
    from trainer_space.settings import get_settings
    from trainer_space.ui import launch_options

    options = launch_options()
    assert options["state_session_capacity"] == get_settings().session_capacity == 300
    assert options["max_threads"] >= 100  # one per concurrency slot of every kind of work


def test_every_tab_ends_with_the_next_step():
    import gradio as gr

    from trainer_space.ui import build_app

    demo = build_app()
    tabs = [b for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert [t.label for t in tabs] == ["Dataset", "Estimate", "Train", "My jobs", "GGUF export"]  # workflow order
    for tab in tabs:
        hints = [c for c in _descendants(tab) if "next-step" in (getattr(c, "elem_classes", None) or [])]
        assert len(hints) == 1 and "**Next:**" in hints[0].value, tab.label


def _descendants(block):
    for child in getattr(block, "children", []):
        yield child
        yield from _descendants(child)
