"""The flavor catalogue: Hub prices when the Hub answers, the built-in table when it does not."""

from __future__ import annotations

import pytest

from trainer_space.hub import hardware
from trainer_space.hub.hardware import FALLBACK_FLAVORS, FLAVOR_NAMES, Flavor, get_flavor, get_flavors


@pytest.fixture(autouse=True)
def _fresh_cache():
    hardware.clear_cache()
    yield
    hardware.clear_cache()


def test_flavors_come_from_the_hub_with_vram_gpus_and_hourly_prices(hub):
    flavors, from_hub = get_flavors()
    assert from_hub
    t4 = get_flavor("t4-small", flavors)
    assert (t4.gpus, t4.gpu_model, t4.vram_gb) == (1, "T4", 16)
    assert t4.usd_per_hour == pytest.approx(0.40, abs=0.001)  # unitCostUSD per minute x 60
    pair = get_flavor("h200x2", flavors)
    assert (pair.gpus, pair.vram_gb, pair.total_vram_gb) == (2, 141, 282)
    assert [f.usd_per_hour for f in flavors] == sorted(f.usd_per_hour for f in flavors)
    assert {f.name for f in flavors} <= FLAVOR_NAMES


def test_hub_prices_are_used_when_they_change(hub):
    for item in hub.state.hardware:
        if item["name"] == "l4x1":
            item["unitCostUSD"] = 1.2 / 60
    flavors, _ = get_flavors()
    assert get_flavor("l4x1", flavors).usd_per_hour == pytest.approx(1.2, abs=0.001)


def test_the_public_list_is_read_without_any_token(hub, monkeypatch):
    """Public information: no visitor's token (a bad one cannot poison the shared cache) and never the machine's."""
    monkeypatch.setenv("HF_TOKEN", hub.alice)
    from trainer_space.hub.session import HubSession

    HubSession("hf_not_a_valid_token_0000").hardware()
    (req,) = hub.requests_to("/api/jobs/hardware")
    assert req.token is None
    assert get_flavors()[1] is True  # from the Hub, for everyone


def test_a_hub_failure_falls_back_to_the_built_in_table(hub):
    hub.fail_next(500, "/api/jobs/hardware", times=100)  # lasting: a single failure is retried
    flavors, from_hub = get_flavors()
    assert not from_hub
    assert {f.name for f in flavors} == {f.name for f in FALLBACK_FLAVORS}
    # the failure is remembered for a minute: no waiting on the Hub for every estimate
    n = len(hub.requests_to("/api/jobs/hardware"))
    assert get_flavors()[1] is False
    assert len(hub.requests_to("/api/jobs/hardware")) == n


def test_hub_answers_are_cached(hub):
    get_flavors()
    get_flavors()
    assert len(hub.requests_to("/api/jobs/hardware")) == 1


def test_every_gpu_flavor_has_speed_figures_and_t4_trains_in_fp16():
    for f in FALLBACK_FLAVORS:
        if f.is_gpu:
            assert f.tflops > 0 and f.bandwidth_gbs > 0 and f.vram_gb > 0, f.name
        else:  # a CPU: a rough fp32 figure from its cores (used for this machine's estimate)
            assert 0 < f.tflops < 5 and not f.supports_bf16 and not f.trains
    assert not get_flavor("t4-small").supports_bf16
    assert get_flavor("a100-large").supports_bf16


def test_public_names_used_by_the_job_code_stay():
    assert "a10g-small" in FLAVOR_NAMES and "rtx-pro-6000x8" in FLAVOR_NAMES
    assert isinstance(get_flavor("l40sx1"), Flavor)
    assert get_flavor("nope") is None
    flavors, from_hub = get_flavors(use_hub=False)
    assert not from_hub and len(flavors) == len(FALLBACK_FLAVORS)
