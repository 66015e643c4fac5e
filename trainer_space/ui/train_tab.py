"""The "Train" tab: one config, pre-flight checks, the exact job previewed, then submitted.

Every form field is a `TrainingConfig` field (`TrainTab.fields`): the form becomes a config with `config()`,
and a config (a failed job's, with its fix) fills the form with `form_values()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..catalog import (
    DEFAULT_DATASET,
    DEFAULT_FLAVOR,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MODEL,
    GRPO_MAX_COMPLETION_LENGTH,
    GRPO_NUM_GENERATIONS,
    LORA_ALPHA,
    LORA_DROPOUT,
    LORA_R,
    MAX_LENGTH_RANGE,
    METHODS,
    PEFT_MODES,
    preset,
)
from ..data.mapping import REWARD_FUNCS
from ..errors import InvalidInput
from ..estimate.model_facts import get_model_facts
from ..estimate.speed_rules import CHECKPOINTING_MODES, SPEED_MODES
from ..hub.hardware import FALLBACK_FLAVORS, LOCAL_FLAVOR
from ..jobs.backends import BACKEND_LABELS, HF_JOBS, LOCAL
from ..jobs.config import COMPARE_MAX_PROMPT_CHARS, COMPARE_MAX_PROMPTS, TrainingConfig
from ..jobs.training import TEMPLATE, Submission, submit_training
from ..settings import get_settings
from .common import (
    Confirmation,
    checks_markdown,
    concurrency,
    confirmation_row,
    reader_for,
    steps_to,
    template_download,
    ui_errors,
    while_busy,
    wire_push_choice,
)

NEXT_STEP = (
    "**Next:** follow the job in **My jobs** (logs, GPU use, cost so far); when it has finished, turn the model "
    "into GGUF files for llama.cpp and Ollama in **GGUF export**."
)
# number fields whose 0 means "auto" (the plan chooses them from the data: see the pre-flight's "settings" line)
AUTO_NUMBERS = ("num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps")
# config fields that the confirmation step sets, not the form
CONFIRMATION_FIELDS = frozenset({"allow_many_running", "idempotency_key"})


def result_markdown(sub: Submission) -> str:
    cfg, lines = sub.plan.config, []
    if sub.job is not None and cfg.is_local:
        lines += [
            f"### Submitted to this machine: job `{sub.job.id}`",
            f"- Outputs: `{sub.to_json()['output_dir']}`" + (f" and {cfg.output_repo}" if cfg.push_to_hub else ""),
            "- Follow the logs in **My jobs**.",
        ]
    elif sub.job is not None:
        already = sub.how is not None and sub.how.outcome == "existing"
        lines += [
            f"### {'Already submitted' if already else 'Submitted'}: [{sub.job.id}]({sub.job.url})",
            *([f"- {sub.how.note}"] if sub.how is not None and sub.how.note else []),
            f"- Output repo (checkpoints and final model): {cfg.output_repo}",
            "- Follow the logs in **My jobs**.",
        ]
    else:
        lines.append("### ✗ Fix the errors below before submitting" if sub.plan.failed else "### Ready to submit")
    output = cfg.output_repo if cfg.push_to_hub else "a folder on this machine"
    if cfg.is_local:
        lines.append(f"Runs on this machine (free), timeout **{cfg.timeout}**, output **{output}**.")
    else:
        lines.append(
            f"Flavor **{cfg.flavor}**, timeout **{cfg.timeout}**, output **{output}**; "
            f"worst case **${sub.plan.cost.worst_usd:,.2f}** (cap ${sub.plan.cost.cap_usd:,.2f})."
        )
    lines += checks_markdown(sub.plan.checks)
    return "\n".join(lines)


@dataclass
class TrainTab:
    fields: dict[str, gr.components.Component]  # TrainingConfig field name -> its form component
    preset_button: gr.Button
    preview_button: gr.Button
    submit_button: gr.Button
    result: gr.Markdown
    command: gr.Code
    python: gr.Code
    spec: gr.JSON
    confirm: Confirmation
    watch_button: gr.Button  # "Watch it in My jobs", once a job was created
    job_id: gr.State  # the job created last (for My jobs)

    def config(self, values: dict[Any, Any]) -> TrainingConfig:
        """The form's values (by component) as a validated config."""
        data = {name: values[c] for name, c in self.fields.items()}
        advanced = (data.get("advanced") or "").strip()
        try:
            data["advanced"] = json.loads(advanced) if advanced else {}
        except (ValueError, RecursionError):  # not JSON, a number of more than 4,300 digits, nested too deeply
            raise InvalidInput('Advanced options must be a JSON object, e.g. {"weight_decay": 0.01}.') from None
        mapping = data.get("mapping")  # a transforms-only mapping (e.g. unpair_preference) counts too
        data["mapping"] = (
            mapping if isinstance(mapping, dict) and (mapping.get("columns") or mapping.get("transforms")) else None
        )
        return TrainingConfig.from_dict(data)

    def form_values(self, cfg: TrainingConfig) -> dict[Any, Any]:
        """The form filled with a config: every field, so nothing of a previous form survives."""
        data = cfg.to_json()
        data |= {
            "mapping": data["mapping"] or {},
            "advanced": json.dumps(data["advanced"]) if data["advanced"] else "{}",
            "learning_rate": data["learning_rate"] or 0,  # the form's "0: auto"
            **{k: data[k] or 0 for k in AUTO_NUMBERS},  # "0: auto"
            "max_steps": data["max_steps"] or 0,
            "max_cost_usd": data["max_cost_usd"] or 0,  # the form's "0: from the estimate"
            "compare_prompts": "\n".join(data["compare_prompts"]),  # one per line
        }
        return {c: "" if data[name] is None else data[name] for name, c in self.fields.items()}

    def _run(self, dry_run: bool, values: dict[Any, Any], oauth_token: gr.OAuthToken | None) -> dict[Any, Any]:
        # sign-in is checked by the plan: needed for Jobs, and for a local job only when it pushes to the Hub
        session = reader_for(oauth_token)
        # a failed check is shown next to the form rather than raised: the visitor fixes it there
        sub = submit_training(session, self.config(values), dry_run=dry_run, raise_on_failed=False)
        return self._outputs(sub)

    def on_preview(
        self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        with steps_to(progress):
            return self._run(True, values, oauth_token)

    def on_submit(
        self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        """Step one of Submit: on Jobs, the checks and, when they pass, the worst-case cost to confirm (nothing
        created); on this machine (free), the job itself."""
        with steps_to(progress):
            cfg = self.config(values)
            if cfg.is_local:
                return self._run(False, values, oauth_token) | self.confirm.done()
            sub = submit_training(reader_for(oauth_token), cfg, dry_run=True)
            return self._outputs(sub) | self.confirm.ask("training job", sub.plan)

    def on_confirm(
        self, pending: dict | None, oauth_token: gr.OAuthToken | None = None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        """Step two: create the job the visitor confirmed (once: the same submission key returns the same job)."""
        cfg = TrainingConfig.from_dict(self.confirm.confirmed(pending, "Submit"))
        with steps_to(progress):
            sub = submit_training(reader_for(oauth_token), cfg, dry_run=False, raise_on_failed=False)
        return self._outputs(sub) | self.confirm.done()

    def _outputs(self, sub: Submission) -> dict[Any, Any]:
        job = sub.job.id if sub.job is not None else None
        return {self.result: result_markdown(sub), self.command: sub.plan.command, self.python: sub.plan.python,
                self.spec: sub.plan.spec(), self.job_id: job,
                self.watch_button: gr.update(visible=job is not None)}  # fmt: skip

    def on_preset(
        self, method: str, model: str, oauth_token: gr.OAuthToken | None = None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        """Starting hyperparameters for the method and the model's real size (from the Hub's metadata)."""
        with steps_to(progress):
            params_b = get_model_facts(reader_for(oauth_token), model).params / 1e9
        p = preset(method, params_b)
        f = self.fields
        return {
            f["peft"]: p.peft, f["learning_rate"]: p.learning_rate,
            f["per_device_train_batch_size"]: p.per_device_train_batch_size,
            f["gradient_accumulation_steps"]: p.gradient_accumulation_steps, f["max_length"]: p.max_length,
            f["gradient_checkpointing"]: "on" if p.gradient_checkpointing else "auto",
            self.result: f"Preset for {method} on a {params_b:.2f}B model: {p.peft}, lr {p.learning_rate:g}.",
        }  # fmt: skip


def _jobs_flavor(backend: str, flavor: str | None) -> Any:
    """Flavor and timeout when "Run on" changes: an estimate for this machine does not carry over to Jobs."""
    return ("", "") if backend == HF_JOBS and flavor == LOCAL_FLAVOR else gr.skip()


def build_tab() -> TrainTab:
    gr.Markdown(
        "Everything is checked before a job is created: your sign-in and its rights, the model and dataset "
        "(gated ones say so), the dataset's format for the method, the output repo, the memory estimate and the "
        "timeout, and what it can cost at most (timeout x price, under your cost cap). **Preview** shows the exact "
        "job; **Submit** shows its worst-case cost and creates it once you confirm."
    )
    settings = get_settings()
    backend = gr.Radio(
        [(BACKEND_LABELS[b], b) for b in (LOCAL, HF_JOBS)],
        value=settings.default_backend,
        label="Run on",
        visible=settings.local_enabled,  # on a Space: Hugging Face Jobs only
        info="This machine: free, outputs in a local folder (GPU if it has one, else CPU). Hugging Face Jobs: "
        "billed per minute to your account, outputs pushed to the Hub.",
    )
    with gr.Row():
        method = gr.Dropdown([(s.label, m) for m, s in METHODS.items()], value="sft", label="Method")
        model = gr.Textbox(label="Model (Hub id, or a model folder on this machine)", value=DEFAULT_MODEL, scale=2)
        peft = gr.Radio(list(PEFT_MODES), value="lora", label="Fine-tuning")
    with gr.Row():
        dataset = gr.Textbox(label="Dataset", value=DEFAULT_DATASET, scale=2,
                             placeholder="Hub id, or a .json/.jsonl/.csv/.parquet file or saved folder here")  # fmt: skip
        dataset_config = gr.Textbox(label="Config", placeholder="default")
        split = gr.Textbox(label="Split", value="train")
    mapping = gr.JSON(label="Column mapping (from the Dataset tab; empty when the dataset is READY)", value={})
    with gr.Row():
        lr = gr.Number(label="Learning rate (0: auto)", value=0)
        epochs = gr.Number(label="Epochs (0: auto)", value=0, minimum=0)
        max_steps = gr.Number(label="Max steps (0: use epochs)", value=0, precision=0, minimum=0)
        batch = gr.Number(label="Batch size per GPU (0: auto)", value=0, precision=0, minimum=0)
        accum = gr.Number(label="Gradient accumulation (0: auto)", value=0, precision=0, minimum=0)
        max_length = gr.Number(
            label="max_length (tokens)", value=DEFAULT_MAX_LENGTH, precision=0, minimum=MAX_LENGTH_RANGE[0]
        )
    with gr.Group(), gr.Row():  # Speed: auto = what the pre-flight's "speed" line says for this model and flavor
        packing = gr.Radio(list(SPEED_MODES), value="auto", label="Speed: packing (SFT, padding-free)")
        liger = gr.Radio(list(SPEED_MODES), value="auto", label="Speed: Liger kernels (GPU)")
        grad_ckpt = gr.Radio(list(CHECKPOINTING_MODES), value="auto", label="Speed: gradient checkpointing")
    gr.Markdown("*auto*: the settings and the speed options are chosen from the data, the model and the hardware; "
                "Preview says what each became and why.", elem_classes="hint")  # fmt: skip
    with gr.Row():
        quick_test = gr.Checkbox(label="Quick test (20 steps on 200 rows) — a cheap first run", value=False)
        preset_btn = gr.Button("Preset for this method and model size", size="sm")
    with gr.Accordion("LoRA, evaluation, rewards", open=False):
        with gr.Row():
            lora_r = gr.Number(label="LoRA rank", value=LORA_R, precision=0)
            lora_alpha = gr.Number(label="LoRA alpha", value=LORA_ALPHA, precision=0)
            lora_dropout = gr.Number(label="LoRA dropout", value=LORA_DROPOUT)
            eval_fraction = gr.Slider(0, 0.5, value=0.0, step=0.01, label="Held-out eval fraction")
        with gr.Row():
            rewards = gr.CheckboxGroup(
                list(REWARD_FUNCS), value=[], scale=2,
                label="GRPO reward functions (none: accuracy when the data has an answer column, else length)",
            )  # fmt: skip
            num_generations = gr.Number(label="GRPO: completions per prompt", value=GRPO_NUM_GENERATIONS, precision=0)
            max_completion = gr.Number(
                label="GRPO: tokens per completion", value=GRPO_MAX_COMPLETION_LENGTH, precision=0
            )
    with gr.Accordion("Base vs tuned: the same prompts before and after training", open=False):
        compare = gr.Checkbox(
            label="Compare base and tuned: the job answers a few held-out prompts of the dataset before and after "
            "training (and measures the eval loss, with an eval split); My jobs shows them side by side",
            value=True,
        )  # fmt: skip
        compare_prompts = gr.Textbox(
            label=f"Your own prompts, one per line (at most {COMPARE_MAX_PROMPTS}, "
            f"{COMPARE_MAX_PROMPT_CHARS} characters each)",
            lines=3, max_lines=COMPARE_MAX_PROMPTS + 1, elem_id="compare-prompts",
        )  # fmt: skip
    with gr.Row():
        output_repo = gr.Textbox(label="Output repo (default: <you>/<model>-<method>)", scale=2)
        push = gr.Checkbox(label="Push to the Hub", value=True)
        private = gr.Checkbox(label="Private", value=True)
        trackio_space = gr.Textbox(label="Trackio Space (default: <you>/trackio)")
        trackio_project = gr.Textbox(label="Trackio project (default: repo name)")
        namespace = gr.Textbox(label="Run the job in (default: your account; or an org)")
    with gr.Row():
        flavor = gr.Dropdown(
            [f.name for f in FALLBACK_FLAVORS if f.is_gpu], value=DEFAULT_FLAVOR,
            label="Hardware (empty: the cheapest flavor where it fits)",
            allow_custom_value=True,
        )  # fmt: skip
        timeout = gr.Textbox(label="Timeout (e.g. 90m, 2h)", value="", placeholder="empty: the estimate + 30%")
        fsdp = gr.Checkbox(label="FSDP (shard the model across GPUs)", value=False)
        resume = gr.Checkbox(label="Resume from the output repo's last checkpoint", value=False)
    with gr.Row():
        max_cost = gr.Number(label="Cost cap ($; 0: the worst case of the estimate + 30%)", value=0, minimum=0)
        allow_unfit = gr.Checkbox(label="Submit even if it does not fit (the estimate says out of memory)", value=False)
    with gr.Accordion("Advanced: more TRL options", open=False):
        advanced = gr.Code(
            label='JSON object of TRL options for the method, typed as TRL declares them, e.g. {"weight_decay": 0.01, '
            '"lr_scheduler_type": "cosine"}; the fields above, the output repo, the token and pushing are the app\'s',
            language="json",
            value="{}",
        )
    with gr.Row():
        preview_btn = gr.Button("Preview", variant="secondary")
        submit_btn = gr.Button("Submit training job", variant="primary")
    confirm = confirmation_row("submit")
    result_md = gr.Markdown(min_height=90, elem_id="train-result")  # room for the steps while an action runs
    watch = gr.Button("Watch it in My jobs →", variant="primary", visible=False, elem_id="watch-job")
    job_id = gr.State(None)
    with gr.Accordion("Reproduce without the app", open=False):
        template_download(TEMPLATE)
        command = gr.Code(label="hf CLI", language="shell", wrap_lines=True)
        python = gr.Code(label="Python", language="python", wrap_lines=True)
        spec = gr.JSON(label="Job spec (token shown as $HF_TOKEN)")

    fields = {
        "method": method, "model": model, "dataset": dataset, "dataset_config": dataset_config, "split": split,
        "mapping": mapping, "peft": peft, "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout,
        "learning_rate": lr, "num_train_epochs": epochs, "max_steps": max_steps, "per_device_train_batch_size": batch,
        "gradient_accumulation_steps": accum, "max_length": max_length, "gradient_checkpointing": grad_ckpt,
        "eval_split_fraction": eval_fraction, "reward_funcs": rewards, "output_repo": output_repo, "private": private,
        "trackio_space": trackio_space, "trackio_project": trackio_project, "flavor": flavor, "timeout": timeout,
        "quick_test": quick_test, "fsdp": fsdp, "resume_from_hub": resume, "advanced": advanced,
        "num_generations": num_generations, "max_completion_length": max_completion, "namespace": namespace,
        "backend": backend, "push_to_hub": push, "max_cost_usd": max_cost, "allow_unfit": allow_unfit,
        "packing": packing, "use_liger_kernel": liger, "compare": compare, "compare_prompts": compare_prompts,
    }  # fmt: skip
    # `continues` is set by Continue in My jobs (jobs/continuing.py), never by the form
    assert set(fields) == set(TrainingConfig.model_fields) - CONFIRMATION_FIELDS - {"continues"}, (
        "every config field has its component"
    )
    tab = TrainTab(
        fields, preset_btn, preview_btn, submit_btn, result_md, command, python, spec, confirm, watch, job_id
    )
    outputs = [result_md, command, python, spec, job_id, watch]
    inputs = set(fields.values())
    plan = concurrency("plan")
    # the buttons are disabled while an action runs, and clicks during it are dropped (trigger_mode="once"); the
    # submission key makes a second confirmation (another tab, a retry) return the same job
    buttons = [preview_btn, submit_btn, confirm.yes, preset_btn]
    plan |= {"show_progress_on": [result_md]}  # the steps show where the answer will be
    while_busy(preview_btn.click, buttons, ui_errors(tab.on_preview), inputs, outputs, **plan)
    while_busy(submit_btn.click, buttons, ui_errors(tab.on_submit), inputs,
               [*outputs, confirm.row, confirm.text, confirm.pending], trigger_mode="once", **plan)  # fmt: skip
    while_busy(confirm.yes.click, buttons, ui_errors(tab.on_confirm), [confirm.pending],
               [*outputs, confirm.row, confirm.pending], trigger_mode="once", **plan)  # fmt: skip
    while_busy(preset_btn.click, buttons, ui_errors(tab.on_preset), [method, model],
               [peft, lr, batch, accum, max_length, grad_ckpt, result_md], **plan)  # fmt: skip
    wire_push_choice(backend, push)
    # "local" (this machine, carried from an estimate made for it) is no Jobs flavor, and that estimate's timeout is a
    # CPU's: on Jobs, both empty (the cheapest flavor where it fits, and its estimate + 30%)
    backend.change(_jobs_flavor, [backend, flavor], [flavor, timeout], api_visibility="private", queue=False,
                   show_progress="hidden")  # fmt: skip
    gr.Markdown(NEXT_STEP, elem_classes="next-step")
    return tab
