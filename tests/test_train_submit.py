"""Training submission end to end through the Hub stand-in: dry run, each pre-flight failure, submit."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client

from tests import arg_values
from trainer_space import errors
from trainer_space.hub.session import WHOAMI_CACHE, HubSession
from trainer_space.jobs.accuracy import ESTIMATE_ENV
from trainer_space.jobs.config import CONFIG_ENV, TrainingConfig
from trainer_space.jobs.preflight import PreflightFailed
from trainer_space.jobs.spec import SCRIPT_SHA_ENV, load_template, script_chunks
from trainer_space.jobs.training import submit_training as _submit


def submit_training(session: HubSession, cfg: TrainingConfig, **kwargs) -> dict:
    """The service, as the `/submit_training` API answers it (JSON)."""
    return _submit(session, cfg, **kwargs).to_json()


# Qwen/Qwen2.5-0.5B's config.json and safetensors total (its Hub page: 494,032,768 parameters)
QWEN_05B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_attention_heads": 14,
    "num_hidden_layers": 24,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
    "torch_dtype": "bfloat16",
}
CHAT = [
    {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}, {"role": "assistant", "content": str(2 * i)}]}
    for i in range(20)
]
QA = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(20)]
TEXT = [{"text": f"Document number {i}."} for i in range(20)]


MATH = [{"prompt": [{"role": "user", "content": f"What is {i} + 1?"}], "answer": str(i + 1)} for i in range(20)]
LONG = [{"text": "The quick brown fox jumps over the lazy dog. " * (10 + 30 * (i % 2))} for i in range(20)]
PROMPTS = [{"prompt": f"Write a haiku about the number {i}."} for i in range(20)]
SOLUTIONS = [{"prompt": f"What is {i} + 1?", "solution": str(i + 1)} for i in range(20)]


@pytest.fixture(autouse=True)
def _world(hub, tokenizer_files):
    WHOAMI_CACHE.clear()
    safetensors = {"parameters": {"BF16": 494_032_768}, "total": 494_032_768}
    files = {**tokenizer_files, "config.json": json.dumps(QWEN_05B)}
    hub.add_model("Qwen/Qwen2.5-0.5B", files=files, safetensors=safetensors)
    hub.add_model("org/no-tokenizer", files={"config.json": json.dumps(QWEN_05B)}, safetensors=safetensors)
    hub.add_model("meta/gated-model", files={"config.json": json.dumps(QWEN_05B)}, safetensors=safetensors, gated=True)
    hub.add_dataset("alice/chat", {"train": CHAT}, num_rows={"train": 5000})
    hub.add_dataset("alice/qa", {"train": QA})
    hub.add_dataset("alice/text", {"train": TEXT})
    hub.add_dataset("alice/long", {"train": LONG})
    hub.add_dataset("alice/math", {"train": MATH}, num_rows={"train": 2000})
    hub.add_dataset("alice/prompts", {"train": PROMPTS})
    hub.add_dataset("alice/solutions", {"train": SOLUTIONS})
    return hub


def _cfg(**kw) -> TrainingConfig:
    base = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat", "flavor": "a10g-small"}
    base.update(kw)
    return TrainingConfig.from_dict(base)


def _checks(result) -> dict[str, dict]:
    return {c["name"]: c for c in result["preflight"]}


def test_dry_run_returns_spec_command_and_preflight_without_creating_a_job(hub):
    result = submit_training(HubSession(hub.alice), _cfg(), dry_run=True)
    assert result["submitted"] is False and result["job_id"] is None
    checks = _checks(result)
    assert all(c["status"] == "ok" for c in checks.values()), [c for c in checks.values() if c["status"] != "ok"]
    assert "READY for sft" in checks["dataset"]["message"]
    assert "Fits on a10g-small" in checks["estimate"]["message"]
    assert result["output_repo"] == "alice/Qwen2.5-0.5B-sft"
    assert result["trackio_url"] == "https://alice-trackio.hf.space/?project=Qwen2.5-0.5B-sft"
    assert result["command"].startswith("hf jobs run")
    assert result["spec"]["secrets"] == {"HF_TOKEN": "$HF_TOKEN"}
    assert hub.alice not in json.dumps(result)
    assert hub.requests_to("/api/jobs", "POST") == []


def test_submit_sends_the_exact_job_field_by_field(hub):
    # a timeout beyond the estimate + 30% costs more than the default cap: the visitor raises the cap to allow it
    result = submit_training(HubSession(hub.alice), _cfg(private=False, timeout="3h", max_cost_usd=5), dry_run=False)
    assert result["submitted"] and result["job_id"]
    (post,) = hub.requests_to("/api/jobs/alice", "POST")
    body = post.json()
    template = load_template("train.py")
    assert body["dockerImage"] == "ghcr.io/astral-sh/uv:python3.12-bookworm"
    assert body["flavor"] == "a10g-small"
    assert body["timeoutSeconds"] == 3 * 3600
    assert body["secrets"] == {"HF_TOKEN": hub.alice}
    assert body["environment"][SCRIPT_SHA_ENV] == template.sha256
    assert set(body["environment"]) == {
        *script_chunks(template),  # the script's base64 in pieces of 64,000 characters (a string may hold 128 KiB)
        SCRIPT_SHA_ENV,
        CONFIG_ENV,
        "PYTHONUNBUFFERED",
        "UV_NO_PROGRESS",
        "TRAINER_SPACE_GPUS",
        ESTIMATE_ENV,
    }
    assert body["environment"]["TRAINER_SPACE_GPUS"] == "1"
    # the job carries its estimate on its flavor: numbers and the flavor's name, nothing else
    carried_estimate = json.loads(body["environment"][ESTIMATE_ENV])
    assert set(carried_estimate) == {"flavor", "gpus", "peak_gpu_mem_gb", "hours", "cost_usd"}
    assert carried_estimate["flavor"] == "a10g-small" and carried_estimate["gpus"] == 1
    assert carried_estimate["hours"] == round(result["estimate"]["hours"], 4) > 0
    assert carried_estimate["cost_usd"] == round(result["estimate"]["cost_usd"], 4)
    assert 0 < carried_estimate["peak_gpu_mem_gb"] < 24
    carried = TrainingConfig.from_dict(body["environment"][CONFIG_ENV])  # the job carries its resolved config
    assert carried.output_repo == "alice/Qwen2.5-0.5B-sft" and carried.timeout == "3h" and carried.private is False
    assert body["labels"] == {
        "trainer-space": "train",
        "method": "sft",
        "model": "Qwen/Qwen2.5-0.5B",
        "output": "alice/Qwen2.5-0.5B-sft",
        "trackio": "alice/trackio",
        "project": "Qwen2.5-0.5B-sft",
        "timeout": "10800",
        "template_sha": template.short_sha,
        "trainer-space-key": result["submission"]["key"],
        "name": body["labels"]["name"],
    }
    cmd = body["command"]
    assert cmd[:2] == ["bash", "-c"] and cmd[3] == "train.py"
    pairs = arg_values(cmd[4:])
    assert pairs["--method"] == "sft" and pairs["--model_name_or_path"] == "Qwen/Qwen2.5-0.5B"
    assert pairs["--dataset_name"] == "alice/chat" and pairs["--peft_mode"] == "lora"
    assert pairs["--hub_model_id"] == "alice/Qwen2.5-0.5B-sft" and pairs["--push_to_hub"] == "true"
    assert pairs["--hub_private_repo"] == "false" and pairs["--report_to"] == "trackio"
    # the token is only in the secrets field
    without = {k: v for k, v in body.items() if k != "secrets"}
    assert hub.alice not in json.dumps(without)
    assert result["url"].endswith(f"/jobs/alice/{result['job_id']}")


def test_another_unfinished_job_writing_to_the_same_output_repo_is_warned_about_but_not_the_same_one(hub):
    hub.plan_next_job(lines=["training"] * 100, line_interval_s=1)
    first = submit_training(HubSession(hub.alice), _cfg(), dry_run=False)
    assert "output repo in use" not in _checks(first)
    again = submit_training(HubSession(hub.alice), _cfg(), dry_run=True)  # the same submission: its own job
    assert "output repo in use" not in _checks(again)
    other = submit_training(HubSession(hub.alice), _cfg(learning_rate=1e-4), dry_run=True)
    check = _checks(other)["output repo in use"]
    assert check["status"] == "warn" and first["job_id"] in check["message"]
    assert "alice/Qwen2.5-0.5B-sft-2" in check["message"]
    elsewhere = submit_training(HubSession(hub.alice), _cfg(learning_rate=1e-4, output_repo="alice/lr-1e-4"))
    assert "output repo in use" not in _checks(elsewhere)


def test_not_signed_in_sends_nothing(hub):
    with pytest.raises(errors.NotSignedIn, match="Sign in with Hugging Face"):
        submit_training(HubSession.signed_in(None, "start a training job"), _cfg())
    assert hub.requests == []


def _failed(hub, token, cfg, name, match):
    with pytest.raises(PreflightFailed) as info:
        submit_training(HubSession(token), cfg, dry_run=False)
    failed = {c.name: c.message for c in info.value.failed}
    assert name in failed, failed
    assert match in failed[name], failed[name]
    assert "Nothing was submitted" in info.value.message
    assert hub.requests_to("/api/jobs", "POST") == []


def test_preflight_token_without_jobs_permission(hub):
    token = hub.add_user("carol", jobs_permission=False)
    _failed(hub, token, _cfg(), "jobs permission", "cannot run Jobs")


def test_preflight_model_not_found(hub):
    _failed(hub, hub.alice, _cfg(model="nobody/nothing"), "model", "was not found")


def test_preflight_gated_model(hub):
    _failed(hub, hub.alice, _cfg(model="meta/gated-model"), "model", "is gated")


def test_preflight_dataset_not_found(hub):
    _failed(hub, hub.alice, _cfg(dataset="alice/missing"), "dataset", "not found")


def test_preflight_dataset_needs_mapping_then_mapping_fixes_it(hub):
    _failed(hub, hub.alice, _cfg(dataset="alice/qa"), "dataset", "needs a column mapping")
    proposal = _proposed_mapping(hub, "alice/qa", "sft")
    result = submit_training(HubSession(hub.alice), _cfg(dataset="alice/qa", mapping=proposal), dry_run=True)
    assert _checks(result)["dataset"]["status"] == "ok", _checks(result)["dataset"]
    assert json.loads(arg_values(result["spec"]["command"])["--dataset_mapping"]) == proposal


def _proposed_mapping(hub, dataset, method):
    from trainer_space.data.inspection import inspect_dataset

    return inspect_dataset(HubSession(hub.alice), dataset=dataset).methods[method].mapping.to_json()


def test_preflight_dataset_incompatible_with_method(hub):
    _failed(hub, hub.alice, _cfg(dataset="alice/text", method="dpo"), "dataset", "cannot be used for dpo")


def test_preflight_output_repo_in_foreign_namespace(hub):
    _failed(hub, hub.alice, _cfg(output_repo="bob/stolen"), "output repo", "cannot write to 'bob'")


def test_preflight_timeout_below_estimate(hub):
    _failed(hub, hub.alice, _cfg(timeout="1m", num_train_epochs=3), "timeout", "below the estimate (")
    _failed(hub, hub.alice, _cfg(timeout="10m", num_train_epochs=3), "timeout", "below the estimate plus 30%")


def test_preflight_does_not_fit_is_an_error_unless_allowed(hub):
    big = {
        "peft": "full",
        "flavor": "t4-small",
        "per_device_train_batch_size": 32,
        "max_length": 4096,
        "packing": "off",
    }  # packed on a T4 (no flash kernel), it would train one row per micro-batch and fit
    result = submit_training(HubSession(hub.alice), _cfg(**big), dry_run=True)
    fit = _checks(result)["estimate"]
    assert fit["status"] == "error" and "Does not fit on t4-small" in fit["message"]
    assert "allow_unfit: true" in fit["message"]
    allowed = submit_training(HubSession(hub.alice), _cfg(**big, allow_unfit=True), dry_run=True)
    fit = _checks(allowed)["estimate"]
    assert fit["status"] == "warn" and "You chose to submit anyway" in fit["message"]


def test_preflight_measures_token_lengths_for_the_estimate(hub):
    result = submit_training(HubSession(hub.alice), _cfg(dataset="alice/long", max_length=256), dry_run=True)
    lengths = _checks(result)["lengths"]
    assert lengths["status"] == "warn", lengths
    assert "The text averages" in lengths["message"] and "with the tokenizer of Qwen/Qwen2.5-0.5B" in lengths["message"]
    assert "50% of them are longer than max_length=256 and will be truncated" in lengths["message"]
    notes = result["estimate"]["estimate"]["notes"]
    assert not any("Assumed 512 tokens" in n for n in notes), notes  # the measured mean was used
    whole = submit_training(HubSession(hub.alice), _cfg(dataset="alice/long", max_length=2048), dry_run=True)
    assert _checks(whole)["lengths"]["status"] == "ok", _checks(whole)["lengths"]


def test_preflight_without_a_tokenizer_assumes_a_mean_and_says_so(hub):
    result = submit_training(HubSession(hub.alice), _cfg(model="org/no-tokenizer"), dry_run=True)
    lengths = _checks(result)["lengths"]
    assert lengths["status"] == "warn" and lengths["message"].startswith("Could not count tokens")
    assert "has no tokenizer files" in lengths["message"]
    assert lengths["message"].endswith(". The estimate assumes 512 tokens per row.")
    assert any("Assumed 512 tokens" in n for n in result["estimate"]["estimate"]["notes"])


def test_grpo_preflight_estimates_the_generations_the_job_will_sample(hub):
    def grpo(**kw):
        cfg = _cfg(method="grpo", dataset="alice/math", reward_funcs=["accuracy"], timeout="48h", **kw)
        result = submit_training(HubSession(hub.alice), cfg, dry_run=True)
        assert _checks(result)["dataset"]["status"] == "ok", _checks(result)["dataset"]
        return result["estimate"]["estimate"]

    short = grpo(num_generations=4, max_completion_length=128, per_device_train_batch_size=4,
                 gradient_accumulation_steps=1)  # fmt: skip
    assert any("GRPO: 4 completions per prompt" in n and "completions up to 128" in n for n in short["notes"])
    long = grpo(num_generations=8, max_completion_length=512, per_device_train_batch_size=8,
                gradient_accumulation_steps=1)  # fmt: skip
    assert any("GRPO: 8 completions per prompt" in n and "completions up to 512" in n for n in long["notes"])
    assert long["tokens"] > 3 * short["tokens"]  # twice the completions, each four times longer
    hours = {e["flavor"]: e["hours"] for e in short["flavors"]}
    assert all(e["hours"] > hours[e["flavor"]] for e in long["flavors"])


def test_advanced_beta_is_estimated_and_unmodelled_options_are_named(hub):
    def estimate_check(advanced, peft="full"):
        cfg = _cfg(method="grpo", dataset="alice/math", reward_funcs=["accuracy"], timeout="48h", peft=peft,
                   flavor="a100-large", per_device_train_batch_size=8, gradient_accumulation_steps=1,
                   gradient_checkpointing="on", advanced=advanced)  # fmt: skip
        result = submit_training(HubSession(hub.alice), cfg, dry_run=True)
        return _checks(result)["estimate"]["message"], result["estimate"]["estimate"]

    plain, without = estimate_check({})
    _, with_reference = estimate_check({"beta": 0.04})  # TRL 1.16 GRPO: beta > 0 loads a reference model
    peak = {e["flavor"]: e["peak_vram_gb"] for e in without["flavors"]}
    assert all(e["peak_vram_gb"] > peak[e["flavor"]] for e in with_reference["flavors"])
    assert "Not modelled" not in plain
    message, _ = estimate_check({"beta": 0.04, "optim": "adamw_8bit", "weight_decay": 0.01})
    assert message.endswith("Not modelled: optim (advanced).")


def test_quick_test_runs_few_steps_with_a_short_timeout(hub):
    result = submit_training(HubSession(hub.alice), _cfg(quick_test=True, timeout="30m"), dry_run=False)
    body = hub.requests_to("/api/jobs/alice", "POST")[0].json()
    args = arg_values(body["command"][4:])
    assert args["--max_steps"] == "20" and args["--max_train_samples"] == "200"
    assert result["submitted"]


def test_submit_training_api(hub, app_url):
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    cfg = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat", "flavor": "a10g-small"}
    dry = client.predict(cfg, True, api_name="/submit_training")
    assert dry["job_id"] is None and {c["status"] for c in dry["preflight"]} == {"ok"}, dry["preflight"]
    done = client.predict(cfg, False, api_name="/submit_training")
    assert done["job_id"] and done["url"] and done["output_repo"] == "alice/Qwen2.5-0.5B-sft"
    for key in ("job_id", "url", "flavor", "timeout", "command", "output_repo", "trackio_url", "preflight"):
        assert key in done
    with pytest.raises(Exception, match=r"Method \(method\) must be one of"):
        client.predict({**cfg, "method": "ppo"}, True, api_name="/submit_training")


def _grpo(dataset: str, **kw) -> TrainingConfig:
    base = {"method": "grpo", "dataset": dataset, "timeout": "48h", "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1}  # fmt: skip
    return _cfg(**{**base, **kw})


def test_grpo_accuracy_without_an_answer_column_is_refused_naming_the_mapping(hub):
    _failed(hub, hub.alice, _grpo("alice/prompts", reward_funcs=["accuracy"]), "rewards",
            "The 'accuracy' reward reads an 'answer' field and alice/prompts has none")  # fmt: skip
    with pytest.raises(PreflightFailed) as info:
        submit_training(HubSession(hub.alice), _grpo("alice/solutions", reward_funcs=["accuracy"]), dry_run=False)
    message = {c.name: c.message for c in info.value.failed}["rewards"]
    assert "column 'solution' looks like one" in message
    assert '"mapping": {"columns":{"answer":"solution"},"transforms":[]}' in message
    assert "Or choose rewards that read no field (think_format, length, overlong, repetition)" in message
    mapped = _grpo("alice/solutions", reward_funcs=["accuracy"], mapping={"columns": {"answer": "solution"}})
    result = submit_training(HubSession(hub.alice), mapped, dry_run=True)
    assert _checks(result)["rewards"] == {"name": "rewards", "status": "ok", "message": "Rewards: accuracy."}


@pytest.mark.parametrize(("dataset", "default"), [("alice/math", "accuracy"), ("alice/prompts", "length")])
def test_grpo_without_rewards_gets_the_default_for_its_data(hub, dataset, default):
    result = submit_training(HubSession(hub.alice), _grpo(dataset), dry_run=True)
    assert _checks(result)["rewards"]["status"] == "ok" and default in _checks(result)["rewards"]["message"]
    assert result["config"]["reward_funcs"] == [default]
    assert f"--reward_funcs={default}" in result["spec"]["command"]


def test_train_tab_default_reward_depends_on_the_dataset(hub):
    from types import SimpleNamespace

    from trainer_space.data.inspection import inspect_dataset
    from trainer_space.ui import _carry_dataset

    tab = SimpleNamespace(fields={k: k for k in TrainingConfig.model_fields})
    for dataset, mapping, expected in [
        ("alice/math", None, ["accuracy"]),
        ("alice/prompts", None, ["length"]),
        ("alice/solutions", None, ["length"]),
        ("alice/solutions", {"columns": {"answer": "solution"}, "transforms": []}, ["accuracy"]),
    ]:
        inspection = inspect_dataset(HubSession(hub.alice), dataset=dataset)
        out = _carry_dataset(tab, dataset, "default", "train", "grpo", mapping, "Qwen/Qwen2.5-0.5B", inspection)
        assert out["reward_funcs"] == expected, dataset


def _copy_runs(tmp_path, hub, text: str, *, shell: bool) -> None:
    """Run a copyable command (shell) or Python snippet next to a copy of train.py, as the visitor would."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    shutil.copy2(Path(__file__).resolve().parents[1] / "job_templates" / "train.py", tmp_path / "train.py")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "HF_TOKEN": hub.alice, "HF_ENDPOINT": hub.url, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("HF_HUB_DISABLE_IMPLICIT_TOKEN", None)  # the app's own setting; the visitor's shell has none
    argv = ["bash", "-c", text] if shell else [sys.executable, "-c", text]
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


def test_copyable_command_and_python_create_the_same_job_as_the_app(hub, tmp_path):
    """On a multi-GPU flavor: the `hf jobs run` command and the `run_job` snippet send the app's exact request
    (same command, script, GPU count, dependencies, config, labels and name), so they behave exactly like it."""
    cfg = _cfg(flavor="a10g-largex2", timeout="2h", max_cost_usd=10)
    result = submit_training(HubSession(hub.alice), cfg, dry_run=False)
    assert "TRAINER_SPACE_GPUS=2" in result["command"] and "--name train-sft-Qwen2-5-0-5B-sft" in result["command"]
    _copy_runs(tmp_path, hub, result["command"], shell=True)
    _copy_runs(tmp_path, hub, result["python"], shell=False)
    app, cli, snippet = (r.json() for r in hub.requests_to("/api/jobs/alice", "POST"))
    for copy in (cli, snippet):
        for key in ("dockerImage", "command", "arguments", "environment", "flavor", "timeoutSeconds", "labels"):
            assert copy.get(key) == app.get(key), key
        assert copy["secrets"] == app["secrets"] == {"HF_TOKEN": hub.alice}
    assert app["labels"]["name"] == "train-sft-Qwen2-5-0-5B-sft"
    assert app["environment"]["TRAINER_SPACE_GPUS"] == "2"
    assert "accelerate" not in app["command"][2]  # the script starts its processes itself, in its own environment


def test_blackwell_flavors_are_not_picked_and_refused_when_chosen(hub):
    """The job's torch (CUDA 12.6) has no kernels for RTX PRO 6000 GPUs: never recommended, refused when chosen."""
    from tests.hub_standin.state import DEFAULT_HARDWARE, hardware_json
    from trainer_space.hub import hardware

    cheap_blackwell = ("rtx-pro-6000", "1x RTX PRO 6000", "8 vCPU", "64 GB", ("RTX PRO 6000", 1, "96 GB"), 0.30)
    hub.state.hardware = hardware_json([*DEFAULT_HARDWARE, cheap_blackwell])
    hardware.clear_cache()
    try:
        auto = submit_training(HubSession(hub.alice), _cfg(flavor=None), dry_run=True)
        assert auto["flavor"] == "t4-small" and "hardware" not in _checks(auto)
        _failed(hub, hub.alice, _cfg(flavor="rtx-pro-6000", timeout="2h"), "hardware",
                "RTX PRO 6000 GPUs (compute capability 12.0), which the job's PyTorch build (CUDA 12.6")  # fmt: skip
    finally:
        hardware.clear_cache()


# ----------------------------------------------------------------------------- TRL's rules on the final config
# (data/trl_rules.py: the same rules the job checks again, right before its trainer is built)
def test_grpo_whose_eval_batch_does_not_fit_its_groups_is_refused_before_anything_is_paid(hub):
    """The issue's job: num_generations 16, batch 4 x accumulation 4, gsm8k's `test` split. TRL checked the config
    before the job turned evaluation on, and the job crashed at its first evaluation (step 100)."""
    hub.add_dataset("alice/gsm", {"train": MATH, "test": MATH[:5]}, num_rows={"train": 2000, "test": 5})
    issue = {"num_generations": 16, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4}
    _failed(hub, hub.alice, _grpo("alice/gsm", **issue), "training settings",
            "the job would crash at its first evaluation (step 100)")  # fmt: skip
    with pytest.raises(PreflightFailed) as info:
        submit_training(HubSession(hub.alice), _grpo("alice/gsm", **issue), dry_run=False)
    message = {c.name: c.message for c in info.value.failed}["training settings"]
    assert "eval batch (8 x 1 GPU(s))" in message and '"per_device_eval_batch_size": 16' in message
    assert "the dataset has a 'test' split" in message
    # an eval fraction turns evaluation on too
    _failed(hub, hub.alice, _grpo("alice/math", eval_split_fraction=0.1, **issue), "training settings",
            "eval_split_fraction=0.1")  # fmt: skip

    def settings(cfg: TrainingConfig) -> dict:
        return _checks(submit_training(HubSession(hub.alice), cfg, dry_run=True)).get("training settings", {})

    assert settings(_grpo("alice/gsm", **issue, advanced={"per_device_eval_batch_size": 16})) == {}  # the fix
    assert settings(_grpo("alice/gsm", **issue, flavor="a10g-largex2")) == {}  # 2 GPUs: a global eval batch of 16
    assert settings(_grpo("alice/math", **issue)) == {}  # no eval set: no evaluation


def test_grpo_with_fewer_prompts_than_one_generation_batch_is_refused(hub):
    """20 prompts, 8 x 8 completions per generation batch (32 prompts): 0 steps and an untrained model pushed."""
    cfg = _grpo("alice/math", num_generations=2, gradient_accumulation_steps=8)
    hub.add_dataset("alice/few", {"train": MATH})
    _failed(hub, hub.alice, _grpo("alice/few", num_generations=2, gradient_accumulation_steps=8),
            "training settings", "GRPO draws 32 different prompts per generation batch")  # fmt: skip
    result = submit_training(HubSession(hub.alice), cfg, dry_run=True)  # 2,000 rows
    assert "training settings" not in _checks(result)  # 2,000 rows: enough


def test_padding_free_packs_and_is_refused_only_without_packing(hub):
    """TRL 1.16 refuses padding-free without packing while max_length is set (the app always sets it)."""
    result = submit_training(HubSession(hub.alice), _cfg(advanced={"padding_free": True}), dry_run=True)
    check = _checks(result)["training settings"]
    assert check["status"] == "ok" and "packs the examples" in check["message"]
    _failed(hub, hub.alice, _cfg(packing="off", advanced={"padding_free": True}), "training settings",
            "padding_free without packing")  # fmt: skip
    dpo = _cfg(method="dpo", dataset="alice/pairs-dpo", advanced={"padding_free": True})
    hub.add_dataset("alice/pairs-dpo", {"train": [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "No."}] * 10})
    check = _checks(submit_training(HubSession(hub.alice), dpo, dry_run=True))["training settings"]
    assert check["status"] == "warn" and "changes nothing" in check["message"]  # TRL 1.16 ignores it for DPO


def test_reward_pairs_over_max_length_are_counted_and_refused_when_none_remain(hub):
    """The reward trainer drops (never truncates) pairs longer than max_length: said with the count, an error when
    every measured pair would go."""
    short = [{"prompt": f"Question {i}?", "chosen": "Yes.", "rejected": "No."} for i in range(10)]
    long = [{**r, "rejected": "No, " + "really not " * 30} for r in short]
    hub.add_dataset("alice/pairs", {"train": short + long})
    hub.add_dataset("alice/long-pairs", {"train": long})
    result = submit_training(HubSession(hub.alice), _cfg(method="reward", dataset="alice/pairs", max_length=32),
                             dry_run=True)  # fmt: skip
    check = _checks(result)["lengths"]
    assert check["status"] == "warn" and "10 of 20 pairs (50%) are too long for max_length=32" in check["message"]
    assert "drops a pair" in check["message"] and "not truncate" in check["message"]
    _failed(hub, hub.alice, _cfg(method="reward", dataset="alice/long-pairs", max_length=32), "lengths",
            "all 10 pairs are too long for max_length=32")  # fmt: skip


# ----------------------------------------------------------------------------- auto and speed settings (issue 24)
QWEN3_NEXT_LIKE = {**QWEN_05B, "model_type": "qwen3_next", "layer_types": ["linear_attention", "full_attention"] * 12}


def test_auto_settings_are_chosen_from_the_data_said_and_sent_to_the_job(hub):
    """Epochs, batch, accumulation and learning rate left empty: the rule's values, with why, in the pre-flight, the
    job's config and its arguments; gradient checkpointing off where the flavor holds the job without it."""
    result = submit_training(HubSession(hub.alice), _cfg(), dry_run=True)
    settings = _checks(result)["settings"]["message"]
    assert "auto: 3 epochs because 5,000 rows" in settings  # 15,000 examples seen: within 100 to 25,000
    assert "auto: learning rate 0.0002 (SFT, lora, 0.49B parameters)" in settings
    speed = _checks(result)["speed"]["message"]
    assert "Packing on: BFD packing, padding-free" in speed and "flash-attention 2" in speed  # an A10G is Ampere
    assert "Liger kernels on" in speed and "gradient checkpointing off: the job fits without it" in speed
    cfg = result["config"]
    assert cfg["num_train_epochs"] == 3 and cfg["learning_rate"] == 2e-4 and cfg["gradient_checkpointing"] == "off"
    assert cfg["packing"] == "auto" and cfg["use_liger_kernel"] == "auto"  # the job decides them on its own GPU
    args = arg_values(result["spec"]["command"])
    assert args.get("--gradient_checkpointing") == "false" and "--packing" not in args
    assert args["--per_device_train_batch_size"] == str(cfg["per_device_train_batch_size"])


def test_speed_settings_off_and_forced_reach_the_job(hub):
    result = submit_training(
        HubSession(hub.alice), _cfg(packing="off", use_liger_kernel="off", gradient_checkpointing=True), dry_run=True
    )
    speed = _checks(result)["speed"]["message"]
    assert "Packing off: turned off" in speed and "Liger kernels off: turned off" in speed
    assert "gradient checkpointing on (as you set it)" in speed
    args = arg_values(result["spec"]["command"])
    assert args["--packing"] == "false" and args["--use_liger_kernel"] == "false"
    assert args["--gradient_checkpointing"] == "true"


def test_a_linear_attention_model_keeps_the_padded_path_and_the_preflight_says_why(hub, tokenizer_files):
    safetensors = {"parameters": {"BF16": 494_032_768}, "total": 494_032_768}
    hub.add_model("alice/next-like", files={**tokenizer_files, "config.json": json.dumps(QWEN3_NEXT_LIKE)},
                  safetensors=safetensors)  # fmt: skip
    result = submit_training(HubSession(hub.alice), _cfg(model="alice/next-like"), dry_run=True)
    speed = _checks(result)["speed"]["message"]
    assert "Packing off: unsafe for this model: linear attention or recurrent layers" in speed, speed
    assert "mixing samples" in speed
