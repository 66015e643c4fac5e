"""Pre-flight checks before a training job is created: each failure a message a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import TrainerSpaceError
from .jobspec import format_timeout

if TYPE_CHECKING:
    from .hub import HubSession
    from .training import Check, TrainingConfig


def _check(name: str, status: str, message: str) -> Check:
    from .training import Check

    return Check(name, status, message)


def check_account(session: HubSession) -> list[Check]:
    visitor = session.visitor  # NotSignedIn / InvalidToken propagate: nothing else can be checked
    out = [_check("sign-in", "ok", f"Signed in as {visitor.name}.")]
    if visitor.can_run_jobs is False:
        out.append(
            _check(
                "jobs permission",
                "error",
                "Your token cannot run Jobs. Sign out and sign in again granting 'Run jobs', "
                "or use a token with the job.write permission.",
            )
        )
    else:
        out.append(_check("jobs permission", "ok", "Your sign-in allows running Jobs."))
    if not visitor.can_pay:
        out.append(
            _check(
                "billing",
                "warn",
                "No payment method on your account: Jobs need pre-paid credit or a payment method "
                "(https://huggingface.co/settings/billing).",
            )
        )
    return out


def check_model(session: HubSession, model: str) -> Check:
    """The model exists and its config is readable with the visitor's token (gated ones say so).

    Uses the same (cached) model facts as the estimate, so the Hub is asked once.
    """
    from .model_facts import get_model_facts

    try:
        facts = get_model_facts(model, token=session._token)
    except TrainerSpaceError as err:
        return _check("model", "error", err.message)
    size = f"{facts.params / 1e9:.2f}B parameters"
    return _check("model", "ok", f"{model} is readable ({facts.arch.model_type or 'unknown architecture'}, {size}).")


def check_output_repo(
    session: HubSession, output_repo: str, goes: str = "Checkpoints and the final model go to"
) -> Check:
    namespace = output_repo.split("/")[0]
    writable = session.visitor.writable_namespaces
    if namespace not in writable:
        return _check(
            "output repo",
            "error",
            f"You cannot write to '{namespace}'. Use one of: {', '.join(writable)}.",
        )
    return _check("output repo", "ok", f"{goes} {output_repo}.")


def check_timeout(cfg: TrainingConfig, estimate: dict[str, Any] | None) -> Check:
    if cfg.quick_test:
        return _check("timeout", "ok", f"Quick test: {cfg.timeout} is plenty for a few steps.")
    if not estimate or not estimate.get("timeout_s"):
        return _check("timeout", "warn", f"No time estimate available: make sure {cfg.timeout} is enough.")
    needed = int(estimate["timeout_s"])
    if cfg.timeout_s < needed:
        return _check(
            "timeout",
            "error",
            f"The timeout {cfg.timeout} is below the estimate plus 30% ({format_timeout(needed)}): "
            f"the job would be cut off. Use at least {format_timeout(needed)}.",
        )
    return _check("timeout", "ok", f"{cfg.timeout} covers the estimate plus 30% ({format_timeout(needed)}).")


def run_preflight(session: HubSession, cfg: TrainingConfig, *, output_repo: str) -> tuple[list[Check], dict | None]:
    """All checks, in order; returns them with the estimate used (or None)."""
    from .preflight_data import check_dataset, check_estimate, check_lengths

    checks = check_account(session)
    checks.append(check_model(session, cfg.model))
    dataset_check, inspection = check_dataset(session, cfg)
    checks.append(dataset_check)
    checks.append(check_output_repo(session, output_repo))
    lengths, mean_tokens = check_lengths(session, cfg, inspection) if dataset_check.status != "error" else (None, None)
    if lengths is not None:
        checks.append(lengths)
    try:
        fit, estimate = check_estimate(session, cfg, inspection, mean_tokens)
    except TrainerSpaceError as err:
        fit, estimate = _check("estimate", "warn", f"No estimate: {err.message}"), None
    checks.append(fit)
    checks.append(check_timeout(cfg, estimate))
    return checks, estimate
