"""The service layer against the Hub stand-in, through the real huggingface_hub client."""

from __future__ import annotations

import time

import pytest

from trainer_space import errors
from trainer_space.hub.session import WHOAMI_CACHE, HubSession, JobRequest


@pytest.fixture(autouse=True)
def _fresh_whoami_cache():
    WHOAMI_CACHE.clear()
    yield
    WHOAMI_CACHE.clear()


def _request(**kw) -> JobRequest:
    base = dict(
        image="ghcr.io/astral-sh/uv:python3.12-bookworm",
        command=["python", "-c", "print('hi')"],
        flavor="t4-small",
        timeout_s=3600,
        env={"TRAINER_SPACE": "1"},
        labels={"trainer-space": "train", "method": "sft"},
    )
    base.update(kw)
    return JobRequest(**base)


def _wait_stage(session: HubSession, job_id: str, stage: str, timeout: float = 5.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = session.inspect_job(job_id).status.stage
        if current == stage:
            return current
        time.sleep(0.05)
    return current


def test_no_token_is_not_signed_in_and_nothing_is_sent(hub):
    with pytest.raises(errors.NotSignedIn, match="Sign in with Hugging Face to list your jobs"):
        HubSession.signed_in(None, "list your jobs")
    with pytest.raises(errors.NotSignedIn):
        HubSession.signed_in("", "x")
    assert hub.requests == []


def test_whoami_resolves_visitor_and_is_cached_per_token(hub):
    s = HubSession(hub.alice)
    assert s.username == "alice"
    assert s.visitor.namespaces == ("alice", "alice-org")
    assert s.visitor.writable_namespaces == ("alice", "alice-org")
    assert HubSession(hub.alice).username == "alice"  # second session, same token: cached
    assert HubSession(hub.bob).username == "bob"  # another token, another identity
    whoamis = hub.requests_to("/api/whoami-v2")
    assert len(whoamis) == 2
    assert {r.token for r in whoamis} == {hub.alice, hub.bob}


def test_submit_sends_exact_body_and_token_only_as_secret(hub):
    s = HubSession(hub.alice)
    job = s.submit_job(_request())
    posts = hub.requests_to("/api/jobs/alice", "POST")
    assert len(posts) == 1
    body = posts[0].json()
    assert body == {
        "command": ["python", "-c", "print('hi')"],
        "arguments": [],
        "environment": {"TRAINER_SPACE": "1"},
        "flavor": "t4-small",
        "secrets": {"HF_TOKEN": hub.alice},
        "timeoutSeconds": 3600,
        "labels": {"trainer-space": "train", "method": "sft", "name": body["labels"]["name"]},
        "dockerImage": "ghcr.io/astral-sh/uv:python3.12-bookworm",
    }
    assert posts[0].token == hub.alice
    # the token appears nowhere but in the secrets field
    stripped = dict(body)
    stripped.pop("secrets")
    assert hub.alice not in str(stripped)
    assert job.owner.name == "alice"
    assert job.status.stage == "SCHEDULING"
    assert job.url.endswith(f"/jobs/alice/{job.id}")
    # and inspect shows only the secret's name
    assert s.inspect_job(job.id).secrets == {"HF_TOKEN": "********"}


def test_submit_refuses_token_in_env_labels_or_command(hub):
    s = HubSession(hub.alice)
    for bad in (
        {"env": {"X": hub.alice}},
        {"labels": {"x": hub.alice}},
        {"command": ["echo", hub.alice]},
    ):
        with pytest.raises(errors.InvalidInput, match="token must never appear"):
            s.submit_job(_request(**bad))
    assert hub.requests_to("/api/jobs", "POST") == []


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"flavor": "gpu-9000"}, "Unknown hardware flavor"),
        ({"timeout_s": 10}, "timeout"),
        ({"command": []}, "command"),
        ({"labels": {"bad key!": "x"}}, "label"),
        ({"namespace": "../etc"}, "not a valid"),
    ],
)
def test_submit_validates_before_sending(hub, kw, match):
    s = HubSession(hub.alice)
    with pytest.raises(errors.InvalidInput, match=match):
        s.submit_job(_request(**kw))
    assert hub.requests_to("/api/jobs", "POST") == []


def test_submit_to_org_and_refuses_foreign_namespace(hub):
    s = HubSession(hub.alice)
    job = s.submit_job(_request(namespace="alice-org"))
    assert job.owner.name == "alice-org"
    with pytest.raises(errors.InvalidInput, match="not a member of 'bob'"):
        s.submit_job(_request(namespace="bob"))


def test_list_inspect_logs_cancel_lifecycle(hub):
    s = HubSession(hub.alice)
    hub.plan_next_job(lines=["step 1 loss=2.0", "step 2 loss=1.5", "done"], line_interval_s=0.05)
    job = s.submit_job(_request())
    assert [j.id for j in s.list_jobs()] == [job.id]
    assert _wait_stage(s, job.id, "COMPLETED") == "COMPLETED"
    assert s.job_logs(job.id) == ["step 1 loss=2.0", "step 2 loss=1.5", "done"]
    assert s.job_logs(job.id, tail=1) == ["done"]
    assert [j.id for j in s.list_jobs(stages=["COMPLETED"])] == [job.id]
    assert s.list_jobs(stages=["RUNNING"]) == []
    assert [j.id for j in s.list_jobs(labels={"method": "sft"})] == [job.id]
    assert s.list_jobs(labels={"method": "dpo"}) == []

    hub.plan_next_job(lines=[f"line {i}" for i in range(100)], line_interval_s=0.5)
    long_job = s.submit_job(_request())
    assert _wait_stage(s, long_job.id, "RUNNING") == "RUNNING"
    canceled = s.cancel_job(long_job.id)
    assert canceled.status.stage == "CANCELED"
    # every call used the visitor's token and an explicit namespace
    job_calls = hub.requests_to("/api/jobs/")
    assert job_calls and all(r.token == hub.alice for r in job_calls)
    assert all(r.path.startswith("/api/jobs/alice") for r in job_calls)


def test_follow_logs_streams_until_the_job_ends(hub):
    s = HubSession(hub.alice)
    hub.plan_next_job(lines=["a", "b", "c"], schedule_s=0.3, line_interval_s=0.2, final_stage="ERROR", message="boom")
    job = s.submit_job(_request())
    lines = list(s.follow_logs(job.id))
    assert lines == ["a", "b", "c"]
    info = s.inspect_job(job.id)
    assert info.status.stage == "ERROR"
    assert info.status.message == "boom"


def test_visitors_are_isolated(hub):
    alice, bob = HubSession(hub.alice), HubSession(hub.bob)
    job = alice.submit_job(_request())
    assert bob.list_jobs() == []
    with pytest.raises(errors.JobNotFound):
        bob.find_job(job.id)
    with pytest.raises(errors.InvalidInput, match="not a member"):
        bob.inspect_job(job.id, namespace="alice")
    assert alice.find_job(job.id).id == job.id


def test_org_jobs_are_listed_when_named(hub):
    s = HubSession(hub.alice)
    own = s.submit_job(_request())
    org = s.submit_job(_request(namespace="alice-org"))
    assert {j.id for j in s.list_jobs(namespaces=["alice", "alice-org"])} == {own.id, org.id}
    assert s.find_job(org.id).owner.name == "alice-org"


def test_hardware_comes_from_the_hub(hub):
    flavors, from_hub = HubSession(hub.alice).hardware()
    assert from_hub
    t4 = next(f for f in flavors if f.name == "t4-small")
    assert t4.gpus == 1 and t4.vram_gb == 16 and abs(t4.usd_per_hour - 0.40) < 1e-3


@pytest.mark.parametrize(
    "status, error_type, text",
    [
        (401, errors.InvalidToken, "Sign out and sign in again"),
        (402, errors.PaymentRequired, "payment method or pre-paid credit"),
        (403, errors.MissingPermission, "'jobs'"),
        (429, errors.RateLimited, "Wait"),
        (500, errors.HubUnavailable, "try again in a few minutes"),
        (503, errors.HubUnavailable, "Nothing was changed"),
    ],
)
def test_hub_errors_become_actionable_messages(hub, status, error_type, text):
    s = HubSession(hub.alice)
    assert s.username == "alice"
    hub.fail_next(status, "/api/jobs/alice", method="POST", times=10)
    with pytest.raises(error_type, match=text) as info:
        s.submit_job(_request())
    assert hub.alice not in info.value.message


def test_real_permission_and_payment_answers(hub):
    no_jobs = hub.add_user("carol", jobs_permission=False)
    with pytest.raises(errors.MissingPermission, match=r"job\.write"):
        HubSession(no_jobs).submit_job(_request())
    broke = hub.add_user("dave", can_pay=False)
    with pytest.raises(errors.PaymentRequired):
        HubSession(broke).submit_job(_request())
    assert hub.jobs == {}


def test_invalid_token_on_whoami(hub):
    with pytest.raises(errors.InvalidToken):
        _ = HubSession("hf_not_a_real_token_123").username


def test_unknown_job_and_bad_job_id(hub):
    s = HubSession(hub.alice)
    with pytest.raises(errors.JobNotFound):
        s.inspect_job("0123456789abcdef01234567")
    n = len(hub.requests)
    with pytest.raises(errors.InvalidInput):
        s.inspect_job("../../etc/passwd")
    assert len(hub.requests) == n


def test_session_repr_hides_token(hub):
    assert hub.alice not in repr(HubSession(hub.alice))


def test_job_metrics_through_huggingface_hubs_own_parser_bounded(hub):
    from tests.hub_standin import metric_sample

    s = HubSession(hub.alice)
    samples = [metric_sample(cpu_pct=10 * i, ram_gb=2 + i, gpus=[(50 + i, 8.0 + i, 24.0)]) for i in range(6)]
    hub.plan_next_job(lines=["x"] * 20, line_interval_s=0.1, metrics=samples, metrics_interval_s=0.1, schedule_s=1.0)
    job = s.submit_job(_request())
    assert s.job_metrics(job.id, max_samples=3, max_seconds=0.3) == []  # scheduling: no samples, the cap holds
    assert _wait_stage(s, job.id, "RUNNING") == "RUNNING"
    started = time.monotonic()
    got = s.job_metrics(job.id, max_samples=3, max_seconds=5)
    assert len(got) == 3 and time.monotonic() - started < 2  # 3 samples, then it returns
    first = got[0]
    assert set(first) == {"cpu_usage_pct", "cpu_millicores", "memory_used_bytes", "memory_total_bytes", "rx_bps",
                          "tx_bps", "gpus", "replica"}  # fmt: skip
    (gpu,) = first["gpus"].values()
    assert set(gpu) == {"utilization", "memory_used_bytes", "memory_total_bytes"}
    started = time.monotonic()
    capped = s.job_metrics(job.id, max_samples=30, max_seconds=0.35)
    assert 1 <= len(capped) <= 5 and time.monotonic() - started < 1.5  # the time cap holds too
    assert _wait_stage(s, job.id, "COMPLETED") == "COMPLETED"
    assert s.job_metrics(job.id, max_samples=2, max_seconds=1) == []  # ended: the Hub answers 406, no history
    assert all(r.token == hub.alice for r in hub.requests_to("/api/jobs/"))
    info = s.inspect_job(job.id)
    assert info.durations.scheduling_secs is not None and info.durations.running_secs is not None
