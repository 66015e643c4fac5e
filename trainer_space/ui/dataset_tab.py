"""The "Dataset" tab: inspect a dataset for free before paying for a GPU.

Verdicts for every method, a mapping editor (one dropdown per field, re-validated on every edit), the first
rows, the first example as the model sees it, and token statistics. The API endpoint `/inspect_dataset`
takes (dataset, split, config, method) and returns the inspection as JSON.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pandas as pd

from .. import formats
from ..catalog import DEFAULT_MAX_LENGTH
from ..errors import InvalidInput
from ..formats import FIELDS, METHOD_FIELDS, METHOD_NAMES, METHODS, TRANSFORM_HELP, TRANSFORMS
from ..inspection import (
    DatasetInspection,
    fetch_sample,
    inspect_dataset,
    preview_row,
    render_example,
    revalidate,
    token_stats,
    trainer_rows,
)
from ..validation import validate_repo_id
from .common import optional_token, ui_errors

NONE = "(none)"
VERDICT_ICONS = {"READY": "✓ READY", "NEEDS_MAPPING": "⚠ NEEDS_MAPPING", "INCOMPATIBLE": "✗ INCOMPATIBLE"}
TABLE_CELL_CHARS = 300


# ----------------------------------------------------------------------------- API
@ui_errors
def inspect_dataset_api(
    dataset: str, split: str = "train", config: str = "", method: str = "sft", oauth_token: gr.OAuthToken | None = None
) -> dict:
    """Inspect a Hub dataset: row count, columns, first rows, and READY / NEEDS_MAPPING / INCOMPATIBLE per method.

    Each method comes with a one-line reason and, when the data needs mapping, the mapping the training job
    applies plus an equivalent `datasets.map` snippet. Empty split / config pick the defaults.
    """
    method = _method(method)
    result = inspect_dataset(
        dataset=dataset, split=split or None, config=config or None, token=optional_token(oauth_token)
    )
    return {**result.to_json(), "method": method}


def _method(value: str | None) -> str:
    method = (value or "sft").strip().lower()
    if method not in METHODS:
        raise InvalidInput(f"Unknown method '{value}'. Choose one of {', '.join(METHODS)}.")
    return method


# ----------------------------------------------------------------------------- rendering helpers
def _cell_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= TABLE_CELL_CHARS else text[:TABLE_CELL_CHARS] + "…"


def _preview_frame(result: DatasetInspection) -> pd.DataFrame:
    rows = [{k: _cell_text(v) for k, v in preview_row(r).items()} for r in result.rows[:20]]
    return pd.DataFrame(rows, columns=result.columns)


def _verdict_frame(result: DatasetInspection) -> pd.DataFrame:
    return pd.DataFrame(
        [[METHOD_NAMES[m], VERDICT_ICONS[r.verdict.value], r.reason] for m, r in result.methods.items()],
        columns=["Method", "Verdict", "Reason"],
    )


def _summary(result: DatasetInspection) -> str:
    rows = f"{result.num_rows:,} rows" if result.num_rows is not None else "row count unknown"
    head = (
        f"**{result.dataset}** · config `{result.config}` · split `{result.split}` · {rows} · "
        f"{len(result.columns)} columns · answered in {result.elapsed_s:.2f} s ({result.source})"
    )
    return "\n".join([head, *(f"- {n}" for n in result.notes)])


def _editor_updates(result: DatasetInspection | None, method: str) -> list[Any]:
    """Dropdown per field (visible for the method, prefilled), transforms, mapping JSON, verdict, code."""
    if result is None:
        hidden = [gr.update(choices=[NONE], value=NONE, visible=f in METHOD_FIELDS[method]) for f in FIELDS]
        return [*hidden, gr.update(value=[]), None, "", gr.update(value="")]
    report = result.methods[method]
    start = formats.editor_mapping(report, result.columns)
    choices = [NONE, *result.columns]
    drops = [
        gr.update(choices=choices, value=start["columns"].get(f, NONE), visible=f in METHOD_FIELDS[method])
        for f in FIELDS
    ]
    return [*drops, gr.update(value=start["transforms"]), report.mapping, _report_md(report), report.mapping_code or ""]


def _report_md(report: formats.MethodReport) -> str:
    return f"**{METHOD_NAMES[report.method]}: {VERDICT_ICONS[report.verdict.value]}** — {report.reason}"


# ----------------------------------------------------------------------------- handlers
def _inspect(
    dataset: str,
    config: str | None,
    split: str | None,
    method: str,
    previous: DatasetInspection | None,
    oauth_token: gr.OAuthToken | None,
) -> list[Any]:
    repo_id = validate_repo_id(dataset, kind="dataset")
    if previous is None or previous.dataset != repo_id:
        config = split = None  # a new dataset: discover its config and split
    elif config != previous.config:
        split = None
    result = inspect_dataset(dataset=repo_id, config=config, split=split, token=optional_token(oauth_token))
    method = _method(method)
    return [
        result,
        gr.update(choices=result.configs, value=result.config),
        gr.update(choices=result.split_names(), value=result.split),
        _summary(result),
        _verdict_frame(result),
        _preview_frame(result),
        *_editor_updates(result, method),
    ]


def _method_changed(method: str, result: DatasetInspection | None) -> list[Any]:
    return _editor_updates(result, _method(method))


def _mapping_edited(method: str, result: DatasetInspection | None, transforms: list[str], *values: str) -> list[Any]:
    if result is None:
        raise InvalidInput("Inspect a dataset first.")
    method = _method(method)
    columns = {f: v for f, v in zip(FIELDS, values, strict=True) if v and v != NONE and f in METHOD_FIELDS[method]}
    mapping = formats.normalize_mapping({"columns": columns, "transforms": list(transforms or [])})
    if not (mapping["columns"] or mapping["transforms"]):
        mapping = None  # kept even when it renames nothing: an explicit choice re-validates as READY
    report = revalidate(inspection=result, method=method, mapping=mapping)
    return [mapping, _report_md(report), report.mapping_code or ""]


def _render_and_count(
    result: DatasetInspection | None,
    method: str,
    mapping: dict | None,
    model: str,
    max_length: float | None,
    oauth_token: gr.OAuthToken | None,
) -> list[Any]:
    if result is None:
        raise InvalidInput("Inspect a dataset first.")
    method, token = _method(method), optional_token(oauth_token)
    model = (model or "").strip()
    rows = trainer_rows(result.sample[:1], method, mapping)
    rendered = render_example(row=rows[0], model=model or None, token=token)
    if not model:
        return [rendered.text, rendered.note, "Name a model to count tokens with its tokenizer.", gr.skip()]
    limit = int(max_length or DEFAULT_MAX_LENGTH)
    sample = fetch_sample(inspection=result, token=token)
    stats = token_stats(rows=sample, method=method, mapping=mapping, model=model, max_length=limit, token=token)
    table = (
        f"Measured on **{stats.rows}** rows ({stats.measured}) with the tokenizer of `{stats.model}`:\n\n"
        "| min | median | p95 | max | over max_length |\n|---|---|---|---|---|\n"
        f"| {stats.min} | {stats.median:g} | {stats.p95} | {stats.max} | "
        f"{stats.over_max_length} ({stats.share_over:.1%}) > {stats.max_length} |"
    )
    if stats.over_max_length:
        table += (
            f"\n\n{stats.share_over:.1%} of rows are longer than max_length={stats.max_length}: they will be truncated."
        )
    if stats.note:
        table += f"\n\n{stats.note}"
    summary = {"num_rows": result.num_rows, "mean_tokens": round(stats.mean, 1)}  # for the Estimate tab
    return [rendered.text, rendered.note, table, summary]


# ----------------------------------------------------------------------------- layout
def build_tab() -> SimpleNamespace:
    """Build the tab inside the caller's `gr.Tab("Dataset")`; returns its components for wiring."""
    gr.Markdown(
        "Check a dataset **before paying for a GPU**: each training method gets READY, NEEDS_MAPPING or "
        "INCOMPATIBLE. A mapping is applied by the training job itself: you never paste code."
    )
    with gr.Row(equal_height=True):
        dataset = gr.Textbox(label="Dataset", placeholder="owner/name or https://huggingface.co/datasets/…", scale=3)
        config = gr.Dropdown(label="Config", choices=[], allow_custom_value=True, scale=1)
        split = gr.Dropdown(label="Split", choices=[], allow_custom_value=True, scale=1)
        method = gr.Dropdown(label="Method", choices=[(METHOD_NAMES[m], m) for m in METHODS], value="sft", scale=1)
        inspect_btn = gr.Button("Inspect", variant="primary", scale=0, min_width=120)
    state = gr.State(None)
    summary = gr.Markdown()
    verdicts = gr.Dataframe(headers=["Method", "Verdict", "Reason"], interactive=False, wrap=True, label="Verdicts")
    with gr.Accordion("Column mapping for the selected method", open=True):
        gr.Markdown("Pick the source column for each field; the verdict below is re-checked on every change.")
        with gr.Row():
            fields = [
                gr.Dropdown(label=f, choices=[NONE], value=NONE, visible=f in METHOD_FIELDS["sft"], min_width=140)
                for f in FIELDS
            ]
        transforms = gr.CheckboxGroup(
            label="Transforms", choices=[(f"{t} — {TRANSFORM_HELP[t]}", t) for t in TRANSFORMS], value=[]
        )
        mapping_verdict = gr.Markdown()
        mapping_json = gr.JSON(label="Mapping passed to the training job (null: none needed)", value=None)
        mapping_code = gr.Code(label="The same, as datasets.map code", language="python", interactive=False)
    preview = gr.Dataframe(label="First rows", interactive=False, wrap=True)
    with gr.Row(equal_height=True):
        model = gr.Textbox(label="Model (tokenizer, chat template)", placeholder="Qwen/Qwen2.5-0.5B-Instruct", scale=3)
        max_length = gr.Number(label="max_length (tokens)", value=DEFAULT_MAX_LENGTH, precision=0, minimum=1, scale=1)
        render_btn = gr.Button("Show example & count tokens", scale=0, min_width=200)
    rendered = gr.Textbox(label="First example as the model sees it", lines=8, max_lines=30, interactive=False)
    rendered_note = gr.Markdown()
    stats = gr.Markdown()
    stats_state = gr.State(None)  # {"num_rows", "mean_tokens"} once tokens were counted

    editor = [*fields, transforms, mapping_json, mapping_verdict, mapping_code]
    inspect_outputs = [state, config, split, summary, verdicts, preview, *editor]
    inspect_inputs = [dataset, config, split, method, state]
    handler = ui_errors(_inspect)
    for trigger in (inspect_btn.click, dataset.submit, config.input, split.input):
        trigger(handler, inspect_inputs, inspect_outputs, api_visibility="private")
    method.change(ui_errors(_method_changed), [method, state], editor, api_visibility="private")
    edit = ui_errors(_mapping_edited)
    for component in (*fields, transforms):
        component.input(edit, [method, state, transforms, *fields], [mapping_json, mapping_verdict, mapping_code],
                        api_visibility="private")  # fmt: skip
    render_btn.click(
        ui_errors(_render_and_count),
        [state, method, mapping_json, model, max_length],
        [rendered, rendered_note, stats, stats_state],
        api_visibility="private",
    )
    gr.api(inspect_dataset_api, api_name="inspect_dataset")
    return SimpleNamespace(
        dataset=dataset,
        config=config,
        split=split,
        method=method,
        mapping_json=mapping_json,
        model=model,
        max_length=max_length,
        inspection=state,
        stats=stats_state,
        verdicts=verdicts,
        summary=summary,
        inspect_button=inspect_btn,
    )
