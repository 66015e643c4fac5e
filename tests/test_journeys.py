"""Journeys: a person's whole path through the app in Chromium, at 1280 and 420 px.

Every journey fails on a Python traceback in the app's log, an uncaught page error, a control left disabled after an
answer, any `__type__` text on the page, or horizontal scroll (tests/journey.py). The app runs as a person starts it
(`python app.py`, in a subprocess with its own log); the Hub is the stand-in of the suite, for the signed-in ones.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import add_qwen
from tests.journey import Journey
from tests.test_local import chat_rows
from tests.test_local_app import LocalApp, _job_ids, kill_jobs_under

pytestmark = [pytest.mark.slow, pytest.mark.browser]
WIDTHS = [1280, 420]
CHAT = [
    {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
    for i in range(30)
]


class HubApp(LocalApp):
    """The app started by a person on their machine, talking to the suite's Hub stand-in, signed in as alice."""

    def __init__(self, home: Path, hub) -> None:
        super().__init__(home)
        self.hub = hub

    def env(self) -> dict[str, str]:
        endpoint = f"http://127.0.0.1:{self.hub.port}"
        return super().env() | {
            "HF_ENDPOINT": endpoint,
            "TRAINER_SPACE_VIEWER_URL": f"{endpoint}/datasets-server",
            "TRAINER_SPACE_LOCAL_TOKEN": self.hub.alice,
            "TRAINER_SPACE_RETRY_BUDGET": "1",
        }

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.home.glob("app-*.log")))


@pytest.fixture(scope="module")
def hub_app(hub_server, tmp_path_factory):
    hub_server.reset()
    home = tmp_path_factory.mktemp("journeys") / "home"
    home.mkdir()
    app = HubApp(home, hub_server)
    try:
        yield app.start()
    finally:
        app.stop()
        kill_jobs_under(home)


@pytest.fixture
def world(hub, tokenizer_files) -> SimpleNamespace:
    """What the signed-in journeys find on the Hub: a chat dataset, a Qwen2.5-0.5B-shaped model."""
    hub.add_dataset("alice/chat", {"train": CHAT}, num_rows={"train": 2000})
    add_qwen(hub, tokenizer_files, repo_id="Qwen/Qwen2.5-0.5B")
    return SimpleNamespace(dataset="alice/chat", model="Qwen/Qwen2.5-0.5B")


@contextlib.contextmanager
def _journey(browser, app: LocalApp, name: str, width: int) -> Iterator[Journey]:
    """A fresh browser (own cookies) on the app's page; a screenshot of where it stood when a step fails."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    journey = Journey(page, name, width, app.log)
    try:
        page.goto(app.url)
        page.get_by_role("tab", name="Dataset", exact=True).first.wait_for()
        yield journey
    except BaseException:
        journey.shot("FAILED")
        raise
    finally:
        context.close()


def _sign_in(j: Journey) -> None:
    j.click("Sign in with Hugging Face", exact=False)
    j.wait_text("Signed in as")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_typo_then_its_fix_on_every_tab(hub_app, hub, world, browser, width) -> None:
    with _journey(browser, hub_app, "typos", width) as j:
        _sign_in(j)
        # Dataset: a misspelt id, then the right one; both buttons usable after each answer
        j.tab("Dataset")
        j.step("Inspect", fill={"Dataset": "alice/chta"}, refused="alice/chta")
        j.step("Inspect", fill={"Dataset": world.dataset}, expect="conversational language modelling")
        j.shot("dataset")
        # Estimate: a misspelt model, then the right one; the button keeps its label
        j.tab("Estimate")
        j.step("Estimate", fill={"Model": "Qwen/Qwen2.5-0.5b-typo"}, refused="Qwen2.5-0.5b-typo")
        j.step("Estimate", fill={"Model": world.model}, expect="Recommended")
        assert j.visible(j.page.get_by_role("button", name="Estimate", exact=True)).is_visible()
        j.shot("estimate")
        # Train: a misspelt dataset fails its pre-flight check beside the form, then passes
        j.tab("Train")
        j.visible(j.page.get_by_label("Hugging Face Jobs")).check()
        j.step("Preview", fill={"Dataset": "alice/chta"}, expect="Fix the errors below before submitting")
        j.step("Preview", fill={"Dataset": world.dataset}, expect="Ready to submit")
        # the estimate was made for this machine: on Jobs, the flavor is a Jobs flavor (not "local" at $0.00)
        assert "Fits on local" not in j.page.inner_text("body")
        j.shot("train")
        # My jobs: a job id with a typo, then the right one
        from huggingface_hub import HfApi

        job = HfApi(endpoint=hub.url, token=hub.alice).run_job(image="python:3.12", command=["true"], namespace="alice")
        j.tab("My jobs")
        j.step("Open", fill={"Job id": job.id[:-1] + "x"}, refused="not found")
        j.fill("Job id", job.id)
        j.click("Open")
        j.visible(j.page.locator("#job-details").get_by_text(job.id)).wait_for()
        j.settled()
        # GGUF export: a misspelt model, then the right one
        j.tab("GGUF export")
        j.visible(j.page.get_by_label("Hugging Face Jobs")).check()
        j.step("Preview", fill={"Model or LoRA adapter repo": "Qwen/Qwen2.5-0.5b-typo"}, refused="Qwen2.5-0.5b-typo")
        j.step("Preview", fill={"Model or LoRA adapter repo": world.model}, expect="Preview (nothing submitted yet)")
        j.shot("export")
        j.finish()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_signed_in_visitor_trains_on_jobs_watches_and_exports(
    hub_app, hub, world, tokenizer_files, browser, width
) -> None:
    with _journey(browser, hub_app, "jobs", width) as j:
        _sign_in(j)
        j.step("Inspect", fill={"Dataset": world.dataset}, expect="conversational language modelling")
        # Estimate on Hugging Face Jobs: the recommended flavor is carried to Train
        j.tab("Estimate")
        j.visible(j.page.get_by_label("Hugging Face Jobs")).check()
        j.step("Estimate", fill={"Model": world.model}, expect="Recommended")
        j.shot("estimate")
        # Train: preview, submit, confirm the worst case, then watch it
        j.tab("Train")
        assert j.visible(j.page.get_by_label("Dataset", exact=True)).input_value() == world.dataset
        assert j.visible(j.page.get_by_label("Hugging Face Jobs")).is_checked()
        j.fill("Output repo (default: <you>/<model>-<method>)", f"alice/journey-{width}")
        j.visible(j.page.get_by_label("Quick test", exact=False)).check()
        hub.plan_next_job(line_interval_s=0.3)
        j.step("Preview", expect="Ready to submit")
        j.step("Submit training job", expect="It can cost at most")
        j.shot("confirm")
        j.step("Yes, start it", expect="Submitted:")
        (job,) = hub.jobs.values()
        j.click("Watch it in My jobs →")
        details = j.page.locator("#job-details")
        j.visible(details.get_by_text(job.id)).wait_for()
        j.visible(details.get_by_text("COMPLETED", exact=True)).wait_for(timeout=60_000)
        add_qwen(hub, tokenizer_files, repo_id=f"alice/journey-{width}")  # what the job pushed
        j.settled()
        j.shot("job-completed")
        # its model goes to GGUF export in one click, then the export is watched the same way
        j.click("Export to GGUF →")
        j.wait_value("Model or LoRA adapter repo", f"alice/journey-{width}")
        j.settled()
        j.step("Preview", expect="Preview (nothing submitted yet)")
        j.click("Export to GGUF")
        j.wait_text("It can cost at most")
        j.step("Yes, start it", expect="Submitted:")
        j.click("Watch it in My jobs →")
        export = next(i for i in hub.jobs if i != job.id)
        j.visible(details.get_by_text(export)).wait_for()
        j.shot("export-watched")
        j.finish()


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> SimpleNamespace:
    """A newcomer's machine: a tiny model folder and a chat JSONL file of their own."""
    from tests.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("newcomer")
    data = root / "chat.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in chat_rows(40)) + "\n")
    return SimpleNamespace(root=root, model=build_tiny_model(root / "tiny"), data=data)


@pytest.fixture
def local_app(tmp_path):
    app = LocalApp(tmp_path / "home")
    app.home.mkdir()
    app.log = lambda: "".join(p.read_text(errors="replace") for p in sorted(app.home.glob("app-*.log")))
    try:
        yield app.start()
    finally:
        app.stop()
        kill_jobs_under(app.home)


def _new_jobs(app: LocalApp, known: list[str], timeout: float = 30) -> list[str]:
    """The jobs the app has created besides `known` (waiting for the first, as a submission's answer may come
    before the page's text changes)."""
    deadline = time.monotonic() + timeout
    while not (new := [j for j in _job_ids(app) if j not in known]):
        assert time.monotonic() < deadline, "no new job was created"
        time.sleep(0.2)
    return new


@pytest.mark.parametrize("width", WIDTHS)
def test_a_newcomer_trains_on_this_machine_and_exports_the_model(local_app, machine, browser, width) -> None:
    with _journey(browser, local_app, "newcomer", width) as j:
        # Dataset: a file of theirs, then its first example with the model's chat template
        j.step("Inspect", fill={"Dataset": str(machine.data)}, expect="conversational language modelling")
        assert "dataset viewer" not in j.page.inner_text("body")
        j.step(
            "Show example & count tokens",
            fill={"Model (tokenizer, chat template)": str(machine.model)},
            expect="over max_length",
        )
        j.shot("dataset")
        # Estimate: this machine
        j.tab("Estimate")
        j.step("Estimate", fill={"Model": str(machine.model)}, expect="Fits on this machine")
        # Train: a quick test here; signed out, nothing can be pushed (and the form says so)
        j.tab("Train")
        j.wait_value("Dataset", str(machine.data))
        push = j.visible(j.page.get_by_label("Push to the Hub"))
        assert not push.is_checked() and push.is_disabled()
        j.fill("Model (Hub id, or a model folder on this machine)", str(machine.model))
        j.visible(j.page.get_by_label("Quick test", exact=False)).check()
        j.step("Preview", expect="Ready to submit")
        j.step("Submit training job", expect="Submitted to this machine")
        j.shot("submitted")
        (train,) = _new_jobs(local_app, [])
        j.click("Watch it in My jobs →")
        details = j.page.locator("#job-details")
        j.visible(details.get_by_text(train)).wait_for()
        j.visible(details.get_by_text("COMPLETED", exact=True)).wait_for(timeout=300_000)
        j.settled()
        # the log view is a box of its own, scrolled to the job's last line
        logs = j.visible(j.page.locator("#job-logs"))
        assert logs.bounding_box()["height"] < 700
        j.visible(logs.get_by_text("model saved to")).wait_for()
        j.shot("trained")
        # the model it made, exported to GGUF here in one click (a type this machine can make is preselected)
        output = str(local_app.home / "jobs" / train / "output")
        j.click("Export to GGUF →")
        j.wait_value("Model or LoRA adapter repo", output)
        j.fill("Expert: llama.cpp pre-tokenizer", "qwen2")  # the tiny tokenizer is one llama.cpp does not know
        j.step("Export to GGUF", expect="Submitted to this machine")
        (export,) = _new_jobs(local_app, [train])
        j.click("Watch it in My jobs →")
        j.visible(details.get_by_text(export)).wait_for()
        j.visible(details.get_by_text("COMPLETED", exact=True)).wait_for(timeout=400_000)
        j.settled()
        j.shot("exported")
        (gguf,) = (local_app.home / "jobs" / export / "output").glob("*.gguf")
        from gguf import GGUFReader

        assert GGUFReader(gguf).tensors  # the file reads back
        j.finish()


def _job_processes(home: Path) -> list[int]:
    """Processes whose command line names a job folder under `home` (the jobs' own train.py)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(home / "jobs").encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_the_app_restarted_mid_job_says_what_happened(local_app, machine, browser, width) -> None:
    with _journey(browser, local_app, "restart", width) as j:
        j.tab("Train")
        j.fill("Model (Hub id, or a model folder on this machine)", str(machine.model))
        j.fill("Dataset", str(machine.data))
        j.fill("Max steps (0: use epochs)", "100000")
        j.fill("max_length (tokens)", "64")
        j.click("Submit training job")
        j.wait_text("Submitted to this machine")
        (canceled,) = _new_jobs(local_app, [])
        j.click("Watch it in My jobs →")
        details = j.page.locator("#job-details")
        j.visible(details.get_by_text("RUNNING", exact=True)).wait_for(timeout=120_000)
        # a first job canceled here: the question says what a cancel means on this machine
        j.click("Cancel job")
        question = j.visible(j.page.locator("#confirm-cancel")).inner_text()
        assert "nothing is billed" in question and "Billing" not in question
        j.click("Yes, cancel")
        j.visible(details.get_by_text("CANCELED", exact=True)).wait_for()
        j.settled()
        # a second one runs when the app dies
        j.tab("Train")
        j.fill("Max steps (0: use epochs)", "100001")
        j.click("Submit training job")
        j.wait_text("Submitted to this machine")
        (job,) = _new_jobs(local_app, [canceled])  # the page still says the first was submitted: wait for it
        j.click("Watch it in My jobs →")
        j.visible(details.get_by_text(job)).wait_for()
        j.visible(details.get_by_text("RUNNING", exact=True)).wait_for(timeout=120_000)
        j.shot("running")
        # the app dies; its job runs on, orphaned, until the app starts again and stops it (no page needed)
        j.page.goto("about:blank")
        local_app.kill()
        assert _job_processes(local_app.home), "the job should outlive the app"
        local_app.start()
        deadline = time.monotonic() + 20
        while _job_processes(local_app.home) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _job_processes(local_app.home), "the orphaned job still runs 20 s after the app started"
        # what a visitor reads: the job ended with the restart, nothing was pushed, and how to go on
        j.page.goto(local_app.url)
        j.tab("My jobs")
        table = j.page.locator("#jobs-table")
        j.visible(table.get_by_text(canceled)).wait_for()  # the table is drawn (a later redraw moves Open down)
        j.fill("Job id", job)
        j.click("Open")
        j.visible(details.get_by_text(job)).wait_for()
        j.visible(details.get_by_text("ERROR", exact=True)).wait_for()
        j.settled()
        text = j.page.inner_text("body")
        assert "The app stopped while this job was running" in text
        assert "resume_from_hub" not in text  # nothing was pushed: no Hub checkpoint to resume from
        for shown in (canceled, job, "CANCELED", "ERROR"):
            j.visible(table.get_by_text(shown)).wait_for()
        j.shot("after-restart")
        j.finish()


def _ended_job_with_a_checkpoint(hub, world, repo: str, *, stage: str = "ERROR", lines: list[str] | None = None,
                                 message: str | None = "Job timeout exceeded (1800s)", **plan) -> str:  # fmt: skip
    """A training job of the app's (it carries its config) that timed out after pushing checkpoint 300 of 1000."""
    from tests.hub_standin import progress_line
    from trainer_space.hub.session import HubSession
    from trainer_space.jobs.config import TrainingConfig
    from trainer_space.jobs.training import submit_training

    t0 = time.time() - 400
    lines = lines or [*(progress_line(s, 1000, t=t0 + s) for s in range(10, 310, 10)),
                      progress_line(300, 1000, checkpoint=(300, True), t=t0 + 300)]  # fmt: skip
    hub.plan_next_job(lines=lines, final_stage=stage, message=message, **({"line_interval_s": 0.01} | plan))
    cfg = TrainingConfig.from_dict({"method": "sft", "model": world.model, "dataset": world.dataset, "peft": "lora",
                                    "flavor": "a10g-small", "output_repo": repo})  # fmt: skip
    return submit_training(HubSession(hub.alice), cfg).job.id


@pytest.mark.parametrize("width", WIDTHS)
def test_a_timed_out_job_continues_and_a_running_one_stops_after_its_checkpoint(
    hub_app, hub, world, browser, width
) -> None:
    from tests.hub_standin import progress_line

    old = _ended_job_with_a_checkpoint(hub, world, f"alice/continue-{width}")
    hub.add_checkpoint(f"alice/continue-{width}", step=300, max_steps=1000)
    while hub.jobs[old].stage()[0] != "ERROR":
        time.sleep(0.05)
    with _journey(browser, hub_app, "continue", width) as j:
        _sign_in(j)
        j.tab("My jobs")
        j.fill("Job id", old)
        j.click("Open")
        details = j.page.locator("#job-details")
        j.visible(details.get_by_text(old)).wait_for()
        j.step("Continue…", expect="It can continue from its checkpoint at step 300 of 1000")
        j.wait_text("700 steps left on a10g-small", timeout=30)
        j.shot("continue-plan")
        hub.plan_next_job(lines=["training"] * 400, line_interval_s=0.5)
        j.step("Continue from step 300", expect="it continues")
        new = next(i for i, job in hub.jobs.items() if (job.spec.get("labels") or {}).get("continues") == old)
        j.visible(j.page.locator("#job-links").get_by_text(new)).wait_for()  # the old job names its continuation
        j.shot("continued")
        j.click("Watch it →")
        j.visible(details.get_by_text(new)).wait_for()
        j.visible(j.page.locator("#job-links").get_by_text(old)).wait_for()  # and the new one names the old
        j.settled()
        j.shot("watching-the-continuation")
        # a running job: stop after its next checkpoint; the app cancels it right after that one is pushed
        t0 = time.time()
        steps = [progress_line(s, 1000, t=t0) for s in range(5, 200, 5)]  # 16 s to open it and ask
        lines = [*steps, progress_line(200, 1000, checkpoint=(200, False)), *steps[:4],
                 progress_line(240, 1000, checkpoint=(200, True)), *(["training"] * 300)]  # fmt: skip
        running = _ended_job_with_a_checkpoint(hub, world, f"alice/stop-{width}", stage="COMPLETED", lines=lines,
                                               message=None, line_interval_s=0.4)  # fmt: skip
        j.fill("Job id", running)
        j.click("Open")
        j.visible(details.get_by_text(running)).wait_for()
        j.step("Stop after next checkpoint", expect="Stopping after the next checkpoint")
        j.shot("stopping")
        j.visible(j.page.locator("#job-links").get_by_text("Canceled right after checkpoint 200")).wait_for(
            timeout=60_000
        )
        assert hub.jobs[running].stage()[0] == "CANCELED"
        j.visible(j.page.get_by_role("button", name="Continue…", exact=True)).wait_for()
        j.settled()
        j.shot("stopped")
        j.finish()
