"""The "GGUF export" tab: a model or LoRA adapter -> GGUF files, card and Ollama Modelfile, on a CPU job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..jobs.config import ExportConfig
from ..jobs.export import ExportSubmission, default_quant, quant_types, submit_export
from .common import checks_markdown, session_for, ui_errors

INTRO = (
    "Convert a model, or a LoRA adapter (merged onto its base model), to GGUF for llama.cpp, Ollama and "
    "LM Studio. The job runs llama.cpp's official image on a **CPU** flavor (no GPU needed), checks every file "
    "reads back, and uploads them with a model card and an Ollama `Modelfile` built from the model's own chat "
    "template and end-of-turn tokens."
)


def summary_markdown(sub: ExportSubmission) -> str:
    plan, cfg = sub.plan, sub.plan.config
    lines = []
    if sub.job is not None:
        lines.append(f"### Submitted: [{sub.job.id}]({sub.job.url})")
        lines.append(f"Follow it in **My jobs**. Files will appear in {cfg.output_repo}.")
    else:
        lines.append("### Preview (nothing submitted yet)")
    lines.append(
        f"Flavor **{cfg.flavor}**, timeout **{cfg.timeout}**, "
        f"model {plan.size.gb:.2f} GB in 16-bit, quantizations {', '.join(cfg.quantizations)}."
    )
    lines += checks_markdown(plan.checks)
    lines += [f"- {n}" for n in plan.notes]
    return "\n".join(lines)


@dataclass
class ExportTab:
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
                "private": self.private, "flavor": self.flavor}  # fmt: skip

    def form_values(self, cfg: ExportConfig) -> dict[Any, Any]:
        """The form filled with a config (an export job's, to run it again)."""
        data = cfg.to_json()
        return {c: "" if data[name] is None else data[name] for name, c in self.fields.items()}

    def _run(self, dry_run: bool, model: str, quants: list[str], output_repo: str, private: bool, flavor: str,
             oauth_token: gr.OAuthToken | None) -> dict[Any, Any]:  # fmt: skip
        session = session_for(oauth_token, "preview the export" if dry_run else "export to GGUF")
        cfg = ExportConfig.from_dict(
            {"model": model, "quantizations": quants, "output_repo": output_repo, "private": private, "flavor": flavor}
        )
        sub = submit_export(session, cfg, dry_run=dry_run)
        data = sub.to_json()
        return {self.summary: summary_markdown(sub), self.command: data["command"], self.details: data}

    def on_preview(self, model, quants, output_repo, private, flavor, oauth_token: gr.OAuthToken | None = None):
        return self._run(True, model, quants, output_repo, private, flavor, oauth_token)

    def on_submit(self, model, quants, output_repo, private, flavor, oauth_token: gr.OAuthToken | None = None):
        return self._run(False, model, quants, output_repo, private, flavor, oauth_token)


def build_tab() -> ExportTab:
    gr.Markdown(INTRO)
    choices = [(f"{name} — {info['description']}", name) for name, info in quant_types().items()]
    with gr.Row():
        model = gr.Textbox(label="Model or LoRA adapter repo", placeholder="you/qwen-capybara-sft", scale=3)
        output_repo = gr.Textbox(label="Output repo (default: <you>/<model>-GGUF)", scale=2)
    quants = gr.CheckboxGroup(choices=choices, value=[default_quant()], label="Quantizations")
    with gr.Row():
        private = gr.Checkbox(label="Private output repo", value=True)
        flavor = gr.Textbox(label="Flavor (default: the cheapest CPU flavor that fits)", placeholder="cpu-upgrade")
    with gr.Row():
        preview = gr.Button("Preview", variant="secondary")
        submit = gr.Button("Export to GGUF", variant="primary")
    summary = gr.Markdown()
    command = gr.Code(label="Equivalent command (reproduce it without the app)", language="shell")
    details = gr.JSON(label="Job details", visible=True)
    tab = ExportTab(model, output_repo, quants, private, flavor, summary, command, details)
    inputs = [model, quants, output_repo, private, flavor]
    outputs = [summary, command, details]
    preview.click(ui_errors(tab.on_preview), inputs, outputs, api_visibility="private")
    # trigger_mode="once": clicks while a submission is pending are dropped, so a double click is one job
    submit.click(ui_errors(tab.on_submit), inputs, outputs, api_visibility="private", trigger_mode="once")
    return tab
