"""Load: 50 visitors with their own tokens use every endpoint (all twelve) at once, through gradio_client against the launched
app, real and dry submissions included: 0 errors, 0 answers carrying another visitor's data; p50 / p95 printed.

Each visitor has a private dataset whose rows name them, a job of their own (training, then a GGUF export), and
reads their jobs, one job's status and logs, and cancels. Every answer is checked for the other visitors' names.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client

from tests.conftest import add_qwen
from trainer_space.hub.session import WHOAMI_CACHE
from trainer_space.settings import get_settings

VISITORS = int(os.environ.get("TRAINER_SPACE_LOAD_VISITORS", "50"))  # bench/load.py runs it with more


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.fixture
def patient_read_limits(monkeypatch):
    """The app and the stand-in share this process and 2 cores: under 50 visitors one stand-in answer can take longer
    than a real Hub's 10 s, so the read limits are patient here (their own tests check them at their real values)."""
    for name in ("TRAINER_SPACE_VIEWER_TIMEOUT", "TRAINER_SPACE_HUB_TIMEOUT"):
        monkeypatch.setenv(name, "90")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_fifty_visitors_on_every_endpoint_at_once(hub, app_url, tokenizer_files, patient_read_limits):
    WHOAMI_CACHE.clear()
    add_qwen(hub, tokenizer_files)
    names = [f"visitor{i:02d}" for i in range(VISITORS)]
    tokens = {n: hub.add_user(n, token=f"hf_{n}_load_token_{i:04d}") for i, n in enumerate(names)}
    for n in names:
        rows = [
            {"messages": [{"role": "user", "content": f"question {k} of {n}"}, {"role": "assistant", "content": n}]}
            for k in range(12)
        ]
        hub.add_dataset(f"{n}/data", {"train": rows}, num_rows={"train": 1000}, private=True)
        for _ in ("training", "export"):  # the stand-in hands its plans to the jobs in the order they come
            hub.plan_next_job(lines=["log line of a job", "step 1"], schedule_s=12.0)

    def connect(name: str) -> Client:  # 50 clients, the app and the stand-in share one process and 2 cores here:
        return Client(app_url, oauth_token=tokens[name], verbose=False, httpx_kwargs={"timeout": 120})  # patience

    with ThreadPoolExecutor(16) as pool:  # connect the clients first (each reads the app's config)
        clients = dict(zip(names, pool.map(connect, names), strict=True))

    timings: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    foreign: list[str] = []
    lock = threading.Lock()

    def call(name: str, endpoint: str, *args):
        started = time.monotonic()
        try:
            result = clients[name].predict(*args, api_name=f"/{endpoint}")
        except Exception as err:
            with lock:
                failures.append(f"{name} {endpoint}: {str(err)[:300]}")
            return None
        elapsed = time.monotonic() - started
        text = json.dumps(result)
        others = [o for o in names if o != name and (o in text or tokens[o] in text)]
        with lock:
            timings[endpoint].append(elapsed)
            if others or tokens[name] in text:
                foreign.append(f"{name} {endpoint}: {others[:3]}")
        return result

    def visitor(name: str) -> None:
        cfg = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": f"{name}/data", "flavor": "a10g-small"}
        inspected = call(name, "inspect_dataset", f"{name}/data", "train", "", "sft")
        if inspected is not None:
            assert f"question 0 of {name}" in json.dumps(inspected["preview"])
        call(name, "estimate", "Qwen/Qwen2.5-0.5B", f"{name}/data", "sft", "lora", 1024, 1, 4, 4, True, 1000)
        call(name, "submit_training", cfg, True)
        job = call(name, "submit_training", cfg, False)
        if job is not None:  # still scheduling (12 s): a stop request waits for its next checkpoint
            call(name, "stop_after_checkpoint", job["job_id"])
        call(name, "export_gguf", "Qwen/Qwen2.5-0.5B", ["Q4_K_M"], "", True, "", True)
        call(name, "export_gguf", "Qwen/Qwen2.5-0.5B", ["Q4_K_M"], "", True, "", False)
        listed = call(name, "list_jobs", "", True, "")
        if listed is not None:
            assert listed["user"] == name and len(listed["jobs"]) == 2
        if job is not None:
            call(name, "job_status", job["job_id"])
            call(name, "job_logs", job["job_id"], 20)
            call(name, "base_vs_tuned", job["job_id"])
            call(name, "cancel_job", job["job_id"])
            call(name, "continue_job", job["job_id"], "", "", None, True)  # canceled, no checkpoint: says so
        call(name, "estimate_accuracy", 20)

    started = time.monotonic()
    with ThreadPoolExecutor(VISITORS) as pool:
        list(pool.map(visitor, names))
    wall = time.monotonic() - started

    requests = sum(len(v) for v in timings.values())
    print(f"\nload: {VISITORS} visitors, {requests} requests in {wall:.1f} s")
    for endpoint, values in sorted(timings.items()):
        print(f"  {endpoint:16s} n={len(values):3d} p50={statistics.median(values):.2f}s "
              f"p95={_percentile(values, 0.95):.2f}s max={max(values):.2f}s")  # fmt: skip
    assert failures == [], failures[:10]
    assert foreign == [], foreign[:10]
    assert requests == VISITORS * 14
    jobs_by_owner = defaultdict(int)
    for job in hub.jobs.values():
        jobs_by_owner[job.namespace] += 1
    assert dict(jobs_by_owner) == dict.fromkeys(names, 2)  # one training and one export each, no duplicates
