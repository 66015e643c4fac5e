"""The typed, immutable configs of the app's jobs: `TrainingConfig` and `ExportConfig`.

One object, validated once at the edge (the Train and Estimate tabs, `/submit_training`, `/estimate`, MCP),
flows through pre-flight, the estimate and the template's arguments into the job, which carries it as JSON in
its environment (`CONFIG_ENV`): My jobs, the diagnosis and "Open the Train tab" read it back from `JobInfo`.
Field names are TRL's (`per_device_train_batch_size`, `gradient_accumulation_steps`, `learning_rate`,
`max_length`, `num_train_epochs`, ...). Unknown keys are refused with the list of valid ones; every error names
the field and what is allowed; booleans are true/false (or "true"/"false") and nothing else.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..catalog import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_METHOD,
    DEFAULT_PEFT,
    GRPO_MAX_COMPLETION_LENGTH,
    GRPO_NUM_GENERATIONS,
    LORA_ALPHA,
    LORA_DROPOUT,
    LORA_R,
    MAX_LENGTH_RANGE,
    METHODS,
    PEFT_MODES,
    QUICK_TEST_ROWS,
    QUICK_TEST_STEPS,
    method_spec,
)
from ..data.mapping import REWARD_FUNCS, DatasetMapping, MappingError, parse_mapping
from ..errors import InvalidInput, looks_like_token
from ..estimate.model import EstimateInputs
from ..estimate.speed_rules import CHECKPOINTING_MODES, SPEED_MODES
from ..hub.hardware import FLAVOR_NAMES, LOCAL_FLAVOR
from ..settings import BACKENDS, get_settings
from ..validation import (
    TOKEN_IN_FIELD,
    BoolField,
    TimeoutField,
    choice_field,
    config_error,
    float_field,
    int_field,
    is_local_ref,
    parse_timeout,
    repo_field,
    source_field,
    text_field,
)
from .spec import template_constants
from .trl_options import parse_option

CONFIG_ENV = "TRAINER_SPACE_CONFIG"  # the job's environment variable holding its config as JSON
_DIGITS = sys.get_int_max_str_digits() or 4300  # the longest integer json.loads reads (ValueError beyond)


def _mapping(value: Any) -> DatasetMapping | None:
    if value in (None, "", {}):
        return None
    try:
        mapping = parse_mapping(value)
    except MappingError as err:
        raise PydanticCustomError("invalid", f"is not a valid mapping: {err}") from None
    except (ValueError, RecursionError):  # JSON text with a number of more than 4,300 digits, or nested too deeply
        raise PydanticCustomError(
            "invalid", "is not a valid mapping: a number too large to read, or too deep"
        ) from None
    return mapping or None


MappingField = Annotated[
    DatasetMapping | None,
    PlainValidator(_mapping),
    PlainSerializer(lambda m: m.to_json() if m is not None else None),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {
                        "columns": {"type": "object", "additionalProperties": {"type": "string"}},
                        "transforms": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": False,
                },
                {"type": "null"},
            ]
        }
    ),
]


def _rewards(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise PydanticCustomError("invalid", f"must be a list of names from: {', '.join(REWARD_FUNCS)}")
    bad = [n for n in names if n and n not in REWARD_FUNCS]
    if bad:
        raise PydanticCustomError("invalid", f"has unknown names {bad[:5]}; available: {', '.join(REWARD_FUNCS)}")
    return list(dict.fromkeys(n for n in names if n))


RewardsField = Annotated[
    list[str],
    PlainValidator(_rewards),
    WithJsonSchema({"type": "array", "items": {"type": "string", "enum": list(REWARD_FUNCS)}}),
]


def _advanced(value: Any, info: ValidationInfo) -> dict[str, Any]:
    """TRL options by name, each typed against the field it sets for the config's method (see `trl_options`)."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise PydanticCustomError("invalid", "must be a JSON object of TRL option names to values") from None
        except (ValueError, RecursionError):  # a number of more than 4,300 digits, or nesting too deep
            raise PydanticCustomError("invalid", "has a number too large to read, or is nested too deeply") from None
    if not isinstance(value, dict) or len(value) > 64:
        raise PydanticCustomError("invalid", "must be an object of TRL option names to values (at most 64)")
    for key, item in value.items():
        if looks_like_token(item):
            raise PydanticCustomError("invalid", f"'{str(key)[:64]}' {TOKEN_IN_FIELD}")
    method = info.data.get("method")
    if method is None:  # the method itself was refused: that error says enough
        return dict(value)
    try:
        return {key: parse_option(method, key, item) for key, item in value.items()}
    except ValueError as err:
        raise PydanticCustomError("invalid", str(err)) from None


AdvancedField = Annotated[
    dict[str, Any],
    PlainValidator(_advanced),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {
                "anyOf": [
                    {"type": ["string", "number", "boolean"]},
                    {"type": "array", "items": {"type": ["string", "number"]}},
                ]
            },
        }
    ),
]


_COMPARE = template_constants("train.py")  # the job's own limits: the template is their single source
COMPARE_MAX_PROMPTS: int = _COMPARE["COMPARE_MAX_PROMPTS"]
COMPARE_MAX_PROMPT_CHARS: int = _COMPARE["COMPARE_MAX_PROMPT_CHARS"]


def _compare_prompts(value: Any) -> list[str]:
    """The visitor's own prompts for base vs tuned: a list of texts (or one text, a prompt per line); spaces
    collapsed, empty and repeated ones dropped; at most COMPARE_MAX_PROMPTS of COMPARE_MAX_PROMPT_CHARS each."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        if len(value) > 100_000:
            raise PydanticCustomError("invalid", "is too long")
        value = value.splitlines()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise PydanticCustomError("invalid", "must be a list of texts (one prompt each)")
    prompts = list(dict.fromkeys(" ".join(v.split()) for v in value[:1000] if v.strip()))
    if len(value) > 1000 or len(prompts) > COMPARE_MAX_PROMPTS:
        raise PydanticCustomError("invalid", f"holds at most {COMPARE_MAX_PROMPTS} prompts")
    for n, prompt in enumerate(prompts, 1):
        if len(prompt) > COMPARE_MAX_PROMPT_CHARS:
            raise PydanticCustomError("invalid", f"prompt {n} is longer than {COMPARE_MAX_PROMPT_CHARS} characters")
        if not prompt.isprintable():
            raise PydanticCustomError("invalid", f"prompt {n} holds control characters")
        if looks_like_token(prompt):
            raise PydanticCustomError("invalid", f"prompt {n} {TOKEN_IN_FIELD}")
    return prompts


ComparePromptsField = Annotated[
    list[str],
    PlainValidator(_compare_prompts),
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": COMPARE_MAX_PROMPT_CHARS},
            "maxItems": COMPARE_MAX_PROMPTS,
        }
    ),
]


def _checkpointing(value: Any) -> str:
    """auto / on / off; true and false (the field was a boolean before "auto") read as on and off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = value.strip().lower() if isinstance(value, str) else None
    text = {"true": "on", "false": "off"}.get(text, text)
    if text not in CHECKPOINTING_MODES:
        raise PydanticCustomError("invalid", f"must be one of: {', '.join(CHECKPOINTING_MODES)} (or true / false)")
    return text


CheckpointingField = Annotated[
    str,
    PlainValidator(_checkpointing),
    WithJsonSchema({"anyOf": [{"type": "string", "enum": list(CHECKPOINTING_MODES)}, {"type": "boolean"}]}),
]
SpeedField = choice_field(SPEED_MODES)
MethodField = choice_field(tuple(METHODS))
PeftField = choice_field(PEFT_MODES)
FlavorField = choice_field((*sorted(FLAVOR_NAMES), LOCAL_FLAVOR), optional=True)
ModelId = source_field("model")
ExportSource = source_field("model", adapters=True)
DatasetId = source_field("dataset", optional=True)
BackendField = choice_field(BACKENDS, optional=True)
OutputRepo = repo_field("model", optional=True, namespaced=True)
SpaceId = repo_field("space", optional=True, namespaced=True)
SplitName = text_field(
    r"[A-Za-z0-9_.\-\[\]:%+]{1,64}", description="a split name like train", optional=False, max_length=64
)
ConfigName = text_field(r"[A-Za-z0-9_.\- ]{1,128}", description="a dataset config name")
ProjectName = text_field(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", description="letters, digits, '.', '_' or '-'")
Namespace = text_field(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?", description="a user or org name")
SubmissionKey = text_field(
    r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}", description="8 to 128 letters, digits, '.', '_', ':' or '-'"
)
JobId = text_field(r"[A-Za-z0-9]{8,64}", description="a job id (8 to 64 letters and digits)", max_length=64)
CostField = float_field(0.01, 1_000_000, optional=True)
# fields that steer one submission (spending, confirmation, exactly-once) rather than describe the job: the derived
# submission key leaves them out, so the same job asked for with another cap is still the same job
SUBMISSION_FIELDS = frozenset({"max_cost_usd", "allow_unfit", "allow_many_running", "idempotency_key"})


class _Config(BaseModel):
    """Shared behaviour of the app's configs: frozen, strict about keys, errors that name the field."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    LABELS: ClassVar[dict[str, str]] = {}
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls, data: Any, *, ignore: tuple[str, ...] = ("dry_run",), required: tuple[str, ...] | None = None):
        """Validate a JSON object (or its text) sent by a visitor or an API caller; InvalidInput naming each field.

        `required`: the fields that must be given (default: the class's REQUIRED).
        """
        if isinstance(data, str):
            if len(data) > 100_000:
                raise InvalidInput("The config is too long.")
            try:
                data = json.loads(data or "{}")
            except json.JSONDecodeError as err:
                raise InvalidInput(f"The config is not valid JSON: {err.msg} (line {err.lineno}).") from None
            except RecursionError:
                raise InvalidInput("The config is not valid JSON: it is nested too deeply.") from None
            except ValueError:  # an integer of more than 4,300 digits (Python's limit for reading one)
                raise InvalidInput(
                    f"The config has a number too large to read (more than {_DIGITS:,} digits)."
                ) from None
        if not isinstance(data, dict):
            raise InvalidInput("The config must be a JSON object.")
        data = {k: v for k, v in data.items() if k not in ignore}
        missing = [f for f in (cls.REQUIRED if required is None else required) if data.get(f) in (None, "")]
        if missing:
            raise InvalidInput(f"'{missing[0]}' is required.")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise config_error(err, labels=cls.LABELS, known=sorted(cls.model_fields)) from None

    def job_json(self) -> dict[str, Any]:
        """The config without its submission fields: what identifies the job (its submission key hashes this)."""
        return {k: v for k, v in self.to_json().items() if k not in SUBMISSION_FIELDS}

    def with_changes(self, **changes: Any):
        """A validated copy with `changes` applied (the same checks as `from_dict`)."""
        return type(self).from_dict({**self.to_json(), **changes}, ignore=())

    def to_json(self) -> dict[str, Any]:
        """The config as the API takes it (and as the job carries it)."""
        return self.model_dump(mode="json")


def resolve_backend(backend: str | None, flavor: str | None) -> str:
    """Where a config runs: the backend it names; else where its flavor is (a Jobs flavor means Hugging Face Jobs,
    never a silent local job; 'local' means this machine); else the default backend."""
    if backend:
        return backend
    if flavor:
        return "local" if flavor == LOCAL_FLAVOR else "hf-jobs"
    return get_settings().default_backend


def _backend_rules(cfg: Any) -> None:
    """The backend and the flavor agree, and the backend is offered here (raises PydanticCustomError)."""
    if cfg.resolved_backend == "local" and not get_settings().local_enabled:
        raise PydanticCustomError(
            "invalid", "Jobs run on this machine only when the app runs on your own machine: use hf-jobs"
        )
    if cfg.backend == "hf-jobs" and cfg.flavor == LOCAL_FLAVOR:
        raise PydanticCustomError(
            "invalid", "flavor 'local' is this machine, not a Hugging Face Jobs flavor: drop flavor, or use backend "
            "'local'",
        )  # fmt: skip


class _Submitted(_Config):
    """The fields every paid submission takes: the spending guard, confirmations and the exactly-once key."""

    def refuse_mixed_flavor(self) -> None:
        """An API caller's config that names backend 'local' with a Jobs flavor is refused (the forms send their
        backend choice beside a flavor list that only Jobs uses; a program means what it writes)."""
        flavor, backend = getattr(self, "flavor", None), getattr(self, "backend", None)
        if backend == "local" and flavor and flavor != LOCAL_FLAVOR:
            raise InvalidInput(
                f"{flavor} is a Hugging Face Jobs flavor, but backend is 'local' (this machine): drop flavor to run "
                "here, or use backend 'hf-jobs' to run on that flavor."
            )

    max_cost_usd: CostField = Field(
        None,
        description="Cost cap for this job in USD: its worst case (timeout x the flavor's price) must stay under it. "
        "Default: the worst case of the default timeout (estimate + 30%); never above the Space's ceiling.",
    )
    allow_unfit: BoolField = Field(
        False, description="Submit even when the estimate says the job does not fit on its hardware."
    )
    allow_many_running: BoolField = Field(
        False, description="Confirm starting a job while you already have several unfinished ones."
    )
    idempotency_key: SubmissionKey = Field(
        None,
        description="Your key for this submission: submitting again with the same key returns the job it created "
        "instead of a second one. Default: derived from you and the resolved config.",
    )


class TrainingConfig(_Submitted):
    """Everything the Train tab (or `/submit_training`) sends: what to train, how, where, on what hardware."""

    LABELS: ClassVar[dict[str, str]] = {  # what the Train tab calls each field (errors name both)
        "method": "Method", "model": "Model", "dataset": "Dataset", "output_repo": "Output repo",
        "dataset_config": "Dataset config", "split": "Split", "mapping": "Column mapping", "peft": "Fine-tuning",
        "lora_r": "LoRA rank", "lora_alpha": "LoRA alpha", "lora_dropout": "LoRA dropout",
        "learning_rate": "Learning rate", "num_train_epochs": "Epochs", "max_steps": "Max steps",
        "per_device_train_batch_size": "Batch size", "gradient_accumulation_steps": "Gradient accumulation",
        "max_length": "max_length", "gradient_checkpointing": "Gradient checkpointing", "packing": "Packing",
        "use_liger_kernel": "Liger kernels",
        "eval_split_fraction": "Eval fraction", "reward_funcs": "GRPO rewards",
        "num_generations": "Generations per prompt", "max_completion_length": "Completion length",
        "private": "Private", "trackio_space": "Trackio Space", "trackio_project": "Trackio project",
        "flavor": "Hardware", "timeout": "Timeout", "quick_test": "Quick test", "fsdp": "FSDP",
        "resume_from_hub": "Resume from the Hub", "advanced": "Advanced options", "namespace": "Namespace",
        "backend": "Run on", "push_to_hub": "Push to the Hub", "continues": "Continues job",
        "compare": "Base vs tuned", "compare_prompts": "Your prompts",
        **{"max_cost_usd": "Cost cap ($)", "allow_unfit": "Submit even if it does not fit"},
    }  # fmt: skip
    REQUIRED: ClassVar[tuple[str, ...]] = ("method", "model", "dataset")

    method: MethodField = Field(DEFAULT_METHOD, description="TRL method: sft, dpo, grpo, reward or kto.")
    backend: BackendField = Field(
        None,
        description="Where the job runs: 'hf-jobs' (Hugging Face Jobs) or 'local' (the machine running the "
        "app; not on a Space). Default: local off Spaces, hf-jobs on a Space.",
    )
    model: ModelId = Field(
        description="Model to fine-tune: a Hub id like Qwen/Qwen2.5-0.5B (or, for local jobs, a model folder)."
    )
    dataset: DatasetId = Field(
        None,
        description="Hub dataset id, e.g. trl-lib/Capybara (or, for local jobs, a .json/.jsonl/.csv/.parquet "
        "file or a saved dataset folder).",
    )
    push_to_hub: BoolField = Field(
        True,
        description="Push checkpoints and the model to output_repo (always for Jobs; local jobs may keep "
        "them on this machine only).",
    )
    output_repo: OutputRepo = Field(
        None, description="Where checkpoints and the model go (default <you>/<model>-<method>)."
    )
    dataset_config: ConfigName = Field(
        None, description="Dataset configuration (subset); default: the dataset's default."
    )
    split: SplitName = Field("train", description="Split to train on.")
    mapping: MappingField = Field(
        None,
        description='Column mapping from the Dataset tab: {"columns": {"<field>": "<column>"}, "transforms": [...]}.',
    )
    peft: PeftField = Field(DEFAULT_PEFT, description="full, lora or qlora (4-bit base, GPU only).")
    lora_r: int_field(1, 1024) = Field(LORA_R, description="LoRA rank.")
    lora_alpha: int_field(1, 4096) = Field(LORA_ALPHA, description="LoRA alpha.")
    lora_dropout: float_field(0.0, 0.9) = Field(LORA_DROPOUT, description="LoRA dropout.")
    learning_rate: float_field(1e-9, 1e-2, optional=True) = Field(
        None,
        description="Learning rate; null or 0: auto (the method's rate for the PEFT mode, halved for large models).",
    )
    num_train_epochs: float_field(0.01, 100, optional=True) = Field(
        None, description="Epochs over the dataset; null or 0: auto (3, so 100 to 25,000 examples are seen; DPO/KTO "
        "at most 3, reward and GRPO 1)."
    )  # fmt: skip
    max_steps: int_field(1, 1_000_000, optional=True) = Field(
        None, description="Stop after this many optimizer steps (null or 0: use epochs)."
    )
    per_device_train_batch_size: int_field(1, 1024, optional=True) = Field(
        None, description="Batch size per GPU; null or 0: auto (a token budget by model size)."
    )
    gradient_accumulation_steps: int_field(1, 1024, optional=True) = Field(
        None, description="Gradient accumulation; null or 0: auto (about 100 optimizer steps, 8 to 64 per step)."
    )
    max_length: int_field(*MAX_LENGTH_RANGE) = Field(
        DEFAULT_MAX_LENGTH, description="Tokens per example (longer are cut)."
    )
    gradient_checkpointing: CheckpointingField = Field(
        "auto",
        description="Recompute activations to save memory (about a third more compute): auto (only where the job "
        "does not fit without it, as the estimate says), on or off.",
    )
    packing: SpeedField = Field(
        "auto",
        description="SFT: pack examples into full rows without padding (TRL's BFD packing, padding-free, with a "
        "flash-attention kernel on Ampere+ GPUs): auto (where the model allows it), or off.",
    )
    use_liger_kernel: SpeedField = Field(
        "auto", description="Liger's Triton kernels (RMSNorm, RoPE, SwiGLU) on CUDA GPUs: auto, or off."
    )
    eval_split_fraction: float_field(0.0, 0.5) = Field(0.0, description="Hold out this share of rows for evaluation.")
    reward_funcs: RewardsField = Field(
        default_factory=list,
        description=f"GRPO reward functions from: {', '.join(REWARD_FUNCS)} (empty: accuracy when the data has an "
        "answer column, else length).",
    )
    num_generations: int_field(2, 256) = Field(GRPO_NUM_GENERATIONS, description="GRPO: completions per prompt.")
    max_completion_length: int_field(8, 65_536) = Field(
        GRPO_MAX_COMPLETION_LENGTH, description="GRPO: tokens per completion."
    )
    private: BoolField = Field(True, description="Make the output repo private.")
    trackio_space: SpaceId = Field(None, description="Trackio Space for the metrics (default <you>/trackio).")
    trackio_project: ProjectName = Field(None, description="Trackio project (default: the output repo's name).")
    flavor: FlavorField = Field(
        None, description="Hardware flavor (default: the cheapest that fits, from the estimate)."
    )
    timeout: TimeoutField = Field(None, description='Job timeout like "90m" or "2h" (default: estimate + 30%).')
    quick_test: BoolField = Field(False, description=f"Run {QUICK_TEST_STEPS} steps on {QUICK_TEST_ROWS} rows.")
    fsdp: BoolField = Field(False, description="Shard the model across GPUs with FSDP.")
    resume_from_hub: BoolField = Field(False, description="Resume from the output repo's last checkpoint.")
    compare: BoolField = Field(
        True,
        description="Base vs tuned: before and after training, the job answers a few held-out prompts of the "
        "dataset (and compare_prompts) with the same greedy decoding, and measures the eval loss when there is an "
        "eval split; into base_vs_tuned.json and the model card (a few seconds of the job).",
    )
    compare_prompts: ComparePromptsField = Field(
        default_factory=list,
        description=f"Your own prompts for base vs tuned: at most {COMPARE_MAX_PROMPTS}, each one line of at most "
        f"{COMPARE_MAX_PROMPT_CHARS} characters (a reward model does not use them: it scores, it does not write).",
    )
    advanced: AdvancedField = Field(default_factory=dict, description="Any other TRL option: name -> value.")
    namespace: Namespace = Field(None, description="Where the job runs (default: you).")
    continues: JobId = Field(
        None,
        description="The job this one continues from its last checkpoint (set by Continue in My jobs and "
        "/continue_job): on Hugging Face Jobs with resume_from_hub, on this machine from that job's folder.",
    )

    @model_validator(mode="after")
    def _method_rules(self) -> TrainingConfig:
        _backend_rules(self)
        if self.resolved_backend == "hf-jobs":
            local = [name for name in ("model", "dataset") if is_local_ref(getattr(self, name))]
            if local:
                raise PydanticCustomError(
                    "invalid",
                    f"A Hugging Face Job cannot read this machine's {' and '.join(local)}: upload it to the Hub, or "
                    "run the job here (backend 'local')",
                )
            if not self.push_to_hub:
                raise PydanticCustomError(
                    "invalid",
                    "A Hugging Face Job must push to the Hub (its disk is gone when it ends): push_to_hub true",
                )
        spec = method_spec(self.method)
        batch, accum = self.per_device_train_batch_size, self.gradient_accumulation_steps
        if spec.generates and batch is not None and accum is not None and (batch * accum) % self.num_generations:
            raise PydanticCustomError(
                "invalid",
                "GRPO needs batch size x gradient accumulation to be a multiple of the generations per prompt "
                f"({self.num_generations}): e.g. batch {self.num_generations} x accumulation 1, or 4 x 2 for 8",
            )
        if batch is not None and batch < spec.min_batch_size:
            raise PydanticCustomError(
                "invalid", f"{spec.title} needs a batch size of at least {spec.min_batch_size} per GPU"
            )
        return self

    # ------------------------------------------------------------------ derived values
    @property
    def resolved_backend(self) -> str:
        return resolve_backend(self.backend, self.flavor)

    @property
    def is_local(self) -> bool:
        return self.resolved_backend == "local"

    @property
    def spec(self):
        return method_spec(self.method)

    @property
    def resolved_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else self.spec.learning_rate(self.peft)

    @property
    def resolved_epochs(self) -> float:
        """Epochs (an unresolved auto: 1; the plan resolves it from the data first)."""
        return self.num_train_epochs if self.num_train_epochs is not None else 1.0

    @property
    def timeout_s(self) -> int | None:
        return parse_timeout(self.timeout) if self.timeout else None

    @property
    def steps_limit(self) -> int | None:
        """The optimizer steps the job stops after (the quick test's, else max_steps)."""
        return QUICK_TEST_STEPS if self.quick_test else self.max_steps

    def estimate_inputs(self) -> EstimateInputs:
        """The estimate's view of this job (the same TRL names; GRPO's beta from the advanced options)."""
        beta = self.advanced.get("beta")
        shared = {f.name: getattr(self, f.name) for f in fields(EstimateInputs) if f.name in type(self).model_fields}
        return EstimateInputs(
            **shared
            | {
                "max_steps": self.steps_limit,
                "beta": float(beta) if isinstance(beta, (int, float)) and not isinstance(beta, bool) else None,
            }
        )

    @classmethod
    def from_job_env(cls, env: dict[str, Any] | None) -> TrainingConfig | None:
        """The config a job carries (None for jobs submitted without one, or with one that no longer validates)."""
        raw = (env or {}).get(CONFIG_ENV)
        if not raw:
            return None
        try:
            return cls.from_dict(raw)
        except InvalidInput:
            return None


def _quants(value: Any) -> list[str]:
    """Quantization names, upper-cased and de-duplicated; the template's list decides which exist."""
    import re

    from .spec import template_constants

    if value in (None, ""):
        return []
    names = re.split(r"[,\s]+", value) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise PydanticCustomError("invalid", "must be a list of quantization names")
    names = list(dict.fromkeys(n.strip().upper() for n in names if n.strip()))
    known = template_constants("export_gguf.py")["QUANT_TYPES"]
    bad = [n for n in names if n not in known]
    if bad:
        raise PydanticCustomError("invalid", f"has unknown types {bad[:5]}; choose from: {', '.join(known)}")
    return names


QuantsField = Annotated[
    list[str], PlainValidator(_quants), WithJsonSchema({"type": "array", "items": {"type": "string"}})
]


class ExportConfig(_Submitted):
    """What the GGUF export tab (or `/export_gguf`) sends."""

    LABELS: ClassVar[dict[str, str]] = {
        "model": "Model", "quantizations": "Quantizations", "output_repo": "Output repo", "private": "Private",
        "flavor": "Flavor", "timeout": "Timeout", "backend": "Run on", "push_to_hub": "Push to the Hub",
        "pre_tokenizer": "Pre-tokenizer", "max_cost_usd": "Cost cap ($)",
    }  # fmt: skip
    REQUIRED: ClassVar[tuple[str, ...]] = ("model",)

    backend: BackendField = Field(None, description="Where the export runs: 'hf-jobs' or 'local'.")
    model: ExportSource = Field(description="A model or LoRA adapter repo to convert (or, locally, its folder).")
    quantizations: QuantsField = Field(default_factory=list, description="Quantization types (default Q4_K_M).")
    output_repo: OutputRepo = Field(None, description="Where the GGUF files go (default <you>/<model>-GGUF).")
    private: BoolField = Field(True, description="Make the output repo private.")
    flavor: FlavorField = Field(
        None, description="Hardware flavor (default: the cheapest CPU flavor with enough RAM and disk)."
    )
    timeout: TimeoutField = Field(None, description="Job timeout (default: from the model's size).")
    push_to_hub: BoolField = Field(True, description="Upload the GGUF files (local exports may keep them here).")
    pre_tokenizer: text_field(r"[a-z0-9][a-z0-9_.-]{0,39}", description="a llama.cpp pre-tokenizer name") = Field(
        None,
        description="Expert: the llama.cpp pre-tokenizer name (e.g. qwen2, llama-bpe) when the converter does "
        "not recognise a fine-tuned tokenizer (use the base model's).",
    )

    @property
    def resolved_backend(self) -> str:
        return resolve_backend(self.backend, self.flavor)

    @property
    def is_local(self) -> bool:
        return self.resolved_backend == "local"

    @model_validator(mode="after")
    def _where(self) -> ExportConfig:
        _backend_rules(self)
        if self.resolved_backend == "hf-jobs" and (is_local_ref(self.model) or not self.push_to_hub):
            raise PydanticCustomError(
                "invalid",
                "A Hugging Face Job exports a Hub model and uploads the result: use a Hub id, push_to_hub true",
            )
        return self

    @classmethod
    def from_job_env(cls, env: dict[str, Any] | None) -> ExportConfig | None:
        raw = (env or {}).get(CONFIG_ENV)
        try:
            return cls.from_dict(raw) if raw else None
        except InvalidInput:
            return None
