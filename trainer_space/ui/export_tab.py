"""The "GGUF export" tab: a model or LoRA adapter -> GGUF files, card and Ollama Modelfile, on a CPU job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..jobs.backends import BACKEND_LABELS, HF_JOBS, LOCAL
from ..jobs.config import ExportConfig
from ..jobs.export import TEMPLATE, ExportSubmission, quant_options, quant_types, submit_export
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

INTRO = (
    "Convert a model, or a LoRA adapter (merged onto its base model), to GGUF for llama.cpp, Ollama and "
    "LM Studio. The job runs llama.cpp's official image on a **CPU** flavor (no GPU needed), checks every file "
    "reads back, and uploads them with a model card and an Ollama `Modelfile` built from the model's own chat "
    "template and end-of-turn tokens."
)


def summary_markdown(sub: ExportSubmission) -> str:
    plan, cfg = sub.plan, sub.plan.config
    lines = []
    if sub.job is not None and cfg.is_local:
        lines.append(f"### Submitted to this machine: job `{sub.job.id}`")
        lines.append(f"Follow it in **My jobs**. Files will appear in `{sub.to_json()['output_dir']}`.")
    elif sub.job is not None:
        already = sub.how is not None and sub.how.outcome == "existing"
        lines.append(f"### {'Already submitted' if already else 'Submitted'}: [{sub.job.id}]({sub.job.url})")
        if sub.how is not None and sub.how.note:
            lines.append(sub.how.note)
        lines.append(f"Follow it in **My jobs**. Files will appear in {cfg.output_repo}.")
    else:
        lines.append("### Preview (nothing submitted yet)")
    lines.append(
        (
            "On this machine (free), "
            if cfg.is_local
            else f"Flavor **{cfg.flavor}**, worst case **${plan.cost.worst_usd:,.2f}** (cap ${plan.cost.cap_usd:,.2f}), "
        )
        + f"timeout **{cfg.timeout}**, model {plan.size.gb:.2f} GB in 16-bit, quantizations "
        f"{', '.join(cfg.quantizations)}."
    )
    lines += checks_markdown(plan.checks)
    lines += [f"- {n}" for n in plan.notes]
    return "\n".join(lines)


@dataclass
class ExportTab:
    backend: gr.Radio
    push: gr.Checkbox
    pre_tokenizer: gr.Textbox
    model: gr.Textbox
    output_repo: gr.Textbox
    quants: gr.CheckboxGroup
    private: gr.Checkbox
    flavor: gr.Textbox
    max_cost: gr.Number
    allow_unfit: gr.Checkbox
    summary: gr.Markdown
    command: gr.Code
    details: gr.JSON
    confirm: Confirmation
    watch_button: gr.Button  # "Watch it in My jobs", once an export job was created
    job_id: gr.State  # the export job created last (for My jobs)

    @property
    def fields(self) -> dict[str, gr.components.Component]:
        """The form's components by `ExportConfig` field name."""
        return {"model": self.model, "quantizations": self.quants, "output_repo": self.output_repo,
                "private": self.private, "flavor": self.flavor, "backend": self.backend, "push_to_hub": self.push,
                "pre_tokenizer": self.pre_tokenizer, "max_cost_usd": self.max_cost,
                "allow_unfit": self.allow_unfit}  # fmt: skip

    def form_values(self, cfg: ExportConfig) -> dict[Any, Any]:
        """The form filled with a config (an export job's, to run it again)."""
        data = cfg.to_json() | {"max_cost_usd": cfg.max_cost_usd or 0}
        return {c: "" if data[name] is None else data[name] for name, c in self.fields.items()}

    def config(self, values: dict[Any, Any]) -> ExportConfig:
        return ExportConfig.from_dict({name: values[c] for name, c in self.fields.items()})

    def _outputs(self, sub: ExportSubmission) -> dict[Any, Any]:
        data = sub.to_json()
        job = sub.job.id if sub.job is not None else None
        return {self.summary: summary_markdown(sub), self.command: data["command"], self.details: data,
                self.job_id: job, self.watch_button: gr.update(visible=job is not None)}  # fmt: skip

    def on_preview(
        self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        # sign-in is checked by the plan: needed on Jobs, and on this machine only to push to the Hub
        with steps_to(progress):
            return self._outputs(submit_export(reader_for(oauth_token), self.config(values), dry_run=True))

    def on_submit(
        self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        """Step one of "Export to GGUF": on Jobs, the checks and the worst-case cost to confirm (nothing created);
        on this machine (free), the job itself."""
        session, cfg = reader_for(oauth_token), self.config(values)
        with steps_to(progress):
            if cfg.is_local:
                return self._outputs(submit_export(session, cfg, dry_run=False)) | self.confirm.done()
            sub = submit_export(session, cfg, dry_run=True)
        return self._outputs(sub) | self.confirm.ask("export job", sub.plan)

    def on_confirm(
        self, pending: dict | None, oauth_token: gr.OAuthToken | None = None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        """Step two: create the export the visitor confirmed (once per submission key)."""
        cfg = ExportConfig.from_dict(self.confirm.confirmed(pending, "Export to GGUF"))
        with steps_to(progress):
            sub = submit_export(reader_for(oauth_token), cfg, dry_run=False)
        return self._outputs(sub) | self.confirm.done()


def quant_choices(backend: str, chosen: list[str] | None = None) -> dict[str, Any]:
    """The types `backend` can make here (`export.quant_options`), the visitor's choice kept where it can be made,
    else its default; the types it cannot make are named with how to get them."""
    options, described = quant_options(backend), quant_types()
    kept = [q for q in chosen or [] if q in options.available]
    note = ""
    if options.unavailable:
        first = next(iter(options.unavailable.values()))
        note = f"{', '.join(options.unavailable)}: {first}"
    return {
        "choices": [(f"{name} — {described[name]['description']}", name) for name in options.available],
        "value": kept or [options.default],
        "info": note or None,
    }


def build_tab() -> ExportTab:
    gr.Markdown(INTRO)
    settings = get_settings()
    backend = gr.Radio(
        [(BACKEND_LABELS[b], b) for b in (LOCAL, HF_JOBS)], value=settings.default_backend, label="Run on",
        visible=settings.local_enabled,
        info="This machine: what llama.cpp's converter makes (and K-quants with llama-quantize); Jobs: every type.",
    )  # fmt: skip
    with gr.Row():
        model = gr.Textbox(label="Model or LoRA adapter repo", placeholder="you/qwen-capybara-sft, or a folder here",
                           scale=3)  # fmt: skip
        output_repo = gr.Textbox(label="Output repo (default: <you>/<model>-GGUF)", scale=2)
    quants = gr.CheckboxGroup(label="Quantizations", **quant_choices(settings.default_backend))
    with gr.Row():
        push = gr.Checkbox(label="Upload to the Hub", value=True)
        private = gr.Checkbox(label="Private output repo", value=True)
        flavor = gr.Textbox(label="Flavor (default: the cheapest CPU flavor that fits)", placeholder="cpu-upgrade")
        pre_tokenizer = gr.Textbox(label="Expert: llama.cpp pre-tokenizer", placeholder="e.g. qwen2 (the base's)")
    with gr.Row():
        max_cost = gr.Number(label="Cost cap ($; 0: the worst case of the estimate + 30%)", value=0, minimum=0)
        allow_unfit = gr.Checkbox(label="Submit even if the flavor lacks disk or RAM", value=False)
    with gr.Row():
        preview = gr.Button("Preview", variant="secondary")
        submit = gr.Button("Export to GGUF", variant="primary")
    confirm = confirmation_row("export")
    summary = gr.Markdown(min_height=90)  # room for the steps while an action runs
    watch = gr.Button("Watch it in My jobs →", variant="primary", visible=False, elem_id="watch-export")
    job_id = gr.State(None)
    with gr.Accordion("Reproduce without the app", open=False):
        template_download(TEMPLATE)
        command = gr.Code(label="Equivalent command", language="shell", wrap_lines=True)
        details = gr.JSON(label="Job details")
    tab = ExportTab(backend, push, pre_tokenizer, model, output_repo, quants, private, flavor, max_cost, allow_unfit,
                    summary, command, details, confirm, watch, job_id)  # fmt: skip
    inputs = set(tab.fields.values())
    outputs = [summary, command, details, job_id, watch]
    plan = concurrency("plan")
    # buttons disabled while an action runs; clicks during it are dropped; the submission key does the rest
    buttons = [preview, submit, confirm.yes]
    plan |= {"show_progress_on": [summary]}
    while_busy(preview.click, buttons, ui_errors(tab.on_preview), inputs, outputs, **plan)
    while_busy(submit.click, buttons, ui_errors(tab.on_submit), inputs,
               [*outputs, confirm.row, confirm.text, confirm.pending], trigger_mode="once", **plan)  # fmt: skip
    while_busy(confirm.yes.click, buttons, ui_errors(tab.on_confirm), [confirm.pending],
               [*outputs, confirm.row, confirm.pending], trigger_mode="once", **plan)  # fmt: skip
    wire_push_choice(backend, push)
    backend.change(lambda b, q: gr.update(**quant_choices(b, q)), [backend, quants], quants, api_visibility="private",
                   queue=False, show_progress="hidden")  # fmt: skip
    gr.Markdown(
        "**Next:** the export runs as a job: follow it in **My jobs**; its files, model card and Ollama Modelfile "
        "land in the output repo (`ollama run hf.co/<repo>` once it is public, or with your token).",
        elem_classes="next-step",
    )
    return tab
