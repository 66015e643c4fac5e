"""Continue a stopped training job from its last checkpoint, on the same flavor or another (no Gradio here).

A training job of this app that ended in ERROR (a timeout, out of memory, a preemption, a crash) or CANCELED keeps
its checkpoints: on the Hub (`<output repo>/last-checkpoint/`, pushed while it trained) or, on this machine, in its
folder (`output/checkpoint-N`). `plan_continue` reads that checkpoint with the visitor's own session (its
`trainer_state.json`: the step reached and the steps in all), and plans a new job from the config the old job
carries: the same config with `continues` set to the old job's id (on Hugging Face Jobs with `resume_from_hub`; on
this machine the template resumes from the old job's folder, `--resume_from_dir`), on the same flavor or the one the
caller picks; after running out of GPU memory, the cheapest flavor with more GPU memory that the estimate says fits.
The steps left give the time, the cost and the timeout (the estimate's share, or the old job's measured pace on the
same flavor when slower, plus 30%); the pre-flight, the spending guard and exactly-once creation are those of every
submission (`training.plan_training`, `submission.create_once`).

The new job carries the label `continues=<old id>` (labels are set at creation only): the old job's continuations are
found by listing the jobs with that label (`job_links`). Without a checkpoint, the answer says so and offers the
plain resubmission with the diagnosis' fix (`resubmit`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from huggingface_hub import JobInfo

from ..catalog import DEFAULT_BATCH_SIZE, DEFAULT_GRAD_ACCUM, submit_timeout_s
from ..errors import InvalidInput, RepoNotFound, TrainerSpaceError
from ..hub.hardware import LOCAL_FLAVOR, Flavor, get_flavor
from ..hub.session import TERMINAL_STAGES, HubSession
from ..validation import format_timeout, validate_job_id, validate_timeout
from .backends import HF_JOBS, LOCAL, JobBackend, backend_of, find_job, job_backends
from .checks import Check, Status
from .config import TrainingConfig
from .monitor import diagnose_job, fixed_config, job_config, safe_lines
from .preflight import PreflightFailed, estimate_config, runs_training
from .progress import Progress, last_checkpoint, parse_progress
from .spec import APP_LABEL, KEY_LABEL
from .spending import cost_check, money
from .submission import Submitted, create_once
from .training import TrainingPlan, plan_training

CONTINUES_LABEL = "continues"  # on a continuation: the id of the job it continues (training.job_labels sets it)
CONTINUABLE_STAGES = ("ERROR", "CANCELED")  # a timeout is an ERROR ("Job timeout exceeded")
LOG_TAIL = 2000  # progress lines read for the checkpoint hint and the measured pace
CHECKPOINT_STATE = "last-checkpoint/trainer_state.json"


@dataclass(frozen=True)
class FoundCheckpoint:
    """The checkpoint a continuation resumes from: the step it reached and the steps in all (its trainer_state)."""

    step: int
    max_steps: int | None
    where: str  # "<repo>/last-checkpoint" on the Hub, or the folder on this machine
    on_hub: bool

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "max_steps": self.max_steps, "where": self.where, "on_hub": self.on_hub}


@dataclass(frozen=True)
class Continuation:
    """The answer about continuing one job: whether it can be, from which checkpoint, the plan, and its figures."""

    job_id: str
    stage: str
    backend: str
    eligible: bool
    reason: str  # one plain sentence: why it can be continued, or why not and what to do instead
    checkpoint: FoundCheckpoint | None = None
    flavor: str | None = None
    flavor_note: str = ""  # why this flavor (out of memory: the cheapest bigger one that fits)
    flavors: tuple[str, ...] = ()  # what the caller may pick
    steps_left: int | None = None
    time_left_s: float | None = None
    cost_usd: float | None = None  # the steps left at the flavor's price
    plan: TrainingPlan | None = None
    resubmit: TrainingConfig | None = None  # no checkpoint: the job's config with the diagnosis' fix
    hint: str = ""  # what the job's progress lines said about checkpoints, when it differs from what was found
    job: JobInfo | None = None  # the new job, once submitted
    how: Submitted | None = None

    @property
    def worst_usd(self) -> float | None:
        return self.plan.cost.worst_usd if self.plan is not None else None

    @property
    def ok(self) -> bool:
        return self.eligible and self.plan is not None and self.plan.ok

    def summary(self) -> str:
        """The figures in one line (Markdown-free): steps left, time, cost, worst case."""
        if not self.eligible or self.plan is None:
            return self.reason
        from .progress import format_seconds

        total = f" of {self.checkpoint.max_steps}" if self.checkpoint and self.checkpoint.max_steps else ""
        where = "this machine" if self.backend == LOCAL else self.flavor
        cost = f", about {money(self.cost_usd)}" if self.cost_usd is not None and self.backend != LOCAL else ""
        worst = f"; worst case {self.plan.cost.summary()}" if self.backend != LOCAL else ""
        return (
            f"From step {self.checkpoint.step if self.checkpoint else '?'}{total}: {self.steps_left} steps left on "
            f"{where}, about {format_seconds(self.time_left_s)}{cost}{worst}."
        )

    def to_json(self) -> dict[str, Any]:
        """The `/continue_job` answer."""
        plan = self.plan
        return {
            "job_id": self.job_id,
            "stage": self.stage,
            "backend": self.backend,
            "eligible": self.eligible,
            "reason": self.reason,
            "summary": self.summary(),
            "checkpoint": self.checkpoint.to_json() if self.checkpoint else None,
            "flavor": self.flavor,
            "flavor_note": self.flavor_note,
            "flavors": list(self.flavors),
            "steps_left": self.steps_left,
            "time_left_s": None if self.time_left_s is None else round(self.time_left_s),
            "cost_usd": self.cost_usd,
            "worst_case_usd": self.worst_usd,
            "timeout": plan.config.timeout if plan else None,
            "preflight": [c.to_json() for c in plan.checks] if plan else [],
            "config": plan.config.to_json() if plan else None,
            "command": plan.command if plan else None,
            "cost": plan.cost.to_json() if plan else None,
            "resubmit": self.resubmit.to_json() if self.resubmit else None,
            "hint": self.hint,
            "submitted": self.job is not None,
            "new_job_id": self.job.id if self.job else None,
            "new_job_url": self.job.url if self.job else None,
            "submission": self.how.to_json() if self.how else None,
        }


# ---------------------------------------------------------------------------------------------- checkpoints
def _state_figures(state: Any) -> tuple[int, int | None] | None:
    """(global_step, max_steps) of a trainer_state.json (None when it is not one)."""
    if not isinstance(state, dict):
        return None
    step, total = state.get("global_step"), state.get("max_steps")
    if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
        return None
    return step, total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None


def folder_checkpoint(output_dir: Path) -> FoundCheckpoint | None:
    """The last `checkpoint-N` of a local job's output folder that holds a readable trainer_state.json."""
    found: list[tuple[int, Path]] = []
    for path in output_dir.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(suffix), path))
    for _, path in sorted(found, reverse=True):
        try:
            figures = _state_figures(json.loads((path / "trainer_state.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
        if figures is not None:
            return FoundCheckpoint(figures[0], figures[1], str(path), on_hub=False)
    return None


def hub_checkpoint(session: HubSession, repo_id: str) -> FoundCheckpoint | None:
    """The output repo's `last-checkpoint/` as the visitor can read it (None: no repo, no checkpoint, not one)."""
    try:
        state = session.download_json(repo_id, CHECKPOINT_STATE, isolated=True)  # a private repo: no shared cache
    except (FileNotFoundError, RepoNotFound, InvalidInput):
        return None
    figures = _state_figures(state)
    return FoundCheckpoint(figures[0], figures[1], f"{repo_id}/last-checkpoint", on_hub=True) if figures else None


def find_checkpoint(session: HubSession, job: JobInfo, cfg: TrainingConfig) -> FoundCheckpoint | None:
    """The checkpoint a continuation of `job` resumes from: its folder's last one (this machine), else the output
    repo's last-checkpoint."""
    if backend_of(job) == LOCAL:
        job_dir = getattr(job, "job_dir", None)
        return folder_checkpoint(Path(job_dir) / "output") if job_dir else None
    return hub_checkpoint(session, cfg.output_repo) if cfg.output_repo else None


def _log_lines(backend: JobBackend, job: JobInfo) -> list[str]:
    """The old job's last log lines (its progress lines: a hint, and its pace); none when they cannot be read."""
    try:
        return safe_lines(backend.job_logs(job.id, namespace=job.owner.name, tail=LOG_TAIL))
    except TrainerSpaceError:
        return []


def measured_pace(progress: list[Progress]) -> float | None:
    """Seconds per step the old job took (its progress lines, first to last); None with fewer than two."""
    timed = [p for p in progress if p.t is not None]
    if len(timed) < 2 or timed[-1].step <= timed[0].step or timed[-1].t <= timed[0].t:
        return None
    return (timed[-1].t - timed[0].t) / (timed[-1].step - timed[0].step)


# ---------------------------------------------------------------------------------------------- links
def continuations_of(session: HubSession, job: JobInfo) -> list[JobInfo]:
    """The jobs labelled as continuing `job` (newest first): on Hugging Face Jobs listed by that label."""
    found: list[JobInfo] = []
    for backend in job_backends(session):
        try:
            if backend.name == HF_JOBS:
                jobs = session.jobs_with_labels({CONTINUES_LABEL: job.id}, namespace=job.owner.name)
            else:
                jobs = backend.list_jobs()
        except TrainerSpaceError:
            continue
        found += [j for j in jobs if (j.labels or {}).get(CONTINUES_LABEL) == job.id]  # compared here too
    return found


@dataclass(frozen=True)
class JobLinks:
    """A job's continuation links: the job it continues, and the jobs that continue it."""

    continues: str | None
    continued_by: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"continues": self.continues, "continued_by": list(self.continued_by)}

    def markdown(self) -> str:
        parts = []
        if self.continues:
            parts.append(f"Continues job `{self.continues}`.")
        if self.continued_by:
            parts.append("Continued by " + ", ".join(f"`{j}`" for j in self.continued_by) + ".")
        return " ".join(parts)


def job_links(session: HubSession, job: JobInfo) -> JobLinks:
    """Both links of a training job (listing its continuations asks the Hub once)."""
    parent = (job.labels or {}).get(CONTINUES_LABEL) or None
    if (job.labels or {}).get(APP_LABEL) != "train":
        return JobLinks(parent, ())
    return JobLinks(parent, tuple(j.id for j in continuations_of(session, job)))


# ---------------------------------------------------------------------------------------------- the plan
def flavor_choices(session: HubSession) -> tuple[str, ...]:
    """The Jobs flavors a continuation may run on (GPU flavors the job's torch build runs on), cheapest first."""
    flavors = [f for f in session.hardware()[0] if f.is_gpu and not f.is_local and runs_training(f)]
    return tuple(f.name for f in sorted(flavors, key=lambda f: (f.usd_per_hour, f.name)))


def bigger_fitting_flavor(session: HubSession, cfg: TrainingConfig, current: str) -> tuple[str | None, str]:
    """After running out of GPU memory on `current`: the cheapest flavor with more GPU memory that the estimate
    says fits, and the sentence that says so."""
    flavors = session.hardware()[0]
    now = get_flavor(current, flavors)
    floor = now.vram_gb if now else 0.0
    try:
        result = estimate_config(session, cfg.with_changes(flavor=None))
    except TrainerSpaceError as err:
        return None, f"No estimate to pick a bigger flavor ({err.message}): pick one."
    gpus = now.gpus if now else 1
    fits = [e for e in result.flavors if e.fits and not e.flavor.is_local and e.flavor.vram_gb > floor
            and runs_training(e.flavor) and same_global_batch(cfg, gpus, e.flavor.gpus) is not None]  # fmt: skip
    if not fits:
        return None, f"No flavor with more GPU memory than {current} fits by the estimate: pick one, or use LoRA."
    best = min(fits, key=lambda e: (e.flavor.usd_per_hour, e.flavor.name))
    return best.flavor.name, (
        f"It ran out of GPU memory on {current}: {best.flavor.name} is the cheapest flavor with more GPU memory where "
        f"the estimate says it fits (peak {best.peak_gib:.1f} of {best.flavor.memory_gb:.0f} GB)."
    )


def same_global_batch(cfg: TrainingConfig, old_gpus: int, new_gpus: int) -> dict[str, int] | None:
    """The gradient accumulation that keeps the old job's rows per optimizer step on `new_gpus` GPUs ({} when
    nothing changes), or None when no whole number does. The checkpoint's step only means the same progress with
    the same global batch: with more rows per step, the resumed job would count its epochs as trained already."""
    if old_gpus == new_gpus or old_gpus < 1 or new_gpus < 1:
        return {}
    accum = cfg.gradient_accumulation_steps or DEFAULT_GRAD_ACCUM
    rows = accum * old_gpus  # per device batch x this = the global batch, per device batch unchanged
    if rows % new_gpus:
        return None
    return {"gradient_accumulation_steps": rows // new_gpus}


def _gpus(name: str | None, flavors: tuple[Flavor, ...]) -> int:
    flavor = get_flavor(name or "", flavors)
    return flavor.gpus if flavor is not None else 1


def _time_left(plan: TrainingPlan, steps_left: int, pace_s: float | None) -> float | None:
    """Seconds the continuation needs: the estimate's fixed phases plus its share of the steps, or the measured
    pace on the same flavor when that is slower."""
    chosen = plan.estimate.chosen
    if chosen is None:
        return steps_left * pace_s if pace_s else None
    t = chosen.time
    fixed = t.startup + t.download + t.tokenize + t.push
    per_step = (t.train + t.generation + t.checkpoints) / max(t.steps, 1)
    return fixed + steps_left * max(per_step, pace_s or 0.0)


def _continuation_checks(plan: TrainingPlan, timeout_s: int, needed_s: float | None, cost_usd: float | None,
                         given_timeout: bool) -> TrainingPlan:  # fmt: skip
    """The plan with its timeout and cost checks made for the steps left (the pre-flight judges the whole job)."""
    timeout = format_timeout(timeout_s)
    if needed_s is None:
        timeout_check = Check("timeout", Status.WARN, f"No time estimate for the steps left: make sure {timeout} is "
                              "enough.")  # fmt: skip
    elif timeout_s < needed_s:
        timeout_check = Check("timeout", Status.ERROR if given_timeout else Status.WARN,
                              f"The timeout {timeout} is below the time the steps left need "
                              f"({format_timeout(int(needed_s))}): use at least {format_timeout(submit_timeout_s(needed_s))}.")  # fmt: skip
    else:
        timeout_check = Check("timeout", Status.OK, f"{timeout} covers the steps left "
                              f"({format_timeout(int(needed_s))}) plus 30%.")  # fmt: skip
    cost = replace(plan.cost, estimate_usd=cost_usd)
    checks = []
    for check in plan.checks:
        if check.name == "timeout":
            check = timeout_check
        elif check.name == "cost" and not plan.config.is_local:
            check = cost_check(cost)
        checks.append(check)
    return replace(plan, checks=tuple(checks), cost=cost)


def _other_continuation(session: HubSession, job: JobInfo, key: str) -> Check | None:
    """An unfinished continuation of the same job, not this very submission: a second would write the same
    checkpoints."""
    try:
        others = [j for j in continuations_of(session, job)
                  if j.status.stage not in TERMINAL_STAGES and (j.labels or {}).get(KEY_LABEL) != key]  # fmt: skip
    except TrainerSpaceError:
        return None
    if not others:
        return None
    other = others[0]
    return Check("already continued", Status.ERROR, f"Job {other.id} already continues this job "
                 f"({other.status.stage}): watch it, or cancel it first.")  # fmt: skip


def plan_continue(
    session: HubSession,
    job_id: str,
    *,
    flavor: str | None = None,
    timeout: str | None = None,
    max_cost_usd: float | None = None,
    dry_run: bool = True,
) -> Continuation:
    """Whether and how job `job_id` can continue from its last checkpoint, with the plan of the new job.

    `flavor`: Hugging Face Jobs only (default: the old job's; after out of memory, the cheapest bigger one that
    fits). `timeout`: default the steps left plus 30%. `max_cost_usd`: the cost cap, as for any submission.
    """
    job_id = validate_job_id(job_id)
    timeout = format_timeout(validate_timeout(timeout)) if timeout not in (None, "") else None
    backend, job = find_job(job_backends(session, action="continue jobs"), job_id)
    stage, where = job.status.stage, backend_of(job)
    base = {"job_id": job.id, "stage": stage, "backend": where}
    cfg = job_config(job)
    if not isinstance(cfg, TrainingConfig):
        return Continuation(**base, eligible=False, reason="Only this app's training jobs can be continued (this job "
                            "carries no training config).")  # fmt: skip
    if stage not in TERMINAL_STAGES:
        return Continuation(**base, eligible=False, reason=f"The job is still {stage.lower()}: use 'Stop after the "
                            "next checkpoint' to stop it without losing work, then continue it.")  # fmt: skip
    if stage not in CONTINUABLE_STAGES:
        why = "it completed: there is nothing left to train" if stage == "COMPLETED" else f"it is {stage.lower()}"
        return Continuation(**base, eligible=False, reason=f"This job cannot be continued: {why}.")
    if flavor and where == LOCAL and flavor != LOCAL_FLAVOR:
        raise InvalidInput(f"Job {job.id} ran on this machine and continues here: drop the flavor ({flavor}).")
    choices = (LOCAL_FLAVOR,) if where == LOCAL else flavor_choices(session)
    if flavor and flavor not in choices and where != LOCAL:
        raise InvalidInput(f"Unknown flavor '{flavor}' for a training job: pick one of {', '.join(choices)}.")
    lines = _log_lines(backend, job)
    # one read of the logs: the diagnosis takes its tail (it reads them itself only when this read failed)
    diagnosis = diagnose_job(backend, job, session.hardware()[0], lines=lines or None)
    progress = [p for p in map(parse_progress, lines) if p is not None]
    found = find_checkpoint(session, job, cfg)
    reported = last_checkpoint(lines)
    hint = ""
    if reported is not None and found is not None:
        said = reported.pushed_step if found.on_hub else reported.saved_step
        if said is not None and said != found.step:
            hint = (f"The job's progress lines last reported checkpoint {said}; {found.where} holds step {found.step} "
                    "(the checkpoint read is the one resumed from).")  # fmt: skip
    if found is None:
        fix = fixed_config(cfg, diagnosis) if diagnosis is not None else None
        resubmit = fix if isinstance(fix, TrainingConfig) else cfg
        resubmit = resubmit.with_changes(continues=None, idempotency_key=None)
        where_looked = (f"in its folder ({Path(job.job_dir) / 'output'})" if where == LOCAL
                        else f"in {cfg.output_repo}/last-checkpoint")  # fmt: skip
        if reported is not None and reported.pushed_step is None and where != LOCAL:
            where_looked += f" (it saved checkpoint {reported.saved_step} on its disk, but never finished pushing one)"
        return Continuation(
            **base, eligible=False, flavors=choices, resubmit=resubmit, hint=hint,
            reason=f"No checkpoint to continue from {where_looked}: it would start over. Submit it again instead "
            "(the config below, with the diagnosis' fix).",
        )  # fmt: skip
    steps_left = found.max_steps - found.step if found.max_steps else None
    if steps_left is not None and steps_left <= 0:
        return Continuation(**base, eligible=False, checkpoint=found, reason=f"Its last checkpoint is at step "
                            f"{found.step} of {found.max_steps}: training had finished. Submit it again to retrain.")  # fmt: skip
    note = ""
    if where == LOCAL:
        chosen = LOCAL_FLAVOR
    elif flavor:
        chosen = flavor
    elif diagnosis is not None and diagnosis.kind == "oom":
        bigger, note = bigger_fitting_flavor(session, cfg, cfg.flavor or "")
        chosen = bigger or cfg.flavor or choices[0]
    else:
        chosen = cfg.flavor or (choices[0] if choices else None)
        note = f"The same flavor as job {job.id}." if cfg.flavor else ""
    changes: dict[str, Any] = {"continues": job.id, "idempotency_key": None, "max_cost_usd": max_cost_usd,
                               "allow_unfit": cfg.allow_unfit, "timeout": timeout}  # fmt: skip
    batch_check = None
    if where != LOCAL:
        changes |= {"resume_from_hub": True, "flavor": chosen}
        flavors = session.hardware()[0]
        old_gpus, new_gpus = _gpus(cfg.flavor, flavors), _gpus(chosen, flavors)
        kept = same_global_batch(cfg, old_gpus, new_gpus)
        accum = cfg.gradient_accumulation_steps or DEFAULT_GRAD_ACCUM
        if kept is None:
            batch_check = Check("batch", Status.ERROR, f"Job {job.id} trained {accum * old_gpus} x "
                                f"{cfg.per_device_train_batch_size or DEFAULT_BATCH_SIZE} rows per step on {old_gpus} "
                                f"GPU(s); on {new_gpus} GPUs no whole gradient accumulation keeps that, and the "
                                "checkpoint's steps would not mean the same progress: pick a flavor with "
                                f"{old_gpus} GPU(s) or a count that divides {accum * old_gpus}.")  # fmt: skip
        elif kept:
            changes |= kept
            batch_check = Check("batch", Status.OK, f"The same rows per step as job {job.id} on {new_gpus} GPUs "
                                f"instead of {old_gpus}: gradient accumulation {accum} -> "
                                f"{kept['gradient_accumulation_steps']}.")  # fmt: skip
    new_cfg = cfg.with_changes(**changes)
    first = plan_training(session, new_cfg, dry_run=True)  # the estimate on that flavor
    steps = steps_left if steps_left is not None else (first.estimate.chosen.time.steps if first.estimate.chosen
                                                       else None)  # fmt: skip
    same_flavor = (chosen == cfg.flavor) or where == LOCAL
    pace = measured_pace(progress) if same_flavor else None
    needed = _time_left(first, steps, pace) if steps is not None else None
    timeout_s = validate_timeout(timeout) if timeout else (submit_timeout_s(needed) if needed else None)
    if timeout_s is not None:
        new_cfg = new_cfg.with_changes(timeout=format_timeout(timeout_s))
    plan = plan_training(session, new_cfg, dry_run=dry_run)
    price = plan.cost.usd_per_hour
    cost = round(needed / 3600 * price, 2) if needed is not None and where != LOCAL else None
    plan = _continuation_checks(plan, plan.launch.timeout_s, needed, cost, given_timeout=bool(timeout))
    other = _other_continuation(session, job, plan.key)
    extra = tuple(c for c in (batch_check, other) if c is not None)
    if extra:
        plan = replace(plan, checks=(*plan.checks, *extra))
    total = f" of {found.max_steps}" if found.max_steps else ""
    reason = f"It can continue from its checkpoint at step {found.step}{total} ({found.where})."
    return Continuation(**base, eligible=True, reason=reason, checkpoint=found, flavor=plan.config.flavor,
                        flavor_note=note, flavors=choices, steps_left=steps, time_left_s=needed, cost_usd=cost,
                        plan=plan, hint=hint)  # fmt: skip


def continue_job(
    session: HubSession,
    job_id: str,
    *,
    flavor: str | None = None,
    timeout: str | None = None,
    max_cost_usd: float | None = None,
    dry_run: bool = False,
) -> Continuation:
    """Plan the continuation of `job_id` and (unless `dry_run`) create it, at most once per submission key.

    Raises:
        PreflightFailed: a check failed (nothing submitted).
        InvalidInput: the job cannot be continued (the message says why, and what to do instead).
        JobNotCreated / JobOutcomeUnknown and the Hub's errors, as for any submission.
    """
    found = plan_continue(session, job_id, flavor=flavor, timeout=timeout, max_cost_usd=max_cost_usd,
                          dry_run=dry_run)  # fmt: skip
    if dry_run:
        return found
    if not found.eligible or found.plan is None:
        raise InvalidInput(found.reason)
    plan = found.plan
    if plan.failed:
        raise PreflightFailed(list(plan.failed))
    how = create_once(session, plan.launch, key=plan.key, explicit=False, local=plan.config.is_local,
                      worst_usd=plan.cost.worst_usd)  # fmt: skip
    return replace(found, job=how.job, how=how)


@dataclass(frozen=True)
class JobActions:
    """What My jobs offers on one job: its links, Continue (an ended training job) and Stop after the next
    checkpoint (an unfinished one)."""

    job_id: str
    stage: str
    backend: str
    links: JobLinks
    can_continue: bool
    can_stop: bool


def job_actions(session: HubSession, job_id: str) -> JobActions:
    """The job's links and which of Continue / Stop after the next checkpoint apply (the checkpoint itself is read
    when the visitor asks to continue)."""
    _, job = find_job(job_backends(session), validate_job_id(job_id))
    train = isinstance(job_config(job), TrainingConfig)
    stage = job.status.stage
    return JobActions(job.id, stage, backend_of(job), job_links(session, job) if train else JobLinks(None, ()),
                      can_continue=train and stage in CONTINUABLE_STAGES,
                      can_stop=train and stage not in TERMINAL_STAGES)  # fmt: skip
