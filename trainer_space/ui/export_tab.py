"""The "GGUF export" tab: a model or LoRA adapter -> GGUF files, card and Ollama Modelfile, on a CPU job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..jobs.config import ExportConfig
from ..jobs.export import ExportSubmission, default_quant, quant_types, submit_export
from .common import (
    Confirmation,
    checks_markdown,
    concurrency,
    confirmation_row,
    session_for,
    ui_errors,
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
    if sub.job is not None:
        already = sub.how is not None and sub.how.outcome == "existing"
        lines.append(f"### {'Already submitted' if already else 'Submitted'}: [{sub.job.id}]({sub.job.url})")
        if sub.how is not None and sub.how.note:
            lines.append(sub.how.note)
        lines.append(f"Follow it in **My jobs**. Files will appear in {cfg.output_repo}.")
    else:
        lines.append("### Preview (nothing submitted yet)")
    lines.append(
        f"Flavor **{cfg.flavor}**, timeout **{cfg.timeout}**, worst case **${plan.cost.worst_usd:,.2f}** "
        f"(cap ${plan.cost.cap_usd:,.2f}), model {plan.size.gb:.2f} GB in 16-bit, quantizations "
        f"{', '.join(cfg.quantizations)}."
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
    max_cost: gr.Number
    allow_unfit: gr.Checkbox
    summary: gr.Markdown
    command: gr.Code
    details: gr.JSON
    confirm: Confirmation

    @property
    def fields(self) -> dict[str, gr.components.Component]:
        """The form's components by `ExportConfig` field name."""
        return {"model": self.model, "quantizations": self.quants, "output_repo": self.output_repo,
                "private": self.private, "flavor": self.flavor, "max_cost_usd": self.max_cost,
                "allow_unfit": self.allow_unfit}  # fmt: skip

    def form_values(self, cfg: ExportConfig) -> dict[Any, Any]:
        """The form filled with a config (an export job's, to run it again)."""
        data = cfg.to_json() | {"max_cost_usd": cfg.max_cost_usd or 0}
        return {c: "" if data[name] is None else data[name] for name, c in self.fields.items()}

    def config(self, values: dict[Any, Any]) -> ExportConfig:
        return ExportConfig.from_dict({name: values[c] for name, c in self.fields.items()})

    def _outputs(self, sub: ExportSubmission) -> dict[Any, Any]:
        data = sub.to_json()
        return {self.summary: summary_markdown(sub), self.command: data["command"], self.details: data}

    def on_preview(self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        session = session_for(oauth_token, "preview the export")
        return self._outputs(submit_export(session, self.config(values), dry_run=True))

    def on_submit(self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        """Step one of "Export to GGUF": the checks and the worst-case cost to confirm (nothing created)."""
        session = session_for(oauth_token, "export to GGUF")
        sub = submit_export(session, self.config(values), dry_run=True)
        return self._outputs(sub) | self.confirm.ask("export job", sub.plan)

    def on_confirm(self, pending: dict | None, oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        """Step two: create the export the visitor confirmed (once per submission key)."""
        cfg = ExportConfig.from_dict(self.confirm.confirmed(pending, "Export to GGUF"))
        sub = submit_export(session_for(oauth_token, "export to GGUF"), cfg, dry_run=False)
        return self._outputs(sub) | self.confirm.done()


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
        max_cost = gr.Number(label="Cost cap ($; 0: the worst case of the estimate + 30%)", value=0, minimum=0)
        allow_unfit = gr.Checkbox(label="Submit even if the flavor lacks disk or RAM", value=False)
    with gr.Row():
        preview = gr.Button("Preview", variant="secondary")
        submit = gr.Button("Export to GGUF", variant="primary")
    confirm = confirmation_row("export")
    summary = gr.Markdown()
    command = gr.Code(label="Equivalent command (reproduce it without the app)", language="shell")
    details = gr.JSON(label="Job details", visible=True)
    tab = ExportTab(model, output_repo, quants, private, flavor, max_cost, allow_unfit, summary, command, details,
                    confirm)  # fmt: skip
    inputs = set(tab.fields.values())
    outputs = [summary, command, details]
    plan = concurrency("plan")
    preview.click(ui_errors(tab.on_preview), inputs, outputs, api_visibility="private", **plan)
    submit.click(ui_errors(tab.on_submit), inputs, [*outputs, confirm.row, confirm.text, confirm.pending],
                 api_visibility="private", trigger_mode="once", **plan)  # fmt: skip
    # trigger_mode="once": clicks while the job is being created are dropped; the submission key does the rest
    confirm.yes.click(ui_errors(tab.on_confirm), [confirm.pending], [*outputs, confirm.row, confirm.pending],
                      api_visibility="private", trigger_mode="once", **plan)  # fmt: skip
    return tab
