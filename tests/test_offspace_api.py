"""Off Spaces, through the API: a Jobs flavor means Hugging Face Jobs (never a silent local job), `/estimate` takes
a backend and always names the cheapest fitting Jobs flavor beside this machine, and every endpoint names a setting
as the training config does (TRL's names)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from gradio_client import Client

from tests.conftest import add_qwen
from tests.test_model_facts import LLAMA2_7B
from trainer_space.errors import InvalidInput
from trainer_space.estimate.model import EstimateInputs, estimate_from_facts
from trainer_space.estimate.model_facts import facts_from_config
from trainer_space.hub.hardware import FALLBACK_FLAVORS, LOCAL_FLAVOR, Flavor
from trainer_space.jobs.config import ExportConfig, TrainingConfig

LLAMA2_13B = {**LLAMA2_7B, "hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40,
              "num_attention_heads": 40, "num_key_value_heads": 40}  # meta-llama/Llama-2-13b-hf  # fmt: skip
LLAMA13 = facts_from_config("meta-llama/Llama-2-13b-hf", LLAMA2_13B, safetensors_total=13_015_864_320)
SMALL_MACHINE = Flavor(LOCAL_FLAVOR, "This machine (CPU, 8 cores)", 0, None, 0.0, 8, 16.0, 200.0, 0.0)


@pytest.fixture
def local_by_default(monkeypatch):
    """The app as a person runs it on their own machine: jobs run here unless said otherwise; this machine is a
    CPU box with 16 GB of RAM."""
    from trainer_space.jobs import preflight
    from trainer_space.settings import get_settings

    monkeypatch.setenv("TRAINER_SPACE_DEFAULT_BACKEND", "local")
    monkeypatch.setattr(preflight, "this_machine", lambda: SMALL_MACHINE)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


CFG = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara"}


def test_a_jobs_flavor_means_hugging_face_jobs_and_contradictions_are_refused(local_by_default):
    assert TrainingConfig.from_dict(CFG).resolved_backend == "local"
    assert TrainingConfig.from_dict({**CFG, "flavor": "t4-small"}).resolved_backend == "hf-jobs"
    assert TrainingConfig.from_dict({**CFG, "flavor": "local"}).resolved_backend == "local"
    assert ExportConfig.from_dict({"model": "alice/m", "flavor": "cpu-upgrade"}).resolved_backend == "hf-jobs"
    with pytest.raises(InvalidInput, match="'local' is this machine"):
        TrainingConfig.from_dict({**CFG, "backend": "hf-jobs", "flavor": "local"})


def test_the_api_never_turns_a_jobs_flavor_into_a_local_job(hub, app_url, tokenizer_files, local_by_default):
    add_qwen(hub, tokenizer_files)
    hub.add_dataset("alice/chat", {"train": [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(20)]})
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    cfg = {**CFG, "dataset": "alice/chat", "quick_test": True}
    plan = client.predict({**cfg, "flavor": "t4-small"}, True, api_name="/submit_training")
    assert (plan["backend"], plan["flavor"], plan["config"]["flavor"]) == ("hf-jobs", "t4-small", "t4-small")
    with pytest.raises(Exception) as err:
        client.predict({**cfg, "backend": "local", "flavor": "t4-small"}, True, api_name="/submit_training")
    assert "t4-small is a Hugging Face Jobs flavor" in str(err.value) and "backend" in str(err.value)
    with pytest.raises(Exception) as err:
        client.predict("alice/m", ["Q8_0"], "", True, "cpu-upgrade", True, "", None, False, False, "", "local",
                       api_name="/export_gguf")  # fmt: skip
    assert "cpu-upgrade is a Hugging Face Jobs flavor" in str(err.value)


def test_a_13b_lora_this_machine_cannot_hold_names_the_gpu_flavor_that_fits_not_a_cpu_marathon():
    inputs = EstimateInputs(peft="lora", num_rows=10_000, mean_tokens=512)
    flavors = (SMALL_MACHINE, *FALLBACK_FLAVORS)
    here = estimate_from_facts(LLAMA13, inputs, flavors, local=True)
    assert here.recommended is None  # this machine cannot hold it ...
    jobs = here.cheapest_jobs
    assert jobs is not None and jobs.fits and jobs.flavor.is_gpu  # ... a GPU flavor can, and is named
    assert here.to_json()["cheapest_jobs_flavor"]["flavor"] == jobs.flavor.name
    first = here.to_json()["notes"][-len(here.suggestions)]
    assert first.startswith(f"Run it on Hugging Face Jobs (backend hf-jobs): fits on {jobs.flavor.name}")
    assert not any("QLoRA" in s and "fits on local" in s for s in here.suggestions)  # 4-bit needs a GPU
    assert "Does not fit on this machine" in here.verdict() and jobs.flavor.name in here.verdict()
    there = estimate_from_facts(LLAMA13, inputs, flavors, local=False)
    assert there.recommended == jobs.flavor.name and there.cheapest_jobs == there.best
    assert any(f["flavor"] == "local" and not f["fits"] for f in there.to_json()["flavors"])  # beside this machine
    small = estimate_from_facts(LLAMA13, replace(inputs, num_rows=10), (SMALL_MACHINE,), local=True)
    assert small.cheapest_jobs is None and small.to_json()["cheapest_jobs_flavor"] is None


def test_estimate_takes_a_backend_and_trls_names(hub, app_url, local_by_default):
    hub.add_model("meta-llama/Llama-2-13b-hf", files={"config.json": json.dumps(LLAMA2_13B)},
                  safetensors={"parameters": {"F16": 13_015_864_320}, "total": 13_015_864_320})  # fmt: skip
    client = Client(app_url, verbose=False)
    common = {"model": "meta-llama/Llama-2-13b-hf", "num_rows": 10_000, "per_device_train_batch_size": 2,
              "num_train_epochs": 1, "gradient_accumulation_steps": 8, "api_name": "/estimate"}  # fmt: skip
    here = client.predict(**common)  # the default backend: this machine
    assert here["backend"] == "local" and here["recommended"] is None
    gpu = here["cheapest_jobs_flavor"]
    assert gpu and gpu["flavor"] in {f["flavor"] for f in here["flavors"] if f["fits"]} and gpu["timeout"]
    assert "443" not in json.dumps(here["notes"])
    there = client.predict(**common, backend="hf-jobs")
    assert there["backend"] == "hf-jobs" and there["recommended"] == gpu["flavor"]
    assert there["timeout"] == gpu["timeout"]


# what is not a setting of a job: what to do with it, which job, how much to read (and `/submit_training`'s config)
SETTINGS_ELSEWHERE = {"dry_run", "num_rows", "job_id", "tail", "orgs", "only_this_app", "stages", "usage_seconds",
                      "limit"}  # fmt: skip


def test_every_endpoint_names_a_setting_as_the_training_config_does(app_url):
    """A setting has one name everywhere: TRL's, as the configs spell it (`per_device_train_batch_size`,
    `num_train_epochs`, `gradient_accumulation_steps`, `dataset_config`)."""
    endpoints = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    fields = set(TrainingConfig.model_fields) | set(ExportConfig.model_fields)
    for name, endpoint in endpoints.items():
        params = {p["parameter_name"] for p in endpoint["parameters"]} - (
            {"config"} if name == "/submit_training" else set()
        )
        assert params - SETTINGS_ELSEWHERE <= fields, (name, params - SETTINGS_ELSEWHERE - fields)
    estimate = {p["parameter_name"] for p in endpoints["/estimate"]["parameters"]}
    assert {"per_device_train_batch_size", "num_train_epochs", "gradient_accumulation_steps", "backend"} <= estimate
