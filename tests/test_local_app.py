"""The app as a user starts it on their own machine (`python app.py`, no Hugging Face variables, no token): the
whole flow on the Local backend through gradio_client, an app killed mid-job, a restart (the same in Chromium:
tests/test_journeys.py).

The app runs in a subprocess; its jobs run `job_templates/train.py` / `export_gguf.py` with this test Python
(TRAINER_SPACE_LOCAL_PYTHON) on CPU, with a tiny random model and a JSONL file written here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from gradio_client import Client

from tests.hub_standin import free_port
from tests.test_local import alive, chat_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


class LocalApp:
    """`python app.py` in a subprocess, with a clean environment (restartable on the same home)."""

    def __init__(self, home: Path) -> None:
        self.home, self.port, self.process = home, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TRAINER_SPACE_CACHE")
        env = {k: v for k, v in os.environ.items() if k in keep}
        return env | {
            "TRAINER_SPACE_HOME": str(self.home),
            "TRAINER_SPACE_LOCAL_PYTHON": sys.executable,  # a Python with the templates' dependencies
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HOME": str(self.home / "hf-home"),
            "TRACKIO_DIR": str(self.home / "trackio"),
            "TOKENIZERS_PARALLELISM": "false",
        }

    def start(self) -> LocalApp:
        log = open(self.home / f"app-{int(time.time() * 1000)}.log", "w")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env(), stdout=log,
                                        stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, f"the app exited: {log.name}"
            time.sleep(0.5)
        raise AssertionError("the app did not start")

    def kill(self) -> None:
        """Kill the app at once (no cleanup): its jobs' processes keep running, orphaned."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    from tests.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("local-app")
    data = root / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in chat_rows(40)) + "\n")
    bad = root / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n')
    return SimpleNamespace(root=root, model=build_tiny_model(root / "tiny"), data=data, bad=bad)


def kill_jobs_under(home: Path) -> None:
    """Stop every job process started under `home` (jobs outlive the app on purpose; a test's must not)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if str(home).encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


@pytest.fixture
def app(tmp_path):
    running = LocalApp(tmp_path / "home")
    running.home.mkdir()
    try:
        yield running.start()
    finally:
        running.stop()
        kill_jobs_under(running.home)


def train_config(world, **fields: Any) -> dict[str, Any]:
    return {"method": "sft", "model": str(world.model), "dataset": str(world.data), "backend": "local",
            "max_steps": 3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
            "max_length": 64} | fields  # fmt: skip


def wait_job(client: Client, job_id: str, stages: set[str], timeout: float = 240) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.predict(job_id, api_name="/job_status")
        if status["stage"] in stages:
            return status
        time.sleep(0.5)
    raise AssertionError(f"{job_id}: {status['stage']} after {timeout} s")


def test_the_whole_flow_through_gradio_client(world, app) -> None:
    client = Client(app.url, verbose=False)
    inspection = client.predict(str(world.data), "", "", "sft", api_name="/inspect_dataset")
    assert inspection["methods"]["sft"]["verdict"] == "READY" and inspection["num_rows"] == 40
    estimate = client.predict(str(world.model), str(world.data), "sft", "lora", 64, 1, 2, 1, True, None,
                              api_name="/estimate")  # fmt: skip
    assert estimate["recommended"] == "local" and estimate["flavors"][0]["flavor"] == "local"

    started = time.perf_counter()
    done = client.predict(train_config(world), False, api_name="/submit_training")
    assert time.perf_counter() - started < 5  # returns at once: the job runs in the background
    assert done["backend"] == "local" and done["job_id"] and done["output_dir"]
    status = wait_job(client, done["job_id"], {"COMPLETED", "ERROR"})
    logs = client.predict(done["job_id"], 50, api_name="/job_logs")["lines"]
    assert status["stage"] == "COMPLETED", logs
    assert any("model saved to" in line for line in logs)
    assert (Path(done["output_dir"]) / "adapter_model.safetensors").is_file()

    export = client.predict(model=done["output_dir"], quantizations=["F16"], dry_run=False, backend="local",
                            pre_tokenizer="qwen2", api_name="/export_gguf")  # fmt: skip
    exported = wait_job(client, export["job_id"], {"COMPLETED", "ERROR"}, timeout=400)
    export_log = client.predict(export["job_id"], 80, api_name="/job_logs")["lines"]
    assert exported["stage"] == "COMPLETED", export_log
    (gguf,) = Path(export["output_dir"]).glob("*.gguf")
    from gguf import GGUFReader

    reader = GGUFReader(gguf)
    assert reader.tensors and any(f.name == "general.architecture" for f in reader.fields.values())
    assert {j["id"] for j in client.predict("", False, api_name="/list_jobs")["jobs"]} >= {
        done["job_id"],
        export["job_id"],
    }


def test_failure_paths_and_an_app_killed_mid_job(world, app) -> None:
    client = Client(app.url, verbose=False)
    with pytest.raises(Exception, match=r"No such model on this machine: .*nowhere"):
        client.predict(train_config(world, model=str(world.root / "nowhere")), True, api_name="/submit_training")
    with pytest.raises(Exception, match=r"bad\.jsonl, line 2: not valid JSON"):
        client.predict(str(world.bad), "", "", "sft", api_name="/inspect_dataset")

    long = client.predict(train_config(world, max_steps=100_000, num_train_epochs=100), False,
                          api_name="/submit_training")  # fmt: skip
    wait_job(client, long["job_id"], {"RUNNING"})
    pid = _job_row(app, long["job_id"])["pid"]
    app.kill()
    assert alive(pid)  # orphaned: it keeps running without the app
    app.start()  # the same home: the jobs database and logs
    # no page opened, no API call: the app's start-up stops the orphan and marks the job (it waited for the first
    # page, ~40 s, before)
    deadline = time.time() + 15
    while (alive(pid) or _job_row(app, long["job_id"])["stage"] != "ERROR") and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(pid) and _job_row(app, long["job_id"])["stage"] == "ERROR"
    client = Client(app.url, verbose=False)
    status = client.predict(long["job_id"], api_name="/job_status")
    assert status["stage"] == "ERROR" and "The app stopped while this job was running" in status["message"]
    # signed out, it pushed nothing: no resume_from_hub, but what is true of its folder
    assert "resume_from_hub" not in status["message"] and "saved no checkpoint" in status["message"]
    assert status["diagnosis"]["kind"] == "interrupted" and "resume_from_hub" not in status["diagnosis"]["action_hint"]


def _job_row(app, job_id: str) -> dict[str, Any]:
    import sqlite3

    with sqlite3.connect(app.home / "jobs.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


def _job_ids(app) -> list[str]:
    import sqlite3

    with sqlite3.connect(app.home / "jobs.sqlite3") as db:
        return [r[0] for r in db.execute("SELECT id FROM jobs ORDER BY created_at")]
