"""The shapes of the API's answers (also the MCP tools' output schemas): Gradio reads these type hints.

Every key a service `to_json()` returns is listed here (tests/test_api_types.py checks them against real answers),
so a client or an agent knows what comes back without reading the source.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from ..catalog import METHOD_NAMES, PEFT_MODES
from ..estimate.speed_rules import CHECKPOINTING_MODES, SPEED_MODES
from ..settings import BACKENDS

Method = Literal[METHOD_NAMES]  # type: ignore[valid-type]
Peft = Literal[PEFT_MODES]  # type: ignore[valid-type]
Backend = Literal[(*BACKENDS, "")]  # type: ignore[valid-type]
Speed = Literal[SPEED_MODES]  # type: ignore[valid-type]
Checkpointing = Literal[CHECKPOINTING_MODES]  # type: ignore[valid-type]
VerdictName = Literal["READY", "NEEDS_MAPPING", "INCOMPATIBLE"]


class Check(TypedDict):
    name: str
    status: Literal["ok", "warn", "error"]
    message: str


class MethodVerdict(TypedDict):
    verdict: VerdictName
    reason: str
    mapping: dict[str, Any] | None
    mapping_code: str | None


class Inspection(TypedDict):
    """`/inspect_dataset`: the dataset, its first rows, a verdict per method, and the asked method's verdict."""

    dataset: str
    config: str | None
    split: str | None
    num_rows: int | None
    columns: list[str]
    methods: dict[str, MethodVerdict]
    preview: list[dict[str, Any]]
    column_types: dict[str, str]
    splits: list[dict[str, Any]]
    source: str
    notes: list[str]
    method: str
    verdict: VerdictName
    reason: str
    mapping: dict[str, Any] | None
    mapping_code: str | None


class FlavorEstimate(TypedDict):
    flavor: str
    gpus: int
    vram_gb: float
    peak_vram_gb: float
    fits: bool
    hours: float
    cost_usd: float
    usd_per_hour: float


class CheapestJobsFlavor(TypedDict):
    flavor: str
    hours: float
    cost_usd: float
    timeout: str


class Estimate(TypedDict):
    """`/estimate`: every flavor's fit, hours and cost (`local`: this machine); the flavor to use on the backend and
    the timeout to submit with; the cheapest Hugging Face Jobs flavor that fits, whatever the backend."""

    model: str
    params: int
    tokens: int
    backend: Literal[BACKENDS]  # type: ignore[valid-type]
    flavors: list[FlavorEstimate]
    recommended: str | None
    timeout: str | None
    cheapest_jobs_flavor: CheapestJobsFlavor | None
    notes: list[str]
    prices: Literal["hub", "built-in"]  # "built-in": the Hub's list could not be read (estimates only)


class Cost(TypedDict):
    flavor: str
    usd_per_hour: float
    timeout_s: int
    worst_case_usd: float
    estimate_usd: float | None
    cap_usd: float
    cap: str
    ceiling_usd: float
    price_known: bool  # false: the Hub gives no price for the flavor (or its list could not be read): not submitted
    unfinished_usd: float | None  # the worst case of the caller's unfinished jobs in the namespace (None: unknown)
    total_usd: float | None  # those plus this job: it must stay under total_cap_usd
    total_cap_usd: float


class SubmissionOutcome(TypedDict, total=False):
    outcome: Literal["created", "existing", "recovered"] | None
    key: str
    label: str
    note: str


class _Submission(TypedDict):
    """What `/submit_training` and `/export_gguf` both answer."""

    backend: str
    output_dir: str | None
    job_id: str | None
    url: str | None
    flavor: str | None
    timeout: str | None
    command: str
    python: str
    spec: dict[str, Any]
    output_repo: str | None
    output_url: str | None
    preflight: list[Check]
    config: dict[str, Any]
    submitted: bool
    cost: Cost | None
    submission: SubmissionOutcome


class TrainingSubmission(_Submission):
    """`/submit_training`: the resolved config, pre-flight checks, cost, commands and (unless a dry run) the job."""

    trackio_url: str | None
    estimate: dict[str, Any] | None


class ExportSubmission(_Submission):
    """`/export_gguf`: the resolved export, pre-flight checks, cost, commands and (unless a dry run) the job."""

    quantizations: list[str]
    model_gb_16bit: float
    notes: list[str]


class JobRow(TypedDict):
    id: str
    namespace: str
    kind: str
    model: str
    stage: str
    flavor: str
    started: str
    duration_min: float
    cost_usd: float
    url: str
    backend: str


class JobList(TypedDict):
    """`/list_jobs`: whose jobs these are, newest first."""

    user: str
    jobs: list[JobRow]


class Diagnosis(TypedDict):
    title: str
    explanation: str
    action: str
    action_hint: dict[str, Any]
    evidence: str


class LastCheckpoint(TypedDict):
    """The last checkpoint the job's progress lines say was saved (on its disk) and pushed (to the Hub)."""

    saved_step: int | None
    saved_at: str | None
    pushed_step: int | None
    pushed_at: str | None


class JobProgress(TypedDict):
    """A training job's progress, from its latest progress line (what My jobs' progress bar shows)."""

    step: int | None
    total: int | None
    percent: float | None
    tokens_per_s: float | None
    eta_s: int | None
    eta: str | None
    loss: float | None
    done: bool
    reported_at: str | None
    no_progress_min: float | None  # RUNNING: minutes since the last progress line (or since it started)
    stalled: bool  # no progress for longer than TRAINER_SPACE_STALL_ALERT_MIN
    last_checkpoint: LastCheckpoint | None
    text: str


class GpuUsage(TypedDict):
    """One GPU's peaks over the samples read, beside the job's estimate per GPU."""

    id: str
    memory_peak_gb: float
    memory_total_gb: float
    utilization_peak_pct: float
    estimate_gb: float | None
    memory_ratio: float | None  # measured / estimate


class EstimateFigures(TypedDict):
    flavor: str
    gpus: int
    peak_gpu_mem_gb: float | None
    hours: float
    cost_usd: float


class MeasuredFigures(TypedDict):
    peak_gpu_mem_gb: float | None
    running_s: float | None
    cost_usd: float | None
    memory_source: str


class Ratios(TypedDict):
    peak_gpu_mem: float | None
    time: float | None
    cost: float | None


class VersusEstimate(TypedDict):
    """The estimate the job carries beside what it used so far (My jobs' "Estimate vs measured")."""

    estimate: EstimateFigures
    measured: MeasuredFigures
    ratio: Ratios


class JobUsage(TypedDict):
    """What the job uses: peaks over the live samples read for this answer (the Hub keeps no history)."""

    source: Literal["live metrics", "progress lines"] | None
    samples: int
    window_s: float
    gpus: list[GpuUsage]
    gpu_memory_peak_gb: float | None
    gpu_utilization_peak_pct: float | None
    cpu_peak_pct: float | None
    ram_peak_gb: float | None
    ram_total_gb: float | None
    vs_estimate: VersusEstimate | None
    note: str


class JobStatus(TypedDict):
    """`/job_status`: one job's details, its config, its progress and usage, and once it has ended its diagnosis
    and the fixed config."""

    id: str
    namespace: str
    kind: str
    stage: str
    message: str | None
    flavor: str
    labels: dict[str, str]
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    timeout_s: int | None
    duration_min: float
    cost_usd: float
    url: str
    output_repo: str | None
    output_url: str | None
    trackio_space: str | None
    trackio_url: str | None
    config: dict[str, Any] | None
    backend: str
    output_dir: str | None
    estimate: dict[str, Any] | None
    scheduling_s: float | None
    running_s: float
    usd_per_hour: float | None
    stuck_scheduling: bool
    scheduling_note: str | None
    diagnosis: Diagnosis | None
    fix: dict[str, Any] | None
    progress: JobProgress | None
    usage: JobUsage
    links: JobLinks | None
    stop_request: StopAnswer | None


class JobLinks(TypedDict):
    """A training job's continuation links (`/continue_job`): the job it continues, and the jobs that continue it."""

    continues: str | None
    continued_by: list[str]


class LogTail(TypedDict):
    """`/job_logs`: the last lines of a job's log (tokens replaced by hf_***)."""

    id: str
    stage: str
    lines: list[str]


class JobStage(TypedDict):
    """`/cancel_job`: the job's stage after the cancel."""

    id: str
    stage: str


class AccuracyRow(TypedDict):
    """One finished training job: its estimate, what it used, and measured / estimated."""

    job: str
    finished: str
    where: str
    flavor: str
    method: str
    model: str
    est_peak_gb: float | None
    peak_gb: float | None
    peak_ratio: float | None
    est_min: float
    min: float | None
    time_ratio: float | None
    est_cost_usd: float
    cost_usd: float | None
    cost_ratio: float | None


class AccuracyAnswer(TypedDict):
    """`/estimate_accuracy`: the caller's finished jobs' estimate vs measured, newest first, and the medians."""

    jobs: list[AccuracyRow]
    count: int
    median_ratio: Ratios
    summary: str


class ContinueCheckpoint(TypedDict):
    step: int
    max_steps: int | None
    where: str  # "<repo>/last-checkpoint" on the Hub, or the folder on this machine
    on_hub: bool


class ContinueAnswer(TypedDict):
    """`/continue_job`: whether the job can continue from its last checkpoint, the new job's plan and figures (steps
    left, time, cost, worst case) and, once submitted, the new job; without a checkpoint, the config to resubmit."""

    job_id: str
    stage: str
    backend: str
    eligible: bool
    reason: str
    summary: str
    checkpoint: ContinueCheckpoint | None
    flavor: str | None
    flavor_note: str
    flavors: list[str]
    steps_left: int | None
    time_left_s: int | None
    cost_usd: float | None
    worst_case_usd: float | None
    timeout: str | None
    preflight: list[Check]
    config: dict[str, Any] | None
    command: str | None
    cost: Cost | None
    resubmit: dict[str, Any] | None
    hint: str
    submitted: bool
    new_job_id: str | None
    new_job_url: str | None
    submission: SubmissionOutcome | None


class StopAnswer(TypedDict):
    """`/stop_after_checkpoint`: the job's stop request (the app cancels it right after its next checkpoint)."""

    job_id: str
    backend: str
    requested_at: float
    after_step: int
    waits_for: Literal["pushed", "saved"]
    deadline: float
    state: Literal["waiting", "canceled", "ended", "expired", "failed"]
    detail: str
    checkpoint_step: int | None
    sentence: str


class CompareItem(TypedDict):
    """One prompt answered by the base model and by the tuned one (a reward model: its scores, in words)."""

    prompt: str
    origin: Literal["dataset", "yours"]
    base: str
    tuned: str
    base_stopped: bool | None
    tuned_stopped: bool | None


class EvalLossChange(TypedDict):
    before: float | None
    after: float | None
    rows: int


class BaseVsTunedAnswer(TypedDict):
    """`/base_vs_tuned`: a finished training job's answers before and after training, or why there are none."""

    job_id: str
    status: Literal["ready", "pending", "none", "off", "unreadable"]
    message: str
    where: str | None
    method: str | None
    kind: Literal["answers", "scores"] | None
    source: str | None
    max_new_tokens: int | None
    items: list[CompareItem]
    eval_loss: EvalLossChange | None
    notes: list[str]
