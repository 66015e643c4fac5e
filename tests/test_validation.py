"""Input validation: one set of number checks for every form and API (Train, Estimate, My jobs)."""

from __future__ import annotations

import pytest

from trainer_space.errors import InvalidInput
from trainer_space.validation import validate_float, validate_int, validate_job_id, validate_repo_id


@pytest.mark.parametrize("value", [3, 3.0, "3", "3.0", " 3 "])
def test_whole_numbers_in_any_form_a_ui_or_json_sends(value):
    assert validate_int(value, "Batch size", 1, 1024) == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2.5, "Batch size must be a whole number"),
        ("two", "Batch size must be a whole number"),
        (None, "Batch size must be a whole number"),
        (True, "Batch size must be a whole number"),  # JSON true is not 1
        (float("nan"), "Batch size must be a whole number"),
        (0, "Batch size must be between 1 and 1,024"),
        (5000, "Batch size must be between 1 and 1,024"),
    ],
)
def test_bad_whole_numbers_name_the_field_and_the_range(value, message):
    with pytest.raises(InvalidInput, match=message):
        validate_int(value, "Batch size", 1, 1024)


def test_numbers_with_an_open_lower_bound():
    assert validate_float("0.5", "Epochs", 0.0, 100.0, open_low=True) == 0.5
    with pytest.raises(InvalidInput, match="Epochs must be above 0 and at most 100"):
        validate_float(0, "Epochs", 0.0, 100.0, open_low=True)
    assert validate_float(0, "LoRA dropout", 0.0, 0.9) == 0.0
    for bad in (float("nan"), 1.0, False, "x"):
        with pytest.raises(InvalidInput, match="LoRA dropout must be"):
            validate_float(bad, "LoRA dropout", 0.0, 0.9)


def test_ids_that_could_reach_a_url_or_shell_are_refused():
    assert validate_repo_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    for bad in ("../etc/passwd", "a/b/c", "a b/c", "a/b;rm -rf /", "", "a/" + "x" * 200):
        with pytest.raises(InvalidInput):
            validate_repo_id(bad)
    assert validate_job_id(" 0123456789abcdef01234567 ") == "0123456789abcdef01234567"
    with pytest.raises(InvalidInput, match="not a job id"):
        validate_job_id("abc/../def")


HUGE = 10**309  # past the largest float: float(HUGE) raises OverflowError, not ValueError


@pytest.mark.parametrize("value", [HUGE, -HUGE, 10**5000], ids=["1e309", "-1e309", "1e5000"])
def test_numbers_of_any_size_are_refused_by_field(value):
    from trainer_space.validation import validate_timeout

    with pytest.raises(InvalidInput, match="Batch size must be"):
        validate_int(value, "Batch size", 1, 1024)
    with pytest.raises(InvalidInput, match="LoRA dropout must be"):
        validate_float(value, "LoRA dropout", 0.0, 0.9)
    with pytest.raises(InvalidInput, match="The timeout must be between 1 minute and 7 days"):
        validate_timeout(value)
