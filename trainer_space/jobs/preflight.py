"""Pre-flight checks before a job is created: each failure a message a person can act on.

`run_preflight` runs them in order for a training config and returns them with the estimate they used; the
GGUF export reuses the account, namespace and output-repo checks. A check is `ok`, `warn` (submission allowed) or
`error` (blocks submission). Dry runs run the same checks as real submissions (namespace roles included).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from huggingface_hub import JobInfo

from ..catalog import DEFAULT_FLAVOR, MIN_TIMEOUT_S, QUICK_TEST_ROWS, QUICK_TEST_STEPS, auto_settings, submit_timeout_s
from ..data import detect
from ..data.inspection import DatasetInspection, inspect_dataset, revalidate
from ..data.mapping import REWARD_FUNCS, default_rewards, reward_problems
from ..data.tokens import token_stats
from ..data.trl_rules import (
    config_problems,
    dropped_rows_problem,
    grpo_generation_batch,
    grpo_prompt_problem,
    padding_free_changes,
)
from ..errors import TrainerSpaceError
from ..estimate.model import DEFAULT_MEAN_TOKENS, SAVE_STEPS, EstimateResult, FlavorEstimate, recommend
from ..estimate.service import estimate
from ..estimate.speed_rules import PACKING_METHODS, choose_speed, speed_summary
from ..hub.hardware import LOCAL_FLAVOR, Flavor, get_flavor
from ..hub.session import HubSession
from ..settings import get_settings
from ..steps import step
from ..validation import format_timeout, is_local_ref
from .backends.local import this_machine
from .checks import Check, Status
from .config import TrainingConfig
from .spec import load_template, template_constants
from .spending import CostGuard, bounded_timeout, cost_check, guard, open_worst_cases, running_check, total_check
from .trl_options import unmet_needs


def check_account(session: HubSession) -> list[Check]:
    """Signed in (NotSignedIn / InvalidToken propagate: nothing else can be checked), allowed to run jobs, able to pay."""
    visitor = session.visitor
    out = [Check("sign-in", Status.OK, f"Signed in as {visitor.name}.")]
    if visitor.can_run_jobs is False:
        out.append(
            Check(
                "jobs permission",
                Status.ERROR,
                "Your token cannot run Jobs. Sign out and sign in again granting 'Run jobs', "
                "or use a token with the job.write permission.",
            )
        )
    else:
        out.append(Check("jobs permission", Status.OK, "Your sign-in allows running Jobs."))
    if not visitor.can_pay:
        out.append(
            Check(
                "billing",
                Status.WARN,
                "No payment method on your account: Jobs need pre-paid credit or a payment method "
                "(https://huggingface.co/settings/billing).",
            )
        )
    return out


def check_namespace(session: HubSession, namespace: str | None, action: str = "run jobs") -> Check:
    """The job's namespace is the visitor's, or an org where their role (whoami's roleInOrg) lets them `action`."""
    visitor = session.visitor
    target = namespace or visitor.name
    try:
        session.check_namespace(target, write_action=action)
    except TrainerSpaceError as err:
        return Check("namespace", Status.ERROR, err.message)
    if target == visitor.name:
        return Check("namespace", Status.OK, "The job runs in your own namespace, billed to you.")
    role = visitor.role_in(target)
    return Check("namespace", Status.OK, f"The job runs in '{target}' (your role there: {role}), billed to it.")


def check_trackio(session: HubSession, space_id: str) -> Check:
    """The Trackio Space is one the visitor can write to (the job creates or updates it with their token)."""
    namespace = space_id.split("/")[0]
    visitor = session.visitor
    if not visitor.can_write_to(namespace):
        role = visitor.role_in(namespace)
        why = f"your role in '{namespace}' is '{role}'" if role else f"'{namespace}' is not yours nor one of your orgs"
        return Check(
            "trackio",
            Status.ERROR,
            f"The metrics go to the Trackio Space '{space_id}', but {why}: the job could not write them. "
            f"Use a Space of yours, e.g. {visitor.name}/trackio.",
        )
    return Check("trackio", Status.OK, f"Metrics go to the Trackio Space {space_id}.")


def check_model(session: HubSession, model: str) -> Check:
    """The model exists and its config is readable with the visitor's token (gated ones say so).

    Uses the same (cached) model facts as the estimate, so the Hub is asked once.
    """
    from ..estimate.model_facts import get_model_facts

    try:
        facts = get_model_facts(session, model)
    except TrainerSpaceError as err:
        return Check("model", Status.ERROR, err.message)
    size = f"{facts.params / 1e9:.2f}B parameters"
    return Check(
        "model", Status.OK, f"{model} is readable ({facts.arch.model_type or 'unknown architecture'}, {size})."
    )


def check_output_repo(
    session: HubSession, output_repo: str, purpose: str = "Checkpoints and the final model go to"
) -> Check:
    namespace = output_repo.split("/")[0]
    writable = session.visitor.writable_namespaces
    if namespace not in writable:
        return Check(
            "output repo", Status.ERROR, f"You cannot write to '{namespace}'. Use one of: {', '.join(writable)}."
        )
    return Check("output repo", Status.OK, f"{purpose} {output_repo}.")


def check_rewards(cfg: TrainingConfig, inspection: DatasetInspection | None) -> tuple[Check | None, list[str]]:
    """GRPO's rewards (the data's default when none are chosen) and the fields they read: (check, rewards).

    A reward whose field the mapped data lacks (`accuracy` without an `answer`) is an error naming the field and the
    mapping that would provide it. Other methods: (None, []).
    """
    if not cfg.spec.generates:
        return None, []
    fields = detect.mapped_fields(inspection.sample, cfg.mapping) if inspection is not None else None
    if not cfg.reward_funcs:
        names = default_rewards(fields or ())
        why = "the data has an 'answer' field" if "accuracy" in names else "the data has no 'answer' field"
        return Check("rewards", Status.OK, f"No rewards chosen: {', '.join(names)} ({why}).") if fields else None, names
    missing = reward_problems(cfg.reward_funcs, fields) if fields is not None else []
    if not missing:
        return Check("rewards", Status.OK, f"Rewards: {', '.join(cfg.reward_funcs)}."), list(cfg.reward_funcs)
    free = [n for n, r in REWARD_FUNCS.items() if not r.needs]
    problems = []
    for reward, need in missing:
        used = set(cfg.mapping.columns.values()) if cfg.mapping else set()
        source = detect.suggest_column(need, inspection.sample, exclude=used) if inspection is not None else None
        mapping = cfg.mapping.to_json() if cfg.mapping else {"columns": {}, "transforms": []}
        mapping["columns"] = {**mapping["columns"], need: source or f"<column with the {need}>"}
        found = f"column '{source}' looks like one" if source else "no column looks like one"
        problems.append(
            f"the '{reward}' reward reads an '{need}' field and {cfg.dataset} has none after the mapping ({found}): "
            f'map it with "mapping": {json.dumps(mapping, separators=(",", ":"))}'
        )
    message = "; ".join(problems)
    message = f"{message[:1].upper()}{message[1:]}. Or choose rewards that read no field ({', '.join(free)})."
    return Check("rewards", Status.ERROR, message), list(cfg.reward_funcs)


def job_packages() -> set[str]:
    """The distributions the training job installs (its PEP 723 header), lower-case names."""
    return {
        re.split(r"[=<>!~\[; ]", dep, maxsplit=1)[0].strip().lower() for dep in load_template("train.py").dependencies
    }


def check_advanced(cfg: TrainingConfig) -> Check | None:
    """Advanced options the job's environment can honour (typed and named already by the config); None if none."""
    if not cfg.advanced:
        return None
    unmet = unmet_needs(cfg.method, cfg.advanced, job_packages())
    if unmet:
        problems = "; ".join(
            f"{name}={json.dumps(value)} needs the {package} package, which the job's environment does not install"
            for name, value, package in unmet
        )
        return Check("advanced options", Status.ERROR, f"{problems}: the job would fail on it. Remove it.")
    listed = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(cfg.advanced.items()))
    return Check("advanced options", Status.OK, f"Passed to TRL as given: {listed}.")


def check_dataset(session: HubSession, cfg: TrainingConfig) -> tuple[Check, DatasetInspection | None]:
    """The dataset is readable and READY for the method (as is, or with the mapping the config carries)."""
    try:
        inspection = inspect_dataset(session, dataset=cfg.dataset, split=cfg.split, config=cfg.dataset_config)
    except TrainerSpaceError as err:
        return Check("dataset", Status.ERROR, err.message), None
    report = inspection.methods[cfg.method]
    if cfg.mapping:
        report = revalidate(inspection=inspection, method=cfg.method, mapping=cfg.mapping)
    rows = f"{inspection.num_rows:,} rows" if inspection.num_rows else "row count unknown"
    where = f"{cfg.dataset} [{inspection.config}/{inspection.split}, {rows}]"
    if inspection.source == "local":
        where = f"{cfg.dataset} [{rows}]"
    verdict = report.verdict
    if verdict == detect.Verdict.READY:
        reason = report.reason.removeprefix("with this mapping: ")
        mapped = " with your mapping" if cfg.mapping else ""
        return Check("dataset", Status.OK, f"{where} is READY for {cfg.method}{mapped}: {reason}."), inspection
    if verdict == detect.Verdict.NEEDS_MAPPING and not cfg.mapping:
        trains_as_is, _ = detect.readiness(cfg.method, inspection.sample)
        if trains_as_is:  # the proposal is an improvement (e.g. keep a system column), not a requirement
            message = f"{where} trains as it is for {cfg.method}; the Dataset tab suggests: {report.reason}."
            return Check("dataset", Status.WARN, message), inspection
    if verdict == detect.Verdict.NEEDS_MAPPING:
        proposal = json.dumps(report.mapping.to_json(), separators=(",", ":")) if report.mapping else "{}"
        message = (
            f"{where} needs a column mapping for {cfg.method}: {report.reason}. Use the mapping the Dataset tab "
            f'proposes (the job applies it), e.g. "mapping": {proposal}.'
        )
        return Check("dataset", Status.ERROR, message), inspection
    return Check("dataset", Status.ERROR, f"{where} cannot be used for {cfg.method}: {report.reason}."), inspection


def check_lengths(
    session: HubSession, cfg: TrainingConfig, inspection: DatasetInspection | None
) -> tuple[Check | None, float | None, float | None]:
    """Token lengths of the inspected rows with the model's tokenizer: the estimate's mean, and truncation.

    Measured on the rows the inspection already holds (no extra viewer call); the tokenizer is the one the job
    loads. Returns (check, mean tokens per row, their 95th percentile), or (None, None, None) when there is nothing to
    measure.
    """
    if inspection is None or not inspection.sample:
        return None, None, None
    try:
        stats = token_stats(
            session, rows=inspection.sample, method=cfg.method, mapping=cfg.mapping, model=cfg.model,
            max_length=cfg.max_length,
        )  # fmt: skip
    except TrainerSpaceError as err:
        why = f"Could not count tokens: {err.message.rstrip('.')}."
        return (
            Check("lengths", Status.WARN, f"{why} The estimate assumes {DEFAULT_MEAN_TOKENS} tokens per row."),
            None,
            None,
        )
    what = stats.measured[:1].upper() + stats.measured[1:]
    measured = (
        f"{what} averages {stats.mean:,.0f} tokens (p95 {stats.p95:,}, longest {stats.max:,}) "
        f"over {stats.rows} rows, with the tokenizer of {cfg.model}"
    )
    dropped = dropped_rows_problem(cfg.method, stats.over_max_length, stats.rows, cfg.max_length)
    if cfg.method == "reward" and dropped is not None:  # pairs are dropped, not truncated
        fatal, message = dropped
        hint = f" (about {stats.p95:,} keeps 95% of them; it costs memory: see the estimate)" if not fatal else ""
        status = Status.ERROR if fatal else Status.WARN
        return Check("lengths", status, f"{measured}: {message}{hint}."), stats.mean, stats.p95
    if cfg.spec.truncates and stats.over_max_length:
        return (
            Check(
                "lengths",
                Status.WARN,
                f"{measured}. {stats.share_over:.0%} of them are longer than max_length={cfg.max_length} and will be "
                f"truncated: raise max_length to about {stats.p95:,} to keep 95% whole (it costs memory: see the "
                "estimate), or accept the truncation.",
            ),
            stats.mean,
            stats.p95,
        )
    return Check("lengths", Status.OK, f"{measured}; the time estimate uses it."), stats.mean, stats.p95


def evaluation_reason(cfg: TrainingConfig, inspection: DatasetInspection | None) -> str | None:
    """Why the job will evaluate (it does whenever it has an eval set), or None when it will not."""
    if cfg.eval_split_fraction:
        return f"eval_split_fraction={cfg.eval_split_fraction:g} holds out rows for it"
    if inspection is not None and cfg.split != "test" and "test" in inspection.split_names(inspection.config):
        return "the dataset has a 'test' split, which the job evaluates on"
    return None


def training_rows(cfg: TrainingConfig, inspection: DatasetInspection | None) -> int | None:
    """The rows the job trains on (the quick test's first rows, less the held-out share), when known."""
    rows = inspection.num_rows if inspection is not None else None
    if cfg.quick_test:
        rows = min(rows, QUICK_TEST_ROWS) if rows else QUICK_TEST_ROWS
    if rows and cfg.eval_split_fraction:
        rows -= max(1, round(rows * cfg.eval_split_fraction))  # as the job's split_for_eval
    return rows


def check_trl_config(cfg: TrainingConfig, inspection: DatasetInspection | None, gpus: int) -> Check | None:
    """What TRL would refuse in the job's final config (`data/trl_rules.py`; the job checks it again, on its real
    config, before its model loads): GRPO's generation and eval batches vs num_generations, its prompts vs one
    generation batch, padding-free vs packing. None when there is nothing to say."""
    options: dict[str, Any] = {
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "save_steps": SAVE_STEPS,
        **({"num_generations": cfg.num_generations} if cfg.spec.generates else {"max_length": cfg.max_length}),
        **cfg.advanced,
    }
    given = set(cfg.advanced)
    if cfg.packing == "off" and cfg.method in PACKING_METHODS:  # the job passes packing=false
        options["packing"] = False
        given.add("packing")
    packs = padding_free_changes(cfg.method, {k: options[k] for k in given})
    options |= packs
    why = evaluation_reason(cfg, inspection)
    world = max(1, gpus)
    problems = config_problems(cfg.method, options, world, evaluates=why is not None, given=given)
    rows = training_rows(cfg, inspection)
    if cfg.spec.generates and rows and not problems:
        problem = grpo_prompt_problem(rows, grpo_generation_batch(options, world), cfg.num_generations)
        problems += [problem] if problem else []
    if problems:
        message = "; ".join(problems)
        if "_" not in message.split(" ", 1)[0]:  # a sentence, not an option's name
            message = message[:1].upper() + message[1:]
        message += "." + (f" Evaluation is on: {why}." if why else "")
        return Check("training settings", Status.ERROR, message)
    if cfg.method == "dpo" and cfg.advanced.get("padding_free"):
        return Check(
            "training settings",
            Status.WARN,
            "padding_free: TRL 1.16's DPO trainer has it turned off for now (it pads, with a warning): the option "
            "changes nothing.",
        )
    if packs:
        return Check(
            "training settings",
            Status.OK,
            "padding_free: the job packs the examples (packing with BFD, TRL's padding-free packing), so max_length "
            "holds; set packing false to refuse that.",
        )
    return None


# advanced options that change neither memory nor time (the estimate models `beta` itself); any other is named
# in the estimate's check as not modelled
NEUTRAL_ADVANCED = frozenset({
    "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "adam_beta1", "adam_beta2",
    "adam_epsilon", "seed", "data_seed", "logging_steps", "save_steps", "save_total_limit", "beta", "loss_type",
    "label_smoothing", "label_smoothing_factor", "temperature", "top_p", "top_k", "min_p", "chat_template_path",
    "completion_only_loss", "assistant_only_loss", "run_name", "eos_token", "num_sample_generations",
})  # fmt: skip


def runs_training(flavor: Flavor) -> bool:
    """Whether the training job's torch build (train.py's TORCH_BUILD) has kernels for the flavor's GPU.

    Code for compute capability X.Y runs on X.Y and on later minors of the same major. CPU flavors and GPUs of
    unknown capability are let through (the job checks again at start).
    """
    capability = flavor.compute_capability
    if capability is None:
        return True
    built = template_constants("train.py")["TORCH_BUILD"]["compute_capabilities"]
    return any(c // 10 == capability // 10 and c <= capability for c in built)


def check_hardware(session: HubSession, flavor_name: str) -> Check | None:
    """The chosen GPU can run the job's PyTorch build (None when it can)."""
    flavor = get_flavor(flavor_name, session.hardware()[0])
    if flavor is None or runs_training(flavor):
        return None
    build = template_constants("train.py")["TORCH_BUILD"]
    cc = flavor.compute_capability or 0
    return Check(
        "hardware",
        Status.ERROR,
        f"{flavor.name} has {flavor.gpu_model} GPUs (compute capability {cc // 10}.{cc % 10}), which the job's PyTorch "
        f"build (CUDA {build['cuda']}, chosen because it runs on NVIDIA drivers from {build['min_driver']}) has no "
        "kernels for: the job would stop at start. Pick another GPU flavor (T4, L4, A10G, L40S, A100 or H200).",
    )


@dataclass(frozen=True)
class EstimateCheck:
    """The estimate of the job, and what it says about the chosen flavor."""

    check: Check
    result: EstimateResult | None
    chosen: FlavorEstimate | None
    flavor: str  # the config's flavor, else the recommended one, else the default
    needed_timeout_s: int | None  # the estimate + 30% on that flavor (None without an estimate)

    def summary(self) -> dict[str, Any] | None:
        """The API's `estimate` object."""
        if self.result is None:
            return None
        out: dict[str, Any] = {"recommended": self.result.recommended, "estimate": self.result.to_json()}
        if self.chosen is not None and self.needed_timeout_s is not None:
            out |= {
                "timeout_s": self.needed_timeout_s,
                "timeout": format_timeout(self.needed_timeout_s),
                "hours": self.chosen.hours,
                "cost_usd": self.chosen.cost_usd,
            }
        return out


def estimate_config(
    session: HubSession,
    cfg: TrainingConfig,
    *,
    num_rows: int | None = None,
    mean_tokens: float | None = None,
    p95_tokens: float | None = None,
) -> EstimateResult:
    """The estimate of a training config on every GPU flavor and, off Spaces, on this machine (rows counted by the
    viewer when not given); the recommendation is for the config's backend."""
    local = get_settings().local_enabled
    step("reading the model and counting the dataset's rows")
    if num_rows is None and is_local_ref(cfg.dataset):
        from ..data.local_files import read_rows

        num_rows = read_rows(cfg.dataset or "", cfg.split, limit=1)[1] or None
    return estimate(
        session,
        replace(cfg.estimate_inputs(), p95_tokens=p95_tokens),
        model=cfg.model,
        dataset=cfg.dataset if num_rows is None and not is_local_ref(cfg.dataset) else None,
        split=cfg.split,
        num_rows=QUICK_TEST_ROWS if cfg.quick_test else num_rows,
        mean_tokens=mean_tokens,
        this_machine=this_machine() if local else None,
        local=cfg.is_local,
    )


def check_estimate(
    session: HubSession,
    cfg: TrainingConfig,
    inspection: DatasetInspection | None = None,
    mean_tokens: float | None = None,
    p95_tokens: float | None = None,
) -> EstimateCheck:
    """Does the job fit on its flavor (the config's, else the cheapest that fits), and what timeout does it need?"""
    try:  # the inspection already asked the viewer for the row count
        rows = inspection.num_rows if inspection is not None else None
        result = estimate_config(session, cfg, num_rows=rows, mean_tokens=mean_tokens, p95_tokens=p95_tokens)
    except TrainerSpaceError as err:
        flavor = cfg.flavor or DEFAULT_FLAVOR
        return EstimateCheck(Check("estimate", Status.WARN, f"No estimate: {err.message}"), None, None, flavor, None)
    # the cheapest Jobs flavor the job can run on
    best = recommend(tuple(e for e in result.flavors if not e.flavor.is_local and runs_training(e.flavor)))
    flavor = LOCAL_FLAVOR if cfg.is_local else cfg.flavor or (best.flavor.name if best else None) or DEFAULT_FLAVOR
    chosen = next((f for f in result.flavors if f.flavor.name == flavor), None)
    if chosen is None:
        check = Check("estimate", Status.WARN, f"No estimate for {flavor} (not a GPU flavor?).")
        return EstimateCheck(check, result, None, flavor, None)
    needed = submit_timeout_s(chosen.time.total)
    device = "per GPU" if chosen.flavor.is_gpu else "of RAM"
    peak = f"peak {chosen.peak_gib:.1f} of {chosen.flavor.memory_gb:.0f} GB {device}"
    unmodelled = sorted(set(cfg.advanced) - NEUTRAL_ADVANCED)
    caveat = f" Not modelled: {', '.join(unmodelled)} (advanced)." if unmodelled else ""
    picked = " (this machine)" if cfg.is_local else "" if cfg.flavor else " (the cheapest flavor where it fits)"
    if chosen.fits:
        cost = f"about {chosen.hours * 60:.0f} min, ${chosen.cost_usd:,.2f}"
        shown = "this machine" if cfg.is_local else f"{flavor}{picked}"
        check = Check("estimate", Status.OK, f"Fits on {shown} ({peak}); {cost}.{caveat}")
        return EstimateCheck(check, result, chosen, flavor, needed)
    fixes = list(result.suggestions)
    if best is not None:
        fixes.insert(0, f"pick {best.flavor.name}, the cheapest flavor where it fits")
    hint = ("; ".join(fixes[:4]) + ".") if fixes else "use LoRA/QLoRA, a smaller batch or a shorter max_length."
    message = f"Does not fit on {flavor} ({peak}): {hint}{caveat}"
    if cfg.allow_unfit:
        check = Check("estimate", Status.WARN, f"{message} You chose to submit anyway (allow_unfit).")
    else:
        message += " To submit anyway, tick 'Submit even if it does not fit' (allow_unfit: true)."
        check = Check("estimate", Status.ERROR, message)
    return EstimateCheck(check, result, chosen, flavor, needed)


@dataclass(frozen=True)
class ResolvedSettings:
    """What "auto" became for this job: the config changes (epochs, batch, accumulation, learning rate, gradient
    checkpointing) and the two checks that say why (the rule's reasons; the speed settings on the chosen flavor)."""

    changes: dict[str, Any]
    auto_check: Check | None
    speed_check: Check | None


def resolved_settings(
    cfg: TrainingConfig, fit: EstimateCheck, inspection: DatasetInspection | None, mean_tokens: float | None
) -> ResolvedSettings:
    """The auto settings from the estimate (or, without one, from the rule with what is known of the data), and the
    speed settings the job will use on the chosen flavor, each with its reason; models where a setting is unsafe are
    named (their config.json decides: `speed_rules.model_hazards`)."""
    result = fit.result
    auto = result.auto if result is not None else None
    if auto is None:
        packed = choose_speed(cfg.method, packing=cfg.packing, gpu=False)["packing"].on
        auto = auto_settings(
            cfg.method, cfg.peft, params_b=None, rows=inspection.num_rows if inspection is not None else None,
            mean_tokens=mean_tokens, max_length=cfg.max_length, packed=packed, num_generations=cfg.num_generations,
            num_train_epochs=cfg.num_train_epochs, per_device_train_batch_size=cfg.per_device_train_batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        )  # fmt: skip
    changes: dict[str, Any] = {
        "num_train_epochs": auto.num_train_epochs,
        "per_device_train_batch_size": auto.per_device_train_batch_size,
        "gradient_accumulation_steps": auto.gradient_accumulation_steps,
        "learning_rate": auto.learning_rate,
    }
    reasons = [r for r in auto.reasons if not (cfg.steps_limit and "epoch" in r.split(" ", 3)[2])]
    if cfg.steps_limit:
        reasons.insert(0, f"{cfg.steps_limit} steps ({'quick test' if cfg.quick_test else 'max_steps'})")
    auto_check = Check("settings", Status.OK, "; ".join(reasons) + ".") if reasons else None
    chosen = fit.chosen
    lines: list[str] = []
    if chosen is not None and chosen.speed is not None:
        lines.append(speed_summary(chosen.speed))
        run = chosen.inputs
        if run is not None and (run.per_device_train_batch_size, run.gradient_accumulation_steps) != (
            auto.per_device_train_batch_size, auto.gradient_accumulation_steps
        ):  # fmt: skip
            lines.append(
                f"packed rows go one per micro-batch there (batch {run.per_device_train_batch_size} x "
                f"{run.gradient_accumulation_steps} accumulation, the same effective batch)"
            )
    if cfg.gradient_checkpointing == "auto" and not cfg.fsdp:
        on = chosen.gradient_checkpointing if chosen is not None else True
        changes["gradient_checkpointing"] = "on" if on else "off"
        device = "per GPU" if chosen is not None and chosen.flavor.is_gpu else "of RAM"
        if chosen is None:
            lines.append("gradient checkpointing on: no estimate to say the job fits without it")
        elif on:
            lines.append(f"gradient checkpointing on: needed to fit (peak {chosen.peak_gib:.1f} GB {device} with it)")
        else:
            lines.append(
                f"gradient checkpointing off: the job fits without it (peak {chosen.peak_gib:.1f} of "
                f"{chosen.flavor.memory_gb:.0f} GB {device}), about a quarter less compute per step"
            )
    elif not cfg.fsdp:
        lines.append(f"gradient checkpointing {cfg.gradient_checkpointing} (as you set it)")
    text = "; ".join(lines)
    speed_check = Check("speed", Status.OK, text[:1].upper() + text[1:] + ".") if lines else None
    return ResolvedSettings(changes, auto_check, speed_check)


def check_timeout(cfg: TrainingConfig, timeout_s: int, needed_s: int | None, estimate_s: float | None) -> Check:
    """The job's timeout covers the estimate plus 30% (lowered to fit the cost cap, it must still cover the estimate)."""
    timeout = format_timeout(timeout_s)
    what = f"Quick test ({QUICK_TEST_STEPS} steps): " if cfg.quick_test else ""
    if needed_s is None:
        return Check("timeout", Status.WARN, f"{what}No time estimate available: make sure {timeout} is enough.")
    if estimate_s is not None and timeout_s < estimate_s:
        return Check(
            "timeout",
            Status.ERROR,
            f"{what}The timeout {timeout} is below the estimate ({format_timeout(int(estimate_s))}): the job would be "
            f"cut off. Use at least {format_timeout(needed_s)}.",
        )
    if timeout_s < needed_s:
        if cfg.timeout_s is None:  # lowered by the app to fit the cost cap
            return Check(
                "timeout",
                Status.WARN,
                f"{what}The timeout was lowered to {timeout} to fit the cost cap: less than the usual 30% margin over "
                f"the estimate ({format_timeout(needed_s)} recommended).",
            )
        return Check(
            "timeout",
            Status.ERROR,
            f"{what}The timeout {timeout} is below the estimate plus 30% ({format_timeout(needed_s)}): "
            f"the job would be cut off. Use at least {format_timeout(needed_s)}.",
        )
    return Check("timeout", Status.OK, f"{what}{timeout} covers the estimate plus 30% ({format_timeout(needed_s)}).")


def check_running(
    session: HubSession, namespace: str | None, *, confirmed: bool, dry_run: bool
) -> tuple[Check, tuple[JobInfo, ...] | None]:
    """How many unfinished jobs the visitor has in the job's namespace (a real submission past the limit needs
    `allow_many_running`), and those jobs (None when they could not be read) for the checks that need them too."""
    try:
        unfinished = tuple(session.unfinished_jobs(namespace=namespace))
    except TrainerSpaceError as err:
        return Check("running jobs", Status.WARN, f"Could not count your unfinished jobs: {err.message}"), None
    check = running_check(len(unfinished), get_settings().max_running_jobs, confirmed=confirmed)
    if check.status == Status.WARN and not confirmed and not dry_run:
        return replace(check, status=Status.ERROR), unfinished
    return check, unfinished


def check_total(
    session: HubSession, namespace: str | None, cost: CostGuard, unfinished: tuple[JobInfo, ...] | None
) -> tuple[Check | None, CostGuard]:
    """The worst case of the visitor's unfinished jobs in the namespace plus this one, against this Space's total
    cap (`unfinished`: as the running-jobs check read them; None: not readable, then the create checks it), and the
    cost guard with that total. The create checks it again, serialized with the create (`jobs/submission.py`)."""
    if unfinished is None or cost.unpriced:
        return None, cost
    ns = namespace or session.username
    figures = open_worst_cases(session.username, ns, unfinished, session.hardware())
    check, open_usd = total_check(cost.worst_usd, figures, ns)
    return check, replace(cost, unfinished_usd=open_usd)


@dataclass(frozen=True)
class Preflight:
    """Every check in order, and the flavor, timeout and cost guard the job will use."""

    checks: tuple[Check, ...]
    estimate: EstimateCheck
    flavor: str
    timeout_s: int
    cost: CostGuard
    reward_funcs: tuple[str, ...] = ()  # GRPO: the chosen rewards, else the data's default
    unfinished: tuple[JobInfo, ...] | None = None  # the visitor's unfinished Jobs (None: local, or not readable)
    settings: dict[str, Any] = field(default_factory=dict)  # auto values resolved: epochs, batch, lr, checkpointing

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == Status.ERROR)


def check_local(session: HubSession, cfg: TrainingConfig) -> list[Check]:
    """A local job: where it runs and where its outputs go; the Hub account only when it pushes."""
    machine = this_machine()
    where = f"Runs on {machine.pretty_name}, outputs in a folder of {get_settings().home / 'jobs'}"
    out = [Check("this machine", Status.OK, where + (" and on the Hub." if cfg.push_to_hub else "."))]
    if cfg.push_to_hub:
        out += check_account(session)
    return out


def run_preflight(
    session: HubSession, cfg: TrainingConfig, *, output_repo: str | None, dry_run: bool = True
) -> Preflight:
    """All checks, in order; the flavor and timeout come from the config, else from the estimate and the cost cap.

    A local job skips what only concerns Hugging Face Jobs (namespace, running jobs; its cost is nil), and the
    Hub account unless it pushes.
    """
    step("checking your sign-in and its rights")
    if cfg.is_local:
        checks = check_local(session, cfg)
    else:
        checks = check_account(session)
        checks.append(check_namespace(session, cfg.namespace))
    step("reading the model")
    checks.append(check_model(session, cfg.model))
    step("checking the dataset's format")
    dataset_check, inspection = check_dataset(session, cfg)
    checks.append(dataset_check)
    if output_repo:
        step("checking the output repo")
        checks.append(check_output_repo(session, output_repo))
    if cfg.trackio_space and cfg.push_to_hub:
        checks.append(check_trackio(session, cfg.trackio_space))
    rewards, reward_funcs = check_rewards(cfg, inspection)
    if rewards is not None:
        checks.append(rewards)
    advanced = check_advanced(cfg)
    if advanced is not None:
        checks.append(advanced)
    step("counting tokens")
    lengths, mean_tokens, p95_tokens = (
        check_lengths(session, cfg, inspection) if dataset_check.status != Status.ERROR else (None, None, None)
    )
    if lengths is not None:
        checks.append(lengths)
    step("estimating memory, time and cost")
    fit = check_estimate(session, cfg, inspection, mean_tokens, p95_tokens)
    checks.append(fit.check)
    resolved = resolved_settings(cfg, fit, inspection, mean_tokens)
    cfg = cfg.with_changes(**resolved.changes)
    checks += [c for c in (resolved.auto_check, resolved.speed_check) if c is not None]
    if not cfg.is_local:
        hardware = check_hardware(session, fit.flavor)
        if hardware is not None:
            checks.append(hardware)
    flavor = get_flavor(fit.flavor, session.hardware()[0])
    gpus = this_machine().gpus if cfg.is_local else (flavor.gpus if flavor is not None else 1)
    settings = check_trl_config(cfg, inspection if dataset_check.status != Status.ERROR else None, gpus)
    if settings is not None:
        checks.append(settings)
    estimate_s = fit.chosen.time.total if fit.chosen is not None else None
    timeout_s = cfg.timeout_s or submit_timeout_s(estimate_s)
    if cfg.quick_test and cfg.timeout_s is None:
        timeout_s = max(timeout_s, MIN_TIMEOUT_S)
    cost = guard(
        fit.flavor, session.hardware(), timeout_s=timeout_s, needed_timeout_s=fit.needed_timeout_s,
        estimate_usd=fit.chosen.cost_usd if fit.chosen is not None else None, max_cost_usd=cfg.max_cost_usd,
    )  # fmt: skip
    if cfg.timeout_s is None:  # the default timeout is bounded by the cap
        timeout_s = bounded_timeout(timeout_s, estimate_s, cost.usd_per_hour, cost.cap_usd)
        cost = replace(cost, timeout_s=timeout_s)
    checks.append(check_timeout(cfg, timeout_s, fit.needed_timeout_s, estimate_s))
    unfinished = None
    if not cfg.is_local:  # this machine costs nothing and is not one of the visitor's Jobs
        checks.append(cost_check(cost))
        step("counting your running jobs")
        running, unfinished = check_running(session, cfg.namespace, confirmed=cfg.allow_many_running, dry_run=dry_run)
        checks.append(running)
        total, cost = check_total(session, cfg.namespace, cost, unfinished)
        if total is not None:
            checks.append(total)
    return Preflight(tuple(checks), fit, fit.flavor, timeout_s, cost, tuple(reward_funcs), unfinished, resolved.changes)


class PreflightFailed(TrainerSpaceError):
    title = "Pre-flight check failed"

    def __init__(self, failed: list[Check]) -> None:
        self.failed = failed
        lines = "; ".join(f"{c.name}: {c.message}" for c in failed)
        super().__init__(f"Nothing was submitted. {lines}")
