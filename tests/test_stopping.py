"""Stop after the next checkpoint, through the Hub stand-in (`jobs/stopping.py`)."""

from __future__ import annotations

import time

import pytest

from tests.hub_standin import progress_line
from trainer_space.errors import InvalidInput
from trainer_space.hub.session import HubSession
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.report import job_report
from trainer_space.jobs.stopping import request_stop, stop_state
from trainer_space.jobs.training import submit_training

INTERVAL = 0.1


pytestmark = pytest.mark.usefixtures("qwen_and_chat")


def running_job(hub, lines: list[str], **plan) -> str:
    hub.plan_next_job(lines=lines, line_interval_s=INTERVAL, schedule_s=0.0, **plan)
    cfg = TrainingConfig.from_dict({"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat",
                                    "flavor": "a10g-small", "peft": "lora"})  # fmt: skip
    return submit_training(HubSession(hub.alice), cfg).job.id


def test_it_cancels_right_after_the_next_pushed_checkpoint_not_a_saved_one_nor_an_earlier_one(hub):
    lines = [progress_line(100, 1000, checkpoint=(100, True))]  # pushed before the request: does not count
    lines += [progress_line(s, 1000) for s in range(101, 161)]  # six seconds for the request to be made
    lines += [progress_line(200, 1000, checkpoint=(200, False))]  # saved, upload still running
    lines += [progress_line(s, 1000) for s in range(201, 205)]
    at = len(lines)
    lines += [progress_line(205, 1000, checkpoint=(200, True))]  # the upload of checkpoint 200 finished
    lines += [progress_line(s, 1000) for s in range(206, 1000)]
    job_id = running_job(hub, lines)
    deadline = time.time() + 10
    while len(hub.jobs[job_id].log_events()) < 2:  # the first (pushed) checkpoint line is out
        assert time.time() < deadline
        time.sleep(0.02)
    alice = HubSession(hub.alice)
    request = request_stop(alice, job_id)
    assert request.waiting and request.after_step == 100 and request.waits_for == "pushed"
    assert "Stopping after the next checkpoint" in stop_state(job_id).sentence()
    assert request_stop(alice, job_id) is request  # idempotent: one watcher per job
    said = job_report(alice, job_id, usage_seconds=0).to_json()["stop_request"]  # what /job_status says
    assert said["state"] == "waiting" and said["after_step"] == 100 and "Stopping after" in said["sentence"]
    assert request.wait(timeout=20)
    assert request.state == "canceled" and request.checkpoint_step == 200, request.detail
    job = hub.jobs[job_id]
    pushed_at = job.started + INTERVAL * (at + 1) - INTERVAL / 2
    assert job.canceled_at is not None and 0 <= job.canceled_at - pushed_at < 3.0  # right after, not at the end
    assert job.stage()[0] == "CANCELED"
    assert "checkpoint 200 was pushed" in stop_state(job_id).sentence()
    assert job_report(alice, job_id, usage_seconds=0).to_json()["stop_request"]["state"] == "canceled"
    assert hub.alice not in repr(request) + str(request.to_json())


def test_a_job_that_ends_by_itself_first_ends_the_watcher_without_canceling(hub):
    job_id = running_job(hub, [progress_line(s, 100) for s in range(10, 60, 10)], final_stage="COMPLETED")
    request = request_stop(HubSession(hub.alice), job_id)
    assert request.wait(timeout=20)
    assert request.state == "ended" and "ended by itself" in request.detail
    assert hub.jobs[job_id].canceled_at is None


def test_ended_and_foreign_jobs_are_refused(hub):
    job_id = running_job(hub, ["done"])
    deadline = time.time() + 10
    while hub.jobs[job_id].stage()[0] != "COMPLETED":
        assert time.time() < deadline
        time.sleep(0.05)
    with pytest.raises(InvalidInput, match="already ended"):
        request_stop(HubSession(hub.alice), job_id)
    from trainer_space.errors import JobNotFound

    with pytest.raises(JobNotFound):
        request_stop(HubSession(hub.bob), job_id)


def test_many_requests_at_once_start_one_watcher(hub):
    import threading

    job_id = running_job(hub, [progress_line(s, 1000) for s in range(10, 1000, 10)])
    alice = HubSession(hub.alice)
    answers: list = []
    callers = [threading.Thread(target=lambda: answers.append(request_stop(alice, job_id))) for _ in range(6)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=30)
    assert len(answers) == 6 and all(a is answers[0] for a in answers)
    watchers = [t for t in threading.enumerate() if t.name == f"stop-after-checkpoint-{job_id[:8]}"]
    assert len(watchers) == 1
    HubSession(hub.alice).cancel_job(job_id, namespace="alice")  # the job ends: its watcher ends with it
    assert answers[0].wait(timeout=20) and answers[0].state == "ended"
