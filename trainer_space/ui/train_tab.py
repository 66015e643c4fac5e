"""The "Train" tab: one config, pre-flight checks, the exact job previewed, then submitted."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import gradio as gr

from ..catalog import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DATASET,
    DEFAULT_FLAVOR,
    DEFAULT_GRAD_ACCUM,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MODEL,
    GRPO_REWARDS,
    LORA_ALPHA,
    LORA_DROPOUT,
    LORA_R,
    MAX_LENGTH_RANGE,
    METHOD_LABELS,
    METHODS,
    PEFT_MODES,
    preset,
)
from ..errors import InvalidInput
from ..hardware import FALLBACK_FLAVORS
from ..training import TrainingConfig, submit_training
from .common import checks_markdown, optional_token, session_for, ui_errors


@ui_errors
def submit_training_api(
    config: dict[str, Any] | str, dry_run: bool = True, oauth_token: gr.OAuthToken | None = None
) -> dict[str, Any]:
    """API: validate one training config, run the pre-flight checks and (unless dry_run) submit the job.

    Returns {"job_id", "url", "flavor", "timeout", "command", "output_repo", "trackio_url", "preflight", ...}.
    """
    action = "preview a training job" if dry_run else "start a training job"
    session = session_for(oauth_token, action)
    cfg = TrainingConfig.from_dict(config)
    return submit_training(session, cfg, dry_run=bool(dry_run))


def _config(v: dict[str, Any]) -> dict[str, Any]:
    """Tab values (by field name) -> the `/submit_training` config."""
    try:
        advanced = json.loads(v["advanced"]) if (v.get("advanced") or "").strip() else {}
    except json.JSONDecodeError:
        raise InvalidInput('Advanced options must be a JSON object, e.g. {"weight_decay": 0.01}.') from None
    mapping = v.get("mapping")
    return {
        "method": v["method"],
        "model": v["model"],
        "dataset": v["dataset"],
        "dataset_config": v.get("dataset_config") or None,
        "split": v.get("split") or "train",
        "mapping": mapping if isinstance(mapping, dict) and mapping.get("columns") else None,
        "peft": v["peft"],
        "lora_r": v["lora_r"],
        "lora_alpha": v["lora_alpha"],
        "lora_dropout": v["lora_dropout"],
        "learning_rate": v.get("learning_rate") or None,
        "num_train_epochs": v["num_train_epochs"],
        "max_steps": v.get("max_steps") or None,
        "per_device_train_batch_size": v["per_device_train_batch_size"],
        "gradient_accumulation_steps": v["gradient_accumulation_steps"],
        "max_length": v["max_length"],
        "gradient_checkpointing": v["gradient_checkpointing"],
        "eval_split_fraction": v["eval_split_fraction"],
        "reward_funcs": v.get("reward_funcs") or [],
        "output_repo": v.get("output_repo") or "",
        "private": v["private"],
        "trackio_space": v.get("trackio_space") or "",
        "trackio_project": v.get("trackio_project") or "",
        "flavor": v["flavor"],
        "timeout": v.get("timeout") or "2h",
        "quick_test": v["quick_test"],
        "fsdp": v["fsdp"],
        "resume_from_hub": bool(v.get("resume_from_hub")),
        "advanced": advanced,
    }


def _render(result: dict[str, Any]) -> str:
    lines = []
    if result.get("submitted"):
        lines += [
            f"### Submitted: [{result['job_id']}]({result['url']})",
            f"- Output repo (checkpoints and final model): [{result['output_repo']}]({result['output_url']})",
            f"- Metrics: [Trackio dashboard]({result['trackio_url']})",
            "- Follow the logs in **My jobs**.",
        ]
    else:
        blocked = any(c["status"] == "error" for c in result["preflight"])
        lines.append("### ✗ Fix the errors below before submitting" if blocked else "### Ready to submit")
    lines.append(f"Flavor **{result['flavor']}**, timeout **{result['timeout']}**, output **{result['output_repo']}**.")
    lines += checks_markdown(result["preflight"])
    return "\n".join(lines)


def _run(dry_run: bool, values: dict[str, Any], oauth_token: gr.OAuthToken | None):
    session = session_for(oauth_token, "preview a training job" if dry_run else "start a training job")
    cfg = TrainingConfig.from_dict(_config(values))
    # a failed check is shown next to the form rather than raised: the visitor fixes it there
    result = submit_training(session, cfg, dry_run=dry_run, raise_on_failed=False)
    return _render(result), result["command"], result["python"], result["spec"]


def build_tab(
    dataset_tab: SimpleNamespace | None = None, estimate_tab: SimpleNamespace | None = None
) -> SimpleNamespace:
    gr.Markdown(
        "Everything is checked before a job is created: your sign-in and its rights, the model and dataset "
        "(gated ones say so), the dataset's format for the method, the output repo, the memory estimate and the "
        "timeout. **Preview** shows the exact job; **Submit** creates it in your namespace."
    )
    with gr.Row():
        method = gr.Dropdown([(METHOD_LABELS[m], m) for m in METHODS], value="sft", label="Method")
        model = gr.Textbox(label="Model", value=DEFAULT_MODEL, scale=2)
        peft = gr.Radio(list(PEFT_MODES), value="lora", label="Fine-tuning")
    with gr.Row():
        dataset = gr.Textbox(label="Dataset", value=DEFAULT_DATASET, scale=2)
        dataset_config = gr.Textbox(label="Config", placeholder="default")
        split = gr.Textbox(label="Split", value="train")
    mapping = gr.JSON(label="Column mapping (from the Dataset tab; empty when the dataset is READY)", value={})
    with gr.Row():
        lr = gr.Number(label="Learning rate (0: preset for the method)", value=0)
        epochs = gr.Number(label="Epochs", value=1, minimum=0.01)
        max_steps = gr.Number(label="Max steps (0: use epochs)", value=0, precision=0, minimum=0)
        batch = gr.Number(label="Batch size per GPU", value=DEFAULT_BATCH_SIZE, precision=0, minimum=1)
        accum = gr.Number(label="Gradient accumulation", value=DEFAULT_GRAD_ACCUM, precision=0, minimum=1)
        max_length = gr.Number(
            label="max_length (tokens)", value=DEFAULT_MAX_LENGTH, precision=0, minimum=MAX_LENGTH_RANGE[0]
        )
    with gr.Row():
        grad_ckpt = gr.Checkbox(label="Gradient checkpointing", value=True)
        quick_test = gr.Checkbox(label="Quick test (20 steps on 200 rows) — a cheap first run", value=False)
        preset_btn = gr.Button("Preset for this method and model size", size="sm")
    with gr.Accordion("LoRA, evaluation, rewards", open=False):
        with gr.Row():
            lora_r = gr.Number(label="LoRA rank", value=LORA_R, precision=0)
            lora_alpha = gr.Number(label="LoRA alpha", value=LORA_ALPHA, precision=0)
            lora_dropout = gr.Number(label="LoRA dropout", value=LORA_DROPOUT)
            eval_fraction = gr.Slider(0, 0.5, value=0.0, step=0.01, label="Held-out eval fraction")
        rewards = gr.CheckboxGroup(list(GRPO_REWARDS), value=["accuracy"], label="GRPO reward functions")
    with gr.Row():
        output_repo = gr.Textbox(label="Output repo (default: <you>/<model>-<method>)", scale=2)
        private = gr.Checkbox(label="Private", value=True)
        trackio_space = gr.Textbox(label="Trackio Space (default: <you>/trackio)")
        trackio_project = gr.Textbox(label="Trackio project (default: repo name)")
    with gr.Row():
        flavor = gr.Dropdown(
            [f.name for f in FALLBACK_FLAVORS if f.is_gpu],
            value=DEFAULT_FLAVOR,
            label="Hardware",
            allow_custom_value=True,
        )
        timeout = gr.Textbox(label="Timeout (e.g. 90m, 2h)", value="2h")
        fsdp = gr.Checkbox(label="FSDP (shard the model across GPUs)", value=False)
        resume = gr.Checkbox(label="Resume from the output repo's last checkpoint", value=False)
    with gr.Accordion("Advanced: any TRL option", open=False):
        advanced = gr.Code(
            label='JSON object of extra TRL/transformers options, e.g. {"weight_decay": 0.01, "lr_scheduler_type": "cosine"}',
            language="json",
            value="{}",
        )
    with gr.Row():
        preview_btn = gr.Button("Preview", variant="secondary")
        submit_btn = gr.Button("Submit training job", variant="primary")
    result_md = gr.Markdown()
    with gr.Accordion("Reproduce without the app", open=False):
        command = gr.Code(label="hf CLI", language="shell")
        python = gr.Code(label="Python", language="python")
        spec = gr.JSON(label="Job spec (token shown as $HF_TOKEN)")

    fields_ = {
        "method": method, "model": model, "dataset": dataset, "dataset_config": dataset_config, "split": split,
        "mapping": mapping, "peft": peft, "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
        "learning_rate": lr, "num_train_epochs": epochs, "max_steps": max_steps, "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": accum, "max_length": max_length, "gradient_checkpointing": grad_ckpt,
        "eval_split_fraction": eval_fraction, "reward_funcs": rewards, "output_repo": output_repo, "private": private,
        "trackio_space": trackio_space, "trackio_project": trackio_project, "flavor": flavor, "timeout": timeout,
        "quick_test": quick_test, "fsdp": fsdp, "resume_from_hub": resume, "advanced": advanced,
    }  # fmt: skip
    by_component = {component: name for name, component in fields_.items()}
    outputs = [result_md, command, python, spec]

    @ui_errors
    def on_preview(data: dict, oauth_token: gr.OAuthToken | None = None):
        return _run(True, {by_component[c]: v for c, v in data.items()}, oauth_token)

    @ui_errors
    def on_submit(data: dict, oauth_token: gr.OAuthToken | None = None):
        return _run(False, {by_component[c]: v for c, v in data.items()}, oauth_token)

    preview_btn.click(on_preview, set(fields_.values()), outputs, api_visibility="private")
    # trigger_mode="once": clicks while a submission is pending are dropped, so a double click is one job
    submit_btn.click(on_submit, set(fields_.values()), outputs, api_visibility="private", trigger_mode="once")

    @ui_errors
    def apply_preset(method_v: str, model_v: str, oauth_token: gr.OAuthToken | None = None):
        """Starting hyperparameters for the method and the model's real size (from the Hub's metadata)."""
        from ..model_facts import get_model_facts

        params_b = get_model_facts(model_v, token=optional_token(oauth_token)).params / 1e9
        p = preset(method_v, params_b)
        note = f"Preset for {method_v} on a {params_b:.2f}B model: {p.peft}, lr {p.learning_rate:g}."
        return (p.peft, p.learning_rate, p.per_device_train_batch_size, p.gradient_accumulation_steps,
                p.max_length, p.gradient_checkpointing, note)  # fmt: skip

    preset_btn.click(
        apply_preset,
        [method, model],
        [peft, lr, batch, accum, max_length, grad_ckpt, result_md],
        api_visibility="private",
    )
    gr.api(submit_training_api, api_name="submit_training")
    return SimpleNamespace(
        method=method, model=model, dataset=dataset, dataset_config=dataset_config, split=split, mapping=mapping,
        peft=peft, batch=batch, accum=accum, max_length=max_length, grad_ckpt=grad_ckpt, epochs=epochs,
        flavor=flavor, timeout=timeout, result=result_md, output_repo=output_repo, resume=resume, lr=lr,
    )  # fmt: skip
