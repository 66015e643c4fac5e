"""The model's tokenizer on the dataset: the first example as the model sees it (chat template applied) and
token statistics (min / median / p95 / max, share over max_length) on a sample of rows.

Tokenizers are loaded with `transformers` (no torch) from files read through the visitor's session.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, TrainerSpaceError
from ..hub.cache import TTLCache
from ..hub.session import HubSession
from ..hub.viewer import clean
from ..steps import step
from ..validation import looks_like_path, validate_local_path, validate_repo_id
from .detect import example_for_display
from .inspection import trainer_rows
from .mapping import DatasetMapping

# ============================================================================ tokenizers
TOKENIZER_CACHE: TTLCache[Any] = TTLCache(ttl_s=3600.0, max_items=4)
# the files AutoTokenizer reads: downloaded first, then loaded from disk (transformers makes no Hub call itself)
TOKENIZER_FILES = [
    "tokenizer*", "vocab*", "merges.txt", "*.model", "*.tiktoken", "special_tokens_map.json", "added_tokens.json",
    "chat_template*", "config.json", "generation_config.json",
]  # fmt: skip


def load_tokenizer(session: HubSession, model: str) -> Any:
    """The model's tokenizer, cached per (model, revision); gated / private ones also per visitor.

    Its files are read with the visitor's session (for gated or private models through a throw-away folder)
    and loaded from disk, so transformers never calls the Hub with a token of its own choosing.
    """
    step(f"reading the tokenizer of {model}")
    if looks_like_path(model):
        path = validate_local_path(model, "model")
        key = (path, str(Path(path).stat().st_mtime_ns), "local")
        return TOKENIZER_CACHE.get(key) or TOKENIZER_CACHE.put(key, _tokenizer_from(Path(path), path))
    repo_id = validate_repo_id(model, kind="model")
    info = session.model_info(repo_id)
    restricted = bool(info.private or info.gated)
    key = (repo_id, info.sha or "", session.cache_scope if restricted else "public")
    cached = TOKENIZER_CACHE.get(key)
    if cached is not None:
        return cached
    with session.snapshot(repo_id, TOKENIZER_FILES, revision=info.sha, isolated=restricted) as folder:
        tokenizer = _tokenizer_from(folder, repo_id)
    return TOKENIZER_CACHE.put(key, tokenizer)


def _tokenizer_from(folder: Path, repo_id: str) -> Any:
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:
        raise InvalidInput(
            f"Could not load a tokenizer from '{repo_id}' ({type(err).__name__}: {clean(str(err))})."
        ) from None
    if len(tokenizer) <= 1:  # transformers builds an empty tokenizer from a repo with only config.json
        raise InvalidInput(
            f"'{repo_id}' has no tokenizer files (tokenizer.json or tokenizer_config.json): name the model the "
            "tokenizer comes from, or a repo that includes it."
        )
    return tokenizer


# ============================================================================ rendering one example
@dataclass(frozen=True)
class RenderedExample:
    """One training example as the model sees it."""

    text: str
    conversational: bool
    note: str = ""
    tokenizer_error: str | None = None  # the tokenizer could not be loaded: the raw example is shown

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "conversational": self.conversational, "note": self.note,
                "tokenizer_error": self.tokenizer_error}  # fmt: skip


def _plain(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)


def render_example(session: HubSession, *, row: dict[str, Any], model: str | None) -> RenderedExample:
    """A trainer row (see `trainer_rows`) rendered with the chat template of `model`'s tokenizer; when that tokenizer
    cannot be loaded (no such model, no access, no tokenizer files), the raw example with the reason."""
    try:
        return _render(session, row, model)
    except TrainerSpaceError as err:
        shown = example_for_display(row)
        if "messages" in shown:
            raw = _plain(shown["messages"])
        else:
            raw = shown["text"] if isinstance(shown.get("text"), str) else json.dumps(shown, ensure_ascii=False)
        note = f"The raw example is shown: the tokenizer of '{model}' could not be loaded. {err.message}"
        return RenderedExample(raw, "messages" in shown, note, tokenizer_error=err.message)


def _render(session: HubSession, row: dict[str, Any], model: str | None) -> RenderedExample:
    shown = example_for_display(row)
    if "messages" not in shown:
        text = str(shown.get("text", ""))
        if not model:
            return RenderedExample(text, False, "Standard (non-chat) data: the model sees the text as it is.")
        eos = getattr(load_tokenizer(session, model), "eos_token", None) or ""
        return RenderedExample(text + eos, False, f"TRL appends the end-of-sequence token {eos!r}." if eos else "")
    messages = shown["messages"]
    if not model:
        return RenderedExample(_plain(messages), True, "Name a model to see the chat template applied.")
    tokenizer = load_tokenizer(session, model)
    if not getattr(tokenizer, "chat_template", None):
        return RenderedExample(
            _plain(messages),
            True,
            f"'{model}' has no chat template (a base model?): the training job stops on conversational data. "
            "Pick an instruct/chat model, or map the data to plain text.",
        )
    try:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=bool(shown.get("generation_prompt"))
        )
    except Exception as err:  # templates raise on roles they do not support (jinja2 exceptions)
        return RenderedExample(
            _plain(messages), True, f"The chat template of '{model}' refused this example: {clean(str(err))}"
        )
    return RenderedExample(str(text), True, f"Rendered with the chat template of '{model}'.")


# ============================================================================ token statistics
@dataclass(frozen=True)
class TokenStats:
    """Token lengths of a sample, with the tokenizer of the chosen model."""

    model: str
    method: str
    rows: int
    min: int
    median: float
    p95: int
    max: int
    max_length: int
    over_max_length: int
    measured: str
    note: str = ""
    mean: float = 0.0  # mean tokens per row: the Estimate tab's training-token count uses it

    @property
    def share_over(self) -> float:
        return self.over_max_length / self.rows if self.rows else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.method,
            "rows": self.rows,
            "min": self.min,
            "median": self.median,
            "p95": self.p95,
            "max": self.max,
            "max_length": self.max_length,
            "over_max_length": self.over_max_length,
            "share_over_max_length": round(self.share_over, 4),
            "measured": self.measured,
            "note": self.note,
        }


def _length_fn(tokenizer: Any, group: tuple[str, ...]) -> tuple[Callable[[dict[str, Any]], int], str]:
    """A function giving a trainer row's length in tokens, and a description of what it measures."""
    has_template = bool(getattr(tokenizer, "chat_template", None))

    def count(value: Any, generation_prompt: bool = False) -> int:
        if isinstance(value, list):
            if has_template:
                value = tokenizer.apply_chat_template(value, tokenize=False, add_generation_prompt=generation_prompt)
            else:
                value = _plain(value)
        return len(tokenizer(str(value), add_special_tokens=False)["input_ids"])

    def join(a: Any, b: Any) -> Any:
        return a + b if isinstance(a, type(b)) else f"{_plain(a) if isinstance(a, list) else a}{b}"

    if group == ("messages",):
        return (lambda r: count(r["messages"])), "the whole conversation"
    if group == ("text",):
        return (lambda r: count(r["text"])), "the text"
    if group[:2] == ("prompt", "completion"):
        return (lambda r: count(join(r["prompt"], r["completion"]))), "prompt + completion"
    if "chosen" in group:
        prompt = (
            (lambda r: r["prompt"]) if "prompt" in group else (lambda r: [] if isinstance(r["chosen"], list) else "")
        )
        return (
            lambda r: max(count(join(prompt(r), r["chosen"])), count(join(prompt(r), r["rejected"])))
        ), "prompt + the longer of chosen / rejected"
    return (lambda r: count(r["prompt"], generation_prompt=True)), "the prompt (GRPO generates the completion)"


def token_stats(
    session: HubSession,
    *,
    rows: Sequence[dict[str, Any]],
    method: str,
    mapping: DatasetMapping | dict | None,
    model: str,
    max_length: int,
) -> TokenStats:
    """Min / median / p95 / max length in tokens of `rows` (as the trainer sees them) and how many exceed max_length."""
    step("counting tokens")
    if not model or not str(model).strip():
        raise InvalidInput("Name a model (its tokenizer counts the tokens), e.g. Qwen/Qwen2.5-0.5B-Instruct.")
    if not isinstance(max_length, int) or max_length < 1:
        raise InvalidInput("max_length must be a positive whole number of tokens.")
    data = trainer_rows(rows, method, mapping)
    if not data:
        raise InvalidInput("There are no rows to measure.")
    tokenizer = load_tokenizer(session, model)
    length, measured = _length_fn(tokenizer, tuple(data[0]))
    lengths = sorted(length(r) for r in data)
    note = ""
    if example_for_display(data[0]).get("messages") and not getattr(tokenizer, "chat_template", None):
        note = f"'{model}' has no chat template: conversations were measured as plain 'role: content' lines."
    return TokenStats(
        model=model,
        method=method,
        rows=len(lengths),
        min=lengths[0],
        median=float(statistics.median(lengths)),
        mean=float(statistics.fmean(lengths)),
        p95=lengths[min(len(lengths) - 1, math.ceil(0.95 * len(lengths)) - 1)],
        max=lengths[-1],
        max_length=max_length,
        over_max_length=sum(1 for n in lengths if n > max_length),
        measured=measured,
        note=note,
    )
