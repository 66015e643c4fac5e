"""The local jobs' Python environment, prepared by the app from the machine's package registries alone.

One test prepares it for real, from an empty cache, exactly as a newcomer's first local job does (no
TRAINER_SPACE_LOCAL_PYTHON), then trains in it. The others make pip fail for a real reason (no network) or read
pip's own failure messages, and check that the job, its log and the diagnosis name the cause and the fix.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import stop_local_jobs
from tests.test_local import chat_rows
from trainer_space.hub.session import HubSession
from trainer_space.jobs import monitor
from trainer_space.jobs.backends import local, local_env
from trainer_space.jobs.backends.local_env import EnvironmentNotReady, explain_pip_failure, split_failure
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.diagnosis import diagnose
from trainer_space.jobs.training import submit_training
from trainer_space.settings import get_settings

ANON = HubSession(None)
REQ = Path("/home/me/.cache/trainer-space/envs/requirements.txt")
ENV = Path("/home/me/.cache/trainer-space/envs/0123456789abcdef")


@pytest.fixture
def newcomer(tmp_path, monkeypatch) -> SimpleNamespace:
    """A machine where no local job ever ran: an empty home and pip cache, no TRAINER_SPACE_LOCAL_PYTHON."""
    from tests.tiny_model import build_tiny_model

    monkeypatch.delenv("TRAINER_SPACE_LOCAL_PYTHON", raising=False)
    monkeypatch.setenv("TRAINER_SPACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
    get_settings.cache_clear()
    data = tmp_path / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in chat_rows(40)) + "\n")
    try:
        yield SimpleNamespace(root=tmp_path, home=tmp_path / "home", data=data, model=build_tiny_model(tmp_path / "m"))
    finally:
        stop_local_jobs()
        get_settings.cache_clear()


def config(world, **fields) -> TrainingConfig:
    return TrainingConfig.from_dict({
        "method": "sft", "model": str(world.model), "dataset": str(world.data), "backend": "local",
        "quick_test": True, "max_steps": 2, "per_device_train_batch_size": 2, "max_length": 64,
    } | fields)  # fmt: skip


def wait_end(job_id: str, timeout: float) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        stage = local.local_backend().find_job(job_id).status.stage
        if stage in ("COMPLETED", "ERROR", "CANCELED"):
            return stage
        time.sleep(1)
    raise AssertionError(f"{job_id} still {stage} after {timeout} s")


@pytest.mark.slow
def test_a_newcomers_first_local_job_prepares_its_environment_and_trains(newcomer) -> None:
    sub = submit_training(ANON, config(newcomer))
    stage = wait_end(sub.job.id, timeout=900)
    log = "\n".join(local.local_backend().job_logs(sub.job.id, tail=None))
    assert stage == "COMPLETED", log[-6000:]
    # prepared with this app's own interpreter and its pip, once, in the app's home
    assert "Preparing the job's Python environment" in log and "this app's own Python" in log
    (env,) = (p for p in (newcomer.home / "envs").iterdir() if p.is_dir())
    assert (env / ".ready").is_file() and (env / "bin" / "python").resolve().name.startswith("python3")
    # torch: the CPU build on a machine without an NVIDIA GPU, and the log says where it came from
    (torch_line,) = [line for line in log.splitlines() if line.startswith("torch 2.")]
    if not shutil.which("nvidia-smi"):
        assert "the CPU build (no NVIDIA GPU here), from " in torch_line, torch_line
    assert "model saved to" in log
    assert (Path(monitor.job_status(ANON, sub.job.id).details.output_dir) / "adapter_model.safetensors").is_file()
    # the next job reuses it: nothing is prepared again
    quiet = io.StringIO()
    assert local.job_python(local.local_dependencies(), quiet) == str(env / "bin" / "python") and not quiet.getvalue()


def test_without_network_the_job_says_which_host_and_what_to_set(newcomer, monkeypatch) -> None:
    """pip really fails: its index cannot be resolved. The job fails with that cause, in its status, its log and
    the diagnosis, naming the settings that fix it."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no pip.conf, no local wheels: the index alone
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.invalid/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    sub = submit_training(ANON, config(newcomer))
    assert wait_end(sub.job.id, timeout=240) == "ERROR"
    status = monitor.job_status(ANON, sub.job.id)
    message = status.details.message
    assert message.startswith("Preparing the job's Python environment failed: no network to pypi.invalid"), message
    assert "TRAINER_SPACE_LOCAL_PYTHON" in message and "PIP_INDEX_URL" in message
    log = local.local_backend().job_logs(sub.job.id, tail=None)
    assert any(line.startswith("ERROR: Preparing the job's Python environment failed") for line in log)
    diagnosis = status.diagnosis
    assert diagnosis.kind == "environment" and "no network to pypi.invalid" in diagnosis.explanation
    assert "TRAINER_SPACE_LOCAL_PYTHON" in diagnosis.action and "Read the end of the logs" not in diagnosis.action
    # the job never ran: its row and its details agree
    (row,) = [r for r in monitor.list_job_rows(ANON) if r.id == sub.job.id]
    assert row.stage == status.details.stage == "ERROR"


PIP_OFFLINE = [
    "Looking in indexes: https://pypi.org/simple, file:///opt/pypi/simple",
    "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken "
    "by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a "
    "new connection: [Errno -3] Temporary failure in name resolution')': /simple/trl/",
    "ERROR: Could not find a version that satisfies the requirement trl==1.16.0 (from versions: none)",
    "ERROR: No matching distribution found for trl==1.16.0",
]
PIP_PROXY = [
    "WARNING: Retrying (Retry(total=4)) after connection broken by 'ProxyError('Cannot connect to proxy.', "
    "OSError('Tunnel connection failed: 403 Forbidden'))': /simple/torch/",
    "ERROR: Could not find a version that satisfies the requirement torch==2.13.0 (from versions: none)",
]
PIP_DISK = [
    "Installing collected packages: torch",
    "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device",
]
PIP_PYTHON = [
    "ERROR: Ignored the following versions that require a different python version: 1.16.0 Requires-Python >=3.12",
    "ERROR: Could not find a version that satisfies the requirement trl==1.16.0 (from versions: 1.15.0)",
    "ERROR: No matching distribution found for trl==1.16.0",
]
PIP_MISSING = [
    "Looking in indexes: https://mirror.example.com/simple",
    "ERROR: Could not find a version that satisfies the requirement trackio==0.43.0 (from versions: 0.1.0)",
    "ERROR: No matching distribution found for trackio==0.43.0",
]


@pytest.mark.parametrize(
    ("lines", "cause", "fix"),
    [
        (PIP_OFFLINE, "no network to pypi.org", "PIP_INDEX_URL"),
        (PIP_PROXY, "no network to pypi.org", "HTTPS_PROXY"),
        (PIP_DISK, "no disk space left", "TRAINER_SPACE_HOME"),
        (PIP_PYTHON, "needs another Python version than 3.11.7", "run the app with a Python the pins support"),
        (PIP_MISSING, "no index pip uses offers trackio==0.43.0", "PIP_INDEX_URL"),
    ],
)
def test_a_pip_failure_names_its_cause_and_the_setting_that_fixes_it(lines, cause, fix) -> None:
    err = explain_pip_failure(lines, "3.11.7", ENV, REQ)
    assert cause in err.cause and fix in err.fix
    assert "TRAINER_SPACE_LOCAL_PYTHON" in err.fix and f"pip install -r {REQ}" in err.fix
    assert split_failure(err.message) == (err.cause, err.fix)
    d = diagnose("ERROR", err.message, [*lines, f"ERROR: {err.message}"], {"trainer-space": "train"}, flavor="local")
    assert d.kind == "environment" and cause in d.explanation and "TRAINER_SPACE_LOCAL_PYTHON" in d.action


def test_the_interpreter_is_the_apps_own_when_the_templates_allow_it(monkeypatch, tmp_path) -> None:
    deps, spec = local_env.template_needs()
    assert spec == ">=3.11" and any(d.startswith("torch==") for d in deps)
    own = local_env.choose_interpreter(spec, REQ)
    assert own.path == sys.executable and own.why == "this app's own Python"
    # a template needing a newer Python than the app's: a python3.X on PATH that has it, else a refusal saying so
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentNotReady) as refused:
        local_env.choose_interpreter(">=3.20", REQ)
    assert "the job templates need Python >=3.20" in refused.value.cause
    assert "TRAINER_SPACE_LOCAL_PYTHON" in refused.value.fix
    fake = tmp_path / "python3.20"
    fake.write_text("#!/bin/sh\necho 3.20.0\n")
    fake.chmod(0o755)
    found = local_env.choose_interpreter(">=3.20", REQ)
    assert found.path == str(fake) and found.version == "3.20.0"


def test_not_enough_disk_is_said_before_anything_is_downloaded(newcomer, monkeypatch) -> None:
    monkeypatch.setattr(local_env.shutil, "disk_usage", lambda path: SimpleNamespace(free=1.2e9, total=0, used=0))
    log = io.StringIO()
    with pytest.raises(EnvironmentNotReady) as refused:
        local.job_python(local.local_dependencies(), log)
    assert "not enough disk space: 1.2 GB free" in refused.value.cause and "TRAINER_SPACE_HOME" in refused.value.fix
    assert "Preparing" not in log.getvalue()  # nothing was started
