"""My jobs, end to end through the Hub stand-in: list (filters), status with diagnosis, logs, cancel, browser."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client

from tests.conftest import SCREENSHOTS, sign_in

LABELS = {
    "trainer-space": "train",
    "method": "sft",
    "model": "Qwen/Qwen2.5-0.5B",
    "output": "alice/out",
    "trackio": "alice/trackio",
    "project": "out",
}
OOM_LINE = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
    "14.58 GiB of which 1.02 GiB is free."
)
SKIP = {"__type__": "update"}  # gr.skip(): leave the component as it is
TRAIN_ARGS = ["--method", "sft", "--peft_mode", "full", "--per_device_train_batch_size", "8",
              "--gradient_accumulation_steps", "2", "--gradient_checkpointing", "false"]  # fmt: skip


def submit(token: str, *, labels: dict[str, str] | None = LABELS, flavor: str = "t4-small", **kwargs: Any):
    from trainer_space.hub.session import HubSession, JobRequest

    request = JobRequest(image="python:3.12", command=["python", "train.py", *TRAIN_ARGS], flavor=flavor,
                         labels=dict(labels or {}), **kwargs)  # fmt: skip
    return HubSession(token).submit_job(request)


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture(scope="module")
def alice_client(hub_server, app_url) -> Client:
    return Client(app_url, oauth_token=hub_server.alice, verbose=False)  # alice's token is the same after resets


@pytest.fixture
def alice(hub, alice_client) -> Client:
    return alice_client


def test_list_jobs_filters(hub, alice):
    hub.plan_next_job(lines=["boom"], final_stage="ERROR", message="Job failed with exit code: 1")
    failed = submit(hub.alice)
    other = submit(hub.alice, labels=None)  # not started from this app
    org_job = submit(hub.alice, namespace="alice-org")
    wait_for(lambda: all(j.stage()[0] in ("COMPLETED", "ERROR") for j in hub.jobs.values()))

    everything = alice.predict("", False, "", api_name="/list_jobs")["jobs"]
    assert {j["id"] for j in everything} == {failed.id, other.id}
    assert {j["kind"] for j in everything} == {"train", "other"}
    only_app = alice.predict("", True, "", api_name="/list_jobs")["jobs"]
    assert [j["id"] for j in only_app] == [failed.id]
    with_org = alice.predict("alice-org", False, "", api_name="/list_jobs")["jobs"]
    assert {j["id"] for j in with_org} == {failed.id, other.id, org_job.id}
    errors = alice.predict("alice-org", False, "error", api_name="/list_jobs")["jobs"]
    assert [(j["id"], j["stage"]) for j in errors] == [(failed.id, "ERROR")]
    row = errors[0]
    assert row["flavor"] == "t4-small" and row["model"] == "Qwen/Qwen2.5-0.5B" and row["cost_usd"] >= 0


def test_job_status_while_running_then_finished(hub, alice):
    hub.plan_next_job(lines=[f"step {i}" for i in range(6)], line_interval_s=0.15)
    job = submit(hub.alice)
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "RUNNING")
    running = alice.predict(job.id, api_name="/job_status")
    assert running["stage"] == "RUNNING" and running["diagnosis"] is None
    assert running["started_at"].endswith("Z") and running["finished_at"] is None
    assert running["url"] == f"{hub.url}/jobs/alice/{job.id}"
    assert running["output_repo"] == "alice/out" and running["output_url"] == f"{hub.url}/alice/out"
    # the dashboard opens on the job's project with its loss chart (Trackio's `metrics`), no sidebar or navbar
    assert running["trackio_url"] == (
        "https://alice-trackio.hf.space/?project=out&metrics=train/loss,eval/loss&sidebar=hidden&navbar=hidden"
    )
    assert running["labels"]["method"] == "sft"

    wait_for(lambda: hub.jobs[job.id].stage()[0] == "COMPLETED")
    done = alice.predict(job.id, api_name="/job_status")
    assert done["stage"] == "COMPLETED" and done["diagnosis"] is None and done["finished_at"]
    assert done["duration_min"] >= 0 and done["cost_usd"] >= 0

    logs = alice.predict(job.id, 3, api_name="/job_logs")
    assert logs == {"id": job.id, "stage": "COMPLETED", "lines": ["step 3", "step 4", "step 5"]}
    assert len(alice.predict(job.id, api_name="/job_logs")["lines"]) == 6  # default tail 200


def test_diagnosis_of_an_out_of_memory_log(hub, alice):
    lines = ["Loading model", "{'loss': 2.31, 'epoch': 0.01}", "Traceback (most recent call last):",
             '  File "/tmp/train.py", line 912, in main', "    trainer.train()", OOM_LINE]  # fmt: skip
    hub.plan_next_job(lines=lines, final_stage="ERROR", message="Job failed with exit code: 1")
    job = submit(hub.alice)
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "ERROR")
    status = alice.predict(job.id, api_name="/job_status")
    diag = status["diagnosis"]
    assert diag["kind"] == "oom" and diag["evidence"] == OOM_LINE
    assert diag["action_hint"] == {"peft": "lora", "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
                                   "gradient_checkpointing": True, "flavor": "l4x1"}  # fmt: skip
    assert "switch to LoRA" in diag["action"] and "(8 → 4)" in diag["action"]
    # the diagnosis read only the tail of the logs (one read, which the progress report shares), with alice's token
    log_reads = hub.requests_to(f"/api/jobs/alice/{job.id}/logs")
    assert len(log_reads) == 1 and all(r.token == hub.alice and "tail=300" in r.query for r in log_reads)


def test_gguf_export_job_gets_its_own_diagnosis(hub, alice):
    lines = ["INFO:hf-to-gguf:Set model tokenizer", "WARNING:hf-to-gguf:** WARNING: The BPE pre-tokenizer was not "
             "recognized!", "ERROR: llama.cpp does not recognise this tokenizer's pre-tokenizer (hash 1baddeb5)."]  # fmt: skip
    hub.plan_next_job(lines=lines, final_stage="ERROR", message="Job failed with exit code: 2")
    labels = {"trainer-space": "export_gguf", "model": "alice/out", "output": "alice/out-GGUF"}
    job = submit(hub.alice, labels=labels, flavor="cpu-upgrade")
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "ERROR")
    status = alice.predict(job.id, api_name="/job_status")
    assert status["kind"] == "export_gguf" and status["trackio_url"] is None
    assert status["output_repo"] == "alice/out-GGUF"
    assert status["diagnosis"]["kind"] == "gguf_pre_tokenizer"
    assert [j["kind"] for j in alice.predict("", True, "", api_name="/list_jobs")["jobs"]] == ["export_gguf"]


def test_diagnosis_of_a_timeout(hub, alice):
    from huggingface_hub import HfApi

    hub.plan_next_job(lines=[f"{{'loss': {3 - i / 10}}}" for i in range(30)], line_interval_s=1.0, schedule_s=0.1)
    job = HfApi(endpoint=hub.url).run_job(image="python:3.12", command=["python", "train.py"], flavor="t4-small",
                                          timeout=1, labels=LABELS, token=hub.alice)  # fmt: skip
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "ERROR", timeout=6)
    status = alice.predict(job.id, api_name="/job_status")
    assert status["message"] == "Job timeout exceeded (1s)" and status["timeout_s"] == 1
    diag = status["diagnosis"]
    assert diag["kind"] == "timeout"
    assert diag["action"].startswith("Continue… in My jobs (or /continue_job)")
    assert diag["action_hint"]["resume_from_hub"] is True and diag["action_hint"]["output_repo"] == "alice/out"


def test_cancel_job_only_by_its_owner(hub, alice, app_url):
    hub.plan_next_job(lines=[f"step {i}" for i in range(100)], line_interval_s=0.5)
    job = submit(hub.alice)
    bob = Client(app_url, oauth_token=hub.bob, verbose=False)
    with pytest.raises(Exception, match=f"Job '{job.id}' was not found in your namespaces"):
        bob.predict(job.id, api_name="/cancel_job")
    assert hub.jobs[job.id].canceled_at is None
    with pytest.raises(Exception, match="was not found"):
        bob.predict(job.id, api_name="/job_status")

    assert alice.predict(job.id, api_name="/cancel_job") == {"id": job.id, "stage": "CANCELED"}
    assert hub.requests_to(f"/api/jobs/alice/{job.id}/cancel", "POST")[0].token == hub.alice
    status = alice.predict(job.id, api_name="/job_status")
    assert status["stage"] == "CANCELED" and status["diagnosis"]["kind"] == "canceled"
    assert status["diagnosis"]["action"] == ""
    assert alice.predict(job.id, api_name="/cancel_job")["stage"] == "CANCELED"  # again: a no-op


def test_api_refuses_without_sign_in_and_bad_ids(hub, alice, app_url):
    anonymous = Client(app_url, verbose=False)
    n = len(hub.requests)
    with pytest.raises(Exception, match="A token is needed to see this job"):
        anonymous.predict("0123456789abcdef01234567", api_name="/job_status")
    assert [r.path for r in hub.requests[n:] if r.path != "/api/jobs/hardware"] == []  # prices are public
    with pytest.raises(Exception, match="not a job id"):
        alice.predict("../../api/whoami", api_name="/job_logs")
    with pytest.raises(Exception, match="tail must be between 1 and 5,000"):
        alice.predict("0123456789abcdef01234567", 0, api_name="/job_logs")


@pytest.fixture(scope="module")
def tab():
    """The My jobs tab's components and handlers (built in a Blocks, never launched)."""
    import gradio as gr

    from trainer_space.ui import jobs_tab

    with gr.Blocks():
        return jobs_tab.build_tab()


def test_follow_logs_streams_until_the_job_ends(hub, tab):
    hub.plan_next_job(lines=[f"line {i}" for i in range(8)], line_interval_s=0.2)
    job = submit(hub.alice)
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "RUNNING")
    updates = list(tab.on_follow(job.id, None, SimpleNamespace(token=hub.alice)))
    assert updates[0][tab.log_note].startswith("Following the logs")
    assert len(updates) >= 3  # it streamed, it did not wait for the end
    assert updates[-1][tab.logs].splitlines() == [f"line {i}" for i in range(8)]
    assert "ended" in updates[-1][tab.log_note]
    # an ended job: one update with the tail
    (ended,) = list(tab.on_follow(job.id, None, SimpleNamespace(token=hub.alice)))
    assert ended[tab.logs].endswith("line 7") and "completed" in ended[tab.log_note]
    assert ended[tab.stop].visible is False


def test_opening_an_ended_job_reads_it_once_and_never_refreshes_it(hub, tab):
    hub.plan_next_job(lines=["Loading model", OOM_LINE], final_stage="ERROR", message="Job failed with exit code: 1")
    job = submit(hub.alice)
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "ERROR")
    token = SimpleNamespace(token=hub.alice)
    before = len(hub.requests_to("/api/jobs/"))
    panel = tab.on_open(job.id, token)  # what a click on the row runs, then the log view, then the refresh
    assert set(panel) <= set(tab.open_outputs)
    where = panel[tab.where]
    assert where == {"backend": "hf-jobs", "namespace": "alice", "stage": "ERROR"}
    (view,) = list(tab.on_follow(job.id, where, token))
    assert view[tab.logs].endswith(OOM_LINE) and "error" in view[tab.log_note]
    assert tab.on_refresh(job.id, where, token) == gr.skip()  # stream ended, timer ticks: nothing to do
    calls = [
        (r.method, r.path.rsplit("/", 1)[-1], r.query)
        for r in hub.requests_to("/api/jobs/")[before:]
        if r.path != "/api/jobs/hardware"
    ]  # (the public flavor list aside: read once per process, cached)
    # one inspect, the diagnosis's 200-line tail, the view's 500-line tail: nothing looked up twice
    assert calls == [("GET", job.id, ""), ("GET", "logs", "tail=200"), ("GET", "logs", "tail=500")]


def test_a_running_jobs_panel_is_refreshed_until_it_ends(hub, tab):
    hub.plan_next_job(lines=["step 1"], line_interval_s=0.5, final_stage="COMPLETED")
    job = submit(hub.alice)
    token = SimpleNamespace(token=hub.alice)
    where = tab.on_open(job.id, token)[tab.where]
    assert where["stage"] in ("SCHEDULING", "RUNNING")
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "COMPLETED")
    refreshed = tab.on_refresh(job.id, where, token)  # the timer's tick while it was open
    assert refreshed[tab.where] == {"backend": "hf-jobs", "namespace": "alice", "stage": "COMPLETED"}
    assert "COMPLETED" in refreshed[tab.details] and tab.trackio not in refreshed  # the iframe is left alone
    before = len(hub.requests)
    assert tab.on_refresh(job.id, refreshed[tab.where], token) == gr.skip()
    assert len(hub.requests) == before


def test_log_streams_have_their_own_concurrency_pool():
    import gradio as gr

    from trainer_space.ui import jobs_tab

    with gr.Blocks() as demo:
        tab = jobs_tab.build_tab()
    streams = [f for f in demo.fns.values() if getattr(f.fn, "__name__", None) == "on_follow"]
    assert len(streams) == 4  # row click, job id + Enter, Open button, another tab's `open_job`
    assert all(f.concurrency_limit == 20 and f.concurrency_id == "logs" for f in streams)
    assert {tab.table, tab.note, tab.timer, tab.orgs, tab.only_app} <= set(demo.blocks.values())


def test_another_tab_opens_a_job_like_a_click_on_its_row():
    """`open_job` (the Train tab's "Watch it in My jobs") fills the Job id and opens the panel: details, then the
    log and usage streams, as the row click does; a bad id changes nothing."""
    import gradio as gr

    from trainer_space.ui import jobs_tab

    with gr.Blocks() as demo:
        tab = jobs_tab.build_tab()
        source = gr.Textbox()
        watch = gr.Button()
        watch.click(tab.open_job, [source], tab.open_job_outputs)
    job_id = "0123456789abcdef01234567"
    first = tab.open_job(f" {job_id} ")
    assert set(first) == set(tab.open_job_outputs) and first[tab.job_id] == job_id
    assert first[tab.open_request]["id"] == job_id
    time.sleep(0.01)
    assert tab.open_job(job_id)[tab.open_request] != first[tab.open_request]  # the same job again opens again
    assert tab.open_job("../api/whoami") == gr.skip() and tab.open_job("") == gr.skip()
    # the request opens the job: on_open, then the live logs and usage after it, as for a row click
    fns = list(demo.fns.values())
    opening = [f for f in fns if getattr(f.fn, "__name__", "") == "on_open"
               and (tab.open_request._id, "change") in f.targets]  # fmt: skip
    assert len(opening) == 1 and opening[0].inputs == [tab.job_id]
    chained = {getattr(f.fn, "__name__", "") for f in fns if f.trigger_after == opening[0]._id}
    assert {"on_follow", "on_usage"} <= chained


def test_links_and_embed_only_from_safe_label_values():
    from trainer_space.jobs.monitor import job_args, trackio_embed_url
    from trainer_space.jobs.spec import space_subdomain
    from trainer_space.ui.jobs_tab import details_markdown, trackio_html

    assert space_subdomain("Alice/My_Space.v2") == "alice-my-space-v2"
    assert trackio_embed_url("alice/trackio", "my run") is None
    assert trackio_embed_url('alice/x"><script>', "p") is None
    assert trackio_embed_url("alice/trackio\n", "p") is None
    assert (
        trackio_embed_url("alice/trackio", "p.1")
        == "https://alice-trackio.hf.space/?project=p.1&metrics=train/loss,eval/loss&sidebar=hidden&navbar=hidden"
    )
    assert trackio_embed_url("alice/trackio", "p", "grpo").endswith(
        "?project=p&metrics=train/loss,train/reward&sidebar=hidden&navbar=hidden"
    )
    assert "&amp;sidebar=hidden" in trackio_html(trackio_embed_url("a/b", "c"))
    job = SimpleNamespace(command=["bash", "-c", "set -e; uv run --quiet x", "train.py", "--peft_mode", "lora",
                                   "--push_to_hub", "--max_length=512"], arguments=[])  # fmt: skip
    assert job_args(job) == {"peft_mode": "lora", "push_to_hub": "true", "max_length": "512"}
    from trainer_space.jobs.monitor import JobDetails

    details = JobDetails(id="abc", namespace="alice", kind="train", stage="ERROR", flavor="t4-small",
                         message="<img src=x onerror=alert(1)> | [x](javascript:1)", labels={"model": "a*b*"},
                         created_at=None, started_at=None, finished_at=None, duration_min=1.5, cost_usd=0.01,
                         url="http://hub/jobs/alice/abc", timeout_s=5400, output_repo=None, output_url=None,
                         trackio_space=None, trackio_url=None)  # fmt: skip
    text = details_markdown(details)
    assert "<img" not in text and "\\[x\\]" in text and "a\\*b\\*" in text and "1 h 30 min" in text


@pytest.mark.browser
def test_my_jobs_in_a_browser_details_logs_and_cancel(hub, app_url, page):
    hub.plan_next_job(lines=[f"{{'loss': {2.5 - i / 100:.2f}, 'step': {i}}}" for i in range(200)], line_interval_s=0.2)
    job = submit(hub.alice)
    sign_in(page, app_url)
    page.get_by_role("tab", name="My jobs").click()
    page.get_by_text(job.id).locator("visible=true").first.click()
    page.locator("#job-details").get_by_text(f"Job {job.id}").wait_for()
    page.get_by_text("'step': 3").first.wait_for()  # logs stream in
    page.get_by_text("Following the logs").wait_for()
    page.get_by_role("button", name="Cancel job").click()
    page.get_by_text(f"Cancel job {job.id}?").wait_for()
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, "my-jobs-confirm-cancel.png"), full_page=True)
    page.get_by_role("button", name="Yes, cancel").click()
    page.locator("#job-details").get_by_text("CANCELED", exact=False).first.wait_for()
    page.locator("#job-diagnosis").get_by_role("heading", name="Canceled").wait_for()
    assert hub.jobs[job.id].canceled_at is not None
    page.get_by_role("button", name="Cancel job").wait_for(state="hidden")
    page.screenshot(path=os.path.join(SCREENSHOTS, "my-jobs-canceled.png"), full_page=True)


def test_the_proposed_fix_is_the_jobs_whole_config_with_the_change():
    from trainer_space.jobs.config import TrainingConfig
    from trainer_space.jobs.diagnosis import Diagnosis
    from trainer_space.jobs.monitor import fixed_config
    from trainer_space.ui.jobs_tab import diagnosis_markdown

    diag = Diagnosis("oom", "Out of memory", "x", "Resubmit", {"per_device_train_batch_size": 2,
                     "gradient_checkpointing": True, "timeout_s": 7200, "flavor": "l4x1"}, "CUDA out of memory")  # fmt: skip
    job = TrainingConfig.from_dict({"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "yahma/alpaca-cleaned",
                                    "learning_rate": 3e-4, "max_steps": 500, "per_device_train_batch_size": 8,
                                    "mapping": {"columns": {}, "transforms": ["alpaca"]}, "flavor": "t4-small"})  # fmt: skip
    fixed = fixed_config(job, diag)
    assert fixed.per_device_train_batch_size == 2 and fixed.flavor == "l4x1" and fixed.timeout == "2h"
    assert (fixed.dataset, fixed.learning_rate, fixed.max_steps) == ("yahma/alpaca-cleaned", 3e-4, 500)
    assert fixed.mapping == job.mapping
    assert fixed_config(job, None) is None and fixed_config(None, diag) is None
    assert "per\\_device\\_train\\_batch\\_size = 2" in diagnosis_markdown(diag)


# ---------------------------------------------------------------------------------------------- issue 16
ESTIMATE = {"flavor": "t4-small", "gpus": 1, "peak_gpu_mem_gb": 10.0, "hours": 0.001, "cost_usd": 0.0004}


def progress_line(step: int, total: int, *, eta: float, t: float, peak: float | None = None, done: bool = False):
    import json

    data = {"step": step, "total": total, "eta_s": eta, "t": t, "peak_gpu_mem_gb": peak, "done": done}
    return "TRAINER_SPACE_PROGRESS " + json.dumps(data)


def settings_env(monkeypatch, **env: str) -> None:
    """Settings read again with `env` set (and read again without it after the test: `_settings_after_test`)."""
    from trainer_space.settings import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _settings_after_test():
    yield
    from trainer_space.settings import get_settings

    get_settings.cache_clear()


def submit_with_estimate(hub, **plan) -> Any:
    from trainer_space.jobs.accuracy import JobEstimate

    hub.plan_next_job(**plan)
    return submit(hub.alice, env=JobEstimate(**ESTIMATE).to_env())


def test_live_usage_is_charted_with_peaks_and_the_stream_is_bounded(hub, tab, monkeypatch):
    from tests.hub_standin import metric_sample

    samples = [metric_sample(cpu_pct=20 + i, ram_gb=3 + i, gpus=[(60 + i, 9.0 + i, 16.0)]) for i in range(4)]
    job = submit_with_estimate(hub, lines=["x"] * 40, line_interval_s=0.1, metrics=samples, metrics_interval_s=0.1)
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "RUNNING")
    token = SimpleNamespace(token=hub.alice)
    where = {"backend": "hf-jobs", "namespace": "alice", "stage": "RUNNING"}
    settings_env(monkeypatch, TRAINER_SPACE_USAGE_FOLLOW_S="1.5")
    started = time.monotonic()
    updates = list(tab.on_usage(job.id, where, token, None))
    assert time.monotonic() - started < 4  # the stream has a time cap: it never holds a worker for long
    last = updates[-1]
    assert "paused after" in last[tab.usage_note] and "Follow usage" in last[tab.usage_note]
    state = last[tab.usage_state]
    assert state["peaks"]["samples"] >= 4
    assert round(state["peaks"]["gpu_mem_gb"] * 1024**3 / 1e9, 1) == 12.0  # the planned peak (GB -> GiB) is kept
    assert state["peaks"]["gpu_util_pct"] == 63 and state["peaks"]["cpu_pct"] == 23
    mem = last[tab.gpu_mem_plot]
    assert "usage-off" not in last[tab.plot_boxes[0]].elem_classes and list(mem.columns) == ["time", "gpu", "memory_gb"]
    assert set(mem["gpu"]) == {"GPU 0"}
    # estimate vs measured while it runs: the live GPU peak beside the estimate, with the ratio
    facts = tab.on_open(job.id, token)[tab.facts]
    versus = tab.on_measures(facts, None, state)[tab.versus]
    assert "Estimate vs measured" in versus and "11.2 GB (live metrics)" in versus and "10.0 GB" in versus
    assert "1.12x" in versus
    # an ended job: no metrics call at all (the Hub keeps no history), the note says why
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "COMPLETED", timeout=15)
    before = len(hub.requests_to("/api/jobs/alice/" + job.id + "/metrics"))
    (ended,) = list(tab.on_usage(job.id, {**where, "stage": "COMPLETED"}, token, state))
    assert "has ended" in ended[tab.usage_note] and "Peaks over" in ended[tab.usage_note]
    assert len(hub.requests_to("/api/jobs/alice/" + job.id + "/metrics")) == before


def test_progress_bar_and_eta_come_from_progress_lines_not_the_last_log_line(hub, tab):
    now = time.time()
    lines = ["Loading", progress_line(10, 40, eta=300, t=now), "{'loss': 1.1}", "Saving checkpoint-10"]
    job = submit_with_estimate(hub, lines=lines, line_interval_s=0.3)
    token = SimpleNamespace(token=hub.alice)
    opened = tab.on_open(job.id, token)
    updates = list(tab.on_follow(job.id, opened[tab.where], token, opened[tab.facts]))
    with_progress = [u for u in updates if tab.progress in u]
    assert with_progress, "no progress update"
    html = with_progress[-1][tab.progress]
    assert 'aria-valuenow="25.0"' in html and "Step 10 of 40" in html and "left" in html
    assert with_progress[-1][tab.progress_state]["step"] == 10


def test_no_progress_for_minutes_while_running_is_said_plainly():
    from trainer_space.ui.jobs_tab import progress_html

    now = time.time()
    facts = {"kind": "train", "stage": "RUNNING", "started_ts": now - 3600}
    stale = {"step": 120, "total": 1000, "eta_s": 4000, "t": now - 25 * 60}
    html = progress_html(facts, stale, now=now)
    assert "⚠ No progress for 25 minutes while RUNNING (last at step 120 of 1000)" in html
    assert 'aria-valuenow="12.0"' in html
    none_yet = progress_html(facts, None, now=now)
    assert "No progress for 60 minutes while RUNNING" in none_yet
    assert progress_html({**facts, "kind": "other"}, stale) == ""  # not a training job of this app


def test_a_job_scheduling_too_long_is_flagged_with_zero_cost_and_cancel(hub, tab, monkeypatch):
    settings_env(monkeypatch, TRAINER_SPACE_SCHEDULING_ALERT_MIN="0.02")  # 1.2 s
    job = submit_with_estimate(hub, schedule_s=60)
    token = SimpleNamespace(token=hub.alice)
    first = tab.on_open(job.id, token)
    assert "Waiting for hardware" not in first[tab.details] and first[tab.cancel].visible
    time.sleep(2.2)  # the Hub counts whole seconds
    panel = tab.on_open(job.id, token)
    details = panel[tab.details]
    assert "⚠ Waiting for hardware (t4-small) for" in details and "Cost so far: $0.00" in details
    assert "Cancel it" in details and panel[tab.cancel].visible  # the cancel button is there
    assert "**Scheduling** | 2 s" in details or "**Scheduling** | 3 s" in details
    status = monitor_status(hub, job.id)
    assert status["scheduling_note"].startswith("Waiting for hardware") and status["cost_usd"] == 0
    assert "Waiting for hardware" in panel[tab.progress]


def monitor_status(hub, job_id: str) -> dict:
    from trainer_space.hub.session import HubSession
    from trainer_space.jobs.monitor import job_status

    return job_status(HubSession(hub.alice), job_id).to_json()


def test_estimate_vs_measured_of_a_finished_job_and_the_accuracy_view_with_csv(hub, tab):
    import csv

    now = time.time()
    lines = [progress_line(1, 2, eta=1, t=now, peak=7.5), progress_line(2, 2, eta=0, t=now, peak=8.0, done=True),
             "model saved"]  # fmt: skip
    job = submit_with_estimate(hub, lines=lines, line_interval_s=0.1)
    hub.plan_next_job(lines=["no estimate here"])
    plain = submit(hub.alice)  # a job without an estimate is not in the accuracy view
    wait_for(lambda: all(j.stage()[0] == "COMPLETED" for j in hub.jobs.values()))
    token = SimpleNamespace(token=hub.alice)
    opened = tab.on_open(job.id, token)
    assert opened[tab.facts]["estimate"] == ESTIMATE
    (view,) = list(tab.on_follow(job.id, opened[tab.where], token, opened[tab.facts]))
    assert "Training finished at step 2 of 2" in view[tab.progress]
    versus = tab.on_measures(opened[tab.facts], view[tab.progress_state], None)[tab.versus]
    assert "8.0 GB (progress lines)" in versus and "0.80x" in versus  # measured / estimated peak memory
    assert "Measured so far" not in versus  # it has ended

    shown = tab.on_accuracy(token)
    frame = shown[tab.acc_table]
    assert list(frame["Job"]) == [job.id]
    row = frame.iloc[0]
    assert row["Est. GB"] == 10.0 and row["GB"] == 8.0 and row["GB ratio"] == 0.8
    assert row["Flavor"] == "t4-small" and row["Method"] == "sft" and row["Est. min"] == 0.1
    assert row["Min"] is not None and row["Min ratio"] is not None and row["$ ratio"] is not None
    assert "1 finished job(s)" in shown[tab.acc_note] and "peak GPU memory 0.80x" in shown[tab.acc_note]
    assert shown[tab.acc_plot].visible
    assert set(shown[tab.acc_plot].value["columns"]) == {"job", "measure", "ratio"}
    path = shown[tab.acc_csv].value["path"]  # a FileData once Gradio has it
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["Job"] for r in rows] == [job.id] and rows[0]["GB ratio"] == "0.8"
    with open(path) as fh:
        text = fh.read()
    assert plain.id not in text and hub.alice not in text


LOGS_TAIL_SHOWN_JS = """() => {
  const box = document.querySelector('#job-logs .cm-scroller');
  const lines = document.querySelectorAll('#job-logs .cm-content .cm-line');
  if (!box || !lines.length) return null;
  const a = box.getBoundingClientRect(), b = lines[lines.length - 1].getBoundingClientRect();
  return b.top >= a.top - 1 && b.bottom <= a.bottom + 1 && lines[lines.length - 1].textContent;
}"""


# the words of the cells under a selector that the browser broke across lines ("Mode l", "$0.0 0")
BROKEN_WORDS_JS = """(selector) => {
  const broken = [];
  for (const cell of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const re = /\\S+/g;
      let m;
      while ((m = re.exec(node.textContent)) !== null) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""


def headers_in_view(page, selector: str, width: int) -> list[str]:
    """The headers of a table whose cell is entirely inside the window (at `width` px)."""
    shown = []
    for th in page.locator(f"{selector} th").all():
        box = th.bounding_box()
        if box and box["x"] >= 0 and box["x"] + box["width"] <= width + 1:
            shown.append(th.inner_text().strip())
    return shown


def open_tab(page, name: str) -> None:
    """Open a tab, from the "More tabs" menu where a narrow screen has put it."""
    page.get_by_role("tab").first.wait_for()
    tab = page.get_by_role("tab", name=name)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-dropdown button", has_text=name).first.click()


def row_of(page, job_id: str) -> str:
    """The text of the job's row in the jobs table (its cells, from the job id to the next job's id)."""
    text = page.locator("#jobs-table").inner_text()
    return text.split(job_id, 1)[1].split("\n\n")[0] if job_id in text else ""


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 420])
def test_my_jobs_in_a_browser_running_usage_progress_then_finished(hub, app_url, page, width):
    from tests.hub_standin import metric_sample

    now = time.time()
    steps = 60
    lines = []
    for i in range(1, steps + 1):
        lines += [f"{{'loss': {2.5 - i / 40:.3f}, 'step': {i}}}",
                  progress_line(i, steps, eta=(steps - i) * 0.25, t=now + 1 + i * 0.25, peak=9.0 + i / 60,
                                done=i == steps)]  # fmt: skip
    metrics = [metric_sample(cpu_pct=80 + i % 15, ram_gb=5 + i / 20, gpus=[(70 + i % 25, 8 + i / 10, 16.0)])
               for i in range(40)]  # fmt: skip
    job = submit_with_estimate(hub, lines=lines, line_interval_s=0.125, metrics=metrics, metrics_interval_s=0.25,
                               schedule_s=1.0)  # fmt: skip
    page.set_viewport_size({"width": width, "height": 900})
    suffix = "" if width > 700 else "-phone"
    sign_in(page, app_url)
    open_tab(page, "My jobs")
    page.get_by_text(job.id).locator("visible=true").first.click()
    page.locator("#job-details").get_by_text(f"Job {job.id}").wait_for()
    page.locator("#job-progress").get_by_text("left").wait_for(timeout=20_000)
    page.locator("#job-usage-note").get_by_text("Peaks over").wait_for(timeout=20_000)
    page.locator("#job-versus").get_by_text("live metrics").wait_for(timeout=20_000)
    # the log box shows its latest lines (not only line numbers): the last line is drawn inside the box once a
    # visitor scrolls to it (CodeMirror measures its lines only where the window shows them; a full-page screenshot
    # of a box below the fold shows numbers beside lines it has never measured)
    page.locator("#job-logs").scroll_into_view_if_needed()
    tail = wait_for(lambda: page.evaluate(LOGS_TAIL_SHOWN_JS), timeout=5)
    assert "step" in tail, tail
    # the table's first columns are the job, its stage and its cost; no key or number is broken in the details
    assert headers_in_view(page, "#jobs-table", width)[:3] == ["Job", "Stage", "Cost ($)"]
    assert page.evaluate(BROKEN_WORDS_JS, "#job-details td, #jobs-table th, #jobs-table td, #job-versus td") == []
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, f"my-jobs-running-usage{suffix}.png"), full_page=True)
    page.locator("#job-details").get_by_text("COMPLETED").first.wait_for(timeout=30_000)
    ended = time.monotonic()
    # the job's end shows at once everywhere: its row in the table, and the usage is no longer "live"
    page.locator("#job-usage-note").get_by_text("The job has ended").wait_for(timeout=3_000)
    wait_for(lambda: "COMPLETED" in row_of(page, job.id), timeout=3)
    assert time.monotonic() - ended < 3  # not the table's 5 s timer, nor a metrics read running out
    assert "Usage (live)" not in page.locator("#job-usage-note").inner_text()
    page.locator("#job-progress").get_by_text("Training finished").wait_for(timeout=20_000)
    page.get_by_text("Estimate accuracy").first.click()
    page.get_by_role("button", name="Show estimate accuracy").click()
    page.get_by_text("1 finished job(s)").wait_for()
    page.get_by_role("button", name="Download CSV").wait_for()
    assert page.evaluate(BROKEN_WORDS_JS, "#estimate-accuracy th, #job-details td") == []
    page.screenshot(path=os.path.join(SCREENSHOTS, f"my-jobs-finished-estimate{suffix}.png"), full_page=True)
