"""The total cap: the worst case of a visitor's unfinished jobs in a namespace plus the new one stays under
`TRAINER_SPACE_MAX_TOTAL_COST_USD`, shown before submitting and enforced at the create, for one job and for bursts
(the check and the create are serialized per visitor and namespace)."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from tests.conftest import add_qwen
from tests.test_train_submit import CHAT
from trainer_space.hub import hardware
from trainer_space.hub.session import WHOAMI_CACHE, HubSession, JobRequest
from trainer_space.jobs import spending
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.preflight import PreflightFailed
from trainer_space.jobs.training import submit_training
from trainer_space.settings import get_settings
from trainer_space.ui.common import confirm_markdown

CFG = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat", "flavor": "a10g-small"}


@pytest.fixture(autouse=True)
def _world(hub, tokenizer_files, monkeypatch):
    WHOAMI_CACHE.clear()
    hardware.clear_cache()
    add_qwen(hub, tokenizer_files)
    hub.add_dataset("alice/chat", {"train": CHAT}, num_rows={"train": 5000})
    return hub


def _total_cap(monkeypatch, usd: float) -> None:
    capped = dataclasses.replace(get_settings(), max_total_cost_usd=usd)
    monkeypatch.setattr(spending, "get_settings", lambda: capped)


def _unfinished(hub, flavor: str, labels: dict[str, str], token: str | None = None) -> None:
    """A job that stays SCHEDULING (it may still cost money)."""
    hub.plan_next_job(lines=["x"], schedule_s=3600)
    HubSession(token or hub.alice).submit_job(
        JobRequest(image="python:3.12", command=["true"], flavor=flavor, labels=labels)
    )


def _checks(sub) -> dict[str, dict]:
    return {c["name"]: c for c in sub.to_json()["preflight"]}


def test_the_total_worst_case_is_shown_and_capped_for_one_job(hub, monkeypatch):
    _total_cap(monkeypatch, 30)
    _unfinished(hub, "a10g-small", {"timeout": str(10 * 3600)})  # the app's: 10 h x $1.00/h = $10.00
    _unfinished(hub, "a10g-small", {"timeout": str(10 * 3600)})
    _unfinished(hub, "t4-small", {})  # created elsewhere: no timeout label, counted as 30 min x $0.40/h = $0.20
    _unfinished(hub, "h200", {"timeout": "36000"}, token=hub.bob)  # another visitor's: not alice's money
    session = HubSession(hub.alice)
    fits = submit_training(
        session, TrainingConfig.from_dict({**CFG, "timeout": "8h", "max_cost_usd": 50}), dry_run=True
    )
    total = _checks(fits)["total cost"]
    assert total["status"] == "ok", total
    assert "3 unfinished jobs in alice can cost $20.20 at most; with this one $28.20" in total["message"]
    assert "within this Space's total cap of $30.00" in total["message"]
    cost = fits.to_json()["cost"]
    assert (cost["unfinished_usd"], cost["total_usd"], cost["total_cap_usd"]) == (20.2, 28.2, 30.0)
    assert "$28.20" in confirm_markdown("job", cost, fits.plan.checks)  # the confirmation shows the total
    over = TrainingConfig.from_dict({**CFG, "timeout": "12h", "max_cost_usd": 50, "allow_many_running": True})
    total = _checks(submit_training(session, over, dry_run=True))["total cost"]
    assert total["status"] == "error"
    assert "could cost $32.20, above this Space's total cap of $30.00" in total["message"]
    assert "at most $9.80 fits" in total["message"] and "Cancel some in My jobs" in total["message"]
    with pytest.raises(PreflightFailed, match=r"total cost: .*above this Space's total cap"):
        submit_training(session, over, dry_run=False)
    assert len(hub.requests_to("/api/jobs/alice", "POST")) == 3  # the three set up above, nothing more


def test_a_burst_of_concurrent_submissions_stays_under_the_total_cap(hub, monkeypatch):
    """20 different jobs at once, each $20 at most (h200x2 at $10/h, 2 h) and each confirmed: 5 fit under $100, the check and
    the create being serialized per visitor and namespace; the others are refused with the total."""
    _total_cap(monkeypatch, 100)
    outcomes: list[str] = []
    barrier = threading.Barrier(20)

    def submit(i: int) -> None:
        cfg = TrainingConfig.from_dict(
            {
                **CFG,
                "flavor": "h200x2",
                "timeout": "2h",
                "output_repo": f"alice/burst-{i}",
                "max_cost_usd": 80,
                "allow_many_running": True,
                "allow_unfit": True,
            }
        )
        barrier.wait()
        try:
            outcomes.append(submit_training(HubSession(hub.alice), cfg, dry_run=False).how.outcome)
        except PreflightFailed as err:
            outcomes.append("total" if "above this Space's total cap" in err.message else err.message)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(outcomes) == ["created"] * 5 + ["total"] * 15, outcomes
    assert len(hub.jobs) == 5
