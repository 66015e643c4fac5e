"""GGUF export submissions through the Hub stand-in: flavor choice, adapter detection, exact job, pre-flight."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client

from trainer_space import errors
from trainer_space.hub.hardware import FALLBACK_FLAVORS
from trainer_space.hub.session import WHOAMI_CACHE, HubSession
from trainer_space.jobs.config import ExportConfig
from trainer_space.jobs.export import export_timeout_s, recommend_cpu_flavor
from trainer_space.jobs.export import submit_export as _submit
from trainer_space.jobs.spec import template_constants as _constants


def template_constants() -> dict:
    return _constants("export_gguf.py")


def ExportRequest(model: str, quantizations: list[str], **kw) -> ExportConfig:
    return ExportConfig.from_dict({"model": model, "quantizations": quantizations, **kw})


def submit_export(session: HubSession, cfg: ExportConfig, **kwargs) -> dict:
    """The service, as the `/export_gguf` API answers it (JSON)."""
    return _submit(session, cfg, **kwargs).to_json()


CONFIG = json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"})


@pytest.fixture(autouse=True)
def _clear():
    WHOAMI_CACHE.clear()


def _add_models(hub):
    hub.add_model(
        "alice/qwen-sft",
        files={"config.json": CONFIG, "model.safetensors": b"\0" * 64},
        safetensors={"parameters": {"BF16": 494_032_768}, "total": 494_032_768},
    )
    hub.add_model(
        "alice/qwen-lora",
        files={
            "adapter_config.json": json.dumps({"base_model_name_or_path": "alice/qwen-sft", "peft_type": "LORA"}),
            "adapter_model.safetensors": b"\0" * 16,
        },
    )


@pytest.mark.parametrize("gb", [0.5, 8, 16, 30, 70])
def test_cheapest_cpu_flavor_with_three_times_the_disk(gb):
    flavors = tuple(f if f.is_gpu else f.__class__(**{**f.__dict__, "disk_gb": 500.0}) for f in FALLBACK_FLAVORS)
    best, notes = recommend_cpu_flavor(int(gb * 1e9), flavors)
    assert best is not None and not best.is_gpu
    assert best.ram_gb >= gb * 1.3 and best.disk_gb >= gb * 3
    fitting = [f for f in flavors if not f.is_gpu and f.ram_gb >= gb * 1.3]
    assert best.usd_per_hour == min(f.usd_per_hour for f in fitting)
    assert "no GPU is needed" in notes[-1]


def test_small_model_on_cpu_basic_and_disk_decides():
    assert recommend_cpu_flavor(int(1e9), FALLBACK_FLAVORS)[0].name == "cpu-basic"
    # 20 GB of 16-bit weights need 60 GB of disk: more than the 50 GB the fallback table assumes
    best, notes = recommend_cpu_flavor(int(20e9), FALLBACK_FLAVORS)
    assert best is None and "No flavor has enough disk" in notes[-1]


def test_no_flavor_with_enough_disk_says_so():
    best, notes = recommend_cpu_flavor(int(10_000e9), FALLBACK_FLAVORS)
    assert best is None and "No flavor has enough disk" in notes[-1]


def test_timeout_grows_with_size_and_never_below_30_minutes():
    assert export_timeout_s(int(0.2e9), 1) == 30 * 60
    assert export_timeout_s(int(16e9), 3) > export_timeout_s(int(2e9), 1)


def test_dry_run_plans_a_cpu_job_in_llama_cpp_image_without_submitting(hub):
    _add_models(hub)
    result = submit_export(HubSession(hub.alice), ExportRequest("alice/qwen-sft", ["q4_k_m", "Q8_0"]), dry_run=True)
    assert result["submitted"] is False and result["job_id"] is None
    assert result["output_repo"] == "alice/qwen-sft-GGUF"
    assert result["quantizations"] == ["Q4_K_M", "Q8_0"]
    assert result["flavor"] == "cpu-basic"  # a 1 GB model: the cheapest CPU flavor
    assert result["spec"]["image"] == template_constants()["LLAMA_CPP_IMAGE"]
    assert result["spec"]["secrets"] == {"HF_TOKEN": "$HF_TOKEN"}
    assert "--quantizations Q4_K_M,Q8_0" in result["command"].replace("\\\n    ", " ")
    assert hub.requests_to("/api/jobs", "POST") == []


def test_submit_sends_the_exact_job_with_token_only_in_secrets(hub):
    _add_models(hub)
    result = submit_export(
        HubSession(hub.alice), ExportRequest("alice/qwen-sft", ["Q4_K_M"], private=True), dry_run=False
    )
    assert result["submitted"] and result["job_id"]
    (post,) = hub.requests_to("/api/jobs/alice", "POST")
    body = post.json()
    assert body["dockerImage"] == template_constants()["LLAMA_CPP_IMAGE"]
    assert body["flavor"] == "cpu-basic"
    assert body["secrets"] == {"HF_TOKEN": hub.alice}
    assert body["command"][:2] == ["bash", "-c"]
    assert body["command"][3:] == [
        "export_gguf.py", "--model", "alice/qwen-sft", "--output_repo", "alice/qwen-sft-GGUF",
        "--quantizations", "Q4_K_M", "--private", "true",
    ]  # fmt: skip
    assert body["labels"]["trainer-space"] == "export_gguf"
    assert body["labels"]["output"] == "alice/qwen-sft-GGUF"
    assert body["labels"]["name"] == "gguf-qwen-sft-GGUF"  # a readable name, not uv-python3-12-bookworm-<hash>
    assert body["timeoutSeconds"] >= 1800
    without_secret = {k: v for k, v in body.items() if k != "secrets"}
    assert hub.alice not in json.dumps(without_secret)


def test_adapter_is_sized_by_its_base_model(hub):
    _add_models(hub)
    result = submit_export(HubSession(hub.alice), ExportRequest("alice/qwen-lora", []), dry_run=True)
    assert result["quantizations"] == ["Q4_K_M"]
    model_check = next(c for c in result["preflight"] if c["name"] == "model")
    assert "LoRA adapter on alice/qwen-sft" in model_check["message"]
    assert result["model_gb_16bit"] == pytest.approx(0.99, abs=0.01)


def test_preflight_errors_block_submission(hub):
    _add_models(hub)
    with pytest.raises(errors.TrainerSpaceError, match="cannot write to 'bob'"):
        submit_export(HubSession(hub.alice), ExportRequest("alice/qwen-sft", [], output_repo="bob/x-GGUF"))
    with pytest.raises(errors.RepoNotFound):
        submit_export(HubSession(hub.alice), ExportRequest("alice/nope", []))
    with pytest.raises(errors.InvalidInput, match=r"Quantizations \(quantizations\) has unknown types \[.Q9_X.\]"):
        submit_export(HubSession(hub.alice), ExportRequest("alice/qwen-sft", ["Q9_X"]))
    assert hub.requests_to("/api/jobs", "POST") == []


def test_export_api_and_my_jobs(hub, app_url):
    _add_models(hub)
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    dry = client.predict("alice/qwen-sft", ["Q4_K_M"], "", False, "", True, api_name="/export_gguf")
    assert dry["submitted"] is False
    done = client.predict("alice/qwen-sft", ["Q4_K_M"], "", False, "", False, api_name="/export_gguf")
    assert done["submitted"] is True
    jobs = client.predict("", True, api_name="/list_jobs")["jobs"]
    assert [(j["id"], j["kind"]) for j in jobs] == [(done["job_id"], "export_gguf")]
    with pytest.raises(Exception, match="A token is needed to export to GGUF"):
        Client(app_url, verbose=False).predict(
            "alice/qwen-sft", ["Q4_K_M"], "", False, "", False, api_name="/export_gguf"
        )


@pytest.mark.parametrize("repo", ["alice/qwen-rm", "alice/qwen-rm-lora"])
def test_reward_models_are_refused_for_gguf(hub, repo):
    """A reward model (full, or a SEQ_CLS adapter) has a score head llama.cpp cannot run: refused before any job."""
    _add_models(hub)
    rm_config = json.dumps({"architectures": ["Qwen2ForSequenceClassification"], "model_type": "qwen2"})
    hub.add_model("alice/qwen-rm", files={"config.json": rm_config, "model.safetensors": b"\0" * 64},
                  safetensors={"parameters": {"BF16": 494_033_664}, "total": 494_033_664})  # fmt: skip
    adapter = {"base_model_name_or_path": "alice/qwen-sft", "peft_type": "LORA", "task_type": "SEQ_CLS"}
    hub.add_model("alice/qwen-rm-lora", files={"adapter_config.json": json.dumps(adapter),
                                               "adapter_model.safetensors": b"\0" * 16})  # fmt: skip
    with pytest.raises(errors.TrainerSpaceError) as info:
        submit_export(HubSession(hub.alice), ExportRequest(repo, []), dry_run=False)
    assert "is a reward model" in info.value.message and "would lose its score head" in info.value.message
    assert hub.requests_to("/api/jobs", "POST") == []
