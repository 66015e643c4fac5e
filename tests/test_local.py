"""The Local backend for real: the job template trains a tiny model on this machine, jobs are recorded in SQLite,
cancel stops the process group, a restart finds every job as it was (and marks the one it interrupted).

The jobs run `job_templates/train.py` with this test Python (TRAINER_SPACE_LOCAL_PYTHON, set in conftest.py), on
CPU, with a random tiny model and a JSONL file written here: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import stop_local_jobs
from trainer_space.errors import InvalidInput, NotSignedIn
from trainer_space.hub.session import HubSession
from trainer_space.jobs import monitor
from trainer_space.jobs.backends.base import JobLaunch
from trainer_space.jobs.backends.local import LocalBackend, local_backend
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.spec import load_template
from trainer_space.jobs.training import submit_training
from trainer_space.settings import get_settings

pytestmark = pytest.mark.slow
ANON = HubSession(None)  # a signed-out visitor: local jobs need no account


def chat_rows(n: int) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"What is {i} + 1?"}, {"role": "assistant", "content": str(i + 1)}]}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    from tests.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("local")
    data = root / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in chat_rows(40)) + "\n")
    bad = root / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "fine"}\n{"text": oops}\n')
    broken = root / "broken-model"
    broken.mkdir()
    model = build_tiny_model(root / "tiny")
    for f in model.iterdir():  # a model whose weights are garbage: the job crashes while loading it
        (broken / f.name).write_bytes(b"not safetensors" if f.suffix == ".safetensors" else f.read_bytes())
    # this module's local jobs in their own home: the other modules' "My jobs" never see them
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAINER_SPACE_HOME", str(root / "home"))
        get_settings.cache_clear()
        try:
            yield SimpleNamespace(root=root, model=model, data=data, bad=bad, broken=broken)
        finally:
            stop_local_jobs()
    get_settings.cache_clear()


def local_cfg(world, **fields: Any) -> TrainingConfig:
    base = {
        "method": "sft", "model": str(world.model), "dataset": str(world.data), "backend": "local",
        "max_steps": 3, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "max_length": 64,
    }  # fmt: skip
    return TrainingConfig.from_dict({**base, **fields})


def wait_stage(job_id: str, stages: set[str], timeout: float = 240.0, backend: LocalBackend | None = None) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = (backend or local_backend()).find_job(job_id)
        if job.status.stage in stages:
            return job
        time.sleep(0.3)
    raise AssertionError(f"{job_id} still {job.status.stage} after {timeout} s")


def alive(pid: int) -> bool:
    """Whether the process group led by `pid` still runs (a zombie waiting for its parent has stopped)."""
    try:
        os.killpg(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def test_a_local_sft_lora_job_trains_and_its_output_generates(world) -> None:
    start = time.perf_counter()
    sub = submit_training(ANON, local_cfg(world, compare_prompts=["Say hello."]))
    assert time.perf_counter() - start < 1.0  # the job runs in the background
    assert sub.job is not None and sub.to_json()["backend"] == "local"
    assert {c.name: c.status.value for c in sub.plan.checks}["this machine"] == "ok"
    job = wait_stage(sub.job.id, {"COMPLETED", "ERROR"})
    status = monitor.job_status(ANON, job.id)
    assert status.details.stage == "COMPLETED", "\n".join(monitor.job_log_tail(ANON, job.id, 40).lines)
    assert status.details.backend == "local" and status.details.config == sub.plan.config
    out = Path(status.details.output_dir)
    assert (out / "adapter_config.json").is_file() and (out / "README.md").is_file()
    from trainer_space.jobs.compare import base_vs_tuned

    compared = base_vs_tuned(ANON, job.id)  # read from the job's folder: 4 of its 40 rows held out, and my prompt
    assert compared.status == "ready" and compared.where == f"output folder {out}", compared
    assert [i.origin for i in compared.items] == ["dataset"] * 3 + ["yours"] and compared.items[-1].base

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(world.model), out)
    inputs = tokenizer("What is 1 + 1?", return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


def test_cancel_stops_the_whole_process_group(world) -> None:
    sub = submit_training(ANON, local_cfg(world, max_steps=100_000, num_train_epochs=100))
    job = wait_stage(sub.job.id, {"RUNNING"})
    pid = local_backend().store.get(job.id)["pid"]
    assert alive(pid)
    assert monitor.cancel(ANON, job.id).stage == "CANCELED"
    assert not alive(pid)
    assert monitor.job_status(ANON, job.id).diagnosis.kind == "canceled"


def test_the_queue_runs_one_job_at_a_time(world) -> None:
    first = submit_training(ANON, local_cfg(world, max_steps=100_000, num_train_epochs=100)).job
    second = submit_training(ANON, local_cfg(world, learning_rate=3e-4)).job  # a config no other test ran
    wait_stage(first.id, {"RUNNING"})
    time.sleep(1.0)
    assert local_backend().find_job(second.id).status.stage == "SCHEDULING"  # waits for its turn
    monitor.cancel(ANON, first.id)
    assert wait_stage(second.id, {"COMPLETED", "ERROR"}).status.stage == "COMPLETED"


def test_jobs_survive_a_restart_and_an_interrupted_one_is_marked(world, tmp_path) -> None:
    engine = LocalBackend(home=tmp_path)
    launch = JobLaunch(
        kind="train", template=load_template("train.py"), labels={"trainer-space": "train"}, timeout_s=600,
        args=("--method", "sft", "--model_name_or_path", str(world.model), "--dataset_name", str(world.data),
              "--max_steps", "100000", "--output_dir", "{job_dir}/output", "--push_to_hub", "false",
              "--report_to", "none", "--max_length", "64"),
    )  # fmt: skip
    done = engine.submit(JobLaunch(kind="train", template=launch.template, labels={}, args=("--help",), timeout_s=600))
    wait_stage(done.id, {"COMPLETED"}, backend=engine)
    running = engine.submit(launch)
    wait_stage(running.id, {"RUNNING"}, backend=engine)
    pid = engine.store.get(running.id)["pid"]
    engine.close()  # the app stops without a word to its jobs (killed, a crash, a reboot)

    restarted = LocalBackend(home=tmp_path)
    try:
        jobs = {j.id: j for j in restarted.list_jobs()}
        assert jobs[done.id].status.stage == "COMPLETED"
        interrupted = jobs[running.id]
        assert interrupted.status.stage == "ERROR" and "The app stopped while this job was running" in (
            interrupted.status.message or ""
        )
        assert not alive(pid)  # its orphaned processes were stopped
        assert restarted.job_logs(done.id, tail=5)  # logs are files: still there
    finally:
        restarted.close()


def test_bad_local_inputs_get_a_clear_error_and_nothing_starts(world) -> None:
    before = len(local_backend().list_jobs())
    with pytest.raises(InvalidInput, match=r"No such model on this machine: .*missing-model"):
        local_cfg(world, model=str(world.root / "missing-model"))
    with pytest.raises(InvalidInput, match="not a model folder"):
        local_cfg(world, model=str(world.root))
    notes = world.root / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(InvalidInput, match=r"a local dataset is a \.json, \.jsonl, \.csv, \.parquet file"):
        local_cfg(world, dataset=str(notes))
    sub = submit_training(ANON, local_cfg(world, dataset=str(world.bad)), raise_on_failed=False)
    dataset = {c.name: c for c in sub.plan.checks}["dataset"]
    assert dataset.status.value == "error" and "bad.jsonl, line 3: not valid JSON" in dataset.message
    assert sub.job is None and len(local_backend().list_jobs()) == before


def test_a_job_that_crashes_gets_a_diagnosis(world) -> None:
    sub = submit_training(ANON, local_cfg(world, model=str(world.broken)), raise_on_failed=False)
    assert sub.job is not None, [c.message for c in sub.plan.checks if c.status.value == "error"]
    job = wait_stage(sub.job.id, {"COMPLETED", "ERROR"})
    status = monitor.job_status(ANON, job.id)
    assert status.details.stage == "ERROR" and status.details.message.startswith("Job failed with exit code")
    assert status.diagnosis is not None and status.diagnosis.evidence  # the last error line of the log


def test_hugging_face_jobs_cannot_read_this_machine(world) -> None:
    with pytest.raises(InvalidInput, match="A Hugging Face Job cannot read this machine's model"):
        local_cfg(world, backend="hf-jobs")
    jobs = TrainingConfig.from_dict({"method": "sft", "model": "a/b", "dataset": "c/d", "backend": "hf-jobs"})
    with pytest.raises(NotSignedIn, match="Sign in with Hugging Face to run jobs on Hugging Face"):
        submit_training(ANON, jobs)


def test_a_job_past_its_timeout_is_stopped_and_says_so(world) -> None:
    cfg = local_cfg(world, max_steps=100_000, num_train_epochs=100, timeout="90m").with_changes(timeout=None)
    sub = submit_training(ANON, cfg)
    local_backend().store.update(sub.job.id, timeout_s=3)  # as if the timeout were three seconds
    job = wait_stage(sub.job.id, {"RUNNING"})
    running = local_backend()._running.get(job.id)
    if running is not None:  # the record was read before the change: shorten the live deadline too
        running.deadline, running.timeout_s = time.monotonic() + 3, 3
    ended = wait_stage(job.id, {"ERROR", "COMPLETED", "CANCELED"}, timeout=60)
    assert ended.status.stage == "ERROR" and ended.status.message == "Job timeout exceeded (3s)"
    assert monitor.job_status(ANON, job.id).diagnosis.kind == "timeout"


def test_signed_in_a_local_job_also_pushes_with_the_visitors_token_only(world, hub, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_machine_token_never_used_0000")  # the machine's own: never passed on
    cfg = local_cfg(world, push_to_hub=True, output_repo="alice/tiny-local-sft", private=True)
    sub = submit_training(HubSession(hub.alice), cfg)
    assert sub.plan.config.push_to_hub and sub.plan.config.trackio_space == "alice/trackio"
    job = wait_stage(sub.job.id, {"COMPLETED", "ERROR"})
    assert job.status.stage == "COMPLETED", "\n".join(local_backend().job_logs(job.id, tail=40))
    assert "adapter_model.safetensors" in hub.files("alice/tiny-local-sft")
    pushes = [r for r in hub.requests if r.path.startswith("/api/models/alice/tiny-local-sft")]
    assert pushes and {r.token for r in hub.requests if r.token} <= {hub.alice}
    job_dir = Path(local_backend().store.get(job.id)["job_dir"])
    stored = (job_dir / "launch.json").read_text() + local_backend().store.get(job.id)["env"]
    assert hub.alice not in stored  # the token lived in the job's environment only


def test_local_k_quants_need_llama_quantize_and_say_what_to_install(world, monkeypatch) -> None:
    from trainer_space.jobs import export
    from trainer_space.jobs.config import ExportConfig

    monkeypatch.setattr(export, "quantizer", lambda: None)
    cfg = ExportConfig.from_dict({"model": str(world.model), "quantizations": ["Q4_K_M", "F16"], "backend": "local",
                                  "push_to_hub": False})  # fmt: skip
    plan = export.plan_export(ANON, cfg)
    (refused,) = plan.failed
    assert refused.name == "quantizer" and "Q4_K_M need llama.cpp's llama-quantize" in refused.message
    assert "F16" not in refused.message.split("need")[0]
    assert "python -m trainer_space.jobs.backends.llama_cpp --build" in refused.message
    assert "TRAINER_SPACE_LLAMA_CPP_DIR" in refused.message
    ok = export.plan_export(ANON, cfg.with_changes(quantizations=["F16", "Q8_0"]))
    assert not ok.failed and "--llama_cpp_dir" in ok.launch.args
    # what this machine can make, and the default to preselect: one it can make (was Q4_K_M, then refused)
    here = export.quant_options("local")
    assert here.available == ("Q8_0", "F16", "BF16") and here.default == "Q8_0"
    assert set(here.unavailable) == set(export.quant_types()) - set(here.available)
    assert "--build" in here.unavailable["Q4_K_M"] and "TRAINER_SPACE_LLAMA_CPP_DIR" in here.unavailable["Q4_K_M"]
    default = export.plan_export(ANON, cfg.with_changes(quantizations=[]))
    assert not default.failed and default.config.quantizations == ["Q8_0"]
    jobs = export.quant_options("hf-jobs")
    assert jobs.default == "Q4_K_M" and jobs.available == tuple(export.quant_types()) and not jobs.unavailable
    monkeypatch.setattr(export, "quantizer", lambda: "/opt/llama.cpp/llama-quantize")
    assert export.quant_options("local").default == "Q4_K_M" and not export.quant_options("local").unavailable


def test_local_metrics_sample_the_jobs_process_group_in_the_hubs_format() -> None:
    import shutil
    import subprocess
    import sys
    import time

    from trainer_space.jobs.backends.local import _start_ticks, group_metrics
    from trainer_space.jobs.usage import Usage

    busy = subprocess.Popen([sys.executable, "-c", "x = bytearray(50_000_000)\nwhile True: pass"],
                            start_new_session=True)  # fmt: skip
    try:
        time.sleep(0.3)
        samples = group_metrics(busy.pid, _start_ticks(busy.pid), max_samples=2, max_seconds=5, interval_s=0.3)
        assert len(samples) == 2
        assert set(samples[0]) == {"cpu_usage_pct", "cpu_millicores", "memory_used_bytes", "memory_total_bytes",
                                   "rx_bps", "tx_bps", "gpus", "replica"}  # fmt: skip
        assert samples[-1]["cpu_usage_pct"] > 30 and samples[-1]["memory_used_bytes"] > 45_000_000
        if not shutil.which("nvidia-smi"):
            assert samples[-1]["gpus"] == {}  # no GPU here: said so, not invented
            usage = Usage()
            usage.add(samples)
            assert "no GPU" in usage.summary()
        assert group_metrics(busy.pid, 12345, max_samples=1, max_seconds=1) == []  # not our process: nothing
    finally:
        busy.kill()
        busy.wait()
    assert group_metrics(busy.pid, None, max_samples=1, max_seconds=1) == []  # ended: nothing


def test_local_cpu_usage_is_never_negative_when_processes_leave_the_group() -> None:
    """A busy child works about a second, then exits while its parent waits (as a GGUF export's converter does): the
    sample around its exit counts what the group used, never minus what the child took with it (was -300%)."""
    import subprocess
    import sys

    from trainer_space.jobs.backends.local import _start_ticks, group_metrics

    busy = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    parent = f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {busy!r}])\ntime.sleep(30)"
    group = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    try:
        time.sleep(0.2)
        samples = group_metrics(group.pid, _start_ticks(group.pid), max_samples=8, max_seconds=5, interval_s=0.5)
    finally:
        group.kill()
        group.wait()
    cpu = [s["cpu_usage_pct"] for s in samples]
    assert len(cpu) == 8 and max(cpu) > 30, cpu  # the child's work was seen
    assert min(cpu) >= 0, cpu


def test_log_lines_leave_without_terminal_colour_codes(world) -> None:
    """Colours and cursor codes in a job's log (tqdm, rich, coloured warnings) would show as boxes in the page and
    as escapes in API answers: every way out (the tail, the live view) drops them, and keeps the text."""
    engine = local_backend()
    launch = JobLaunch(kind="train", template=load_template("train.py"), labels={}, args=("--help",), timeout_s=600)
    job = engine.submit(launch)
    wait_stage(job.id, {"COMPLETED"})
    log = Path(engine.store.get(job.id)["job_dir"]) / "log.txt"
    with open(log, "a") as fh:
        fh.write(
            "\x1b[1m\x1b[31mWARNING\x1b[0m: coloured \x1b]8;;https://x\x1b\\link\x1b]8;;\x1b\\ 50%|\x1b[32m██\x1b[0m|\n"
        )
    tail = monitor.job_log_tail(ANON, job.id, 5).lines
    (view,) = list(monitor.follow_logs(ANON, job.id))
    for lines in (tail, view.lines):
        assert "WARNING: coloured link 50%|██|" in lines and not any("\x1b" in line for line in lines)


def test_signed_out_a_local_job_says_it_pushes_nothing(world, hub) -> None:
    """ "Push to the Hub" asked while signed out: the plan says the job pushes nothing and where its outputs stay
    (it was silently ignored), and `push_choice` lets the form turn the toggle off with that sentence."""
    from trainer_space.jobs.config import ExportConfig
    from trainer_space.jobs.export import plan_export
    from trainer_space.jobs.training import plan_training, push_choice

    plan = plan_training(ANON, local_cfg(world, push_to_hub=True))
    push = {c.name: c for c in plan.checks}["push to the Hub"]
    assert push.status.value == "warn" and "pushes nothing to the Hub" in push.message and "Sign in" in push.message
    assert not plan.pushes and not plan.config.push_to_hub and plan.ok
    unasked = plan_training(ANON, local_cfg(world, push_to_hub=False))
    assert "push to the Hub" not in {c.name for c in unasked.checks}
    assert (
        not plan_training(HubSession(hub.alice), local_cfg(world, push_to_hub=True, output_repo="alice/x"))
        .checks[-1]
        .name.startswith("push")
    )
    choice = push_choice(ANON, "local")
    assert (
        not choice.available and "pushes nothing to the Hub" in choice.note and str(get_settings().home) in choice.note
    )
    assert push_choice(HubSession(hub.alice), "local").available and push_choice(ANON, "hf-jobs").available
    export = plan_export(ANON, ExportConfig.from_dict({"model": str(world.model), "quantizations": ["F16"],
                                                      "backend": "local", "push_to_hub": True}))  # fmt: skip
    assert "pushes nothing to the Hub" in {c.name: c for c in export.checks}["push to the Hub"].message
