"""The typed API answers (ui/api_types.py) list exactly the keys the service answers carry."""

from __future__ import annotations

from typing import get_type_hints

from gradio_client import Client

from tests.conftest import add_qwen
from trainer_space.ui import api_types


def keys(typed) -> set[str]:
    return set(get_type_hints(typed))


def test_every_answer_has_exactly_the_keys_of_its_type(hub, app_url, tokenizer_files):
    add_qwen(hub, tokenizer_files)
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(8)]
    hub.add_dataset("alice/pairs", {"train": rows})
    hub.plan_next_job(lines=["step"] * 100, line_interval_s=0.5)
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    cfg = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/pairs", "quick_test": True}
    inspected = client.predict("alice/pairs", "train", "", "sft", api_name="/inspect_dataset")
    assert set(inspected) == keys(api_types.Inspection)
    assert set(inspected["methods"]["sft"]) == keys(api_types.MethodVerdict)
    estimate = client.predict("Qwen/Qwen2.5-0.5B", "alice/pairs", api_name="/estimate")
    assert set(estimate) == keys(api_types.Estimate)
    assert set(estimate["flavors"][0]) == keys(api_types.FlavorEstimate)
    assert set(estimate["cheapest_jobs_flavor"]) == keys(api_types.CheapestJobsFlavor)
    job = client.predict(cfg, False, api_name="/submit_training")
    assert set(job) == keys(api_types.TrainingSubmission)
    assert set(job["cost"]) == keys(api_types.Cost) and set(job["preflight"][0]) == keys(api_types.Check)
    listed = client.predict("", False, "", api_name="/list_jobs")
    assert set(listed) == keys(api_types.JobList) and set(listed["jobs"][0]) == keys(api_types.JobRow)
    status = client.predict(job["job_id"], api_name="/job_status")
    assert set(status) == keys(api_types.JobStatus)
    assert set(status["progress"]) == keys(api_types.JobProgress) and set(status["usage"]) == keys(api_types.JobUsage)
    versus = status["usage"]["vs_estimate"]
    assert set(versus) == keys(api_types.VersusEstimate) and set(versus["ratio"]) == keys(api_types.Ratios)
    assert set(versus["estimate"]) == keys(api_types.EstimateFigures)
    assert set(versus["measured"]) == keys(api_types.MeasuredFigures)
    accuracy = client.predict(api_name="/estimate_accuracy")
    assert set(accuracy) == keys(api_types.AccuracyAnswer) and set(accuracy["median_ratio"]) == keys(api_types.Ratios)
    assert set(client.predict(job["job_id"], 5, api_name="/job_logs")) == keys(api_types.LogTail)
    assert set(client.predict(job["job_id"], api_name="/cancel_job")) == keys(api_types.JobStage)
    compared = client.predict(job["job_id"], api_name="/base_vs_tuned")  # canceled: no file in its repo
    assert set(compared) == keys(api_types.BaseVsTunedAnswer) and compared["status"] == "none"
    export = client.predict("Qwen/Qwen2.5-0.5B", ["Q8_0"], api_name="/export_gguf")
    assert set(export) == keys(api_types.ExportSubmission)


def test_continue_and_stop_answers_have_exactly_the_keys_of_their_types(hub, app_url, tokenizer_files):
    add_qwen(hub, tokenizer_files)
    hub.add_dataset("alice/pairs", {"train": [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(8)]})
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    cfg = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/pairs", "flavor": "a10g-small"}
    hub.plan_next_job(lines=["step"] * 200, line_interval_s=0.5)
    running = client.predict(cfg, False, api_name="/submit_training")["job_id"]
    stop = client.predict(running, api_name="/stop_after_checkpoint")
    assert set(stop) == keys(api_types.StopAnswer) and stop["state"] == "waiting"
    client.predict(running, api_name="/cancel_job")
    hub.add_checkpoint("alice/Qwen2.5-0.5B-sft", step=3, max_steps=10)
    answer = client.predict(running, "", "", None, True, api_name="/continue_job")
    assert set(answer) == keys(api_types.ContinueAnswer) and answer["eligible"], answer["reason"]
    assert set(answer["checkpoint"]) == keys(api_types.ContinueCheckpoint)
    assert set(answer["cost"]) == keys(api_types.Cost)


def test_clients_see_each_answers_type(app_url):
    endpoints = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, typed in [("/inspect_dataset", api_types.Inspection), ("/submit_training", api_types.TrainingSubmission),
                        ("/list_jobs", api_types.JobList), ("/cancel_job", api_types.JobStage),
                        ("/job_status", api_types.JobStatus), ("/estimate", api_types.Estimate),
                        ("/estimate_accuracy", api_types.AccuracyAnswer), ("/continue_job", api_types.ContinueAnswer),
                        ("/stop_after_checkpoint", api_types.StopAnswer),
                        ("/base_vs_tuned", api_types.BaseVsTunedAnswer)]:  # fmt: skip
        (answer,) = endpoints[name]["returns"]
        assert set(answer["type"]["properties"]) == keys(typed), name
