"""Property-based fuzz (hypothesis) over every endpoint's inputs: a wrong type, a huge or non-finite number, an
over-long text, one argument (or config field) at a time. Whatever comes in: never "Unexpected error", never a
traceback in the log for an expected error, every refusal names the field, and nothing reaches the Hub before the
input is valid. Example counts stay modest in CI (25 per test, 250 inputs); `TRAINER_SPACE_FUZZ_EXAMPLES` raises them
for a long run (500 per test: 5,000 inputs), and the number of inputs tried is printed at the end (`-s`).
"""

from __future__ import annotations

import json
import logging
import math
import os

import gradio as gr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainer_space.jobs.config import ExportConfig, TrainingConfig
from trainer_space.ui import api

EXAMPLES = settings(
    max_examples=int(os.environ.get("TRAINER_SPACE_FUZZ_EXAMPLES") or 25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
TRIED = {"inputs": 0, "refused": 0}  # reported by the last test
# integers past the largest float (float() overflows on them) and a JSON text whose integer has more digits than
# Python reads (json.loads raises ValueError on it)
HUGE = st.one_of(st.just(10**309), st.just(-(10**309)), st.integers(min_value=10**308, max_value=10**400))
HUGE_DIGITS = "9" * 5001

# values that are never valid for the kind of argument (truthy: "" / 0 / None mean "default" for optional ones)
LONG_TEXT = st.integers(3000, 6000).map(lambda n: "x" * n)
NOT_TEXT = st.one_of(
    st.integers(min_value=1),
    HUGE,
    st.integers(max_value=-1),
    st.floats(min_value=0.5, allow_nan=False),
    st.just(math.nan),
    st.just(math.inf),
    st.just(True),
    st.lists(st.text(max_size=4), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=2),
    LONG_TEXT,
)
BAD_ID = st.one_of(NOT_TEXT, st.text(alphabet=" <>|\\\"'{}$;", min_size=1, max_size=20))
BAD_NUMBER = st.one_of(
    st.integers(min_value=10**12),
    HUGE,
    st.integers(max_value=-1),
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.just(True),
    st.text(alphabet="abcxyz!", min_size=1, max_size=8),
    st.lists(st.integers(), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2),
)
BAD_FLAG = st.one_of(
    st.integers(min_value=2),
    st.text(alphabet="abcxyz", min_size=1, max_size=6),
    st.lists(st.booleans(), min_size=1, max_size=2),
    st.floats(min_value=2, allow_nan=False),
)


def token(hub) -> gr.OAuthToken:
    return gr.OAuthToken(token=hub.alice, scope="", expires_at=0)


def check_call(hub, caplog, fn, kwargs: dict, names: list[str]) -> None:
    """Call an endpoint: an answer, or a refusal that is expected, names the field and sent nothing to the Hub."""
    before = len(hub.requests)
    caplog.clear()
    TRIED["inputs"] += 1
    try:
        result = fn(**kwargs)
    except gr.Error as err:
        TRIED["refused"] += 1
        message = str(err.message)
        assert err.title != "Unexpected error", (fn.__name__, kwargs, message)
        assert err.print_exception is False
        assert any(n.lower() in message.lower() for n in names), (fn.__name__, names, message)
        if err.title == "Invalid input":
            assert len(hub.requests) == before, (fn.__name__, "reached the Hub before refusing", message)
    else:
        assert isinstance(result, dict)
    tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("trainer_space")]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]


VALID = {
    "inspect_dataset": {"dataset": "alice/none", "split": "train", "dataset_config": "", "method": "sft"},
    "estimate": {"model": "alice/none", "dataset": None, "method": "sft", "peft": "lora", "max_length": 1024,
                 "num_train_epochs": 1.0, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
                 "gradient_checkpointing": True, "num_rows": 100, "backend": ""},
    "list_jobs": {"orgs": "", "only_this_app": False, "stages": ""},
    "job_status": {"job_id": "0123456789abcdef01234567", "usage_seconds": 2.0},
    "estimate_accuracy": {"limit": 20},
    "base_vs_tuned": {"job_id": "0123456789abcdef01234567"},
    "job_logs": {"job_id": "0123456789abcdef01234567", "tail": 10},
    "cancel_job": {"job_id": "0123456789abcdef01234567"},
    "continue_job": {"job_id": "0123456789abcdef01234567", "flavor": "", "timeout": "", "max_cost_usd": None,
                     "dry_run": True},
    "stop_after_checkpoint": {"job_id": "0123456789abcdef01234567"},
    "export_gguf": {"model": "alice/none", "quantizations": ["Q4_K_M"], "output_repo": "", "private": True,
                    "flavor": "", "dry_run": True, "timeout": "", "max_cost_usd": None, "allow_unfit": False,
                    "allow_many_running": False, "idempotency_key": ""},
}  # fmt: skip
# what each argument is called in the messages (its name, or the label the config gives it)
NAMES = {
    "dataset": ["dataset"], "split": ["split"], "dataset_config": ["dataset_config"], "method": ["method"],
    "model": ["model"], "peft": ["peft", "fine-tuning"], "max_length": ["max_length"],
    "num_train_epochs": ["epochs"], "per_device_train_batch_size": ["batch size"],
    "gradient_accumulation_steps": ["gradient accumulation"], "backend": ["backend", "run on"],
    "usage_seconds": ["usage_seconds"], "limit": ["limit"],
    "gradient_checkpointing": ["gradient checkpointing"], "num_rows": ["num_rows"], "orgs": ["orgs"],
    "only_this_app": ["only_this_app"], "stages": ["stages"], "job_id": ["job id"], "tail": ["tail"],
    "quantizations": ["quantizations"], "output_repo": ["output repo", "output_repo"], "private": ["private"],
    "flavor": ["flavor"], "dry_run": ["dry_run"], "timeout": ["timeout"], "max_cost_usd": ["max_cost_usd"],
    "allow_unfit": ["allow_unfit"], "allow_many_running": ["allow_many_running"],
    "idempotency_key": ["idempotency_key"],
}  # fmt: skip


def _not_a_timeout(value) -> bool:
    """Whether a number is no valid timeout (whole seconds from 1 minute to 7 days are: 60 is one)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return not (number and 60 <= value <= 7 * 86400)


KINDS = {
    "dataset": BAD_ID, "model": BAD_ID, "output_repo": BAD_ID, "split": NOT_TEXT, "dataset_config": NOT_TEXT,
    "method": st.one_of(NOT_TEXT, st.text(min_size=1, max_size=10).filter(lambda s: s.strip().lower() not in
                                                                          ("sft", "dpo", "grpo", "reward", "kto"))),
    "peft": st.one_of(NOT_TEXT, st.sampled_from(["lora2", "LoRA-x", "none"])), "max_length": BAD_NUMBER,
    "num_train_epochs": BAD_NUMBER, "per_device_train_batch_size": BAD_NUMBER,
    "gradient_accumulation_steps": BAD_NUMBER, "usage_seconds": BAD_NUMBER, "limit": BAD_NUMBER,
    "backend": st.one_of(NOT_TEXT, st.just("cloud")),
    "gradient_checkpointing": BAD_FLAG, "num_rows": BAD_NUMBER, "orgs": NOT_TEXT.filter(lambda v: v is not True),
    "only_this_app": BAD_FLAG, "stages": NOT_TEXT.filter(lambda v: v is not True),
    "job_id": st.one_of(NOT_TEXT, st.text(max_size=7)), "tail": BAD_NUMBER,
    "quantizations": st.one_of(st.integers(min_value=1), st.lists(st.integers(), min_size=1), st.just("Q99_X")),
    "private": BAD_FLAG, "flavor": st.one_of(NOT_TEXT, st.just("gpu-9000")), "dry_run": BAD_FLAG,
    "timeout": st.one_of(NOT_TEXT.filter(_not_a_timeout), st.just("7 weeks"), st.just("10d")),
    "max_cost_usd": BAD_NUMBER,
    "allow_unfit": BAD_FLAG, "allow_many_running": BAD_FLAG,
    "idempotency_key": st.one_of(NOT_TEXT, st.just("short"), st.just("has spaces in it")),
}  # fmt: skip


@pytest.fixture
def quiet(hub, caplog):
    caplog.set_level(logging.WARNING)
    return hub


@pytest.mark.parametrize("endpoint", sorted(VALID))
def test_one_bad_argument_at_a_time(quiet, caplog, endpoint):
    fn = getattr(api, endpoint)
    args = sorted(VALID[endpoint])

    @EXAMPLES
    @given(data=st.data())
    def run(data):
        name = data.draw(st.sampled_from(args), label="argument")
        value = data.draw(KINDS[name], label=name)
        kwargs = {**VALID[endpoint], name: value, "oauth_token": token(quiet)}
        check_call(quiet, caplog, fn, kwargs, NAMES[name])

    run()


TRAINING_BASE = {"method": "sft", "model": "alice/none", "dataset": "alice/none", "flavor": "a10g-small"}
FIELD_VALUES = st.one_of(NOT_TEXT, BAD_NUMBER, BAD_FLAG, st.none(), st.text(max_size=30))


@EXAMPLES
@given(field=st.sampled_from(sorted(TrainingConfig.model_fields)), value=FIELD_VALUES)
def test_training_config_fields(quiet, caplog, field, value):
    config = {**TRAINING_BASE, field: value}
    check_call(quiet, caplog, api.submit_training, {"config": config, "dry_run": True, "oauth_token": token(quiet)},
               [field, *([TrainingConfig.LABELS[field]] if field in TrainingConfig.LABELS else [])])  # fmt: skip


def _with_huge_integer(field: str) -> str:
    """A training config as JSON text whose `field` is an integer of 5,001 digits."""
    return json.dumps(TRAINING_BASE)[:-1] + f', "{field}": {HUGE_DIGITS}}}'


HUGE_TEXT = st.sampled_from(sorted(TrainingConfig.model_fields)).map(_with_huge_integer)


@EXAMPLES
@given(config=st.one_of(NOT_TEXT, st.text(max_size=40), HUGE_TEXT,
                        st.dictionaries(st.text(max_size=12), FIELD_VALUES, max_size=3)))  # fmt: skip
def test_any_training_config_shape(quiet, caplog, config):
    """Anything as the config: refused with what is wrong (a field, "config", "required" or "unknown")."""
    check_call(quiet, caplog, api.submit_training, {"config": config, "dry_run": True, "oauth_token": token(quiet)},
               ["config", "required", "unknown", "field", *TrainingConfig.model_fields])  # fmt: skip


@EXAMPLES
@given(field=st.sampled_from(sorted(set(ExportConfig.model_fields) - {"model"})), value=FIELD_VALUES)
def test_export_config_fields(quiet, caplog, field, value):
    cfg = {"model": "alice/none", field: value}
    from trainer_space.errors import InvalidInput

    TRIED["inputs"] += 1
    try:
        ExportConfig.from_dict(cfg)
    except InvalidInput as err:
        label = ExportConfig.LABELS.get(field, field)
        assert field in err.message or label in err.message, err.message


def test_zz_report_the_inputs_tried():
    """The figure of this run (run last in file order: `-p no:randomly`)."""
    print(
        f"\nfuzz: {TRIED['inputs']:,} inputs, {TRIED['refused']:,} refused with a message, 0 unexpected errors, "
        "0 tracebacks logged"
    )
