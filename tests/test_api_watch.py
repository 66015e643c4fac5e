"""A program sees what a person sees, through a real MCP client and gradio_client against the Hub stand-in: a
running job's progress and usage (metrics in the Hub's server-sent-event format), a finished job's estimate vs
measured, the estimate-accuracy rows; every parameter described in the same words for both kinds of client; and a
caller that goes away (gradio_client's cancel, an MCP cancel, a closed connection) leaves no read, thread or
connection behind."""

from __future__ import annotations

import asyncio
import html
import json
import time
import uuid
from typing import get_type_hints

import httpx
from gradio_client import Client
from mcp import types

from tests.hub_standin import metric_sample
from tests.test_bounded_reads import hub_sockets, misbehaving_job, read_threads, settled
from tests.test_jobs_tab import ESTIMATE, LABELS, progress_line, submit, wait_for
from tests.test_mcp import Mcp, run_mcp
from trainer_space.hub.session import HubSession
from trainer_space.jobs.accuracy import JobEstimate, accuracy_summary, estimate_accuracy
from trainer_space.jobs.monitor import job_status
from trainer_space.jobs.progress import latest_progress
from trainer_space.ui import api, api_types
from trainer_space.ui.jobs_tab import job_facts, progress_html

GIB = 1024**3


def training_job(hub, lines: list[str], **plan):
    """A training job of this app carrying its estimate (ESTIMATE: 10 GB per GPU on t4-small)."""
    hub.plan_next_job(lines=lines, **plan)
    return submit(hub.alice, labels=LABELS, env=JobEstimate(**ESTIMATE).to_env())


def test_a_running_jobs_progress_and_usage_as_my_jobs_shows_them(hub, app_url):
    now = time.time()
    checkpoint = {"step": 10, "saved_t": now - 5, "pushed_t": now - 2}
    lines = [
        progress_line(5, 40, eta=600, t=now - 20),
        "TRAINER_SPACE_PROGRESS " + json.dumps({"step": 10, "total": 40, "eta_s": 500, "t": now, "tokens_per_s": 1500,
                                                "peak_gpu_mem_gb": 9.1, "loss": 1.25, "checkpoint": checkpoint}),
        *["training"] * 120,
    ]  # fmt: skip
    samples = [metric_sample(cpu_pct=85, ram_gb=6, gpus=[(93, 11.2, 24.0)])]  # the Hub sends the latest, repeated
    job = training_job(hub, lines, schedule_s=0.0, line_interval_s=0.25, metrics=samples, metrics_interval_s=0.2)
    wait_for(lambda: hub.jobs[job.id].stage()[0] == "RUNNING" and "training" in str(hub.jobs[job.id].log_events()))
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    status = client.predict(job.id, 1.5, api_name="/job_status")

    progress = status["progress"]
    assert (progress["step"], progress["total"], progress["percent"]) == (10, 40, 25.0)
    assert progress["tokens_per_s"] == 1500 and progress["loss"] == 1.25 and not progress["done"]
    assert 450 < progress["eta_s"] <= 500 and progress["eta"].endswith(" s") and "min" in progress["eta"]
    assert progress["no_progress_min"] < 1 and not progress["stalled"]
    saved = progress["last_checkpoint"]
    assert set(saved) == set(get_type_hints(api_types.LastCheckpoint))
    assert (saved["saved_step"], saved["pushed_step"]) == (10, 10) and saved["saved_at"] <= saved["pushed_at"]
    assert progress["text"].startswith("Step 10 of 40, 1,500 tokens/s, about ")
    # the browser's progress bar says the same (same job, same lines)
    session = HubSession(hub.alice)
    details = job_status(session, job.id).details
    latest = latest_progress(session.job_logs(job.id, tail=300))
    assert html.escape(progress["text"].split(", about")[0]) in progress_html(job_facts(details), latest.to_json())

    usage = status["usage"]
    assert usage["source"] == "live metrics" and usage["samples"] >= 2 and usage["window_s"] <= 2.5
    (gpu,) = usage["gpus"]
    assert set(gpu) == set(get_type_hints(api_types.GpuUsage))
    assert gpu["memory_peak_gb"] == round(11.2e9 / GIB, 2) and gpu["utilization_peak_pct"] == 93
    assert gpu["estimate_gb"] == 10.0 and gpu["memory_ratio"] == round(11.2e9 / GIB / 10.0, 2)
    assert usage["cpu_peak_pct"] == 85 and usage["ram_peak_gb"] == round(6e9 / GIB, 2)
    versus = usage["vs_estimate"]
    assert versus["measured"]["memory_source"] == "live metrics" and versus["estimate"]["flavor"] == "t4-small"
    assert versus["ratio"]["peak_gpu_mem"] == gpu["memory_ratio"] and versus["measured"]["running_s"] > 0
    assert usage["note"].startswith("Peaks over") and "GPU memory peak" in usage["note"]

    async def steps(mcp: Mcp):
        return await mcp.call("job_status", job_id=job.id, usage_seconds=1)

    error, by_mcp = run_mcp(app_url, hub.alice, steps)
    assert not error, by_mcp
    assert by_mcp["progress"]["step"] == 10 and by_mcp["progress"]["last_checkpoint"] == saved
    assert by_mcp["usage"]["gpus"][0]["memory_peak_gb"] == gpu["memory_peak_gb"]
    quick = client.predict(job.id, 0, api_name="/job_status")  # no metrics read at all
    assert quick["usage"]["samples"] == 0 and quick["usage"]["source"] == "progress lines"


def test_a_finished_jobs_estimate_vs_measured_and_the_accuracy_rows(hub, app_url):
    now = time.time()
    lines = [progress_line(1, 2, eta=1, t=now, peak=7.5), progress_line(2, 2, eta=0, t=now, peak=8.0, done=True),
             "model saved"]  # fmt: skip
    job = training_job(hub, lines, schedule_s=0.0, line_interval_s=0.1)
    hub.plan_next_job(lines=["no estimate here"])
    submit(hub.alice)  # no estimate: not an accuracy row
    wait_for(lambda: all(j.stage()[0] == "COMPLETED" for j in hub.jobs.values()))
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    metrics_reads = len(hub.requests_to(f"/api/jobs/alice/{job.id}/metrics"))
    status = client.predict(job.id, api_name="/job_status")
    assert len(hub.requests_to(f"/api/jobs/alice/{job.id}/metrics")) == metrics_reads  # ended: nothing to read
    assert status["progress"]["done"] and status["progress"]["text"] == "Training finished at step 2 of 2."
    assert status["progress"]["no_progress_min"] is None and status["progress"]["last_checkpoint"] is None
    usage = status["usage"]
    assert usage["source"] == "progress lines" and usage["samples"] == 0 and usage["gpus"] == []
    assert usage["gpu_memory_peak_gb"] == 8.0 and "has ended" in usage["note"]
    versus = usage["vs_estimate"]
    assert versus["measured"]["peak_gpu_mem_gb"] == 8.0 and versus["ratio"]["peak_gpu_mem"] == 0.8
    assert versus["measured"]["memory_source"] == "progress lines" and versus["ratio"]["time"] is not None

    accuracy = client.predict(api_name="/estimate_accuracy")
    rows = estimate_accuracy(HubSession(hub.alice))  # what My jobs' Estimate accuracy view shows
    assert accuracy["jobs"] == rows and [r["job"] for r in rows] == [job.id]
    assert accuracy["count"] == 1 and accuracy["summary"] == accuracy_summary(rows)
    assert accuracy["median_ratio"]["peak_gpu_mem"] == 0.8 and "peak GPU memory 0.80x" in accuracy["summary"]
    row = accuracy["jobs"][0]
    assert set(row) == set(get_type_hints(api_types.AccuracyRow))
    assert (row["est_peak_gb"], row["peak_gb"], row["peak_ratio"], row["flavor"]) == (10.0, 8.0, 0.8, "t4-small")

    async def steps(mcp: Mcp):
        return await mcp.call("estimate_accuracy", limit=5)

    error, by_mcp = run_mcp(app_url, hub.alice, steps)
    assert not error and by_mcp == accuracy


def test_every_parameter_is_described_in_the_same_words_for_gradio_client_and_mcp(hub, app_url):
    endpoints = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    tools = {t.name: t for t in run_mcp(app_url, hub.alice, lambda mcp: mcp.tools())}
    assert set(api.PARAMETERS) == set(tools) == {fn.__name__ for fn in api.ENDPOINTS}
    for name, texts in api.PARAMETERS.items():
        shown = {p["parameter_name"]: p for p in endpoints[f"/{name}"]["parameters"]}
        assert set(shown) == set(texts) == set(tools[name].inputSchema["properties"]), name
        for param, text in texts.items():
            assert shown[param]["python_type"]["description"] == text, (name, param)  # what view_api() prints
            assert shown[param]["type"]["description"] == text, (name, param)
            assert tools[name].inputSchema["properties"][param]["description"] == text, (name, param)
            assert f"    {param}: {text}" in getattr(api, name).__doc__  # the Args the MCP server reads


def _reading(before: int) -> bool:
    return len(read_threads()) > before


def test_a_caller_that_goes_away_leaves_no_read_thread_or_connection(hub, app_url):
    """A log read that never ends by itself (keep-alives only) would last its whole deadline (10 s): each caller
    below goes away after a moment, and the read is given up at once."""
    port = int(hub.url.rsplit(":", 1)[1].strip("/"))
    job = misbehaving_job(hub, HubSession(hub.alice), "keep-alive")
    threads, sockets = len(read_threads()), hub_sockets(port)
    released: dict[str, float] = {}

    # gradio_client: the caller cancels its call
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    pending = client.submit(job.id, 5, api_name="/job_logs")
    wait_for(lambda: _reading(threads))
    started = time.monotonic()
    pending.cancel()
    assert settled(lambda: len(read_threads()), threads, timeout=5) == threads
    released["gradio_client cancel"] = time.monotonic() - started

    # an MCP client gives its tool call up: it says so (notifications/cancelled) and leaves (its HTTP stream closes)
    async def steps(mcp: Mcp) -> None:
        asyncio.get_running_loop().create_task(mcp.session.call_tool("job_logs", {"job_id": job.id, "tail": 5}))
        for _ in range(200):
            if _reading(threads):
                break
            await asyncio.sleep(0.05)
        cancelled = types.CancelledNotification(
            params=types.CancelledNotificationParams(requestId=mcp.session._request_id - 1, reason="test")
        )
        await mcp.session.send_notification(types.ClientNotification(cancelled))

    run_mcp(app_url, hub.alice, steps)
    started = time.monotonic()
    assert settled(lambda: len(read_threads()), threads, timeout=5) == threads
    released["MCP client gone"] = time.monotonic() - started

    # a Gradio caller whose connection closes (no cancel): Gradio marks its event dead, the read stops
    config = httpx.get(f"{app_url}config", timeout=10).json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "job_logs")
    session_hash = uuid.uuid4().hex[:12]
    with httpx.Client(base_url=app_url, timeout=10, headers={"Authorization": f"Bearer {hub.alice}"}) as http:
        http.post(
            "gradio_api/queue/join",
            json={
                "data": [job.id, 5],
                "fn_index": fn_index,
                "event_data": None,
                "session_hash": session_hash,
                "trigger_id": None,
            },
        ).raise_for_status()
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            lines = stream.iter_lines()
            while "process_starts" not in next(lines):
                pass
            wait_for(lambda: _reading(threads))
            started = time.monotonic()
    assert settled(lambda: len(read_threads()), threads, timeout=5) == threads
    released["connection closed"] = time.monotonic() - started

    assert all(seconds < 3 for seconds in released.values()), released  # not the 10 s deadline
    assert settled(lambda: hub_sockets(port), sockets) <= sockets
