"""The "GGUF export" tab: a model or LoRA adapter -> GGUF files, card and Ollama Modelfile, on a CPU job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..jobs.backends import BACKEND_LABELS, HF_JOBS, LOCAL
from ..jobs.config import ExportConfig
from ..jobs.export import ExportSubmission, default_quant, quant_types, submit_export
from ..settings import get_settings
from .common import checks_markdown, reader_for, ui_errors

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
        lines.append(f"### Submitted: [{sub.job.id}]({sub.job.url})")
        lines.append(f"Follow it in **My jobs**. Files will appear in {cfg.output_repo}.")
    else:
        lines.append("### Preview (nothing submitted yet)")
    lines.append(
        ("On this machine" if cfg.is_local else f"Flavor **{cfg.flavor}**") + f", timeout **{cfg.timeout}**, "
        f"model {plan.size.gb:.2f} GB in 16-bit, quantizations {', '.join(cfg.quantizations)}."
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
    summary: gr.Markdown
    command: gr.Code
    details: gr.JSON

    @property
    def fields(self) -> dict[str, gr.components.Component]:
        """The form's components by `ExportConfig` field name."""
        return {"model": self.model, "quantizations": self.quants, "output_repo": self.output_repo,
                "private": self.private, "flavor": self.flavor, "backend": self.backend, "push_to_hub": self.push,
                "pre_tokenizer": self.pre_tokenizer}  # fmt: skip

    def form_values(self, cfg: ExportConfig) -> dict[Any, Any]:
        """The form filled with a config (an export job's, to run it again)."""
        data = cfg.to_json()
        return {c: "" if data[name] is None else data[name] for name, c in self.fields.items()}

    def _run(self, dry_run: bool, values: dict[Any, Any], oauth_token: gr.OAuthToken | None) -> dict[Any, Any]:
        # sign-in is checked by the plan: needed on Jobs, and on this machine only to push to the Hub
        session = reader_for(oauth_token)
        cfg = ExportConfig.from_dict({name: values[c] for name, c in self.fields.items()})
        sub = submit_export(session, cfg, dry_run=dry_run)
        data = sub.to_json()
        return {self.summary: summary_markdown(sub), self.command: data["command"], self.details: data}

    def on_preview(self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        return self._run(True, values, oauth_token)

    def on_submit(self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        return self._run(False, values, oauth_token)


def build_tab() -> ExportTab:
    gr.Markdown(INTRO)
    settings = get_settings()
    backend = gr.Radio(
        [(BACKEND_LABELS[b], b) for b in (LOCAL, HF_JOBS)], value=settings.default_backend, label="Run on",
        visible=settings.local_enabled,
        info="This machine: F16, BF16 and Q8_0 with llama.cpp's converter (K-quants need llama-quantize here).",
    )  # fmt: skip
    choices = [(f"{name} — {info['description']}", name) for name, info in quant_types().items()]
    with gr.Row():
        model = gr.Textbox(label="Model or LoRA adapter repo", placeholder="you/qwen-capybara-sft, or a folder here",
                           scale=3)  # fmt: skip
        output_repo = gr.Textbox(label="Output repo (default: <you>/<model>-GGUF)", scale=2)
    quants = gr.CheckboxGroup(choices=choices, value=[default_quant()], label="Quantizations")
    with gr.Row():
        push = gr.Checkbox(label="Upload to the Hub", value=True)
        private = gr.Checkbox(label="Private output repo", value=True)
        flavor = gr.Textbox(label="Flavor (default: the cheapest CPU flavor that fits)", placeholder="cpu-upgrade")
        pre_tokenizer = gr.Textbox(label="Expert: llama.cpp pre-tokenizer", placeholder="e.g. qwen2 (the base's)")
    with gr.Row():
        preview = gr.Button("Preview", variant="secondary")
        submit = gr.Button("Export to GGUF", variant="primary")
    summary = gr.Markdown()
    command = gr.Code(label="Equivalent command (reproduce it without the app)", language="shell")
    details = gr.JSON(label="Job details", visible=True)
    tab = ExportTab(
        backend, push, pre_tokenizer, model, output_repo, quants, private, flavor, summary, command, details
    )
    inputs = set(tab.fields.values())
    outputs = [summary, command, details]
    preview.click(ui_errors(tab.on_preview), inputs, outputs, api_visibility="private")
    # trigger_mode="once": clicks while a submission is pending are dropped, so a double click is one job
    submit.click(ui_errors(tab.on_submit), inputs, outputs, api_visibility="private", trigger_mode="once")
    return tab
