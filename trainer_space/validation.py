"""Input validation: everything a visitor (or an API caller) sends is checked here before it reaches the Hub.

Two kinds of tools:

* plain functions (`validate_repo_id`, `validate_int`, `parse_timeout`, ...) for single values;
* annotated types for pydantic models (`RepoIdField`, `BoolField`, `int_field(...)`, ...), used by the typed
  configs in `jobs/config.py`. Each checks its value itself (no silent coercion: "false" is False, 1 is not a
  boolean, a list is not a model id), publishes a JSON schema (the API and MCP tools describe themselves with
  it), and fails with a message saying what is allowed. `config_error` turns pydantic's errors into one
  `InvalidInput` naming every field at fault.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from .catalog import MAX_TIMEOUT_S, METHODS
from .errors import InvalidInput, looks_like_token, redact

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_NAMESPACE_RE = re.compile(rf"^{_NAME}$")
_JOB_ID_RE = re.compile(r"^[A-Za-z0-9]{8,64}$")
MIN_JOB_TIMEOUT_S = 60
_URL_PREFIX = re.compile(r"^https?://(?:www\.)?(?:huggingface\.co|hf\.co)/(?:(datasets|spaces)/)?", re.I)
_LABELS = {"model": "model", "dataset": "dataset", "space": "Space"}
TOKEN_IN_FIELD = (
    "looks like an access token: never paste a token into a form field (it was not sent anywhere; the app uses "
    "your sign-in)"
)


def refuse_token(value: Any, what: str) -> None:
    """InvalidInput (which does not repeat the value) when `value` holds something shaped like a token."""
    if looks_like_token(value):
        raise InvalidInput(f"The {what} {TOKEN_IN_FIELD}.")


def validate_repo_id(value: Any, kind: str = "model") -> str:
    """A clean `owner/name` (or canonical `name`) repo id, or InvalidInput.

    Accepts a pasted Hub URL (`https://huggingface.co/datasets/owner/name/tree/main` -> `owner/name`).
    """
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hf_validate

    label = _LABELS.get(kind, "repository")
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"The {label} id must be text, like 'owner/name'.")
    refuse_token(value, f"{label} id")
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"Enter a {label} id, like 'owner/name'.")
    shown = text if len(text) <= 100 else text[:100] + "…"
    match = _URL_PREFIX.match(text)
    if match:
        text = text[match.end() :]
        text = "/".join(text.split("/")[:2])
    text = text.strip("/")
    parts = text.split("/")
    if len(parts) > 2 or not all(_NAMESPACE_RE.match(p) for p in parts) or ".." in text or "--" in text:
        raise InvalidInput(f"'{shown}' is not a valid {label} id. Use 'owner/name' (letters, digits, '-', '_', '.').")
    try:
        hf_validate(text)
    except HFValidationError:
        raise InvalidInput(f"'{shown}' is not a valid {label} id. Use 'owner/name'.") from None
    return text


LOCAL_DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
_SAVED_DATASET_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")


def looks_like_path(value: Any) -> bool:
    """Whether a model or dataset reference names a local path rather than a Hub id."""
    if not isinstance(value, str):
        return False
    from .settings import get_settings

    text = value.strip()
    explicit = text.startswith(("/", "./", "../", "~")) or text.lower().endswith(LOCAL_DATA_SUFFIXES)
    if explicit or not get_settings().local_enabled or len(text) > 1024:
        return explicit
    try:
        return Path(text).exists()
    except OSError:  # a name the file system cannot hold: not a path
        return False


def is_local_ref(value: str | None) -> bool:
    """A validated model or dataset reference that is a local path (validated ones are absolute)."""
    return bool(value) and value.startswith("/")


def validate_local_path(value: Any, kind: str, *, adapters: bool = False) -> str:
    """An existing, readable local model folder (`kind="model"`) or dataset file / saved folder (`"dataset"`),
    as an absolute path with links resolved; InvalidInput saying what is wrong. Only when the app runs on the
    visitor's own machine (never on a Space: it would read the Space's disk)."""
    from .settings import get_settings

    if not get_settings().local_enabled:
        raise InvalidInput(f"Local {kind} paths work only when the app runs on your own machine: use a Hub id.")
    if not isinstance(value, str) or not value.strip() or len(value) > 4096 or "\0" in value:
        raise InvalidInput(f"Enter the {kind}'s path.")
    path = Path(value.strip()).expanduser().resolve()
    if not path.exists():
        raise InvalidInput(f"No such {kind} on this machine: {path}.")
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"The {kind} {path} is not readable.")
    if kind == "model":
        marker = ("config.json", "adapter_config.json") if adapters else ("config.json",)
        if not (path.is_dir() and any((path / m).is_file() for m in marker)):
            what = "a model or LoRA adapter folder" if adapters else "a model folder"
            raise InvalidInput(f"{path} is not {what} (it needs a {' or '.join(marker)}, as save_pretrained writes).")
    elif path.is_dir():
        if not any((path / f).is_file() for f in _SAVED_DATASET_FILES):
            raise InvalidInput(f"{path} is not a dataset folder saved with `datasets` (save_to_disk).")
    elif path.suffix.lower() not in LOCAL_DATA_SUFFIXES:
        raise InvalidInput(
            f"{path.name}: a local dataset is a {', '.join(LOCAL_DATA_SUFFIXES)} file or a saved folder."
        )
    return str(path)


def validate_method(value: Any) -> str:
    """A method name ("SFT", " dpo ") or InvalidInput listing the methods."""
    method = value.strip().lower() if isinstance(value, str) else ""
    if method not in METHODS:
        shown = redact(value[:40]) if isinstance(value, str) else type(value).__name__  # str() of a huge int fails
        raise InvalidInput(f"Unknown method '{shown}'. Choose one of {', '.join(METHODS)}.")
    return method


def validate_namespace(value: Any) -> str:
    if not isinstance(value, str) or not _NAMESPACE_RE.match(value):
        shown = redact(str(value)[:100]) if isinstance(value, str) else type(value).__name__
        raise InvalidInput(f"'{shown}' is not a valid user or organization name.")
    return value


def validate_job_id(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not _JOB_ID_RE.match(text):
        raise InvalidInput("That is not a job id. Pick a job from the list (ids are letters and digits).")
    return text


def _number(value: Any) -> float | None:
    """A finite number from an int, float or numeric string; None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str) and len(value) > 40:
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # an int past the largest float (about 1e308) overflows: too large anyway
        return None
    return number if math.isfinite(number) else None


def finite_number(value: Any) -> float:
    """A finite number from an int, float or numeric string (not a boolean); ValueError otherwise."""
    number = _number(value)
    if number is None:
        raise ValueError("must be a number")
    return number


def parse_bool(value: Any) -> bool:
    """True/False, or the text "true"/"false" in any case; ValueError for anything else (1, "yes", None...)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("must be true or false")


def whole_number(value: Any, low: int, high: int) -> int:
    """A whole number in [low, high] (3, 3.0 and "3" are all 3); ValueError saying what is allowed otherwise."""
    number = _number(value)
    if number is None or not number.is_integer():
        raise ValueError(f"must be a whole number between {low:,} and {high:,}")
    if not low <= number <= high:
        raise ValueError(f"must be between {low:,} and {high:,}")
    return int(number)


def bounded_number(value: Any, low: float, high: float, *, open_low: bool = False) -> float:
    """A finite number in [low, high] ((low, high] with `open_low`); ValueError saying what is allowed otherwise."""
    number = _number(value)
    bound = f"above {low:g} and at most {high:g}" if open_low else f"between {low:g} and {high:g}"
    if number is None:
        raise ValueError(f"must be a number {bound}")
    if not (low < number if open_low else low <= number) or number > high:
        raise ValueError(f"must be {bound}")
    return number


def validate_int(value: object, name: str, low: int, high: int) -> int:
    """A whole number between `low` and `high`, or InvalidInput naming the field."""
    try:
        return whole_number(value, low, high)
    except ValueError as err:
        raise InvalidInput(f"{name} {err}.") from None


def validate_float(value: object, name: str, low: float, high: float, *, open_low: bool = False) -> float:
    """A number in [low, high] (or (low, high] with `open_low`), or InvalidInput naming the field."""
    try:
        return bounded_number(value, low, high, open_low=open_low)
    except ValueError as err:
        raise InvalidInput(f"{name} {err}.") from None


# ----------------------------------------------------------------------------- timeouts
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_timeout(value: Any) -> int:
    """ "2h" / "90m" / "3.5h" / "3600" / 3600 -> seconds (ValueError for anything else)."""
    if isinstance(value, bool):
        raise ValueError("not a duration: use e.g. 90m or 2h")
    if isinstance(value, int):
        return value  # any size: the caller checks the range (math.isfinite would overflow on a huge int)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a duration: use e.g. 90m or 2h")
        return int(value)
    text = str(value).strip().lower()
    match = _DURATION.fullmatch(text) if len(text) <= 20 else None
    if not match:
        raise ValueError(f"not a duration: {redact(str(value)[:40])!r} (use e.g. 90m or 2h)")
    return int(float(match[1]) * _UNITS[match[2] or "s"])


def format_timeout(seconds: int) -> str:
    """Seconds in the short form Jobs and `hf jobs` take: "45m", "2h", "3.5h" (whole minutes, rounded up)."""
    minutes = max(1, -(-int(seconds) // 60))
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    if minutes % 30 == 0 and minutes > 120:
        return f"{minutes / 60:g}h"
    return f"{minutes}m"


def validate_timeout(value: Any) -> int:
    """A job timeout ("90m", "2h", seconds) between 1 minute and 7 days, in seconds."""
    try:
        seconds = parse_timeout(value)
    except ValueError as err:
        raise InvalidInput(f"The timeout is {err}.") from None
    if not MIN_JOB_TIMEOUT_S <= seconds <= MAX_TIMEOUT_S:
        raise InvalidInput("The timeout must be between 1 minute and 7 days.")
    return seconds


# ----------------------------------------------------------------------------- pydantic field types
def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", message)


def _field(python_type: Any, check: Callable[[Any], Any], schema: dict[str, Any]) -> Any:
    return Annotated[python_type, PlainValidator(check), WithJsonSchema(schema)]


def _as_bool(value: Any) -> bool:
    try:
        return parse_bool(value)
    except ValueError as err:
        raise _fail(str(err)) from None


BoolField = _field(bool, _as_bool, {"type": "boolean"})


def int_field(low: int, high: int, *, optional: bool = False) -> Any:
    """A whole number in [low, high]; with `optional`, None / "" / 0 mean "not set" (None)."""

    def check(value: Any) -> int | None:
        if optional and value in (None, "", 0, -1):
            return None
        try:
            return whole_number(value, low, high)
        except ValueError as err:
            raise _fail(str(err)) from None

    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    return _field(int | None if optional else int, check, {"anyOf": [schema, {"type": "null"}]} if optional else schema)


def float_field(low: float, high: float, *, open_low: bool = False, optional: bool = False) -> Any:
    """A number in [low, high] ((low, high] with `open_low`); with `optional`, None / "" / 0 mean "not set"."""

    def check(value: Any) -> float | None:
        if optional and value in (None, "", 0):
            return None
        try:
            return bounded_number(value, low, high, open_low=open_low)
        except ValueError as err:
            raise _fail(str(err)) from None

    key = "exclusiveMinimum" if open_low else "minimum"
    schema: dict[str, Any] = {"type": "number", key: low, "maximum": high}
    return _field(
        float | None if optional else float, check, {"anyOf": [schema, {"type": "null"}]} if optional else schema
    )


def choice_field(choices: tuple[str, ...], *, optional: bool = False, what: str = "value") -> Any:
    """One of `choices` (case-insensitive text)."""

    def check(value: Any) -> str | None:
        if optional and value in (None, ""):
            return None
        text = value.strip().lower() if isinstance(value, str) else None
        lowered = {c.lower(): c for c in choices}
        if text not in lowered:
            raise _fail(f"must be one of: {', '.join(choices)}")
        return lowered[text]

    schema: dict[str, Any] = {"type": "string", "enum": list(choices)}
    return _field(str | None if optional else str, check, {"anyOf": [schema, {"type": "null"}]} if optional else schema)


def _repo_checker(kind: str, *, optional: bool, namespaced: bool) -> Callable[[Any], str | None]:
    label = _LABELS.get(kind, "repository")

    def check(value: Any) -> str | None:
        if optional and value in (None, ""):
            return None
        if looks_like_token(value):
            raise _fail(TOKEN_IN_FIELD)
        try:
            repo_id = validate_repo_id(value, kind)
        except InvalidInput:
            shown = f"; got {str(value)[:60]!r}" if isinstance(value, str) else f"; got {type(value).__name__}"
            raise _fail(f"must be a {label} id like 'owner/name' (letters, digits, '-', '_', '.'){shown}") from None
        if namespaced and "/" not in repo_id:
            raise _fail("needs a namespace: 'you/name'")
        return repo_id

    return check


def source_field(kind: str, *, optional: bool = False, adapters: bool = False) -> Any:
    """A model or dataset to train on (or a model or LoRA adapter to export, with `adapters`): a Hub id, or (on the
    visitor's own machine) a local path."""
    hub = _repo_checker(kind, optional=optional, namespaced=False)

    def check(value: Any) -> str | None:
        if looks_like_path(value):
            try:
                return validate_local_path(value, kind, adapters=adapters)
            except InvalidInput as err:
                raise _fail(err.message.rstrip(".")) from None
        return hub(value)

    schema: dict[str, Any] = {"type": "string", "maxLength": 4096, "description": f"Hub {kind} id or local path"}
    return _field(str | None if optional else str, check, {"anyOf": [schema, {"type": "null"}]} if optional else schema)


def repo_field(kind: str = "model", *, optional: bool = False, namespaced: bool = False) -> Any:
    """A Hub repo id of `kind` (a pasted Hub URL works); `namespaced` requires `owner/name`."""
    schema: dict[str, Any] = {
        "type": "string",
        "pattern": r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$",
        "maxLength": 200,
    }
    checker = _repo_checker(kind, optional=optional, namespaced=namespaced)
    return _field(
        str | None if optional else str, checker, {"anyOf": [schema, {"type": "null"}]} if optional else schema
    )


def text_field(pattern: str, *, description: str, optional: bool = True, max_length: int = 128) -> Any:
    """Free text matching `pattern` (split names, config names, project names)."""
    regex = re.compile(pattern)

    def check(value: Any) -> str | None:
        if optional and value in (None, ""):
            return None
        if looks_like_token(value):
            raise _fail(TOKEN_IN_FIELD)
        if not isinstance(value, str) or len(value) > max_length or not regex.fullmatch(value.strip()):
            raise _fail(f"must be {description}")
        return value.strip()

    schema = {"type": "string", "pattern": pattern, "maxLength": max_length}
    return _field(str | None if optional else str, check, {"anyOf": [schema, {"type": "null"}]} if optional else schema)


def _timeout_check(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return format_timeout(validate_timeout(value))
    except InvalidInput as err:
        raise _fail(err.message.removeprefix("The timeout ").rstrip(".")) from None


TimeoutField = _field(
    str | None,
    _timeout_check,
    {"anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?\s*[smhd]?$"}, {"type": "integer"}, {"type": "null"}]},
)


def config_error(err: ValidationError, *, labels: dict[str, str] | None = None, known: list[str] | None = None) -> (
    InvalidInput
):  # fmt: skip
    """One InvalidInput for pydantic's errors: unknown fields listed with the valid ones, each error by field."""
    labels = labels or {}
    unknown: list[str] = []
    problems: list[str] = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "config"
        field = str(e["loc"][0]) if e["loc"] else "config"
        if e["type"] == "extra_forbidden":
            unknown.append(loc)
            continue
        name = f"{labels[field]} ({loc})" if field in labels and labels[field] != loc else loc
        if not e["loc"]:  # a rule across fields
            problems.append(e["msg"][:1].upper() + e["msg"][1:])
        elif e["type"] == "missing":
            problems.append(f"'{loc}' is required")
        elif e["type"] in ("model_type", "dict_type"):
            problems.append("The config must be a JSON object")
        else:  # "Batch size (…) must be …"; a message that is a sentence of its own follows a colon
            problems.append(f"{name}: {e['msg']}" if e["msg"][:1].isupper() else f"{name} {e['msg']}")
    parts = []
    if unknown:
        valid = f" Valid fields: {', '.join(known)}." if known else ""
        parts.append(f"Unknown config field(s): {', '.join(sorted(unknown))}.{valid}")
    parts += [p.rstrip(".") + "." for p in problems]
    return InvalidInput(" ".join(parts) or "The config is not valid.")
