"""Input validation: everything a visitor types is checked here before it reaches the Hub."""

from __future__ import annotations

import re

from .errors import InvalidInput

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_NAMESPACE_RE = re.compile(rf"^{_NAME}$")
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9]{8,64}$")
MIN_JOB_TIMEOUT_S, MAX_JOB_TIMEOUT_S = 60, 7 * 86400
_URL_PREFIX = re.compile(r"^https?://(?:www\.)?(?:huggingface\.co|hf\.co)/(?:(datasets|spaces)/)?", re.I)


def validate_repo_id(value: str | None, kind: str = "model") -> str:
    """A clean `owner/name` (or canonical `name`) repo id, or InvalidInput.

    Accepts a pasted Hub URL (`https://huggingface.co/datasets/owner/name/tree/main` -> `owner/name`).
    """
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hf_validate

    label = {"model": "model", "dataset": "dataset", "space": "Space"}.get(kind, "repository")
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"Enter a {label} id, like 'owner/name'.")
    match = _URL_PREFIX.match(text)
    if match:
        text = text[match.end() :]
        text = "/".join(text.split("/")[:2])
    text = text.strip("/")
    parts = text.split("/")
    if len(parts) > 2 or not all(_NAMESPACE_RE.match(p) for p in parts) or ".." in text or "--" in text:
        raise InvalidInput(f"'{value}' is not a valid {label} id. Use 'owner/name' (letters, digits, '-', '_', '.').")
    try:
        hf_validate(text)
    except HFValidationError:
        raise InvalidInput(f"'{value}' is not a valid {label} id. Use 'owner/name'.") from None
    return text


def validate_namespace(value: str) -> str:
    if not isinstance(value, str) or not _NAMESPACE_RE.match(value):
        raise InvalidInput(f"'{value}' is not a valid user or organization name.")
    return value


def validate_job_id(value: str | None) -> str:
    text = (value or "").strip()
    if not _JOB_ID_RE.match(text):
        raise InvalidInput("That is not a job id. Pick a job from the list (ids are letters and digits).")
    return text


def validate_int(value: object, name: str, low: int, high: int) -> int:
    """A whole number between `low` and `high` (3, 3.0 and "3" are all 3), or InvalidInput naming the field."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a whole number.") from None
    if isinstance(value, bool) or not number.is_integer():
        raise InvalidInput(f"{name} must be a whole number.")
    if not low <= number <= high:
        raise InvalidInput(f"{name} must be between {low:,} and {high:,}.")
    return int(number)


def validate_float(value: object, name: str, low: float, high: float, *, open_low: bool = False) -> float:
    """A number in [low, high] (or (low, high] with `open_low`), or InvalidInput naming the field."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number.") from None
    above_low = low < number if open_low else low <= number
    if isinstance(value, bool) or number != number or not above_low or number > high:
        bound = f"above {low:g} and at most {high:g}" if open_low else f"between {low:g} and {high:g}"
        raise InvalidInput(f"{name} must be {bound}.")
    return number


def validate_timeout(value: str | int) -> int:
    """A job timeout ("90m", "2h", seconds) between 1 minute and 7 days, in seconds."""
    from .jobspec import parse_timeout

    try:
        seconds = parse_timeout(value)
    except ValueError as err:
        raise InvalidInput(str(err)) from None
    if not MIN_JOB_TIMEOUT_S <= seconds <= MAX_JOB_TIMEOUT_S:
        raise InvalidInput("The timeout must be between 1 minute and 7 days.")
    return seconds
