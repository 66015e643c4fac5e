"""The "Estimate" tab: peak GPU memory, time and cost on every flavor, and the one to pick.

Also the `/estimate` API (`gr.api`, same service). Prefilled from the Dataset tab when one is given.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr

from ..catalog import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DATASET,
    DEFAULT_GRAD_ACCUM,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MODEL,
    MAX_LENGTH_RANGE,
    METHOD_LABELS,
    METHODS,
    PEFT_MODES,
)
from ..estimate import EstimateResult, estimate
from .common import optional_token, ui_errors

INTRO = (
    "How much GPU memory the job needs at its peak, how long it runs and what it costs, on every Jobs flavor — "
    "from the model's Hub metadata and `config.json` only (no weights are downloaded). The cheapest flavor that "
    "fits with a 10% margin is recommended, with a timeout of the estimate plus 30%."
)
COLUMNS = ["Flavor", "GPUs", "VRAM per GPU (GB)", "Peak per GPU (GB)", "Fits", "Hours", "Cost ($)", "$ / hour"]


def _run(
    model: str,
    dataset: str | None,
    method: str,
    peft: str,
    max_length: Any,
    epochs: Any,
    per_device_batch_size: Any,
    gradient_accumulation: Any,
    gradient_checkpointing: bool,
    num_rows: Any,
    *,
    split: str | None = None,
    mean_tokens: Any = None,
    fsdp: bool = False,
    token: str | None = None,
) -> EstimateResult:
    """The service call: estimate() validates every number, and a blank or 0 row count / mean means "measure"."""
    return estimate(
        model=model or "",
        dataset=(dataset or "").strip() or None,
        method=method or "sft",
        peft=peft or "lora",
        max_length=max_length,
        epochs=epochs,
        per_device_batch_size=per_device_batch_size,
        gradient_accumulation=gradient_accumulation,
        gradient_checkpointing=bool(gradient_checkpointing),
        num_rows=num_rows,
        mean_tokens=mean_tokens,
        split=(split or "").strip() or None,
        fsdp=bool(fsdp),
        token=token,
    )


@ui_errors
def estimate_api(
    model: str,
    dataset: str | None = None,
    method: str = "sft",
    peft: str = "lora",
    max_length: int = DEFAULT_MAX_LENGTH,
    epochs: float = 1.0,
    per_device_batch_size: int = DEFAULT_BATCH_SIZE,
    gradient_accumulation: int = DEFAULT_GRAD_ACCUM,
    gradient_checkpointing: bool = True,
    num_rows: int | None = None,
    oauth_token: gr.OAuthToken | None = None,
) -> dict[str, Any]:
    """API: peak memory, hours and dollars on every GPU flavor, the recommended flavor and the timeout.

    num_rows None: counted by the dataset viewer. Returns {"model", "params", "tokens", "flavors": [...],
    "recommended", "timeout", "notes"}.
    """
    result = _run(
        model, dataset, method, peft, max_length, epochs, per_device_batch_size, gradient_accumulation,
        gradient_checkpointing, num_rows, token=optional_token(oauth_token),
    )  # fmt: skip
    return result.to_json()


def flavor_table(result: EstimateResult):
    """The flavors as a DataFrame for gr.Dataframe (recommended one starred)."""
    import pandas as pd

    rows = []
    for f in result.flavors:
        name = f.flavor.name + (" ★" if f.flavor.name == result.recommended else "")
        rows.append(
            [name, f.flavor.gpus, round(f.flavor.vram_gb, 1), round(f.peak_gib, 1), "✓" if f.fits else "✗",
             round(f.hours, 2), round(f.cost_usd, 2), round(f.flavor.usd_per_hour, 2)]
        )  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def details(result: EstimateResult) -> dict[str, Any]:
    """What the recommendation rests on: the memory terms and time phases of the recommended flavor."""
    best = result.best or (min(result.flavors, key=lambda f: f.peak_gib) if result.flavors else None)
    out: dict[str, Any] = {
        "params": result.params,
        "params_source": result.params_source,
        "training_tokens": result.tokens,
        "inputs": {k: v for k, v in vars(result.inputs).items()},
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


@ui_errors
def _on_estimate(
    model, dataset, split, method, peft, max_length, epochs, batch, accum, ckpt, num_rows, mean_tokens, fsdp,
    oauth_token: gr.OAuthToken | None = None,
):  # fmt: skip
    result = _run(
        model, dataset, method, peft, max_length, epochs, batch, accum, ckpt, num_rows,
        split=split, mean_tokens=mean_tokens, fsdp=fsdp, token=optional_token(oauth_token),
    )  # fmt: skip
    verdict = result.verdict()
    notes = [*result.notes]
    if notes:
        verdict += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return flavor_table(result), verdict, details(result), result.recommended or "", result.timeout or ""


def _from_stats(stats: Any) -> tuple[Any, Any]:
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


def _link(source: Any, target: gr.components.Component) -> None:
    """Copy a Dataset-tab component's value into ours whenever it changes (when both exist)."""
    if source is not None and hasattr(source, "change"):
        source.change(lambda v: v, source, target, api_visibility="private", queue=False)


def build_tab(dataset_tab: SimpleNamespace | None = None) -> SimpleNamespace:
    """Build the tab's components inside the caller's `gr.Tab`; returns them for wiring (Train tab prefill)."""
    gr.Markdown(INTRO)
    with gr.Row():
        model = gr.Textbox(label="Model", value=DEFAULT_MODEL, scale=2)
        dataset = gr.Textbox(label="Dataset", value=DEFAULT_DATASET, scale=2)
        split = gr.Textbox(label="Split", value="train", scale=1)
    with gr.Row():
        method = gr.Dropdown([(METHOD_LABELS[m], m) for m in METHODS], value="sft", label="Method")
        peft = gr.Radio(list(PEFT_MODES), value="lora", label="Fine-tuning")
        fsdp = gr.Checkbox(label="Shard with FSDP (several GPUs)", value=False)
    with gr.Row():
        max_length = gr.Number(
            label="max_length (tokens)", value=DEFAULT_MAX_LENGTH, precision=0, minimum=MAX_LENGTH_RANGE[0]
        )
        epochs = gr.Number(label="Epochs", value=1, minimum=0.01)
        batch = gr.Number(label="Batch size per GPU", value=DEFAULT_BATCH_SIZE, precision=0, minimum=1)
        grad_accum = gr.Number(label="Gradient accumulation", value=DEFAULT_GRAD_ACCUM, precision=0, minimum=1)
        grad_ckpt = gr.Checkbox(label="Gradient checkpointing", value=True)
    with gr.Row():
        num_rows = gr.Number(label="Rows (0: count them with the dataset viewer)", value=0, precision=0, minimum=0)
        mean_tokens = gr.Number(
            label="Mean tokens per row (0: measured on the Dataset tab, else 512)", value=0, minimum=0
        )
    button = gr.Button("Estimate", variant="primary")
    verdict = gr.Markdown()
    table = gr.Dataframe(headers=COLUMNS, label="Every GPU flavor", interactive=False, wrap=True)
    with gr.Row():
        recommended_flavor = gr.Textbox(label="Recommended flavor", interactive=False)
        timeout = gr.Textbox(label="Timeout to submit with", interactive=False)
    with gr.Accordion("How this was computed", open=False):
        info = gr.JSON(label="Memory terms (GB per GPU) and time phases (minutes) of the recommended flavor")

    inputs = [model, dataset, split, method, peft, max_length, epochs, batch, grad_accum, grad_ckpt, num_rows,
              mean_tokens, fsdp]  # fmt: skip
    outputs = [table, verdict, info, recommended_flavor, timeout]
    button.click(_on_estimate, inputs, outputs, api_visibility="private")
    gr.api(estimate_api, api_name="estimate")

    if dataset_tab is not None:  # prefill from the Dataset tab (whatever of these it offers)
        links = (
            ("dataset", dataset),
            ("split", split),
            ("method", method),
            ("model", model),
            ("max_length", max_length),
        )
        for name, target in links:
            _link(getattr(dataset_tab, name, None), target)
        for name in ("inspection", "stats"):  # DatasetInspection (num_rows) / token statistics (mean tokens)
            source = getattr(dataset_tab, name, None)
            if source is not None and hasattr(source, "change"):
                source.change(_from_stats, source, [num_rows, mean_tokens], api_visibility="private", queue=False)

    return SimpleNamespace(
        model=model, dataset=dataset, split=split, method=method, peft=peft, max_length=max_length, epochs=epochs,
        batch=batch, grad_accum=grad_accum, grad_ckpt=grad_ckpt, num_rows=num_rows, mean_tokens=mean_tokens,
        fsdp=fsdp, button=button, table=table, verdict=verdict, info=info,
        recommended_flavor=recommended_flavor, timeout=timeout,
    )  # fmt: skip
