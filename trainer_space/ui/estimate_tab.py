"""The "Estimate" tab: peak GPU memory, time and cost on every flavor, and the one to pick.

Prefilled from the Dataset tab when one is given. The form's values become one `TrainingConfig` (validated like
the Train tab's), so the estimate describes the job the Train tab will submit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import gradio as gr
import pandas as pd

from ..catalog import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DATASET,
    DEFAULT_GRAD_ACCUM,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MODEL,
    MAX_LENGTH_RANGE,
    METHODS,
    PEFT_MODES,
)
from ..estimate.model import EstimateResult
from ..jobs.backends import BACKEND_LABELS, HF_JOBS, LOCAL
from ..jobs.config import TrainingConfig
from ..jobs.preflight import estimate_config
from ..settings import get_settings
from ..validation import validate_float, validate_int
from .common import concurrency, reader_for, steps_to, ui_errors, while_busy

INTRO = (
    "How much GPU memory the job needs at its peak, how long it runs and what it costs, on every Jobs flavor — "
    "from the model's Hub metadata and `config.json` only (no weights are downloaded). The cheapest flavor that "
    "fits with a 10% margin is recommended, with a timeout of the estimate plus 30%."
)
# what decides first (a phone shows the first four): the flavor, whether it fits, what it costs, how long it runs
COLUMNS = ["Flavor", "Fits", "Cost ($)", "Hours", "Peak GB / GPU", "GB / GPU", "GPUs", "$ / hour"]
# The tab's CSS (the app adds it to its own): headers on one line, numbers never broken, the table scrolls sideways
CSS = """
#estimate-table th, #estimate-table th * {white-space: nowrap !important; word-break: keep-all !important}
#estimate-table td, #estimate-table td * {word-break: keep-all !important; overflow-wrap: normal !important}
@media (max-width: 720px) {
  #estimate-method {min-width: 100% !important}
}
"""


def flavor_table(result: EstimateResult) -> pd.DataFrame:
    """The flavors as a DataFrame for gr.Dataframe (recommended one starred)."""
    rows = []
    for f in result.flavors:
        name = ("this machine" if f.flavor.is_local else f.flavor.name) + (
            " ★" if f.flavor.name == result.recommended else ""
        )
        fits = "✓" if f.fits else "✗"
        rows.append(
            [name, fits, round(f.cost_usd, 2), round(f.hours, 2), round(f.peak_gib, 1), round(f.flavor.vram_gb, 1),
             f.flavor.gpus, round(f.flavor.usd_per_hour, 2)]
            if f.flavor.is_gpu else
            [name, fits, 0.0, round(f.hours, 2), round(f.peak_gib, 1), round(f.flavor.ram_gb, 1), 0, 0.0]
        )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def details(result: EstimateResult) -> dict[str, Any]:
    """What the recommendation rests on: the memory terms and time phases of the recommended flavor."""
    best = result.best or (min(result.flavors, key=lambda f: f.peak_gib) if result.flavors else None)
    out: dict[str, Any] = {
        "params": result.params,
        "params_source": result.params_source,
        "training_tokens": result.tokens,
        "inputs": {f.name: getattr(result.inputs, f.name) for f in fields(result.inputs)},
    }
    if best is not None:
        t = best.time
        out["flavor"] = best.flavor.name
        out["memory_gb_per_gpu"] = best.memory.as_gib()
        out["time_minutes"] = {
            k: round(getattr(t, k) / 60, 1)
            for k in ("startup", "download", "tokenize", "train", "generation", "checkpoints", "push")
        } | {"total": round(t.total / 60, 1), "optimizer_steps": t.steps}
    return out


def from_stats(stats: Any) -> tuple[Any, Any]:
    """(num_rows, mean_tokens) out of the Dataset tab's inspection or token statistics (dict or object)."""

    def number(*names: str) -> float | None:
        for name in names:
            value = stats.get(name) if isinstance(stats, dict) else getattr(stats, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return value
        return None

    if not stats:
        return gr.update(), gr.update()
    rows = number("num_rows", "num_rows_total", "total_rows")
    mean = number("mean_tokens", "tokens_mean", "mean")
    return (int(rows) if rows is not None else gr.update()), (mean if mean is not None else gr.update())


@dataclass
class EstimateTab:
    backend: gr.Radio
    model: gr.Textbox
    dataset: gr.Textbox
    split: gr.Textbox
    method: gr.Dropdown
    peft: gr.Radio
    fsdp: gr.Checkbox
    max_length: gr.Number
    epochs: gr.Number
    batch: gr.Number
    grad_accum: gr.Number
    grad_ckpt: gr.Radio
    num_rows: gr.Number
    mean_tokens: gr.Number
    button: gr.Button
    verdict: gr.Markdown
    table: gr.Dataframe
    recommended_flavor: gr.Textbox
    timeout: gr.Textbox
    info: gr.JSON

    @property
    def config_fields(self) -> dict[str, gr.components.Component]:
        """The form's components by `TrainingConfig` field name."""
        return {
            "backend": self.backend, "model": self.model, "dataset": self.dataset, "split": self.split,
            "method": self.method,
            "peft": self.peft, "fsdp": self.fsdp, "max_length": self.max_length, "num_train_epochs": self.epochs,
            "per_device_train_batch_size": self.batch, "gradient_accumulation_steps": self.grad_accum,
            "gradient_checkpointing": self.grad_ckpt,
        }  # fmt: skip

    def config(self, values: dict[Any, Any]) -> TrainingConfig:
        """The form's values as a config (the dataset is optional here: it only counts rows)."""
        data = {name: values[c] for name, c in self.config_fields.items()}
        data["dataset"] = (data["dataset"] or "").strip() or None
        data["split"] = (data["split"] or "").strip() or "train"
        return TrainingConfig.from_dict(data, required=("model",))

    def on_estimate(
        self, values: dict[Any, Any], oauth_token: gr.OAuthToken | None = None, progress: gr.Progress = gr.Progress()
    ) -> dict[Any, Any]:
        cfg = self.config(values)
        rows, mean = values[self.num_rows], values[self.mean_tokens]  # blank or 0: measure / assume
        with steps_to(progress, expected=2):
            result = estimate_config(
                reader_for(oauth_token),
                cfg,
                num_rows=validate_int(rows, "Rows", 1, 10_000_000_000) if rows else None,
                mean_tokens=validate_float(mean, "Mean tokens per row", 1.0, 262_144.0) if mean else None,
            )
        verdict = result.verdict()
        if result.notes:
            verdict += "\n\n" + "\n".join(f"- {n}" for n in result.notes)
        return {
            self.table: flavor_table(result),
            self.verdict: verdict,
            self.info: details(result),
            self.recommended_flavor: result.recommended or "",
            self.timeout: result.timeout or "",
        }


def _link(source: Any, target: gr.components.Component) -> None:
    """Copy a Dataset-tab component's value into ours whenever it changes (when both exist)."""
    if source is not None and hasattr(source, "change"):
        source.change(lambda v: v, source, target, api_visibility="private", queue=False)


def build_tab(dataset_tab: Any | None = None) -> EstimateTab:
    """Build the tab's components inside the caller's `gr.Tab`; returns them for wiring (Train tab prefill)."""
    gr.Markdown(INTRO)
    settings = get_settings()
    backend = gr.Radio(
        [(BACKEND_LABELS[b], b) for b in (LOCAL, HF_JOBS)], value=settings.default_backend, label="Run on",
        visible=settings.local_enabled, info="Recommend this machine, or the cheapest Jobs flavor (both are listed).",
    )  # fmt: skip
    with gr.Row():
        model = gr.Textbox(label="Model", value=DEFAULT_MODEL, scale=2)
        dataset = gr.Textbox(label="Dataset", value=DEFAULT_DATASET, scale=2)
        split = gr.Textbox(label="Split", value="train", scale=1)
    with gr.Row():
        method = gr.Dropdown([(s.label, m) for m, s in METHODS.items()], value="sft", label="Method",
                             elem_id="estimate-method")  # fmt: skip
        peft = gr.Radio(list(PEFT_MODES), value="lora", label="Fine-tuning")
        fsdp = gr.Checkbox(label="Shard with FSDP (several GPUs)", value=False)
    with gr.Row():
        max_length = gr.Number(
            label="max_length (tokens)", value=DEFAULT_MAX_LENGTH, precision=0, minimum=MAX_LENGTH_RANGE[0]
        )
        epochs = gr.Number(label="Epochs", value=1, minimum=0.01)
        batch = gr.Number(label="Batch size per GPU", value=DEFAULT_BATCH_SIZE, precision=0, minimum=1)
        grad_accum = gr.Number(label="Gradient accumulation", value=DEFAULT_GRAD_ACCUM, precision=0, minimum=1)
        grad_ckpt = gr.Radio(["auto", "on", "off"], value="auto", label="Gradient checkpointing")
    with gr.Row():
        num_rows = gr.Number(label="Rows (0: count them with the dataset viewer)", value=0, precision=0, minimum=0)
        mean_tokens = gr.Number(
            label="Mean tokens per row (0: measured on the Dataset tab, else 512)", value=0, minimum=0
        )
    button = gr.Button("Estimate", variant="primary")
    verdict = gr.Markdown()
    table = gr.Dataframe(headers=COLUMNS, label="Every GPU flavor", interactive=False, wrap=True,
                         elem_id="estimate-table")  # fmt: skip
    with gr.Row():
        recommended_flavor = gr.Textbox(label="Recommended flavor", interactive=False)
        timeout = gr.Textbox(label="Timeout to submit with", interactive=False)
    with gr.Accordion("How this was computed", open=False):
        info = gr.JSON(label="Memory terms (GB per GPU) and time phases (minutes) of the recommended flavor")
    tab = EstimateTab(
        backend=backend, model=model, dataset=dataset, split=split, method=method, peft=peft, fsdp=fsdp, max_length=max_length,
        epochs=epochs, batch=batch, grad_accum=grad_accum, grad_ckpt=grad_ckpt, num_rows=num_rows,
        mean_tokens=mean_tokens, button=button, verdict=verdict, table=table,
        recommended_flavor=recommended_flavor, timeout=timeout, info=info,
    )  # fmt: skip
    inputs = {*tab.config_fields.values(), num_rows, mean_tokens}
    outputs = [table, verdict, info, recommended_flavor, timeout]
    while_busy(button.click, [button], ui_errors(tab.on_estimate, kind="plan"), inputs, outputs, **concurrency("plan"))
    gr.Markdown(
        "**Next:** the recommended flavor, its timeout and these settings are carried to **Train**.",
        elem_classes="next-step",
    )
    if dataset_tab is not None:  # prefill from the Dataset tab (whatever of these it offers)
        for name, target in (("dataset", dataset), ("split", split), ("method", method), ("model", model),
                             ("max_length", max_length)):  # fmt: skip
            _link(getattr(dataset_tab, name, None), target)
        for name in ("inspection", "stats"):  # DatasetInspection (num_rows) / token statistics (mean tokens)
            source = getattr(dataset_tab, name, None)
            if source is not None and hasattr(source, "change"):
                source.change(from_stats, source, [num_rows, mean_tokens], api_visibility="private", queue=False)
    return tab
