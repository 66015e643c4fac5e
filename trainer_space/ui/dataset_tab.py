"""The "Dataset" tab: inspect a dataset for free before paying for a GPU.

Verdicts for every method, a mapping editor (one dropdown per field, re-validated on every edit), the first
rows, the first example as the model sees it, and token statistics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from ..catalog import DEFAULT_MAX_LENGTH, METHODS
from ..data import detect
from ..data.inspection import (
    DatasetInspection,
    fetch_sample,
    inspect_dataset,
    inspect_prompt,
    preview_row,
    revalidate,
    trainer_rows,
)
from ..data.mapping import FIELDS, TRANSFORMS, DatasetMapping
from ..data.tokens import render_example, token_stats
from ..errors import InvalidInput
from ..settings import get_settings
from ..validation import looks_like_path, validate_local_path, validate_method, validate_repo_id
from .common import concurrency, reader_for, steps_to, ui_errors, while_busy

NONE = "(none)"
VERDICT_ICONS = {"READY": "✓ READY", "NEEDS_MAPPING": "⚠ NEEDS_MAPPING", "INCOMPATIBLE": "✗ INCOMPATIBLE"}
TABLE_CELL_CHARS = 300


def _cell_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= TABLE_CELL_CHARS else text[:TABLE_CELL_CHARS] + "…"


def preview_frame(result: DatasetInspection) -> pd.DataFrame:
    rows = [{k: _cell_text(v) for k, v in preview_row(r).items()} for r in result.rows[:20]]
    return pd.DataFrame(rows, columns=result.columns)


def verdict_frame(result: DatasetInspection, mapped: detect.MethodReport | None = None) -> pd.DataFrame:
    """One row per method. `mapped`: the selected method re-checked with the mapping the job will apply (the
    proposed one, or the visitor's edit): its row says READY with that mapping, as the Train tab does."""
    rows = []
    for m, report in result.methods.items():
        verdict = VERDICT_ICONS[report.verdict.value]
        if mapped is not None and m == mapped.method and mapped.mapping is not None:
            verdict = "✓ READY with the mapping below" if mapped.verdict == detect.Verdict.READY else (
                VERDICT_ICONS[mapped.verdict.value] + " with the mapping below")  # fmt: skip
            report = report if mapped.mapping == report.mapping else mapped  # the proposal's reason names it
        rows.append([METHODS[m].title, verdict, report.reason])
    return pd.DataFrame(rows, columns=["Method", "Verdict", "Reason"])


def mapped_report(result: DatasetInspection, method: str) -> detect.MethodReport | None:
    """The method re-checked with its proposed mapping (None when it needs none or has none)."""
    proposal = result.methods[method].mapping
    return revalidate(inspection=result, method=method, mapping=proposal) if proposal is not None else None


def summary_markdown(result: DatasetInspection) -> str:
    rows = (
        f"{result.num_rows:,} row{'s' * (result.num_rows != 1)}" if result.num_rows is not None else "row count unknown"
    )
    columns = f"{len(result.columns)} column{'s' * (len(result.columns) != 1)}"
    local = result.source == "local"
    answered = f"read from this machine in {result.elapsed_s:.2f} s" if local else (
        f"answered in {result.elapsed_s:.2f} s by {result.answered_by}")  # fmt: skip
    head = (
        f"**{result.dataset}** · "
        + ("" if local else f"config `{result.config}` · ")
        + f"split `{result.split}` · {rows} · {columns} · {answered}"
    )
    return "\n".join([head, *(f"- {n}" for n in result.notes)])


def report_markdown(report: detect.MethodReport) -> str:
    return f"**{METHODS[report.method].title}: {VERDICT_ICONS[report.verdict.value]}** — {report.reason}"


def mapping_label(report: detect.MethodReport) -> str:
    title = METHODS[report.method].title
    if report.verdict == detect.Verdict.READY and report.mapping is None:
        return f"Column mapping for {title}: none needed (open to change it)"
    return f"Column mapping for {title}"


def stats_markdown(stats: Any) -> str:
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
    return table + (f"\n\n{stats.note}" if stats.note else "")


@dataclass
class DatasetTab:
    """The tab's components, and its handlers (each returns updates keyed by component)."""

    dataset: gr.Textbox
    config: gr.Dropdown
    split: gr.Dropdown
    method: gr.Dropdown
    inspect_button: gr.Button
    inspection: gr.State  # the DatasetInspection
    summary: gr.Markdown
    verdicts: gr.Dataframe
    mapping_box: gr.Accordion  # the editor: open unless the dataset is READY for the method as it is
    fields: dict[str, gr.Dropdown]  # one per mapping field
    transforms: gr.CheckboxGroup
    mapping_verdict: gr.Markdown
    mapping_json: gr.JSON  # the mapping passed to the training job
    mapping_code: gr.Code
    preview: gr.Dataframe
    model: gr.Textbox
    max_length: gr.Number
    render_button: gr.Button
    rendered: gr.Textbox
    rendered_note: gr.Markdown
    stats_text: gr.Markdown
    stats: gr.State  # {"num_rows", "mean_tokens"} once tokens were counted

    @property
    def editor(self) -> list[gr.components.Component]:
        return [*self.fields.values(), self.transforms, self.mapping_json, self.mapping_verdict, self.mapping_code,
                self.mapping_box]  # fmt: skip

    @property
    def example_outputs(self) -> list[gr.components.Component]:
        return [self.rendered, self.rendered_note, self.stats_text, self.stats]

    def cleared_example(self) -> dict[Any, Any]:
        """A new inspection: the previous example, note and token counts (or their error) are gone."""
        return {self.rendered: gr.update(value="", visible=False), self.rendered_note: "", self.stats_text: "",
                self.stats: None}  # fmt: skip

    def editor_updates(self, result: DatasetInspection | None, method: str) -> dict[Any, Any]:
        """A dropdown per field (visible for the method, prefilled), the transforms, the mapping, verdict, code, and
        the verdicts table with the method checked with its proposed mapping (its handlers output `verdicts` too)."""
        shown = detect.METHOD_FIELDS[method]
        if result is None:
            out = {d: gr.update(choices=[NONE], value=NONE, visible=f in shown) for f, d in self.fields.items()}
            return out | {self.transforms: [], self.mapping_json: None, self.mapping_verdict: "", self.mapping_code: "",
                          self.mapping_box: gr.update(visible=False)}  # fmt: skip
        report, mapped = result.methods[method], mapped_report(result, method)
        ready = report.verdict == detect.Verdict.READY and report.mapping is None
        start = detect.editor_mapping(report, result.columns)
        choices = [NONE, *result.columns]
        out = {
            d: gr.update(choices=choices, value=start.columns.get(f, NONE), visible=f in shown)
            for f, d in self.fields.items()
        }
        return out | {
            self.transforms: list(start.transforms),
            self.mapping_json: report.mapping.to_json() if report.mapping else None,
            self.mapping_verdict: report_markdown(mapped or report),
            self.mapping_code: report.mapping_code or "",
            self.mapping_box: gr.update(visible=True, open=not ready, label=mapping_label(report)),
            self.verdicts: gr.update(value=verdict_frame(result, mapped), visible=True),
        }

    def on_inspect(
        self,
        dataset: str,
        config: str | None,
        split: str | None,
        method: str,
        previous: DatasetInspection | None,
        oauth_token: gr.OAuthToken | None = None,
        progress: gr.Progress = gr.Progress(),
    ) -> dict[Any, Any]:
        repo_id = (
            validate_local_path(dataset, "dataset")
            if looks_like_path(dataset)
            else validate_repo_id(dataset, "dataset")
        )
        if previous is None or previous.dataset != repo_id:
            config = split = None  # a new dataset: discover its config and split
        elif config != previous.config:
            split = None
        method = validate_method(method)
        with steps_to(progress):
            result = inspect_dataset(reader_for(oauth_token), dataset=repo_id, config=config, split=split)
        return (
            {
                self.inspection: result,
                self.config: gr.update(choices=result.configs, value=result.config),
                self.split: gr.update(choices=result.split_names(), value=result.split),
                self.summary: summary_markdown(result),
                self.preview: gr.update(value=preview_frame(result), visible=True),
            }
            | self.editor_updates(result, method)
            | self.cleared_example()
        )

    def on_method(self, method: str, result: DatasetInspection | None) -> dict[Any, Any]:
        return self.editor_updates(result, validate_method(method))

    def on_mapping_edit(self, method: str, result: DatasetInspection | None, transforms: list[str],
                        *values: str) -> dict[Any, Any]:  # fmt: skip
        if result is None:
            raise InvalidInput("Inspect a dataset first.")
        method = validate_method(method)
        shown = detect.METHOD_FIELDS[method]
        columns = {f: v for f, v in zip(self.fields, values, strict=True) if v and v != NONE and f in shown}
        mapping = detect.normalize_mapping({"columns": columns, "transforms": list(transforms or [])})
        # kept even when it renames nothing: an explicit choice re-validates as READY
        report = revalidate(inspection=result, method=method, mapping=mapping or None)
        return {
            self.mapping_json: mapping.to_json() if mapping else None,
            self.mapping_verdict: report_markdown(report),
            self.mapping_code: report.mapping_code or "",
            self.verdicts: verdict_frame(result, report if mapping else None),
        }

    def on_render(
        self,
        result: DatasetInspection | None,
        method: str,
        mapping: dict | None,
        model: str,
        max_length: float | None,
        oauth_token: gr.OAuthToken | None = None,
        progress: gr.Progress = gr.Progress(),
    ) -> dict[Any, Any]:
        with steps_to(progress):
            return self._render(result, method, mapping, model, max_length, oauth_token)

    def _render(self, result: DatasetInspection | None, method: str, mapping: dict | None, model: str,
                max_length: float | None, oauth_token: gr.OAuthToken | None) -> dict[Any, Any]:  # fmt: skip
        if result is None:
            raise InvalidInput("Inspect a dataset first.")
        method, session = validate_method(method), reader_for(oauth_token)
        model = (model or "").strip()
        mapped: DatasetMapping = detect.normalize_mapping(mapping)
        rows = trainer_rows(result.sample[:1], method, mapped)
        rendered = render_example(session, row=rows[0], model=model or None)
        out: dict[Any, Any] = {self.rendered: gr.update(value=rendered.text, visible=True),
                               self.rendered_note: rendered.note}  # fmt: skip
        if not model:
            return out | {self.stats_text: "Name a model to count tokens with its tokenizer.", self.stats: None}
        if rendered.tokenizer_error:
            return out | {self.stats_text: "Tokens are counted once the tokenizer loads.", self.stats: None}
        limit = int(max_length or DEFAULT_MAX_LENGTH)
        sample = fetch_sample(session, inspection=result)
        stats = token_stats(session, rows=sample, method=method, mapping=mapped, model=model, max_length=limit)
        summary = {"num_rows": result.num_rows, "mean_tokens": round(stats.mean, 1)}  # for the Estimate tab
        return out | {self.stats_text: stats_markdown(stats), self.stats: summary}


def build_tab() -> DatasetTab:
    """Build the tab inside the caller's `gr.Tab("Dataset")`; returns its components for wiring."""
    gr.Markdown(
        "Check a dataset **before paying for a GPU**: each training method gets READY, NEEDS_MAPPING or "
        "INCOMPATIBLE. A mapping is applied by the training job itself: you never paste code."
    )
    with gr.Row(equal_height=True):
        where = " or a file on this machine" if get_settings().local_enabled else ""
        dataset = gr.Textbox(label="Dataset", placeholder=f"owner/name, a Hub URL{where}", scale=3)
        config = gr.Dropdown(label="Config", choices=[], allow_custom_value=True, scale=1)
        split = gr.Dropdown(label="Split", choices=[], allow_custom_value=True, scale=1)
        method = gr.Dropdown(label="Method", choices=[(s.title, m) for m, s in METHODS.items()], value="sft", scale=1)
        inspect_btn = gr.Button("Inspect", variant="primary", scale=0, min_width=120)
    state = gr.State(None)
    summary = gr.Markdown(inspect_prompt(get_settings().local_enabled))
    verdicts = gr.Dataframe(
        headers=["Method", "Verdict", "Reason"], interactive=False, wrap=True, label="Verdicts", visible=False,
        column_widths=["24%", "28%", "48%"], elem_id="verdicts",
    )  # fmt: skip
    with gr.Accordion("Column mapping for the selected method", open=True, visible=False) as mapping_box:
        gr.Markdown("Pick the source column for each field; the verdict below is re-checked on every change.")
        with gr.Row():
            fields = {
                f: gr.Dropdown(
                    label=f, choices=[NONE], value=NONE, visible=f in detect.METHOD_FIELDS["sft"], min_width=140
                )
                for f in FIELDS
            }
        transforms = gr.CheckboxGroup(
            label="Transforms", choices=[(f"{t} — {help_}", t) for t, help_ in TRANSFORMS.items()], value=[]
        )
        mapping_verdict = gr.Markdown()
        mapping_json = gr.JSON(label="Mapping passed to the training job (null: none needed)", value=None)
        with gr.Accordion("The same mapping as datasets.map code (runs as it is, without this app)", open=False):
            mapping_code = gr.Code(language="python", interactive=False, max_lines=24, show_label=False)
    preview = gr.Dataframe(label="First rows", interactive=False, wrap=True, visible=False)
    with gr.Row(equal_height=True):
        model = gr.Textbox(label="Model (tokenizer, chat template)", placeholder="Qwen/Qwen2.5-0.5B-Instruct", scale=3)
        max_length = gr.Number(label="max_length (tokens)", value=DEFAULT_MAX_LENGTH, precision=0, minimum=1, scale=1)
        render_btn = gr.Button("Show example & count tokens", scale=0, min_width=200)
    rendered = gr.Textbox(
        label="First example as the model sees it", lines=8, max_lines=30, interactive=False, visible=False
    )
    rendered_note = gr.Markdown()
    stats_text = gr.Markdown(elem_id="token-stats")
    stats = gr.State(None)
    tab = DatasetTab(
        dataset=dataset, config=config, split=split, method=method, inspect_button=inspect_btn, inspection=state,
        summary=summary, verdicts=verdicts, mapping_box=mapping_box, fields=fields, transforms=transforms, mapping_verdict=mapping_verdict,
        mapping_json=mapping_json, mapping_code=mapping_code, preview=preview, model=model, max_length=max_length,
        render_button=render_btn, rendered=rendered, rendered_note=rendered_note, stats_text=stats_text, stats=stats,
    )  # fmt: skip

    inspect_outputs = [state, config, split, summary, verdicts, preview, *tab.editor, *tab.example_outputs]
    handler, inspect_inputs = ui_errors(tab.on_inspect, kind="inspect"), [dataset, config, split, method, state]
    buttons = [inspect_btn, render_btn]  # disabled while either runs
    while_busy(inspect_btn.click, buttons, handler, inspect_inputs, inspect_outputs, **concurrency("inspect"))
    for trigger in (dataset.submit, config.input, split.input):
        trigger(handler, inspect_inputs, inspect_outputs, api_visibility="private", **concurrency("inspect"))
    method.change(ui_errors(tab.on_method), [method, state], [*tab.editor, verdicts], api_visibility="private")
    edit = ui_errors(tab.on_mapping_edit)
    for component in (*fields.values(), transforms):
        component.input(edit, [method, state, transforms, *fields.values()],
                        [mapping_json, mapping_verdict, mapping_code, verdicts], api_visibility="private")  # fmt: skip
    while_busy(render_btn.click, buttons, ui_errors(tab.on_render, kind="tokens"),
               [state, method, mapping_json, model, max_length],
               [rendered, rendered_note, stats_text, stats], **concurrency("tokens"))  # fmt: skip
    gr.Markdown(
        "**Next:** the dataset, split, method and mapping are carried to **Estimate** (what it costs on each GPU) "
        "and **Train**.",
        elem_classes="next-step",
    )
    return tab
