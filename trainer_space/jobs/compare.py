"""Base vs tuned: what a finished training job wrote about its model before and after training.

The job (job_templates/train.py, `compare_before` / `compare_after`) answers a few held-out prompts of the dataset
(and the visitor's own, `compare_prompts`) with the model as loaded and again once trained, with the same greedy
decoding, and measures the eval loss before and after when there is an eval split. It writes `base_vs_tuned.json`
into its output folder, which is pushed with the model. This module reads it back, bounded and checked, from the
output repo with the visitor's session, or from a local job's output folder: My jobs and `/base_vs_tuned` show the
same answer (`BaseVsTuned`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import InvalidInput, RepoNotFound
from ..hub.session import TERMINAL_STAGES, HubSession
from ..validation import validate_job_id
from .backends import find_job, job_backends
from .config import TrainingConfig
from .monitor import JobDetails, job_details
from .spec import template_constants

_LIMITS = template_constants("train.py")  # the job's own limits: the template is their single source
COMPARE_FILE: str = _LIMITS["COMPARE_FILE"]
MAX_TEXT: int = _LIMITS["COMPARE_MAX_TEXT_CHARS"]
MAX_ITEMS = _LIMITS["COMPARE_MAX_ROWS"] + _LIMITS["COMPARE_MAX_PROMPTS"]
MAX_BYTES = 512 * 1024  # the most read of the file (the job writes well under 100 KB)
MAX_NOTES = 10

Status = Literal["ready", "pending", "none", "off", "unreadable"]
NONE_WRITTEN = "This job wrote no comparison (an older job, or it did not finish)."


@dataclass(frozen=True)
class CompareItem:
    """One prompt with the base model's answer and the tuned model's (a reward model: its scores, in words)."""

    prompt: str
    origin: str  # "dataset" (held out of training) or "yours" (compare_prompts)
    base: str
    tuned: str
    base_stopped: bool | None = None  # the answer ended by itself (None: scores, or no answer)
    tuned_stopped: bool | None = None


@dataclass(frozen=True)
class BaseVsTuned:
    """`/base_vs_tuned` and My jobs' "Base vs tuned" block: the comparison, or why there is none."""

    job_id: str
    status: Status
    message: str  # the sentence My jobs shows above the table (or instead of it)
    where: str | None = None  # where it was read: "output repo alice/x" or "output folder /path"
    method: str | None = None
    kind: str | None = None  # "answers", or "scores" for a reward model
    source: str | None = None  # where the dataset's prompts came from: "eval split", "held out of training"
    max_new_tokens: int | None = None
    items: list[CompareItem] = field(default_factory=list)
    eval_loss: dict[str, Any] | None = None  # {"before", "after", "rows"}
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise ValueError("a text is not a string")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 1e12:
        raise ValueError("a number is not a finite number")
    return float(value)


def _side(value: Any, kind: str) -> tuple[str, bool | None]:
    """An answer (text, stopped) or a reward model's scores, in words; "(not available)" when missing."""
    if value is None:
        return "(not available)", None
    if not isinstance(value, dict):
        raise ValueError("an answer is not an object")
    if kind == "scores":
        chosen, rejected = _number(value.get("chosen")), _number(value.get("rejected"))
        if chosen is None or rejected is None:
            raise ValueError("a score is missing")
        prefers = "chosen" if chosen > rejected else "rejected"
        return f"chosen {chosen:.3f}, rejected {rejected:.3f}: prefers {prefers}", None
    stopped = value.get("stopped")
    return _text(value.get("text")), stopped if isinstance(stopped, bool) else None


def parse_comparison(raw: bytes) -> dict[str, Any]:
    """The fields of a `base_vs_tuned.json`, checked and bounded (ValueError saying what is wrong)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("it is not JSON") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError("it is not a version 1 comparison")
    kind = data.get("kind")
    if kind not in ("answers", "scores"):
        raise ValueError("its kind is neither answers nor scores")
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or len(raw_items) > MAX_ITEMS:
        raise ValueError(f"its items are not a list of at most {MAX_ITEMS}")
    items = []
    for item in raw_items:
        if not isinstance(item, dict):
            raise ValueError("an item is not an object")
        base, base_stopped = _side(item.get("base"), kind)
        tuned, tuned_stopped = _side(item.get("tuned"), kind)
        origin = "yours" if item.get("origin") == "yours" else "dataset"
        items.append(CompareItem(_text(item.get("prompt")), origin, base, tuned, base_stopped, tuned_stopped))
    loss = data.get("eval_loss")
    if loss is not None:
        if not isinstance(loss, dict):
            raise ValueError("its eval_loss is not an object")
        rows = loss.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise ValueError("its eval_loss rows are not a count")
        loss = {"before": _number(loss.get("before")), "after": _number(loss.get("after")), "rows": rows}
    notes = data.get("notes") or []
    if not isinstance(notes, list):
        raise ValueError("its notes are not a list")
    decoding = data.get("decoding") if isinstance(data.get("decoding"), dict) else {}
    tokens = decoding.get("max_new_tokens")
    return {
        "method": _text(str(data.get("method", "")), 16),
        "kind": kind,
        "source": _text(str(data.get("source", "")), 120),
        "max_new_tokens": tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        "items": items,
        "eval_loss": loss,
        "notes": [_text(str(n), 400) for n in notes[:MAX_NOTES]],
    }


def loss_sentence(loss: dict[str, Any] | None) -> str:
    """The eval loss before and after, e.g. 'Eval loss on 64 eval rows: 2.3100 → 1.8700 (-19%).' (or '')."""
    if not loss or not loss.get("rows"):
        return ""
    before, after, rows = loss["before"], loss["after"], loss["rows"]
    shown = [f"{v:.4f}" if v is not None else "n/a" for v in (before, after)]
    change = f" ({(after - before) / before:+.0%})" if before and after is not None else ""
    return f"Eval loss on {rows} eval row{'s' * (rows != 1)}: {shown[0]} → {shown[1]}{change}."


def summary(parsed: dict[str, Any]) -> str:
    """The sentence above the table."""
    n = len(parsed["items"])
    if parsed["kind"] == "scores":
        text = f"{n} held-out pair{'s' * (n != 1)} scored by the reward model before and after training."
    else:
        tokens = f", at most {parsed['max_new_tokens']} new tokens" if parsed["max_new_tokens"] else ""
        text = (
            f"{n} prompt{'s' * (n != 1)} answered by the model before training (base) and after (tuned): the same "
            f"greedy decoding{tokens}."
        )
    if not n:
        text = "No prompt was answered (see the notes)."
    return " ".join(t for t in (text, loss_sentence(parsed["eval_loss"])) if t)


def _read_folder(folder: str) -> bytes | None:
    path = Path(folder) / COMPARE_FILE
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{COMPARE_FILE} is {path.stat().st_size:,} bytes, more than the {MAX_BYTES:,} read")
    return path.read_bytes()


def _read(session: HubSession, details: JobDetails, cfg: TrainingConfig | None) -> tuple[bytes | None, str | None]:
    """(the file's bytes or None when there is none, where it was looked for): a local job's folder first (it
    holds the file whether or not it pushed), else the output repo."""
    if details.output_dir and Path(details.output_dir).is_dir():
        data = _read_folder(details.output_dir)
        if data is not None or cfg is None or not cfg.push_to_hub:
            return data, f"output folder {details.output_dir}"
    if not details.output_repo:
        return None, None
    where = f"output repo {details.output_repo}"
    try:
        return session.download_small(details.output_repo, COMPARE_FILE, MAX_BYTES), where
    except (FileNotFoundError, RepoNotFound):
        return None, where


def base_vs_tuned(session: HubSession, job_id: str) -> BaseVsTuned:
    """The base vs tuned comparison of one of the visitor's training jobs, or why there is none."""
    job_id = validate_job_id(job_id)
    _, job = find_job(job_backends(session), job_id)
    details = job_details(job)
    if details.kind != "train":
        raise InvalidInput(f"Job {job_id} is not a training job: only training jobs compare base and tuned.")
    cfg = details.config if isinstance(details.config, TrainingConfig) else None
    if cfg is not None and not cfg.compare:
        return BaseVsTuned(job_id, "off", "This job was submitted with the comparison off (compare false).")
    if details.stage not in TERMINAL_STAGES:
        return BaseVsTuned(job_id, "pending", f"Base vs tuned appears when the job finishes (it is {details.stage}).")
    try:
        raw, where = _read(session, details, cfg)
    except ValueError as err:
        return BaseVsTuned(job_id, "unreadable", f"The comparison was not read: {err}.")
    if raw is None:
        return BaseVsTuned(job_id, "none", NONE_WRITTEN, where=where)
    try:
        parsed = parse_comparison(raw)
    except ValueError as err:
        return BaseVsTuned(job_id, "unreadable", f"The comparison file is malformed: {err}.", where=where)
    return BaseVsTuned(job_id, "ready", summary(parsed), where=where, **parsed)
