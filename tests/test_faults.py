"""Faults of the Hub, injected in the stand-in: 0 duplicate jobs, one honest message, bounded time, others served.

Faults: 429 with Retry-After, 5xx, slow answers, hangs, a connection dropped before and after the Hub created the
job (or a 502 / a late 504 after it did), a cut log stream. Each submission carries a key (a label); after a
failure the app looks the key up and says created (here it is), not created, or unknown (and how to check).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
from gradio_client import Client

from tests.conftest import add_qwen
from tests.hub_standin import free_port
from tests.test_train_submit import CHAT
from trainer_space import errors
from trainer_space.hub import http
from trainer_space.hub.session import WHOAMI_CACHE, HubSession, JobRequest
from trainer_space.jobs import monitor, submission
from trainer_space.jobs.backends.hf_jobs import job_request
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.training import submit_training
from trainer_space.settings import get_settings

ANONYMOUS_INSPECTIONS = 4  # the share of the inspection pool signed-out visitors may hold at once

CFG = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat", "flavor": "a10g-small"}


@pytest.fixture(autouse=True)
def _world(hub, tokenizer_files, monkeypatch):
    WHOAMI_CACHE.clear()
    add_qwen(hub, tokenizer_files)
    hub.add_dataset("alice/chat", {"train": CHAT}, num_rows={"train": 5000})
    monkeypatch.setattr(submission, "LOOKUP_PAUSES_S", (0.0, 0.2, 0.2))  # the real pauses, shortened
    return hub


def _timeouts(monkeypatch, **changes) -> None:
    """Shorter timeouts / budget for the HTTP transport (the real defaults are seconds, not tenths), and for the
    calls that pass their own timeout (repo info, downloads, the dataset viewer)."""
    from trainer_space.hub import session, viewer

    fast = dataclasses.replace(get_settings(), **changes)
    for module in (http, session, viewer):
        monkeypatch.setattr(module, "get_settings", lambda: fast)


def _submit(hub, token=None, **changes):
    return submit_training(HubSession(token or hub.alice), TrainingConfig.from_dict({**CFG, **changes}), dry_run=False)


def _posts(hub, ns="alice"):
    return hub.requests_to(f"/api/jobs/{ns}", "POST")


# ------------------------------------------------------------------------------------------ exactly once
def test_the_same_config_submitted_twice_is_one_job(hub):
    first = _submit(hub)
    second = _submit(hub)
    assert first.how.outcome == "created" and second.how.outcome == "existing"
    assert second.job.id == first.job.id and len(hub.jobs) == 1 and len(_posts(hub)) == 1
    assert "already submitted this job with the same config" in second.how.note
    body = second.to_json()
    assert body["job_id"] == first.job.id and body["submission"]["outcome"] == "existing"
    assert body["submission"]["label"] == f"trainer-space-key={first.plan.key}"
    # another visitor's identical config is another job
    bob_token = hub.add_user("bobby", token="hf_bobby_standin_token_0003")
    assert _submit(hub, bob_token, output_repo="bobby/out", trackio_space="bobby/trackio").how.outcome == "created"


def test_a_canceled_or_failed_job_is_not_returned_for_the_same_config_but_a_completed_one_is(hub):
    first = _submit(hub)
    monitor.cancel(HubSession(hub.alice), first.job.id)  # the visitor changed their mind, then changed it back
    again = _submit(hub)
    assert again.how.outcome == "created" and again.job.id != first.job.id
    hub.plan_next_job(final_stage="ERROR", message="boom", schedule_s=0, line_interval_s=0.01)
    failed = _submit(hub, learning_rate=1e-4)
    wait_for(lambda: monitor.job_status(HubSession(hub.alice), failed.job.id).details.stage == "ERROR")
    assert _submit(hub, learning_rate=1e-4).how.outcome == "created"  # a failed job is run again on purpose
    hub.plan_next_job(schedule_s=0, line_interval_s=0.01)
    done = _submit(hub, learning_rate=2e-4)
    wait_for(lambda: monitor.job_status(HubSession(hub.alice), done.job.id).details.stage == "COMPLETED")
    assert _submit(hub, learning_rate=2e-4).job.id == done.job.id  # a retry just after it completed: the same job


def wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_changed_config_is_a_new_job_and_a_cap_change_is_not(hub):
    first = _submit(hub)
    assert _submit(hub, max_cost_usd=3).job.id == first.job.id  # the cap steers the submission, not the job
    assert _submit(hub, learning_rate=1e-4).how.outcome == "created"
    assert len(hub.jobs) == 2


def test_an_explicit_key_returns_its_job_whatever_the_config(hub):
    first = _submit(hub, idempotency_key="my-run-0001")
    again = _submit(hub, idempotency_key="my-run-0001", learning_rate=1e-4)
    assert again.how.outcome == "existing" and again.job.id == first.job.id and len(hub.jobs) == 1
    assert _submit(hub, idempotency_key="my-run-0002").how.outcome == "created"


def test_the_key_is_compared_by_the_app_not_only_by_the_hubs_label_filter(hub):
    """A Hub that ignores `?label=` answers every job of the namespace: another config is still another job."""
    hub.state.ignore_label_filters = True
    first = _submit(hub)
    other = _submit(hub, output_repo="alice/another-out")
    assert other.how.outcome == "created" and other.job.id != first.job.id and len(hub.jobs) == 2
    again = _submit(hub, output_repo="alice/another-out")
    assert again.how.outcome == "existing" and again.job.id == other.job.id and len(hub.jobs) == 2
    explicit = _submit(hub, idempotency_key="my-run-0003", learning_rate=1e-4)
    assert explicit.how.outcome == "created" and len(hub.jobs) == 3


def test_concurrent_double_submissions_make_one_job(hub):
    results, errors_seen = [], []

    def go():
        try:
            results.append(_submit(hub))
        except Exception as err:  # pragma: no cover - reported below
            errors_seen.append(err)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors_seen and len(results) == 4
    assert len(hub.jobs) == 1 and len({r.job.id for r in results}) == 1
    assert sorted(r.how.outcome for r in results) == ["created", "existing", "existing", "existing"]


# ------------------------------------------------------------------------------------------ lost answers
@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "drop_after"},  # the connection dropped after the Hub created the job
        {"mode": "after", "status": 502},  # a 502 although the job was created
        {"mode": "after", "status": 500},
    ],
)
def test_a_lost_answer_after_the_job_was_created_is_recovered(hub, fault):
    hub.fault("/api/jobs/alice", method="POST", **fault)
    sub = _submit(hub)
    assert sub.how.outcome == "recovered" and sub.job is not None
    assert "answer was lost" in sub.how.note and "the job was created" in sub.how.note
    assert len(hub.jobs) == 1 and sub.job.id in hub.jobs
    retry = _submit(hub)  # the visitor tries again anyway: the same job, not a second one
    assert retry.how.outcome == "existing" and retry.job.id == sub.job.id and len(hub.jobs) == 1


def test_a_late_504_after_the_job_was_created_is_recovered(hub, monkeypatch):
    _timeouts(monkeypatch, hub_timeout_s=0.5)  # the answer comes after the client stopped waiting
    hub.fault("/api/jobs/alice", method="POST", mode="after", status=504, delay_s=1.5)
    started = time.monotonic()
    sub = _submit(hub)
    assert sub.how.outcome == "recovered" and len(hub.jobs) == 1
    assert "did not answer in time" in sub.how.note
    assert time.monotonic() - started < 15


def _create_deadline(monkeypatch, seconds: float) -> None:
    """The time the Hub may take to apply a create whose answer never came (5 minutes by default), shortened."""
    changed = dataclasses.replace(get_settings(), create_deadline_s=seconds)
    monkeypatch.setattr(submission, "get_settings", lambda: changed)


def test_a_slow_create_is_never_called_not_created_and_its_retry_finds_the_job(hub, monkeypatch):
    """The Hub takes 20 s to answer the create and applies it then; the app stops waiting after 1 s."""
    _timeouts(monkeypatch, hub_timeout_s=1.0)
    _create_deadline(monkeypatch, 40)
    hub.fault("/api/jobs/alice", method="POST", mode="delay", delay_s=20)
    started = time.monotonic()
    with pytest.raises(errors.JobOutcomeUnknown) as info:
        _submit(hub)
    first_s = time.monotonic() - started
    message = info.value.message
    assert "has not confirmed the job" in message and "may still create it" in message, message
    assert "not created" not in message and "label" in message and first_s < 8, (first_s, message)
    with pytest.raises(errors.JobOutcomeUnknown, match="Not submitted again: the Hub has not confirmed"):
        _submit(hub)  # a retry meanwhile sends nothing
    assert len(_posts(hub)) == 1
    wait_for(lambda: len(hub.jobs) == 1, timeout_s=30)  # the Hub applies the create 20 s after it came
    retry = _submit(hub)
    assert retry.how.outcome == "recovered" and "created the job" in retry.how.note
    assert retry.job.id in hub.jobs and len(hub.jobs) == 1 and len(_posts(hub)) == 1
    assert _submit(hub).how.outcome == "existing" and len(hub.jobs) == 1


@pytest.mark.parametrize(
    "fault, said",
    [
        ({"mode": "hang", "delay_s": 75}, "did not answer in time"),
        ({"mode": "drop"}, "connection lost"),  # dropped before the Hub did anything: the app cannot tell
    ],
)
def test_a_create_without_an_answer_is_settled_only_after_its_deadline_then_the_retry_creates_one(
    hub, monkeypatch, fault, said
):
    """The Hub hangs 75 s on the create (or drops the connection) and never applies it; the app's create deadline
    is 3 s here."""
    _timeouts(monkeypatch, hub_timeout_s=1.0)
    _create_deadline(monkeypatch, 3)
    hub.fault("/api/jobs/alice", method="POST", **fault)
    started = time.monotonic()
    with pytest.raises(errors.JobOutcomeUnknown) as info:
        _submit(hub)
    assert "not created" not in info.value.message and said in info.value.message
    with pytest.raises(errors.JobOutcomeUnknown, match="Not submitted again"):
        _submit(hub)
    assert len(_posts(hub)) == 1 and hub.jobs == {}
    time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
    retry = _submit(hub)  # after the deadline the Hub, read again, has no job with the key: now it is created
    assert retry.how.outcome == "created" and len(hub.jobs) == 1 and len(_posts(hub)) == 2
    assert _submit(hub).how.outcome == "existing" and len(hub.jobs) == 1


@pytest.mark.parametrize(
    "fault, said",
    [
        ({"mode": "status", "status": 502}, "answered with an error"),
        ({"mode": "status", "status": 503}, "answered with an error"),
    ],
)
def test_a_failure_before_the_job_was_created_says_not_created(hub, fault, said):
    hub.fault("/api/jobs/alice", method="POST", **fault)
    with pytest.raises(errors.JobNotCreated) as info:
        _submit(hub)
    message = info.value.message
    assert message.startswith("The job was not created") and said in message
    assert "submitting again is safe" in message and "Nothing was changed" not in message
    assert hub.jobs == {}
    assert _submit(hub).how.outcome == "created" and len(hub.jobs) == 1  # the retry creates exactly one


def test_a_429_on_create_is_not_created_with_the_wait(hub):
    hub.fault("/api/jobs/alice", method="POST", mode="status", status=429, headers={"Retry-After": "20"})
    with pytest.raises(errors.JobNotCreated, match=r"not created.*429.*about 20 seconds"):
        _submit(hub)
    assert hub.jobs == {}


def test_unreachable_hub_on_create_says_not_created(hub, monkeypatch):
    real = http.BoundedTransport.handle_request

    def refuse(self, request):
        if request.method == "POST":
            raise http.httpx2.ConnectError("connection refused")
        return real(self, request)

    from trainer_space.jobs.training import plan_training

    session = HubSession(hub.alice)
    plan = plan_training(session, TrainingConfig.from_dict(CFG), dry_run=False)  # then the Hub "goes away"
    monkeypatch.setattr(http.BoundedTransport, "handle_request", refuse)
    with pytest.raises(errors.JobNotCreated, match="could not be reached"):
        submission.submit_once(session, job_request(plan.launch), key=plan.key, explicit=False)


def test_when_the_lookup_fails_too_the_outcome_is_unknown_and_how_to_check_is_said(hub, monkeypatch):
    from trainer_space.jobs.training import plan_training

    session = HubSession(hub.alice)
    plan = plan_training(session, TrainingConfig.from_dict(CFG), dry_run=False)  # its reads pass
    hub.fault("/api/jobs/alice", method="POST", mode="after", status=502)  # created, answer lost ...
    lookup = submission.find_keyed_job

    def lookup_then_fail(*args, **kwargs):  # ... and, after the first lookup, the Hub cannot be asked
        found = lookup(*args, **kwargs)
        hub.fail_next(500, "/api/jobs/alice", method="GET", times=10**6)
        return found

    monkeypatch.setattr(submission, "find_keyed_job", lookup_then_fail)
    with pytest.raises(errors.JobOutcomeUnknown) as info:
        submission.submit_once(session, job_request(plan.launch), key=plan.key, explicit=False)
    message = info.value.message
    assert "may have been created" in message and f"trainer-space-key={plan.key}" in message
    assert "Submitting the same config again is safe" in message
    hub.state.fail_rules.clear()  # the Hub is back: the same config returns the job created meanwhile
    monkeypatch.setattr(submission, "find_keyed_job", lookup)
    again = _submit(hub)
    assert again.how.outcome == "existing" and len(hub.jobs) == 1


def test_a_failed_lookup_before_sending_submits_nothing(hub):
    hub.fail_next(503, "/api/jobs/alice", method="GET", times=10**6)
    with pytest.raises(errors.JobNotCreated, match="could not be asked whether it already exists"):
        _submit(hub)
    assert _posts(hub) == []


def test_the_api_tells_the_truth_after_a_dropped_create(hub, app_url):
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    hub.fault("/api/jobs/alice", method="POST", mode="drop_after")
    result = client.predict(CFG, False, api_name="/submit_training")
    assert result["submitted"] and result["submission"]["outcome"] == "recovered"
    again = client.predict(CFG, False, api_name="/submit_training")
    assert again["job_id"] == result["job_id"] and again["submission"]["outcome"] == "existing"
    assert len(hub.jobs) == 1
    hub.fault("/api/jobs/alice", method="POST", mode="status", status=503)
    with pytest.raises(Exception, match="The job was not created"):
        client.predict({**CFG, "learning_rate": 1e-4}, False, api_name="/submit_training")
    hub.fault("/api/jobs/alice", method="POST", mode="drop")  # no answer at all: never "not created" at once
    with pytest.raises(Exception, match="The Hub has not confirmed the job") as info:
        client.predict({**CFG, "learning_rate": 3e-4}, False, api_name="/submit_training")
    assert "not created" not in str(info.value)
    assert len(hub.jobs) == 1


# ------------------------------------------------------------------------------------------ reads
def test_a_429_with_retry_after_is_honoured_within_the_budget(hub, monkeypatch):
    _timeouts(monkeypatch, retry_budget_s=5)
    session = HubSession(hub.alice)
    _ = session.username
    hub.fail_next(429, "/api/jobs/alice", method="GET", headers={"Retry-After": "1"})
    started = time.monotonic()
    assert session.list_jobs() == []
    assert 1.0 <= time.monotonic() - started < 4
    assert len(hub.requests_to("/api/jobs/alice", "GET")) == 2


def test_a_retry_after_beyond_the_budget_is_said_at_once(hub, monkeypatch):
    _timeouts(monkeypatch, retry_budget_s=2)
    session = HubSession(hub.alice)
    _ = session.username
    hub.fail_next(429, "/api/jobs/alice", method="GET", headers={"Retry-After": "120"}, times=10)
    started = time.monotonic()
    with pytest.raises(errors.RateLimited, match="about 120 seconds"):
        session.list_jobs()
    assert time.monotonic() - started < 1.5
    assert len(hub.requests_to("/api/jobs/alice", "GET")) == 1


def test_a_passing_5xx_on_a_read_is_retried_and_a_lasting_one_is_said(hub, monkeypatch):
    _timeouts(monkeypatch, retry_budget_s=2)
    session = HubSession(hub.alice)
    _ = session.username
    hub.fail_next(503, "/api/jobs/alice", method="GET", times=2)
    assert session.list_jobs() == []
    hub.fail_next(502, "/api/jobs/alice", method="GET", times=10**6)
    started = time.monotonic()
    with pytest.raises(errors.HubUnavailable, match="HTTP 502, still failing after retries"):
        session.list_jobs()
    assert time.monotonic() - started < 4


def test_an_unreachable_hub_is_said_within_seconds_and_then_at_once(monkeypatch):
    """Offline (no DNS, nothing listening): a few quick attempts, not the whole retry budget; the next reads of
    that host fail at once for a while; once it answers again, reads are retried as usual."""
    _timeouts(monkeypatch, retry_budget_s=30)
    http.forget_unreachable()
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    client = http.client_factory()
    started = time.monotonic()
    with pytest.raises(http.RetryBudgetExhausted, match="ConnectError"):
        client.get(f"{closed}/api/whoami-v2")
    assert time.monotonic() - started < 5
    started = time.monotonic()
    with pytest.raises(http.RetryBudgetExhausted, match="unreachable"):
        client.get(f"{closed}/api/models/x")
    assert time.monotonic() - started < 0.5
    http.forget_unreachable()


def test_a_hanging_hub_answers_within_the_read_timeout(hub, monkeypatch):
    _timeouts(monkeypatch, hub_timeout_s=0.5, retry_budget_s=1)
    session = HubSession(hub.alice)
    _ = session.username
    hub.fault("/api/jobs/alice", method="GET", mode="hang", times=10)
    started = time.monotonic()
    with pytest.raises(errors.HubUnavailable, match="did not answer in time"):
        session.list_jobs()
    assert time.monotonic() - started < 3


def _finished_job(hub) -> str:
    session = HubSession(hub.alice)
    job = session.submit_job(JobRequest(image="python:3.12", command=["true"], flavor="t4-small"))
    wait_for(lambda: session.inspect_job(job.id).status.stage == "COMPLETED")
    return job.id


def test_one_budget_for_all_the_reads_of_a_job_logs_request(hub, monkeypatch):
    """/job_logs reads the logs up to 3 times; against a Hub answering 503 they share one retry budget: the request
    ends within about the budget plus one read timeout, not three budgets."""
    from trainer_space.ui import api

    _timeouts(monkeypatch, retry_budget_s=3.0, hub_timeout_s=1.0)
    job_id = _finished_job(hub)
    hub.fail_next(503, f"/api/jobs/alice/{job_id}/logs", times=10**6)
    started = time.monotonic()
    with pytest.raises(Exception, match="HTTP 503, still failing after retries"):
        api.job_logs(job_id, 20, oauth_token=_oauth(hub.alice))
    took = time.monotonic() - started
    print(f"/job_logs against a 503 Hub, budget 3 s + read timeout 1 s: {took:.1f} s")
    assert took < 3.0 + 1.0 + 1.0, took


def test_one_budget_for_all_the_reads_of_a_dry_run_against_a_hanging_hub(hub, monkeypatch):
    """Every read of a dry run (model, dataset viewer, tokenizer, unfinished jobs, ...) hangs: together they take
    about the budget plus one read timeout, and the answer says what failed."""
    from trainer_space.ui import api

    _timeouts(monkeypatch, retry_budget_s=3.0, hub_timeout_s=1.0, viewer_timeout_s=1.0)
    _ = HubSession(hub.alice).username  # signed in; from here on the Hub hangs on every other read
    for prefix in ("/api/models", "/api/datasets", "/datasets-server", "/api/jobs/alice", "/Qwen", "/datasets/"):
        hub.fault(prefix, method="GET", mode="hang", delay_s=30, times=10**6)
    started = time.monotonic()
    try:
        answer = api.submit_training(CFG, True, oauth_token=_oauth(hub.alice))
        said = json.dumps(answer["preflight"])
    except Exception as err:  # a check that cannot be made at all: said as an error
        said = str(err)
    took = time.monotonic() - started
    print(f"dry run against a hanging Hub, budget 3 s + read timeout 1 s: {took:.1f} s")
    assert took < 3.0 + 1.0 + 2.0, took
    assert "did not answer" in said or "still failing" in said, said


def _oauth(token: str):
    import gradio as gr

    return gr.OAuthToken(token=token, scope="", expires_at=0)


def test_a_cut_log_stream_is_resumed(hub):
    from trainer_space.jobs import monitor

    session = HubSession(hub.alice)
    job = session.submit_job(JobRequest(image="python:3.12", command=["true"], flavor="t4-small"))
    deadline = time.time() + 10
    while session.inspect_job(job.id).status.stage != "COMPLETED" and time.time() < deadline:
        time.sleep(0.1)
    whole = session.job_logs(job.id)
    assert len(whole) == 4
    hub.cut_logs(after_events=2)
    assert session.job_logs(job.id) == whole  # read again in full after the cut
    hub.cut_logs(after_events=2)
    assert monitor.job_log_tail(session, job.id, 100).lines == whole


def test_a_cut_stream_while_following_is_resumed_without_losing_or_repeating_lines(hub):
    from trainer_space.jobs import monitor

    hub.plan_next_job(lines=[f"line {i}" for i in range(8)], line_interval_s=0.15)
    session = HubSession(hub.alice)
    job = session.submit_job(JobRequest(image="python:3.12", command=["true"], flavor="t4-small"))
    hub.cut_logs(after_events=3)
    views = list(
        monitor.follow_logs(session, job.id, where=monitor.JobWhere("hf-jobs", "alice", "SCHEDULING"), every_s=0.05)
    )
    assert views[-1].ended and list(views[-1].lines) == [f"line {i}" for i in range(8)]
    assert len(hub.requests_to(f"/api/jobs/alice/{job.id}/logs")) >= 2


# ------------------------------------------------------------------------------------------ others served
def test_slow_hub_answers_for_some_visitors_do_not_hold_up_the_others(hub, app_url):
    """Eight visitors whose Hub calls take 3 s each list their jobs at once; a ninth is served meanwhile."""
    slow = [hub.add_user(f"slow{i}", token=f"hf_slow{i}_standin_token_{i:04d}") for i in range(8)]
    for token in slow:
        hub.slow_down(token, delay_s=3.0, path_prefix="/api/jobs")
    done: list[float] = []

    def slow_visitor(client):
        started = time.monotonic()
        client.predict("", False, api_name="/list_jobs")
        done.append(time.monotonic() - started)

    clients = [Client(app_url, oauth_token=t, verbose=False) for t in slow]  # connected before the clock starts
    threads = [threading.Thread(target=slow_visitor, args=(c,)) for c in clients]
    fast = Client(app_url, oauth_token=hub.bob, verbose=False)
    fast.predict("", False, api_name="/list_jobs")  # connected and warm
    for t in threads:
        t.start()
    time.sleep(1.0)  # the slow ones are all waiting on the Hub now
    waits = []
    for _ in range(3):
        started = time.monotonic()
        assert fast.predict("", False, api_name="/list_jobs")["user"] == "bob"
        waits.append(time.monotonic() - started)
    print("bob's waits while 8 visitors wait 3 s on the Hub:", [round(w, 2) for w in waits])
    waited = min(waits)
    for t in threads:
        t.join(30)
    assert waited < 2.0, f"bob waited {waited:.1f} s behind the slow visitors"
    assert len(done) == 8 and min(done) >= 3.0


def test_datasets_without_viewer_data_cannot_hold_up_inspections(hub, monkeypatch):
    """Sixteen signed-out inspections whose streaming read hangs; another visitor's inspection is still fast, the
    extra streaming reads are refused at once, and the abandoned ones stop."""
    from concurrent.futures import ThreadPoolExecutor

    from trainer_space.data import inspection

    _timeouts(monkeypatch, hub_timeout_s=1.0, retry_budget_s=0.5)
    monkeypatch.setattr(inspection, "STREAM_TIMEOUT_S", 1.5)
    rows = "\n".join(json.dumps(r) for r in CHAT) + "\n"
    hub.add_dataset("anon/noviewer", {"train": CHAT}, viewer=False, files={"data/train.jsonl": rows})
    hub.fault("/datasets/anon/noviewer", mode="hang", delay_s=5, times=10**6)  # its files never come
    hub.fault("/api/datasets/anon/noviewer", mode="hang", delay_s=5, times=10**6)
    anon = HubSession(None)

    def inspect_noviewer(_):
        try:
            inspection.inspect_dataset(anon, dataset="anon/noviewer")
        except errors.TrainerSpaceError as err:
            return type(err).__name__
        return "ok"

    with ThreadPoolExecutor(16) as pool:
        outcomes = pool.map(inspect_noviewer, range(16))
        time.sleep(0.3)
        started = time.monotonic()
        other = inspection.inspect_dataset(HubSession(hub.bob), dataset="alice/chat")
        other_s = time.monotonic() - started
        outcomes = list(outcomes)
    assert other.num_rows == 5000 and other_s < 2.0, other_s
    assert set(outcomes) <= {"Busy", "HubUnavailable"} and outcomes.count("Busy") >= 14
    deadline = time.time() + 15
    while inspection.streams_in_flight() and time.time() < deadline:  # abandoned reads stop on their own
        time.sleep(0.2)
    assert inspection.streams_in_flight() == 0


def test_signed_out_visitors_cannot_fill_the_inspection_pool(hub, app_url):
    """30 signed-out inspections of a dataset whose viewer hangs: they hold at most their small share of the
    inspection pool (the others are refused at once), and a signed-in visitor's inspection is served meanwhile."""
    hub.add_dataset("anon/slow", {"train": CHAT})
    for path in ("splits", "size", "first-rows"):
        hub.fault(f"/datasets-server/{path}?dataset=anon%2Fslow", mode="hang", delay_s=20, times=10**6)
    anonymous = Client(app_url, verbose=False)
    bob = Client(app_url, oauth_token=hub.bob, verbose=False)
    bob.predict("alice/chat", "train", "", "sft", api_name="/inspect_dataset")  # connected and warm
    jobs = [anonymous.submit("anon/slow", "train", "", "sft", api_name="/inspect_dataset") for _ in range(30)]
    time.sleep(1.5)  # the flood is in: what it may hold hangs on the viewer
    started = time.monotonic()
    assert bob.predict("alice/chat", "train", "", "sft", api_name="/inspect_dataset")["num_rows"] == 5000
    bob_s = time.monotonic() - started
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=60)
            outcomes.append("ok")
        except Exception as err:
            outcomes.append(str(err))
    refused = [o for o in outcomes if "Signed-out visitors already have" in o]
    print(f"signed-in inspection during 30 signed-out ones on a hanging viewer: {bob_s:.2f} s; refused {len(refused)}")
    assert bob_s < 2.0, bob_s
    assert len(refused) >= 30 - ANONYMOUS_INSPECTIONS, outcomes
    assert "dataset inspections in progress" in refused[0] and "sign in" in refused[0].lower(), refused[0]


def test_one_visitor_cannot_take_every_worker(hub, app_url):
    """A visitor firing many calls at once while the Hub is slow for them: beyond their share the calls are refused
    at once (one honest message), and the others are served meanwhile."""
    hub.slow_down(hub.alice, delay_s=2.0, path_prefix="/api/jobs")
    clients = [Client(app_url, oauth_token=hub.alice, verbose=False) for _ in range(10)]
    outcomes: list[str] = []

    def flood(client):
        try:
            client.predict("", False, api_name="/list_jobs")
            outcomes.append("ok")
        except Exception as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=flood, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    time.sleep(0.8)
    started = time.monotonic()
    assert Client(app_url, oauth_token=hub.bob, verbose=False).predict("", False, api_name="/list_jobs")["jobs"] == []
    other_s = time.monotonic() - started
    for t in threads:
        t.join(30)
    refused = [o for o in outcomes if o != "ok"]
    assert outcomes.count("ok") >= 6 and refused, outcomes
    assert all("You already have 6 requests in progress" in o for o in refused), refused
    assert other_s < 3.0
