"""Stop after the next checkpoint, then Continue, for real on this machine: the job template trains the tiny model
on CPU as a local job, the app cancels it right after a checkpoint is saved, and the continuation resumes from that
job's folder and finishes with the global step going on from the checkpoint."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import stop_local_jobs
from trainer_space.hub.session import HubSession
from trainer_space.jobs.backends.local import local_backend
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.continuing import CONTINUES_LABEL, continue_job, job_links, plan_continue
from trainer_space.jobs.progress import last_checkpoint, parse_progress
from trainer_space.jobs.stopping import request_stop
from trainer_space.jobs.training import submit_training
from trainer_space.settings import get_settings

pytestmark = pytest.mark.slow
ANON = HubSession(None)  # signed out: a local job that pushes nothing, so "saved" is what is waited for
STEPS = 48  # enough that the stop lands mid-run: a tiny model's step takes milliseconds


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("continue")
    data = root / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {i} + 1?"},
                          {"role": "assistant", "content": str(i + 1)}]} for i in range(60)]  # fmt: skip
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    model = build_tiny_model(root / "tiny")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINER_SPACE_HOME", str(root / "home"))
        get_settings.cache_clear()
        try:
            yield {"model": str(model), "data": str(data)}
        finally:
            stop_local_jobs()
    get_settings.cache_clear()


def wait_stage(job_id: str, stages: set[str], timeout: float = 300.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = local_backend().find_job(job_id)
        if job.status.stage in stages:
            return job
        time.sleep(0.2)
    raise AssertionError(f"{job_id} still {job.status.stage} after {timeout} s")


def test_a_local_job_stopped_after_a_checkpoint_continues_from_it_and_finishes(world) -> None:
    cfg = TrainingConfig.from_dict({
        "method": "sft", "model": world["model"], "dataset": world["data"], "backend": "local", "max_steps": STEPS,
        "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 64,
        "advanced": {"save_steps": 4, "logging_steps": 1},
    })  # fmt: skip
    first = submit_training(ANON, cfg).job
    wait_stage(first.id, {"RUNNING"})
    stop = request_stop(ANON, first.id)
    assert stop.waits_for == "saved" and stop.after_step == -1
    assert stop.wait(timeout=300), "the watcher never finished"
    old = local_backend().find_job(first.id)
    lines = local_backend().job_logs(first.id, tail=None)
    assert stop.state == "canceled" and old.status.stage == "CANCELED", (stop.detail, lines[-30:])
    saved = last_checkpoint(lines)
    # saved on this machine only; the job may save another before the cancel lands (steps of milliseconds)
    assert saved.saved_step >= stop.checkpoint_step >= 4 and saved.pushed_step is None
    reached = max(p.step for p in map(parse_progress, lines) if p is not None)
    assert reached < STEPS  # stopped mid-run

    plan = plan_continue(ANON, first.id)
    assert plan.eligible and plan.checkpoint.step >= stop.checkpoint_step and not plan.checkpoint.on_hub
    assert plan.steps_left == STEPS - plan.checkpoint.step and plan.flavor == "local"
    args = plan.plan.launch.args
    assert f"--resume_from_dir={Path(old.job_dir) / 'output'}" in args and "--resume_from_hub=true" not in args

    second = continue_job(ANON, first.id).job
    assert second.labels[CONTINUES_LABEL] == first.id
    done = wait_stage(second.id, {"COMPLETED", "ERROR", "CANCELED"})
    resumed = local_backend().job_logs(second.id, tail=None)
    assert done.status.stage == "COMPLETED", resumed[-40:]
    assert any(f"resuming from {Path(old.job_dir) / 'output'}/checkpoint-{plan.checkpoint.step}" in line
               for line in resumed)  # fmt: skip
    steps = [p.step for p in map(parse_progress, resumed) if p is not None]
    assert steps[0] == plan.checkpoint.step + 1 and steps[-1] == STEPS  # the global step goes on
    state = json.loads((Path(done.job_dir) / "output" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    logged = [e["step"] for e in state["log_history"] if "loss" in e]
    assert logged == list(range(1, STEPS + 1))  # the first steps came with the checkpoint
    assert job_links(ANON, local_backend().find_job(first.id)).continued_by == (second.id,)
    assert job_links(ANON, done).continues == first.id


def test_a_pushing_job_stopped_right_after_a_pushed_checkpoint_resumes_from_the_hub(hub, tmp_path: Path) -> None:
    """Hugging Face Jobs' path for real on CPU: the template pushes its checkpoints to the Hub stand-in and says when
    each upload finished; the process is stopped the moment a line says a checkpoint was pushed (what Stop after the
    next checkpoint does), the repo holds that checkpoint, and a run with --resume_from_hub goes on from its step."""
    import signal
    import subprocess
    import sys

    from tests.templates.conftest import REPO_ROOT, TRAIN_SCRIPT, job_env
    from tests.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    data = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"What is {i} + 1?"},
                          {"role": "assistant", "content": str(i + 1)}]} for i in range(80)]  # fmt: skip
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    repo, total = "alice/tiny-stopped", 20
    args = [
        sys.executable, str(TRAIN_SCRIPT), "--method", "sft", "--model_name_or_path", str(model),
        "--dataset_name", str(data), "--peft_mode", "lora", "--push_to_hub", "true", "--hub_model_id", repo,
        "--report_to", "none", "--logging_steps", "1", "--save_steps", "4", "--per_device_train_batch_size", "2",
        "--max_length", "64", "--num_sample_generations", "0", "--dataloader_pin_memory", "false",
        "--max_steps", str(total),
    ]  # fmt: skip
    env = job_env(tmp_path, offline=False, token=hub.alice)
    first = subprocess.Popen([*args, "--output_dir", str(tmp_path / "first")], cwd=REPO_ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    seen: list[str] = []
    pushed = None
    try:
        for line in first.stdout:
            seen.append(line)
            progress = parse_progress(line)
            if progress is not None and progress.checkpoint_pushed_t is not None:
                pushed = progress.checkpoint_step
                os.killpg(first.pid, signal.SIGKILL)  # canceled right after the pushed line
                break
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert pushed is not None, "".join(seen[-40:])
    reached = max(p.step for p in map(parse_progress, seen) if p is not None)
    assert reached < total  # stopped mid-run
    assert json.loads(hub.files(repo)["last-checkpoint/trainer_state.json"])["global_step"] == pushed

    second = subprocess.run([*args, "--output_dir", str(tmp_path / "second"), "--resume_from_hub", "true"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert second.returncode == 0, second.stderr[-4000:]
    assert f"resuming from {repo}/last-checkpoint" in second.stdout
    steps = [p.step for p in map(parse_progress, second.stdout.splitlines()) if p is not None]
    assert steps[0] == pushed + 1 and steps[-1] == total
    state = json.loads((tmp_path / "second" / "trainer_state.json").read_text())
    assert state["global_step"] == total
    assert [e["step"] for e in state["log_history"] if "loss" in e][:pushed] == list(range(1, pushed + 1))
    reported = last_checkpoint(second.stdout.splitlines())
    assert reported.pushed_step == total  # the last checkpoint of the continuation was pushed too
