"""The "GGUF export" tab: a model or LoRA adapter -> GGUF files, card and Ollama Modelfile, on a CPU job."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr

from ..export import ExportRequest, quant_types, submit_export, template_constants
from .common import checks_markdown, session_for, ui_errors

INTRO = (
    "Convert a model, or a LoRA adapter (merged onto its base model), to GGUF for llama.cpp, Ollama and "
    "LM Studio. The job runs llama.cpp's official image on a **CPU** flavor (no GPU needed), checks every file "
    "reads back, and uploads them with a model card and an Ollama `Modelfile` built from the model's own chat "
    "template and end-of-turn tokens."
)


@ui_errors
def export_gguf(
    model: str,
    quantizations: list[str] | str | None = None,
    output_repo: str = "",
    private: bool = False,
    flavor: str = "",
    dry_run: bool = True,
    oauth_token: gr.OAuthToken | None = None,
) -> dict[str, Any]:
    """API: plan (dry_run) or submit a GGUF export job. Returns the job id, links, command and pre-flight."""
    action = "preview the export" if dry_run else "export to GGUF"
    session = session_for(oauth_token, action)
    request = ExportRequest(
        model=model or "",
        quantizations=quantizations or [],
        output_repo=output_repo or "",
        private=bool(private),
        flavor=flavor or "",
    )
    return submit_export(session, request, dry_run=bool(dry_run))


def _summary(result: dict[str, Any]) -> str:
    lines = []
    if result.get("submitted"):
        lines.append(f"### Submitted: [{result['job_id']}]({result['url']})")
        lines.append(
            f"Follow it in **My jobs**. Files will appear in [{result['output_repo']}]({result['output_url']})."
        )
    else:
        lines.append("### Preview (nothing submitted yet)")
    lines.append(
        f"Flavor **{result['flavor']}**, timeout **{result['timeout']}**, "
        f"model {result['model_gb_16bit']} GB in 16-bit, quantizations {', '.join(result['quantizations'])}."
    )
    lines += checks_markdown(result["preflight"])
    lines += [f"- {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def _run(model, quants, output_repo, private, flavor, dry_run, oauth_token):
    result = export_gguf(model, quants, output_repo, private, flavor, dry_run, oauth_token)
    return _summary(result), result["command"], result


def _preview(model, quants, output_repo, private, flavor, oauth_token: gr.OAuthToken | None = None):
    return _run(model, quants, output_repo, private, flavor, True, oauth_token)


def _submit(model, quants, output_repo, private, flavor, oauth_token: gr.OAuthToken | None = None):
    return _run(model, quants, output_repo, private, flavor, False, oauth_token)


def build_tab() -> SimpleNamespace:
    gr.Markdown(INTRO)
    constants = template_constants()
    choices = [(f"{name} — {info['description']}", name) for name, info in quant_types().items()]
    with gr.Row():
        model = gr.Textbox(label="Model or LoRA adapter repo", placeholder="you/qwen-capybara-sft", scale=3)
        output_repo = gr.Textbox(label="Output repo (default: <you>/<model>-GGUF)", scale=2)
    quants = gr.CheckboxGroup(choices=choices, value=[constants["DEFAULT_QUANT"]], label="Quantizations")
    with gr.Row():
        private = gr.Checkbox(label="Private output repo", value=False)
        flavor = gr.Textbox(label="Flavor (default: the cheapest CPU flavor that fits)", placeholder="cpu-upgrade")
    with gr.Row():
        preview = gr.Button("Preview", variant="secondary")
        submit = gr.Button("Export to GGUF", variant="primary")
    summary = gr.Markdown()
    command = gr.Code(label="Equivalent command (reproduce it without the app)", language="shell")
    details = gr.JSON(label="Job details", visible=True)
    inputs = [model, quants, output_repo, private, flavor]
    outputs = [summary, command, details]
    preview.click(_preview, inputs, outputs, api_visibility="private")
    # trigger_mode="once": clicks while a submission is pending are dropped, so a double click is one job
    submit.click(_submit, inputs, outputs, api_visibility="private", trigger_mode="once")
    gr.api(export_gguf, api_name="export_gguf")
    return SimpleNamespace(model=model, quants=quants, output_repo=output_repo, summary=summary)
