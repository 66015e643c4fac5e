"""Continue a stopped job from its last checkpoint, through the Hub stand-in (`jobs/continuing.py`)."""

from __future__ import annotations

import json
import time

import pytest

from tests.hub_standin import progress_line
from trainer_space.errors import InvalidInput
from trainer_space.hub.session import HubSession
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.continuing import CONTINUES_LABEL, continue_job, job_links, plan_continue
from trainer_space.jobs.monitor import job_args
from trainer_space.jobs.preflight import PreflightFailed
from trainer_space.jobs.report import job_report
from trainer_space.jobs.training import submit_training

OUT = "alice/Qwen2.5-0.5B-sft"
TIMEOUT = "Job timeout exceeded (1800s)"
OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 14.58 GiB"


pytestmark = pytest.mark.usefixtures("qwen_and_chat")


def ended_job(hub, *, lines: list[str], stage: str = "ERROR", message: str | None = TIMEOUT, **cfg) -> str:
    """A training job of the app's (submitted through the service, so it carries its config) that ended."""
    hub.plan_next_job(lines=lines, final_stage=stage, message=message, line_interval_s=0.02)
    config = TrainingConfig.from_dict({"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat",
                                       "flavor": "a10g-small", "peft": "lora", **cfg})  # fmt: skip
    job = submit_training(HubSession(hub.alice), config).job
    deadline = time.time() + 10
    while hub.jobs[job.id].stage()[0] != stage:
        assert time.time() < deadline, "the job did not end"
        time.sleep(0.05)
    return job.id


def lines_to(step: int, total: int, *, pushed: int | None) -> list[str]:
    t0 = time.time() - 600
    out = [progress_line(s, total, t=t0 + s) for s in range(10, step + 1, 10)]
    if pushed is not None:
        out.append(progress_line(pushed, total, checkpoint=(pushed, True), t=t0 + pushed))
    return out


def test_a_timed_out_job_continues_from_its_pushed_checkpoint_linked_both_ways_and_only_once(hub):
    old = ended_job(hub, lines=lines_to(300, 1000, pushed=300))
    hub.add_checkpoint(OUT, step=300, max_steps=1000)
    alice = HubSession(hub.alice)

    plan = plan_continue(alice, old)
    assert plan.eligible and plan.checkpoint.step == 300 and plan.checkpoint.on_hub
    assert plan.steps_left == 700 and plan.flavor == "a10g-small" and plan.plan.ok
    assert plan.time_left_s and plan.cost_usd is not None and plan.worst_usd >= plan.cost_usd
    assert "700 steps left on a10g-small" in plan.summary() and "worst case" in plan.summary()
    checks = {c.name: c for c in plan.plan.checks}
    assert "steps left" in checks["timeout"].message
    assert hub.requests_to("/api/jobs/alice", "POST") == [hub.requests_to("/api/jobs/alice", "POST")[0]]  # the old

    made = continue_job(alice, old)
    assert made.how.outcome == "created"
    new = hub.jobs[made.job.id]
    assert new.spec["labels"][CONTINUES_LABEL] == old and new.spec["flavor"] == "a10g-small"
    args = job_args(made.job)
    assert args["resume_from_hub"] == "true" and "resume_from_dir" not in args
    carried = json.loads(new.spec["environment"]["TRAINER_SPACE_CONFIG"])
    assert carried["continues"] == old and carried["resume_from_hub"] is True
    assert new.spec["timeoutSeconds"] == plan.plan.launch.timeout_s
    assert hub.alice not in json.dumps(new.spec["labels"]) + json.dumps(new.spec["environment"])

    again = continue_job(alice, old)  # a retry, a double click: the same job
    assert again.how.outcome == "existing" and again.job.id == made.job.id
    assert len(hub.requests_to("/api/jobs/alice", "POST")) == 2

    old_info = alice.inspect_job(old, namespace="alice")
    assert job_links(alice, old_info).continued_by == (made.job.id,)
    assert job_links(alice, made.job).continues == old
    listed = [r for r in hub.requests_to("/api/jobs/alice", "GET") if "label=" in r.query]
    assert any(f"continues%3D{old}" in r.query or f"continues={old}" in r.query for r in listed)
    # what a program reads in /job_status: the same links both ways
    assert job_report(alice, old, usage_seconds=0).to_json()["links"] == {"continues": None,
                                                                          "continued_by": [made.job.id]}  # fmt: skip
    assert job_report(alice, made.job.id, usage_seconds=0).to_json()["links"]["continues"] == old


def test_the_hub_is_asked_not_the_log_and_the_log_is_a_hint(hub):
    old = ended_job(hub, lines=lines_to(250, 1000, pushed=200))
    hub.add_checkpoint(OUT, step=100, max_steps=1000)  # an older checkpoint: what the repo holds is resumed from
    plan = plan_continue(HubSession(hub.alice), old)
    assert plan.checkpoint.step == 100 and plan.steps_left == 900
    assert "last reported checkpoint 200" in plan.hint


def test_no_checkpoint_says_so_and_offers_a_resubmission_with_the_fix(hub):
    old = ended_job(hub, lines=lines_to(50, 1000, pushed=None))
    plan = plan_continue(HubSession(hub.alice), old)
    assert not plan.eligible and plan.plan is None
    assert "No checkpoint to continue from" in plan.reason and "start over" in plan.reason
    assert plan.resubmit is not None and plan.resubmit.continues is None
    assert plan.resubmit.timeout_s > 1800  # the timeout diagnosis' fix: a longer timeout
    with pytest.raises(InvalidInput, match="No checkpoint"):
        continue_job(HubSession(hub.alice), old)
    assert len(hub.requests_to("/api/jobs/alice", "POST")) == 1


def test_out_of_memory_continues_on_the_cheapest_bigger_flavor_that_fits(hub):
    old = ended_job(hub, lines=[*lines_to(120, 1000, pushed=100), OOM], message="Job failed with exit code: 1",
                    flavor="t4-small")  # fmt: skip
    hub.add_checkpoint(OUT, step=100, max_steps=1000)
    alice = HubSession(hub.alice)
    plan = plan_continue(alice, old)
    assert plan.eligible and plan.flavor not in ("t4-small", None)
    flavors = {f.name: f for f in alice.hardware()[0]}
    assert flavors[plan.flavor].vram_gb > flavors["t4-small"].vram_gb
    assert "ran out of GPU memory on t4-small" in plan.flavor_note and plan.flavor in plan.flavor_note
    picked = plan_continue(alice, old, flavor="l40sx1")  # the visitor's pick wins
    assert picked.flavor == "l40sx1" and picked.cost_usd != plan.cost_usd
    with pytest.raises(InvalidInput, match="Unknown flavor"):
        plan_continue(alice, old, flavor="cpu-basic")


def test_a_flavor_with_another_gpu_count_keeps_the_rows_per_step_or_is_refused(hub):
    """The checkpoint's step means the same progress only with the same global batch: on 4 GPUs instead of 1 the
    gradient accumulation is divided by 4; where no whole number keeps it, the plan says which flavors can."""
    old = ended_job(hub, lines=lines_to(300, 1000, pushed=300), gradient_accumulation_steps=8)
    hub.add_checkpoint(OUT, step=300, max_steps=1000)
    alice = HubSession(hub.alice)
    four = plan_continue(alice, old, flavor="l4x4")
    checks = {c.name: c for c in four.plan.checks}
    assert four.plan.config.gradient_accumulation_steps == 2 and checks["batch"].status == "ok"
    assert "gradient accumulation 8 -> 2" in checks["batch"].message
    assert plan_continue(alice, old).plan.config.gradient_accumulation_steps == 8  # the same flavor: unchanged

    odd = ended_job(hub, lines=lines_to(300, 1000, pushed=300), gradient_accumulation_steps=2,
                    output_repo="alice/odd")  # fmt: skip
    hub.add_checkpoint("alice/odd", step=300, max_steps=1000)
    refused = plan_continue(alice, odd, flavor="l4x4")
    assert [c.name for c in refused.plan.failed] == ["batch"]
    assert "pick a flavor with 1 GPU(s) or a count that divides 2" in refused.plan.failed[0].message
    with pytest.raises(PreflightFailed):
        continue_job(alice, odd, flavor="l4x4")
    assert all(j.spec["flavor"] != "l4x4" for j in hub.jobs.values())  # nothing created


@pytest.mark.parametrize(
    ("stage", "message", "expected"),
    [("COMPLETED", None, "completed"), ("CANCELED", None, None), ("ERROR", "Job failed with exit code: 1", None)],
)
def test_which_ended_jobs_can_continue(hub, stage, message, expected):
    old = ended_job(hub, lines=lines_to(200, 1000, pushed=200), stage=stage, message=message)
    hub.add_checkpoint(OUT, step=200, max_steps=1000)
    plan = plan_continue(HubSession(hub.alice), old)
    assert plan.eligible is (expected is None)
    if expected:
        assert expected in plan.reason


def test_a_running_job_is_stopped_first_and_other_jobs_are_refused(hub):
    hub.plan_next_job(lines=["step"] * 50, line_interval_s=1.0)
    cfg = TrainingConfig.from_dict({"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat",
                                    "flavor": "a10g-small", "peft": "lora"})  # fmt: skip
    job = submit_training(HubSession(hub.alice), cfg).job
    plan = plan_continue(HubSession(hub.alice), job.id)
    assert not plan.eligible and "Stop after the next checkpoint" in plan.reason
    from trainer_space.hub.session import JobRequest

    other = HubSession(hub.alice).submit_job(JobRequest(image="python:3.12", command=["echo"], flavor="cpu-basic",
                                                        labels={}))  # fmt: skip
    assert "training jobs" in plan_continue(HubSession(hub.alice), other.id).reason
    with pytest.raises(InvalidInput, match="not a job id"):
        plan_continue(HubSession(hub.alice), "../../etc")


def test_the_spending_guard_refuses_a_continuation_over_the_cap(hub):
    old = ended_job(hub, lines=lines_to(300, 1000, pushed=300))
    hub.add_checkpoint(OUT, step=300, max_steps=1000)
    with pytest.raises(PreflightFailed, match="cost"):
        continue_job(HubSession(hub.alice), old, max_cost_usd=0.01)
    assert len(hub.requests_to("/api/jobs/alice", "POST")) == 1


def test_a_lost_answer_is_settled_and_the_retry_gets_the_same_job(hub):
    old = ended_job(hub, lines=lines_to(300, 1000, pushed=300))
    hub.add_checkpoint(OUT, step=300, max_steps=1000)
    alice = HubSession(hub.alice)
    hub.fault("/api/jobs/alice", mode="drop_after", method="POST")
    first = continue_job(alice, old)
    assert first.how.outcome == "recovered"
    again = continue_job(alice, old)
    assert again.job.id == first.job.id and again.how.outcome == "existing"
    assert len([j for j in hub.jobs.values() if (j.spec.get("labels") or {}).get(CONTINUES_LABEL) == old]) == 1


def test_a_second_continuation_while_one_runs_is_refused(hub):
    old = ended_job(hub, lines=lines_to(300, 1000, pushed=300))
    hub.add_checkpoint(OUT, step=300, max_steps=1000)
    alice = HubSession(hub.alice)
    hub.plan_next_job(lines=["training"] * 100, line_interval_s=1.0)
    first = continue_job(alice, old)
    with pytest.raises(PreflightFailed, match=f"{first.job.id} already continues"):
        continue_job(alice, old, flavor="l40sx1")


def test_continue_job_through_a_real_mcp_client(hub, app_url):
    from tests.test_mcp import run_mcp

    old = ended_job(hub, lines=lines_to(300, 1000, pushed=300))
    hub.add_checkpoint(OUT, step=300, max_steps=1000)
    empty = ended_job(hub, lines=lines_to(50, 1000, pushed=None), output_repo="alice/elsewhere")

    async def steps(mcp):
        planned = await mcp.call("continue_job", job_id=old, dry_run=True)
        made = await mcp.call("continue_job", job_id=old, dry_run=False)
        again = await mcp.call("continue_job", job_id=old, dry_run=False)
        nothing = await mcp.call("continue_job", job_id=empty, dry_run=True)
        refused = await mcp.call("continue_job", job_id=empty, dry_run=False)
        bad = await mcp.call("continue_job", job_id=old, flavor="gpu-9000")
        return planned, made, again, nothing, refused, bad

    planned, made, again, nothing, refused, bad = run_mcp(app_url, hub.alice, steps)
    assert planned == (False, planned[1]) and planned[1]["eligible"] and planned[1]["steps_left"] == 700
    assert planned[1]["submitted"] is False and planned[1]["worst_case_usd"] >= planned[1]["cost_usd"]
    error, answer = made
    assert not error and answer["submitted"] and answer["submission"]["outcome"] == "created"
    assert hub.jobs[answer["new_job_id"]].spec["labels"][CONTINUES_LABEL] == old
    assert again[1]["new_job_id"] == answer["new_job_id"] and again[1]["submission"]["outcome"] == "existing"
    assert not nothing[0] and nothing[1]["eligible"] is False and nothing[1]["resubmit"]["method"] == "sft"
    assert refused[0] and "No checkpoint to continue from" in refused[1] and "Traceback" not in refused[1]
    assert bad[0] and "gpu-9000" in bad[1] and "is not a flavor" in bad[1]


def test_my_jobs_panel_plans_offers_the_resubmission_and_stops(hub):
    """The panel's handlers as My jobs calls them (the browser journey clicks through the same)."""
    from types import SimpleNamespace

    import gradio as gr

    from trainer_space.ui.continue_panel import build_continue_panel

    with gr.Blocks():
        panel = build_continue_panel()
    token = SimpleNamespace(token=hub.alice)
    empty = ended_job(hub, lines=lines_to(50, 1000, pushed=None))
    shown = panel.on_show(empty, token)
    assert shown[panel.open_continue].visible is True and shown[panel.stop].visible is False
    planned = panel.on_plan(empty, None, token)
    assert "No checkpoint to continue from" in planned[panel.plan] and planned[panel.confirm].visible is False
    assert json.loads(planned[panel.resubmit].value)["method"] == "sft" and planned[panel.resubmit].visible
    hub.add_checkpoint(OUT, step=300, max_steps=1000)
    planned = panel.on_plan(empty, "l4x1", token)
    assert planned[panel.flavor].value == "l4x1" and "a10g-small" in dict(map(reversed, planned[panel.flavor].choices))
    assert planned[panel.confirm].value == "Continue from step 300" and planned[panel.confirm].visible
    assert "700 steps left on l4x1" in planned[panel.plan]
    made = panel.on_confirm(empty, "l4x1", token)
    assert made[panel.new_job] in made[panel.links] and made[panel.watch].visible
    shown = panel.on_show(made[panel.new_job], token)
    assert empty in shown[panel.links] and shown[panel.stop].visible is True  # the new job runs: it can be stopped


def test_another_visitor_can_neither_continue_stop_nor_read_a_job_through_the_api(hub, app_url):
    """Bob knows the id of alice's stopped job (and of her running one): each new endpoint answers him as for a job
    that does not exist, creates nothing, and names nothing of hers."""
    from gradio_client import Client

    old = ended_job(hub, lines=lines_to(300, 1000, pushed=300))
    hub.add_checkpoint(OUT, step=300, max_steps=1000)
    hub.add_model(OUT, files={"base_vs_tuned.json": json.dumps({"items": [{"prompt": "alice's secret prompt"}]})})
    hub.plan_next_job(lines=["training"] * 200, line_interval_s=0.5)
    running = submit_training(HubSession(hub.alice), TrainingConfig.from_dict(
        {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat", "flavor": "a10g-small",
         "peft": "lora", "output_repo": "alice/running"})).job.id  # fmt: skip
    bob = Client(app_url, oauth_token=hub.bob, verbose=False)
    jobs_before = set(hub.jobs)
    for args, api_name in [((old, "", "", None, False), "/continue_job"), ((old, "", "", None, True), "/continue_job"),
                           ((running,), "/stop_after_checkpoint"), ((old,), "/base_vs_tuned")]:  # fmt: skip
        with pytest.raises(Exception) as err:
            bob.predict(*args, api_name=api_name)
        said = str(err.value)
        assert "not found" in said.lower() or "no job" in said.lower(), (api_name, said)
        assert "secret" not in said and OUT not in said and "alice" not in said, (api_name, said)
    assert set(hub.jobs) == jobs_before  # nothing created
    assert hub.jobs[running].stage()[0] == "RUNNING"
    assert not [r for r in hub.requests if OUT in r.path and r.headers.get("authorization", "").endswith(hub.bob)]
