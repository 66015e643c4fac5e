"""The failure diagnosis: real-looking log tails -> one kind, one explanation, one action (pure, no Hub)."""

from __future__ import annotations

import pytest

from trainer_space.jobs.diagnosis import (
    RULES,
    bigger_gpu_flavor,
    bigger_ram_flavor,
    diagnose,
    find_failure,
    last_error_line,
)

TRAIN = {
    "trainer-space": "train",
    "method": "sft",
    "model": "Qwen/Qwen2.5-0.5B",
    "output": "alice/out",
    "trackio": "alice/trackio",
    "project": "out",
}
EXPORT = {"trainer-space": "export_gguf", "model": "alice/out", "output": "alice/out-GGUF"}
FAILED = "Job failed with exit code: 1"

CUDA_OOM = [
    "{'loss': 2.1873, 'grad_norm': 1.52, 'learning_rate': 1.9e-05, 'epoch': 0.03}",
    "  3%|▎         | 12/375 [00:41<20:49,  3.44s/it]",
    "Traceback (most recent call last):",
    '  File "/tmp/train.py", line 940, in <module>',
    "    main()",
    '  File "/tmp/train.py", line 912, in main',
    "    trainer.train()",
    '  File "/root/.cache/uv/archive-v0/x/lib/python3.12/site-packages/transformers/trainer.py", line 2328, in train',
    "    return inner_training_loop(",
    '  File "/root/.cache/uv/archive-v0/x/lib/python3.12/site-packages/torch/nn/modules/linear.py", line 125, in forward',
    "    return F.linear(input, self.weight, self.bias)",
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.16 GiB. GPU 0 has a total capacity of 14.58 GiB "
    "of which 913.56 MiB is free. Process 1 has 13.68 GiB memory in use. Of the allocated memory 12.93 GiB is "
    "allocated by PyTorch, and 620.39 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory "
    "is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation "
    "for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)",
]
FULL_FT_ARGS = {
    "method": "sft",
    "peft_mode": "full",
    "per_device_train_batch_size": "4",
    "gradient_accumulation_steps": "4",
    "gradient_checkpointing": "false",
    "max_length": "1024",
}
PUSH_403 = [
    "{'train_runtime': 301.2, 'train_loss': 1.71, 'epoch': 1.0}",
    "Traceback (most recent call last):",
    '  File "/root/.cache/uv/x/huggingface_hub/utils/_http.py", line 409, in hf_raise_for_status',
    "    response.raise_for_status()",
    "requests.exceptions.HTTPError: 403 Client Error: Forbidden for url: https://huggingface.co/api/repos/create",
    "The above exception was the direct cause of the following exception:",
    "huggingface_hub.errors.HfHubHTTPError: 403 Forbidden: You don't have the rights to create a model under the "
    'namespace "acme".',
    "Cannot access content at: https://huggingface.co/api/repos/create.",
    "Make sure your token has the correct permissions.",
]
GATED = [
    "Loading model meta-llama/Llama-3.2-1B",
    "huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6752)",
    "Cannot access gated repo for url https://huggingface.co/meta-llama/Llama-3.2-1B/resolve/main/config.json.",
    "Access to model meta-llama/Llama-3.2-1B is restricted. You must have access to it and be authenticated to "
    "access it. Please log in.",
    "The above exception was the direct cause of the following exception:",
    "OSError: You are trying to access a gated repo.",
    "Make sure to have access to it at https://huggingface.co/meta-llama/Llama-3.2-1B.",
]
CHAT_TEMPLATE = [
    '  File "/usr/local/lib/python3.12/site-packages/transformers/tokenization_utils_base.py", line 1640, in '
    "get_chat_template",
    "    raise ValueError(",
    "ValueError: Cannot use chat template functions because tokenizer.chat_template is not set and no template "
    "argument was passed! For information about writing templates and setting the tokenizer.chat_template attribute, "
    "please see the documentation at https://huggingface.co/docs/transformers/main/en/chat_templating",
]
PRE_TOKENIZER = [
    "INFO:hf-to-gguf:Set model tokenizer",
    "WARNING:hf-to-gguf:**************************************************************************************",
    "WARNING:hf-to-gguf:** WARNING: The BPE pre-tokenizer was not recognized!",
    "WARNING:hf-to-gguf:**          chkhsh:  1baddeb572cd9de2a6d36f2ad0c361490bf5447dafca20afbac625e9d37f18a5",
    "NotImplementedError: BPE pre-tokenizer was not recognized - update get_vocab_base_pre()",
    "ERROR: llama.cpp does not recognise this tokenizer's pre-tokenizer (hash 1baddeb572cd9de2a6d36f2ad0c361490bf5447"
    "dafca20afbac625e9d37f18a5). Either the model family is newer than the pinned llama.cpp release, ...",
]


@pytest.mark.parametrize(
    ("stage", "message", "lines", "labels", "kind", "evidence"),
    [
        pytest.param("ERROR", FAILED, CUDA_OOM, TRAIN, "oom", "torch.OutOfMemoryError", id="cuda-oom-traceback"),
        pytest.param(
            "ERROR",
            FAILED,
            ["[rank0]: torch.OutOfMemoryError: CUDA out of memory."],
            TRAIN,
            "oom",
            "[rank0]",
            id="oom-under-accelerate",
        ),
        pytest.param(
            "ERROR",
            FAILED,
            ["\x1b[31mRuntimeError: CUDA out of memory.\x1b[0m"],
            TRAIN,
            "oom",
            "RuntimeError: CUDA out of memory.",
            id="oom-with-colours",
        ),
        pytest.param(
            "ERROR", "Job timeout exceeded (3600s)", ["step 900/2000"], TRAIN, "timeout", "3600s", id="jobs-timeout"
        ),
        pytest.param(
            "ERROR",
            FAILED,
            ["rpc error: code = DeadlineExceeded desc = context deadline exceeded"],
            TRAIN,
            "timeout",
            "DeadlineExceeded",
            id="deadline-exceeded-log",
        ),
        pytest.param("ERROR", FAILED, PUSH_403, TRAIN, "auth", "403", id="403-on-push"),
        pytest.param(
            "ERROR",
            FAILED,
            [
                "ERROR: the Hugging Face token was refused or the Hub is unreachable: 401 "
                "Client Error: Unauthorized. Invalid credentials in Authorization header"
            ],
            TRAIN,
            "auth",
            "token was refused",
            id="401-token-refused",
        ),
        pytest.param("ERROR", FAILED, GATED, TRAIN, "gated", "gated repo", id="gated-model"),
        pytest.param(
            "ERROR",
            FAILED,
            [
                "Traceback (most recent call last):",
                '  File "/tmp/train.py", line 3',
                "ModuleNotFoundError: No module named 'flash_attn'",
            ],
            TRAIN,
            "missing_package",
            "flash_attn",
            id="no-flash-attn",
        ),
        pytest.param(
            "ERROR",
            FAILED,
            ["ImportError: LlamaTokenizer requires the protobuf library but it was not found in your environment."],
            TRAIN,
            "missing_package",
            "protobuf",
            id="needs-protobuf",
        ),
        pytest.param(
            "ERROR", FAILED, CHAT_TEMPLATE, TRAIN, "chat_template", "chat_template is not set", id="no-chat-template"
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 2",
            [
                "Loading dataset trl-lib/Capybara",
                "ERROR: column 'prompt' not found in dataset; columns are ['messages']",
            ],
            TRAIN,
            "dataset_columns",
            "column 'prompt'",
            id="our-template-column",
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 2",
            [
                "ERROR: dataset mapping does not fit the data: "
                "prompt <- question. Dataset columns: ['instruction', 'output']"
            ],
            TRAIN,
            "dataset_columns",
            "mapping",
            id="our-template-mapping",
        ),
        pytest.param(
            "ERROR",
            FAILED,
            ['  File "/tmp/train.py", line 300, in map_example', "KeyError: 'text'"],
            TRAIN,
            "dataset_columns",
            "KeyError: 'text'",
            id="keyerror-column",
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 2",
            ["ERROR: QLoRA needs a CUDA GPU (bitsandbytes 4-bit): use --peft_mode lora on CPU, or a GPU flavor"],
            TRAIN,
            "qlora_unavailable",
            "QLoRA",
            id="qlora-on-cpu",
        ),
        pytest.param(
            "ERROR",
            FAILED,
            ["OSError: [Errno 28] No space left on device: '/tmp/output/checkpoint-500/model.safetensors'"],
            TRAIN,
            "disk_full",
            "No space left",
            id="disk-full-train",
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 2",
            [
                "16-bit model: 15.0 GB; disk needed ~48.0 GB",
                "ERROR: out of disk space while converting: pick a CPU flavor with more disk",
            ],
            EXPORT,
            "disk_full",
            "out of disk space",
            id="disk-full-export",
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 2",
            PRE_TOKENIZER,
            EXPORT,
            "gguf_pre_tokenizer",
            "pre-tokenizer",
            id="gguf-pre-tokenizer",
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 1",
            [
                "INFO:hf-to-gguf:Loading model: out",
                "ERROR:hf-to-gguf:Model Gemma3ForConditionalGeneration is not supported",
            ],
            EXPORT,
            "gguf_unsupported_architecture",
            "Gemma3ForConditionalGeneration",
            id="gguf-arch",
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 1",
            ["NotImplementedError: Architecture 'FooForCausalLM' not supported!"],
            EXPORT,
            "gguf_unsupported_architecture",
            "FooForCausalLM",
            id="gguf-arch-notimplemented",
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 2",
            ["ERROR: the converter was killed (out of memory?): pick a CPU flavor with more RAM"],
            EXPORT,
            "ram_oom",
            "killed",
            id="export-killed",
        ),
        pytest.param(
            "ERROR", "Job failed with exit code: 137", ["Merging adapter"], TRAIN, "ram_oom", "137", id="exit-137"
        ),
        pytest.param(
            "ERROR",
            FAILED,
            [
                "huggingface_hub.errors.HfHubHTTPError: 402 Client Error: Payment Required "
                "for url: https://huggingface.co/api/spaces/alice/trackio/hardware"
            ],
            TRAIN,
            "payment",
            "402",
            id="payment",
        ),
        pytest.param(
            "ERROR",
            FAILED,
            [
                "ValueError: The checkpoint you are trying to load has model type `qwen9` but "
                "Transformers does not recognize this architecture."
            ],
            TRAIN,
            "unknown_model_type",
            "qwen9",
            id="unknown-model-type",
        ),
        pytest.param(
            "ERROR",
            FAILED,
            [
                "step 1",
                "Traceback (most recent call last):",
                "RuntimeError: expected scalar type Float but found Half",
                "  (cleanup)",
            ],
            TRAIN,
            "error",
            "RuntimeError: expected scalar type",
            id="generic-traceback",
        ),
        pytest.param(
            "ERROR",
            "Job failed with exit code: 2",
            ["ERROR: no dataset: pass --dataset_name"],
            TRAIN,
            "error",
            "ERROR: no dataset",
            id="generic-template-error",
        ),
        pytest.param(
            "ERROR",
            FAILED,
            ["requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='cdn'): Read timed out."],
            TRAIN,
            "error",
            "ReadTimeout",
            id="network-timeout-is-not-a-jobs-timeout",
        ),
        pytest.param(
            "ERROR",
            "Preparing the job's Python environment failed: no network to pypi.org (pip could not connect). To fix "
            "it: let pip reach a package index, or set TRAINER_SPACE_LOCAL_PYTHON to a Python that already has them.",
            ["Looking in indexes: https://pypi.org/simple", "ERROR: No matching distribution found for trl==1.16.0"],
            TRAIN,
            "environment",
            "no network to pypi.org",
            id="local-environment",
        ),
        pytest.param(
            "ERROR",
            "The app stopped while this job was running; it was stopped when the app started again. It pushed "
            "nothing and saved no checkpoint in its folder: submit it again to start over.",
            ["Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'."],
            TRAIN,
            "interrupted",
            "The app stopped",
            id="restart-of-the-app",
        ),
    ],
)
def test_each_failure_gets_its_kind(stage, message, lines, labels, kind, evidence):
    d = diagnose(stage, message, lines, labels, flavor="t4-small")
    assert d is not None
    assert d.kind == kind, d
    assert evidence in d.evidence
    assert d.title and d.explanation and d.action


def test_every_rule_kind_is_tested():
    tested = {"oom", "timeout", "auth", "gated", "missing_package", "chat_template", "dataset_columns"}
    tested |= {"qlora_unavailable", "disk_full", "gguf_pre_tokenizer", "gguf_unsupported_architecture", "ram_oom"}
    tested |= {"payment", "unknown_model_type", "environment", "interrupted"}
    assert {r.kind for r in RULES} == tested


@pytest.mark.parametrize("stage", ["COMPLETED", "RUNNING", "SCHEDULING", "DELETED"])
def test_no_diagnosis_unless_it_failed_or_was_canceled(stage):
    assert diagnose(stage, None, CUDA_OOM, TRAIN) is None


def test_canceled_is_a_note_without_action():
    d = diagnose("CANCELED", "Job canceled by user", ["step 3"], TRAIN)
    assert d.kind == "canceled" and d.action == "" and d.action_hint == {}
    assert "alice/out" in d.explanation  # pushed checkpoints stay


LOCAL = {"trainer-space": "train", "method": "sft", "model": "/data/tiny"}  # a local job that pushes nothing
LOCAL_ARGS = {"output_dir": "/home/me/.cache/trainer-space/jobs/abc/output", "push_to_hub": "false"}


def test_a_local_job_is_told_in_its_own_words():
    """No billing, no Hub, no Hugging Face Jobs for a job on this machine that pushed nothing: its folder instead."""
    d = diagnose("CANCELED", "Canceled", ["step 3"], LOCAL, flavor="local", args=LOCAL_ARGS, backend="local")
    assert "billing" not in d.explanation and "Hub" not in d.explanation
    assert "its processes on this machine were stopped" in d.explanation and LOCAL_ARGS["output_dir"] in d.explanation
    d = diagnose("ERROR", "Job timeout exceeded (600s)", [], LOCAL, flavor="local", args=LOCAL_ARGS, backend="local")
    assert d.kind == "timeout" and "resume_from_hub" not in d.action_hint and d.action_hint["timeout_s"] == 900
    assert "Hugging Face Jobs" not in d.explanation and LOCAL_ARGS["output_dir"] in d.explanation
    assert "Continue… in My jobs" in d.action and "resume_from_hub" not in d.action
    pushed = diagnose("ERROR", "Job timeout exceeded (600s)", [], TRAIN, flavor="local", backend="local")
    assert pushed.action_hint["resume_from_hub"] is True  # a local job that pushed: from the Hub


def test_an_interrupted_local_job_is_told_what_is_true():
    from trainer_space.jobs.backends.local import interrupted_message

    row = {"kind": "train", "job_dir": "/nowhere/jobs/abc", "labels": "{}", "command": '["train.py", "--max_steps=9"]'}
    message = interrupted_message(row)
    assert "pushed nothing and saved no checkpoint" in message and "resume_from_hub" not in message
    d = diagnose("ERROR", message, ["Failed to load CPU gemm_4bit_forward from kernels-community: No module named "
                                    "'kernels'."], LOCAL, flavor="local", backend="local")  # fmt: skip
    assert d.kind == "interrupted" and "resume_from_hub" not in d.action_hint and "start over" in d.action
    pushing = {**row, "labels": '{"output": "alice/out"}', "command": '["train.py", "--push_to_hub=true"]'}
    d = diagnose("ERROR", interrupted_message(pushing), [], TRAIN, flavor="local", backend="local")
    assert d.action_hint == {"resume_from_hub": True} and "alice/out" in d.action


def test_the_cancel_question_is_true_for_the_backend():
    from trainer_space.jobs.monitor import cancel_prompt

    hub_job = cancel_prompt("j1", backend="hf-jobs", output_repo="alice/out")
    assert "Billing stops" in hub_job and "alice/out stay on the Hub" in hub_job
    here = cancel_prompt("j2", backend="local", output_dir="/home/me/jobs/j2/output")
    assert "billing" not in here.lower().replace("nothing is billed", "") and "Hub" not in here
    assert "/home/me/jobs/j2/output" in here and "processes on this machine" in here


def test_oom_proposes_concrete_fixes_from_the_jobs_settings():
    d = diagnose("ERROR", FAILED, CUDA_OOM, TRAIN, flavor="t4-small", args=FULL_FT_ARGS)
    assert d.action_hint == {
        "peft": "lora",
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 8,
        "gradient_checkpointing": True,
        "flavor": "l4x1",
    }
    for words in ("switch to LoRA", "(4 → 2)", "(4 → 8)", "gradient checkpointing", "l4x1", "Qwen/Qwen2.5-0.5B"):
        assert words in d.action
    assert "1.16 GiB" in d.explanation and "T4" in d.explanation


def test_oom_with_lora_batch_1_and_checkpointing_on_the_biggest_gpu():
    args = {"peft_mode": "lora", "per_device_train_batch_size": "1", "gradient_checkpointing": "true",
            "max_length": "4096"}  # fmt: skip
    d = diagnose("ERROR", FAILED, CUDA_OOM, TRAIN, flavor="h200", args=args)
    assert d.action_hint == {"peft": "qlora", "max_length": 2048}
    assert "FSDP" in d.action and "gradient checkpointing" not in d.action


def test_oom_without_known_settings_still_names_the_four_fixes():
    d = diagnose("ERROR", FAILED, CUDA_OOM, {"trainer-space": "train"}, flavor="a10g-large")
    assert "switch to LoRA" in d.action and "halve per_device_train_batch_size" in d.action
    assert d.action_hint["flavor"] == "l40sx1"


def test_timeout_offers_resume_from_the_hub():
    d = diagnose("ERROR", "Job timeout exceeded (3600s)", ["{'loss': 1.2}"], TRAIN)
    assert d.action.startswith("Continue… in My jobs (or /continue_job) starts a new job from the last checkpoint")
    assert "resubmit with a longer timeout (the estimate plus 30%) and `resume_from_hub`" in d.action
    assert d.action_hint == {"previous_timeout_s": 3600, "timeout_s": 5400, "resume_from_hub": True,
                             "output_repo": "alice/out"}  # fmt: skip


def test_timeout_of_an_export_has_no_resume():
    d = diagnose("ERROR", "Job timeout exceeded (2700s)", [], EXPORT)
    assert d.kind == "timeout" and "resume_from_hub" not in d.action_hint


def test_final_error_wins_over_an_earlier_harmless_one():
    lines = ["trackio: 403 Forbidden when creating the Space, logging locally", *CUDA_OOM]
    assert diagnose("ERROR", FAILED, lines, TRAIN).kind == "oom"
    lines = ["KeyError: 'foo' (handled)", "ERROR: QLoRA needs the bitsandbytes package, which is not installed"]
    assert diagnose("ERROR", FAILED, lines, TRAIN).kind == "qlora_unavailable"


KERNELS_NOTE = (
    "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. Please make sure you "
    "already `pip install kernels` and the kernels >= 0.11.1"
)  # bitsandbytes on a CPU, in every local job's log: harmless


def test_a_harmless_note_is_never_the_cause_but_a_real_failure_beside_it_is():
    lines = [KERNELS_NOTE, "{'loss': 2.1}", "Killed"]
    d = diagnose("ERROR", "Job failed with exit code: 137", lines, TRAIN, flavor="local")
    assert d.kind == "ram_oom"
    assert diagnose("ERROR", FAILED, [KERNELS_NOTE, "{'loss': 2.1}"], TRAIN).kind == "error"
    real = [KERNELS_NOTE, "Traceback (most recent call last):", "ModuleNotFoundError: No module named 'liger_kernel'"]
    assert diagnose("ERROR", FAILED, real, TRAIN).action_hint == {"package": "liger-kernel"}


def test_gated_names_the_repo_to_request():
    d = diagnose("ERROR", FAILED, GATED, TRAIN, endpoint="https://hub.example")
    assert d.action_hint == {"repo_id": "meta-llama/Llama-3.2-1B", "url": "https://hub.example/meta-llama/Llama-3.2-1B"}


def test_dataset_error_points_to_the_dataset_tab():
    lines = ["ERROR: column 'prompt' not found in dataset"]
    d = diagnose("ERROR", FAILED, lines, TRAIN, args={"dataset_name": "trl-lib/Capybara"})
    assert d.action_hint == {"tab": "dataset", "dataset": "trl-lib/Capybara", "column": "prompt"}


def test_pre_tokenizer_hash_is_kept_and_missing_package_names_pip_package():
    d = diagnose("ERROR", FAILED, PRE_TOKENIZER, EXPORT)
    assert d.action_hint["chkhsh"].startswith("1baddeb5")
    d = diagnose("ERROR", FAILED, ["ModuleNotFoundError: No module named 'yaml'"], TRAIN)
    assert d.action_hint == {"package": "pyyaml"}
    d = diagnose("ERROR", FAILED, ["ModuleNotFoundError: No module named 'flash_attn'"], TRAIN)
    assert d.action_hint["attn_implementation"] == "sdpa"


def test_error_without_logs_explains_with_the_status_message():
    d = diagnose("ERROR", "Job failed with exit code: 3", [], None)
    assert d.kind == "error" and d.title == "Failed (exit code 3)" and "exit code: 3" in d.explanation


def test_last_error_line_and_flavor_ladders():
    assert last_error_line(["ok", "ERROR: a", "ValueError: b", "done"]) == "ValueError: b"
    assert last_error_line(["nothing wrong"]) is None
    assert last_error_line(["Traceback (most recent call last):", '  File "x.py"', "foo.Boom: bad", "bye"]) == (
        "foo.Boom: bad"
    )
    ladder = {f: getattr(bigger_gpu_flavor(f), "name", None) for f in ("t4-small", "a10g-small", "a100-large", "h200")}
    assert ladder == {"t4-small": "l4x1", "a10g-small": "l40sx1", "a100-large": "h200", "h200": None}
    assert bigger_ram_flavor("cpu-upgrade").name == "cpu-performance"


def test_to_json_has_the_api_fields():
    data = diagnose("ERROR", "Job timeout exceeded (60s)", [], TRAIN).to_json()
    assert {"kind", "title", "explanation", "action", "action_hint"} <= set(data)


# ---------------------------------------------------------------------------------------------- precision
@pytest.mark.after_jobs
def test_no_failure_is_found_in_the_log_of_any_successful_job(request, tmp_path_factory):
    """Precision, beside the recall tests above: the diagnosis over the whole log of every successful job the suite
    ran (template runs in tests/templates, local jobs in tests/test_local*.py) and over the real logs kept in
    tests/successful_job_logs/ finds no failure. As the log of a job a restart of the app interrupted, or of one
    that failed without saying why, it says that and nothing else."""
    import os
    from pathlib import Path

    from tests.job_logs import completed_local_logs, corpus_logs, template_logs

    live = template_logs() | completed_local_logs(
        tmp_path_factory.getbasetemp(), Path(os.environ["TRAINER_SPACE_HOME"])
    )
    ran_jobs = [i for i in request.session.items if "templates" in i.nodeid or "test_local" in i.nodeid]
    assert live or not ran_jobs, "jobs ran but none of their logs was collected (tests/job_logs.py)"
    logs = corpus_logs() | live
    assert len(corpus_logs()) >= 3
    blamed = {}
    for name, text in logs.items():
        lines = text.splitlines()
        found = find_failure(lines, labels=TRAIN, flavor="local")
        if found is not None:
            blamed[name] = f"{found.kind}: {found.evidence}"
            continue
        restart = "The app stopped while this job was running; it was stopped when the app started again. It pushed " \
                  "nothing and saved no checkpoint in its folder: submit it again to start over."  # fmt: skip
        assert diagnose("ERROR", restart, lines[-200:], TRAIN, flavor="local").kind == "interrupted", name
        generic = diagnose("ERROR", FAILED, lines[-200:], TRAIN, flavor="local")
        assert generic.kind == "error", name
    assert not blamed, f"{len(blamed)} of {len(logs)} successful logs blamed: {blamed}"
