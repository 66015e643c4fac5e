"""Pre-flight checks that need the dataset inspection and the estimate (kept apart: they import more)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .errors import TrainerSpaceError

if TYPE_CHECKING:
    from .hub import HubSession
    from .inspection import DatasetInspection
    from .training import Check, TrainingConfig


def check_dataset(session: HubSession, cfg: TrainingConfig) -> tuple[Check, DatasetInspection | None]:
    """The dataset is readable and READY for the method (as is, or with the mapping the config carries)."""
    from .inspection import inspect_dataset, revalidate
    from .training import Check

    try:
        inspection = inspect_dataset(
            dataset=cfg.dataset, split=cfg.split, config=cfg.dataset_config, token=session._token
        )
    except TrainerSpaceError as err:
        return Check("dataset", "error", err.message), None
    report = inspection.methods[cfg.method]
    if cfg.mapping:
        report = revalidate(inspection=inspection, method=cfg.method, mapping=cfg.mapping)
    rows = f"{inspection.num_rows:,} rows" if inspection.num_rows else "row count unknown"
    where = f"{cfg.dataset} [{inspection.config}/{inspection.split}, {rows}]"
    verdict = report.verdict.value
    if verdict == "READY":
        reason = report.reason.removeprefix("with this mapping: ")
        mapped = " with your mapping" if cfg.mapping else ""
        return Check("dataset", "ok", f"{where} is READY for {cfg.method}{mapped}: {reason}."), inspection
    if verdict == "NEEDS_MAPPING" and not cfg.mapping:
        from .formats import readiness

        trains_as_is, _ = readiness(cfg.method, inspection.sample)
        if trains_as_is:  # the proposal is an improvement (e.g. keep a system column), not a requirement
            return (
                Check(
                    "dataset",
                    "warn",
                    f"{where} trains as it is for {cfg.method}; the Dataset tab suggests: {report.reason}.",
                ),
                inspection,
            )
    if verdict == "NEEDS_MAPPING":
        proposal = json.dumps(report.mapping, separators=(",", ":")) if report.mapping else "{}"
        return (
            Check(
                "dataset",
                "error",
                f"{where} needs a column mapping for {cfg.method}: {report.reason}. Use the mapping the Dataset tab "
                f'proposes (the job applies it), e.g. "mapping": {proposal}.',
            ),
            inspection,
        )
    return Check("dataset", "error", f"{where} cannot be used for {cfg.method}: {report.reason}."), inspection


def check_lengths(
    session: HubSession, cfg: TrainingConfig, inspection: DatasetInspection | None
) -> tuple[Check | None, float | None]:
    """Token lengths of the inspected rows with the model's tokenizer: the estimate's mean, and truncation.

    Measured on the rows the inspection already holds (no extra viewer call); the tokenizer is the one the job
    loads. Returns (check, mean tokens per row), or (None, None) when there is nothing to measure.
    """
    from .estimate import DEFAULT_MEAN_TOKENS
    from .inspection import token_stats
    from .training import Check

    if inspection is None or not inspection.sample:
        return None, None
    try:
        stats = token_stats(
            rows=inspection.sample, method=cfg.method, mapping=cfg.mapping, model=cfg.model,
            max_length=cfg.max_length, token=session._token,
        )  # fmt: skip
    except TrainerSpaceError as err:
        why = f"Could not count tokens: {err.message.rstrip('.')}."
        return Check("lengths", "warn", f"{why} The estimate assumes {DEFAULT_MEAN_TOKENS} tokens per row."), None
    what = stats.measured[:1].upper() + stats.measured[1:]
    measured = (
        f"{what} averages {stats.mean:,.0f} tokens (p95 {stats.p95:,}, longest {stats.max:,}) "
        f"over {stats.rows} rows, with the tokenizer of {cfg.model}"
    )
    if cfg.method != "grpo" and stats.over_max_length:  # GRPO has no max_length: the prompt is never cut
        return Check(
            "lengths",
            "warn",
            f"{measured}. {stats.share_over:.0%} of them are longer than max_length={cfg.max_length} and will be "
            f"truncated: raise max_length to about {stats.p95:,} to keep 95% whole (it costs memory: see the "
            "estimate), or accept the truncation.",
        ), stats.mean
    return Check("lengths", "ok", f"{measured}; the time estimate uses it."), stats.mean


# advanced options that change neither memory nor time (the estimate models `beta` itself); any other is named
# in the estimate's check as not modelled
_NEUTRAL_ADVANCED = {
    "learning_rate", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "weight_decay", "max_grad_norm",
    "adam_beta1", "adam_beta2", "adam_epsilon", "seed", "data_seed", "logging_steps", "save_total_limit", "beta",
    "loss_type", "label_smoothing", "temperature", "top_p", "top_k", "chat_template_path", "completion_only_loss",
    "assistant_only_loss", "run_name", "hub_private_repo",
}  # fmt: skip


def _advanced_number(cfg: TrainingConfig, key: str) -> float | None:
    value = cfg.advanced.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def check_estimate(
    session: HubSession,
    cfg: TrainingConfig,
    inspection: DatasetInspection | None = None,
    mean_tokens: float | None = None,
) -> tuple[Check, dict[str, Any] | None]:
    """Does the job fit on the chosen flavor, and what timeout does it need?"""
    from .estimate import estimate, timeout_for
    from .training import QUICK_TEST_ROWS, QUICK_TEST_STEPS, Check

    num_rows = inspection.num_rows if inspection is not None else None
    result = estimate(
        model=cfg.model,
        dataset=None if inspection is not None else cfg.dataset,  # the inspection already asked the viewer
        method=cfg.method,
        peft=cfg.peft,
        max_length=cfg.max_length,
        epochs=cfg.num_train_epochs,
        per_device_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation=cfg.gradient_accumulation_steps,
        gradient_checkpointing=cfg.gradient_checkpointing,
        num_rows=QUICK_TEST_ROWS if cfg.quick_test else num_rows,
        mean_tokens=mean_tokens,
        split=cfg.split,
        max_steps=QUICK_TEST_STEPS if cfg.quick_test else cfg.max_steps,
        fsdp=cfg.fsdp,
        lora_r=cfg.lora_r,
        num_generations=cfg.num_generations,  # GRPO: what the job samples, not TRL's defaults
        max_completion_length=cfg.max_completion_length,
        lora_dropout=cfg.lora_dropout,
        beta=_advanced_number(cfg, "beta"),  # GRPO with beta > 0 loads a reference model
        token=session._token,
    )
    chosen = next((f for f in result.flavors if f.flavor.name == cfg.flavor), None)
    summary = {"recommended": result.recommended, "estimate": result.to_json()}
    if chosen is None:
        return Check("estimate", "warn", f"No estimate for {cfg.flavor} (not a GPU flavor?)."), summary
    timeout_s, timeout = timeout_for(chosen.time.total)
    summary |= {"timeout_s": timeout_s, "timeout": timeout, "hours": chosen.hours, "cost_usd": chosen.cost_usd}
    peak = f"peak {chosen.peak_gib:.1f} of {chosen.flavor.vram_gb:g} GB per GPU"
    unmodelled = sorted(set(cfg.advanced) - _NEUTRAL_ADVANCED)
    caveat = f" Not modelled: {', '.join(unmodelled)} (advanced)." if unmodelled else ""
    if chosen.fits:
        cost = f"about {chosen.hours * 60:.0f} min, ${chosen.cost_usd:,.2f}"
        return Check("estimate", "ok", f"Fits on {cfg.flavor} ({peak}); {cost}.{caveat}"), summary
    fixes = list(result.suggestions)
    if result.recommended:
        fixes.insert(0, f"pick {result.recommended}, the cheapest flavor where it fits")
    hint = ("; ".join(fixes[:4]) + ".") if fixes else "use LoRA/QLoRA, a smaller batch or a shorter max_length."
    return Check("estimate", "warn", f"Probably does not fit on {cfg.flavor} ({peak}): {hint}{caveat}"), summary
