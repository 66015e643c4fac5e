"""Dataset inspection: the dataset viewer API (concurrent calls), a `datasets` streaming fallback, the preview,
token statistics and the chat-template rendering of one example.

Everything here is free and fast: no GPU, no job. The visitor's token is sent to the viewer and the Hub only
when given (gated / private data) and is never logged. Heavy imports (`datasets`, `transformers`) stay inside the
functions that need them.

Example:
    >>> result = inspect_dataset(dataset="trl-lib/Capybara", token=None)
    >>> result.methods["sft"].verdict, result.num_rows
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from . import formats
from .errors import (
    GatedRepo,
    HubUnavailable,
    InvalidInput,
    RateLimited,
    RepoNotFound,
    TrainerSpaceError,
    from_hub_error,
)
from .formats import Mapping, MethodReport
from .settings import get_settings, hub_auth
from .validation import validate_repo_id

log = logging.getLogger("trainer_space.inspection")

PREVIEW_ROWS = 10  # rows in the API's "preview"
PREVIEW_CELL_CHARS = 1000  # longer strings are cut in the preview (the detector sees the full cell)
SAMPLE_ROWS = 1000  # token statistics sample
PAGE = 100  # the viewer's /rows page size limit
STREAM_ROWS = 100  # rows read by the streaming fallback
STREAM_TIMEOUT_S = 60.0
# Viewer error codes that mean "the viewer has no rows for this dataset" (fall back to streaming), not an outage.
NO_DATA_CODES = frozenset({
    "DatasetInBlockListError", "ResponseNotReady", "ResponseNotFound", "StreamingRowsError", "FeaturesError",
    "InfoError", "DatasetWithScriptNotSupportedError", "DatasetWithTooManyConfigsError", "TooBigContentError",
    "TooManyColumnsError", "RowsPostProcessingError", "DatasetManualDownloadError", "ConfigNamesError",
    "SplitNamesFromStreamingError", "DatasetModuleNotInstalledError", "PreviousStepFormatError",
    "ParquetResponseEmptyError", "FileSystemError", "NormalRowsError",
})  # fmt: skip
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="inspect")


@dataclass(frozen=True)
class SplitRef:
    config: str
    split: str


@dataclass
class DatasetInspection:
    """What one inspection found: rows, columns, row count and a verdict per training method."""

    dataset: str
    config: str
    split: str
    num_rows: int | None
    columns: list[str]
    column_types: dict[str, str]
    rows: list[dict[str, Any]]  # the first rows (the preview)
    features: dict[str, Any]
    splits: list[SplitRef]
    methods: dict[str, MethodReport]
    source: str = "viewer"  # "viewer" or "streaming"
    truncated_cells: int = 0
    cut_rows: frozenset[int] = frozenset()  # rows with a cell the viewer cut: left out of `sample`
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def sample(self) -> list[dict[str, Any]]:
        """The rows the verdicts are made on: whole rows only (all rows when every one was cut)."""
        whole = [r for i, r in enumerate(self.rows) if i not in self.cut_rows]
        return whole or list(self.rows)

    @property
    def configs(self) -> list[str]:
        return list(dict.fromkeys(s.config for s in self.splits))

    def split_names(self, config: str | None = None) -> list[str]:
        return [s.split for s in self.splits if s.config == (config or self.config)]

    @property
    def load_config(self) -> str | None:
        """The config to pass to `load_dataset` (None for the implicit "default")."""
        return None if self.config == "default" else self.config

    def to_json(self, *, preview_rows: int = PREVIEW_ROWS) -> dict[str, Any]:
        """The `/inspect_dataset` API answer."""
        return {
            "dataset": self.dataset,
            "config": self.config,
            "split": self.split,
            "num_rows": self.num_rows,
            "columns": self.columns,
            "methods": {m: r.to_json() for m, r in self.methods.items()},
            "preview": [preview_row(r) for r in self.rows[:preview_rows]],
            "column_types": self.column_types,
            "splits": [{"config": s.config, "split": s.split} for s in self.splits],
            "source": self.source,
            "notes": self.notes,
        }


# ============================================================================ the viewer client
class ViewerError(Exception):
    """The viewer answered with an error status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message

    @property
    def no_data(self) -> bool:
        return self.status == 501 or self.code in NO_DATA_CODES


def _clean(text: str) -> str:
    """An error text safe to show: no token, one line, short."""
    return re.sub(r"hf_[A-Za-z0-9_]{6,}", "hf_***", " ".join(str(text).split()))[:300]


class _Viewer:
    """GET calls to the dataset viewer, with the visitor's token when given."""

    def __init__(self, token: str | None) -> None:
        settings = get_settings()
        self.base, self.timeout = settings.viewer_url, settings.viewer_timeout_s
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        from huggingface_hub.utils import get_session

        try:
            response = get_session().get(
                f"{self.base}/{path}", params=params, headers=self.headers, timeout=self.timeout
            )
        except Exception as err:  # timeouts and connection errors of the HTTP client
            kind = "did not answer in time" if "Timeout" in type(err).__name__ else "could not be reached"
            raise HubUnavailable(f"the dataset viewer {kind} ({self.timeout:g} s limit)") from None
        if response.status_code >= 400:
            code = response.headers.get("X-Error-Code", "")
            try:
                message = str(response.json().get("error", ""))
            except Exception:
                message = response.text[:200]
            raise ViewerError(response.status_code, code, _clean(message))
        try:
            return response.json()
        except ValueError:
            raise HubUnavailable("the dataset viewer sent an unreadable answer") from None


# ============================================================================ inspect_dataset
def inspect_dataset(
    *, dataset: str, split: str | None = "train", config: str | None = None, token: str | None = None
) -> DatasetInspection:
    """Inspect a Hub dataset: splits, row count, first rows, and a verdict per training method.

    Args:
        dataset: a dataset id (`owner/name`) or its Hub URL.
        split: the split to inspect; empty or None picks "train" when present, else the first split.
        config: the configuration (subset); None picks "default" when present, else the first one.
        token: the visitor's token, for gated or private datasets (sent only to the Hub and its viewer).

    Raises:
        InvalidInput: a malformed id, or a config / split the dataset does not have.
        RepoNotFound / GatedRepo / InvalidToken: the dataset does not exist, is private, or is gated.
        HubUnavailable: the viewer failed or timed out, and streaming a few rows failed too.
    """
    started = time.perf_counter()
    repo_id = validate_repo_id(dataset, kind="dataset")
    config, split = (config or "").strip() or None, (split or "").strip() or None
    viewer = _Viewer(token)
    guess = SplitRef(config or "default", split or "train")
    f_splits = _POOL.submit(viewer.get, "splits", dataset=repo_id)
    f_size = _POOL.submit(viewer.get, "size", dataset=repo_id)
    f_rows = _POOL.submit(viewer.get, "first-rows", dataset=repo_id, config=guess.config, split=guess.split)
    try:
        try:
            splits = _parse_splits(f_splits.result())
        except ViewerError as err:
            _raise_unless_no_data(err, repo_id, token)
            return _streamed(repo_id, config, split, token, started, err)
        chosen = _choose_split(splits, config, split)
        try:
            first = f_rows.result() if chosen == guess else viewer.get("first-rows", dataset=repo_id, **vars(chosen))
        except ViewerError as err:
            _raise_unless_no_data(err, repo_id, token)
            return _streamed(repo_id, chosen.config, chosen.split, token, started, err, splits)
        num_rows, notes = _row_count(f_size, viewer, repo_id, chosen)
        return _build(repo_id, chosen, splits, first, num_rows, notes, started)
    finally:  # leave no request in flight behind an early answer (they end within the viewer timeout)
        wait([f_splits, f_size, f_rows], timeout=viewer.timeout + 1)


def _parse_splits(payload: dict[str, Any]) -> list[SplitRef]:
    splits = [SplitRef(str(s["config"]), str(s["split"])) for s in payload.get("splits") or []]
    if not splits:
        pending = payload.get("pending") or payload.get("failed")
        raise ViewerError(501, "ResponseNotReady" if pending else "ResponseNotFound", "no splits listed")
    return splits


def _choose_split(splits: list[SplitRef], config: str | None, split: str | None) -> SplitRef:
    configs = list(dict.fromkeys(s.config for s in splits))
    if config is None:
        wanted = [c for c in configs if split is None or SplitRef(c, split) in splits]
        config = "default" if "default" in wanted else (wanted or configs)[0]
    if config not in configs:
        raise InvalidInput(f"The dataset has no config '{config}'. Available configs: {', '.join(configs)}.")
    names = [s.split for s in splits if s.config == config]
    if split is None:
        split = "train" if "train" in names else names[0]
    if split not in names:
        raise InvalidInput(f"Config '{config}' has no split '{split}'. Available splits: {', '.join(names)}.")
    return SplitRef(config, split)


def _raise_unless_no_data(err: ViewerError, repo_id: str, token: str | None) -> None:
    """Turn a viewer refusal into NotFound / Gated / an outage; return when streaming is worth a try."""
    if err.no_data:
        return
    if err.status in (401, 403, 404):
        problem = _access_problem(repo_id, token, err)
        if problem is not None:
            raise problem
        return  # the dataset exists and is readable: the viewer just does not know it
    if err.status == 429:
        raise RateLimited()
    raise HubUnavailable(f"the dataset viewer answered {err.status} {err.code}".strip())


def _access_problem(repo_id: str, token: str | None, err: ViewerError) -> TrainerSpaceError | None:
    """Ask the Hub whether the dataset exists and is gated, to explain the viewer's refusal."""
    from huggingface_hub import HfApi

    settings = get_settings()
    try:
        info = HfApi(endpoint=settings.endpoint).dataset_info(
            repo_id, token=hub_auth(token), timeout=settings.hub_timeout_s
        )
    except Exception as hub_err:
        return from_hub_error(hub_err, repo_id=repo_id, repo_type="dataset", action="read this dataset")
    if err.status in (401, 403) and info.gated:
        return GatedRepo(repo_id, "dataset")
    if err.status in (401, 403):
        return RepoNotFound(repo_id, "dataset", detail=err.message)
    return None


def _row_count(f_size: Future, viewer: _Viewer, repo_id: str, chosen: SplitRef) -> tuple[int | None, list[str]]:
    """Rows in the chosen split from /size, else /info; None (with a note) when the viewer does not know."""
    try:
        for entry in f_size.result().get("size", {}).get("splits", []):
            if entry.get("config") == chosen.config and entry.get("split") == chosen.split:
                return int(entry["num_rows"]), []
    except (ViewerError, HubUnavailable, KeyError, TypeError, ValueError):
        pass
    try:
        info = viewer.get("info", dataset=repo_id, config=chosen.config)
        splits = (info.get("dataset_info") or {}).get("splits") or {}
        if chosen.split in splits:
            return int(splits[chosen.split]["num_examples"]), []
    except (ViewerError, HubUnavailable, KeyError, TypeError, ValueError):
        pass
    return None, ["The viewer does not know the number of rows of this split."]


def _build(
    repo_id: str,
    chosen: SplitRef,
    splits: list[SplitRef],
    payload: dict[str, Any],
    num_rows: int | None,
    notes: list[str],
    started: float,
) -> DatasetInspection:
    entries = payload.get("rows") or []
    rows = [e.get("row") or {} for e in entries]
    cut = [set(e.get("truncated_cells") or []) for e in entries]
    features = {f["name"]: f.get("type") for f in payload.get("features") or [] if "name" in f}
    truncated = sum(len(c) for c in cut)
    if truncated:
        notes.append(
            f"{truncated} long cell(s) in the first rows were cut by the viewer; the verdicts use the "
            "other rows" + ("" if any(not c for c in cut) else " (none were whole: verdicts may be off)")
        )
    cut_rows = frozenset(i for i, c in enumerate(cut) if c)
    if not rows:
        notes.append("The split is empty.")
        num_rows = num_rows or 0
    return _result(repo_id, chosen, splits, rows, features, num_rows, notes, started, "viewer", cut_rows, truncated)


def _result(
    repo_id: str,
    chosen: SplitRef,
    splits: list[SplitRef],
    rows: list[dict[str, Any]],
    features: dict[str, Any],
    num_rows: int | None,
    notes: list[str],
    started: float,
    source: str,
    cut_rows: frozenset[int] = frozenset(),
    truncated: int = 0,
) -> DatasetInspection:
    load_config = None if chosen.config == "default" else chosen.config
    sample = [r for i, r in enumerate(rows) if i not in cut_rows] or rows
    methods = formats.detect(sample, features=features, dataset=repo_id, config=load_config, split=chosen.split)
    cols = formats.analyze(sample, features)
    return DatasetInspection(
        dataset=repo_id,
        config=chosen.config,
        split=chosen.split,
        num_rows=num_rows,
        columns=list(cols),
        column_types={n: c.kind.value for n, c in cols.items()},
        rows=rows,
        features=features,
        splits=splits,
        methods=methods,
        source=source,
        truncated_cells=truncated,
        cut_rows=cut_rows,
        notes=notes,
        elapsed_s=round(time.perf_counter() - started, 3),
    )


# ============================================================================ streaming fallback
def _streamed(
    repo_id: str,
    config: str | None,
    split: str | None,
    token: str | None,
    started: float,
    why: ViewerError,
    splits: list[SplitRef] | None = None,
) -> DatasetInspection:
    """Read the first rows with `datasets` streaming when the viewer has no data."""
    chosen = SplitRef(config or "default", split or "train")
    future = _POOL.submit(_stream_rows, repo_id, config, chosen.split, token)
    try:
        rows, features = future.result(timeout=STREAM_TIMEOUT_S)
    except FutureTimeout:
        raise HubUnavailable(
            f"the dataset viewer has no data for '{repo_id}' ({why.code or why.status}) and reading it directly "
            f"took longer than {STREAM_TIMEOUT_S:g} s"
        ) from None
    notes = [
        f"The dataset viewer has no data for this dataset ({why.code or why.status}); the first {len(rows)} rows "
        "were read with `datasets` streaming. The number of rows is unknown."
    ]
    if not rows:
        notes.append("The split is empty.")
    splits = splits or [chosen]
    return _result(repo_id, chosen, splits, rows, features, None, notes, started, "streaming")


def _stream_rows(
    repo_id: str, config: str | None, split: str, token: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The first STREAM_ROWS rows and their features, or a clear error."""
    try:
        import datasets

        stream = datasets.load_dataset(
            repo_id, None if config == "default" else config, split=split, streaming=True, token=hub_auth(token)
        )
        rows = [dict(r) for r in islice(stream, STREAM_ROWS)]
        features = stream.features.to_dict() if stream.features is not None else {}
    except TrainerSpaceError:
        raise
    except Exception as err:
        name = type(err).__name__
        if "Gated" in name or "gated" in str(err):
            raise GatedRepo(repo_id, "dataset") from None
        raise HubUnavailable(
            f"the dataset viewer has no data for '{repo_id}', and reading it with `datasets` failed: "
            f"{name}: {_clean(str(err))}"
        ) from None
    return rows, features


# ============================================================================ preview
def preview_cell(value: Any, limit: int = PREVIEW_CELL_CHARS) -> Any:
    """A JSON-safe, size-limited cell for display: media become a marker, long strings are cut."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"… [{len(value) - limit} more characters]"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        if formats._value_kind(list(value)) == formats.Kind.MEDIA:
            return "[audio]"
        items = [preview_cell(v, limit) for v in value[:50]]
        return items + ([f"… [{len(value) - 50} more items]"] if len(value) > 50 else [])
    if isinstance(value, dict):
        if formats._value_kind(value) == formats.Kind.MEDIA:
            return "[image]" if "height" in value or "width" in value else "[media]"
        return {str(k): preview_cell(v, limit) for k, v in value.items()}
    kind = formats._value_kind(value)
    return f"[{type(value).__name__}]" if kind == formats.Kind.MEDIA else _clean(repr(value))[:limit]


def preview_row(row: dict[str, Any]) -> dict[str, Any]:
    return {str(k): preview_cell(v) for k, v in row.items()}


def revalidate(*, inspection: DatasetInspection, method: str, mapping: Mapping | dict | None) -> MethodReport:
    """Apply an edited mapping to the preview rows and run the detector again."""
    if method not in formats.METHODS:
        raise InvalidInput(f"Unknown method '{method}'. Choose one of {', '.join(formats.METHODS)}.")
    return formats.check_mapping(
        method,
        inspection.sample,
        mapping,
        dataset=inspection.dataset,
        config=inspection.load_config,
        split=inspection.split,
    )


def trainer_rows(rows: Sequence[dict[str, Any]], method: str, mapping: Mapping | dict | None) -> list[dict[str, Any]]:
    """The rows as the trainer sees them: mapping applied, only the method's columns kept."""
    if method not in formats.METHODS:
        raise InvalidInput(f"Unknown method '{method}'. Choose one of {', '.join(formats.METHODS)}.")
    try:
        mapped = formats.map_rows(rows, mapping)
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise InvalidInput(f"The mapping does not fit the rows ({type(err).__name__}: {_clean(str(err))}).") from None
    group = formats.trainer_columns(method, mapped[0]) if mapped else None
    if group is None:
        raise InvalidInput(
            f"{formats.METHOD_NAMES[method]} needs {formats.DATA_FORMATS[method]}: pick a mapping that is READY first."
        )
    return [{k: r[k] for k in group} for r in mapped]


# ============================================================================ tokenizers
_TOKENIZERS: OrderedDict[tuple[str, ...], Any] = OrderedDict()
_TOKENIZER_LOCK = threading.Lock()
TOKENIZER_CACHE_SIZE = 4


def load_tokenizer(*, model: str, token: str | None = None) -> Any:
    """The model's tokenizer, cached per (model, revision); gated / private ones also per visitor."""
    from huggingface_hub import HfApi

    repo_id = validate_repo_id(model, kind="model")
    settings = get_settings()
    try:
        info = HfApi(endpoint=settings.endpoint).model_info(
            repo_id, token=hub_auth(token), timeout=settings.hub_timeout_s
        )
    except Exception as err:
        raise from_hub_error(err, repo_id=repo_id, repo_type="model", action="read this model") from None
    key: tuple[str, ...] = (repo_id, info.sha or "")
    if info.private or info.gated:  # never hand a gated tokenizer to a visitor who has no access
        key += (hashlib.sha256((token or "").encode()).hexdigest(),)
    with _TOKENIZER_LOCK:
        if key in _TOKENIZERS:
            _TOKENIZERS.move_to_end(key)
            return _TOKENIZERS[key]
    tokenizer = _fetch_tokenizer(repo_id, info.sha, token)
    with _TOKENIZER_LOCK:
        _TOKENIZERS[key] = tokenizer
        while len(_TOKENIZERS) > TOKENIZER_CACHE_SIZE:
            _TOKENIZERS.popitem(last=False)
    return tokenizer


def _fetch_tokenizer(repo_id: str, revision: str | None, token: str | None) -> Any:
    from huggingface_hub.errors import HfHubHTTPError

    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision, token=hub_auth(token))
    except HfHubHTTPError as err:
        raise from_hub_error(err, repo_id=repo_id, repo_type="model", action="read this model") from None
    except Exception as err:
        if "gated" in str(err).lower():
            raise GatedRepo(repo_id, "model") from None
        raise InvalidInput(
            f"Could not load a tokenizer from '{repo_id}' ({type(err).__name__}: {_clean(str(err))})."
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

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "conversational": self.conversational, "note": self.note}


def _plain(messages: list[dict[str, Any]]) -> str:
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)


def render_example(*, row: dict[str, Any], model: str | None, token: str | None = None) -> RenderedExample:
    """A trainer row (see `trainer_rows`) rendered with the chat template of `model`'s tokenizer."""
    shown = formats.example_for_display(row)
    if "messages" not in shown:
        text = str(shown.get("text", ""))
        if not model:
            return RenderedExample(text, False, "Standard (non-chat) data: the model sees the text as it is.")
        eos = getattr(load_tokenizer(model=model, token=token), "eos_token", None) or ""
        return RenderedExample(text + eos, False, f"TRL appends the end-of-sequence token {eos!r}." if eos else "")
    messages = shown["messages"]
    if not model:
        return RenderedExample(_plain(messages), True, "Name a model to see the chat template applied.")
    tokenizer = load_tokenizer(model=model, token=token)
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
            _plain(messages), True, f"The chat template of '{model}' refused this example: {_clean(str(err))}"
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


def fetch_sample(
    *, inspection: DatasetInspection, token: str | None = None, size: int = SAMPLE_ROWS
) -> list[dict[str, Any]]:
    """Up to `size` rows of the inspected split: the preview plus /rows pages fetched concurrently."""
    rows = inspection.sample
    known = inspection.num_rows if inspection.num_rows is not None else size
    want = min(size, known)
    if inspection.source != "viewer" or len(rows) >= want:
        return rows[:want]
    viewer = _Viewer(token)
    offsets = range(len(rows), want, PAGE)

    def page(offset: int) -> list[dict[str, Any]]:
        length = min(PAGE, want - offset)
        payload = viewer.get(
            "rows", dataset=inspection.dataset, config=inspection.config, split=inspection.split,
            offset=offset, length=length,
        )  # fmt: skip
        return [e.get("row") or {} for e in payload.get("rows") or [] if not e.get("truncated_cells")]

    futures = [_POOL.submit(page, o) for o in offsets]
    for future in futures:
        try:
            rows.extend(future.result())
        except (ViewerError, HubUnavailable):
            continue  # a partial sample is still a sample (and no request is left in flight)
    return rows[:want]


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
    *,
    rows: Sequence[dict[str, Any]],
    method: str,
    mapping: Mapping | dict | None,
    model: str,
    max_length: int,
    token: str | None = None,
) -> TokenStats:
    """Min / median / p95 / max length in tokens of `rows` (as the trainer sees them) and how many exceed max_length."""
    if not model or not str(model).strip():
        raise InvalidInput("Name a model (its tokenizer counts the tokens), e.g. Qwen/Qwen2.5-0.5B-Instruct.")
    if not isinstance(max_length, int) or max_length < 1:
        raise InvalidInput("max_length must be a positive whole number of tokens.")
    data = trainer_rows(rows, method, mapping)
    if not data:
        raise InvalidInput("There are no rows to measure.")
    tokenizer = load_tokenizer(model=model, token=token)
    length, measured = _length_fn(tokenizer, tuple(data[0]))
    lengths = sorted(length(r) for r in data)
    note = ""
    if formats.example_for_display(data[0]).get("messages") and not getattr(tokenizer, "chat_template", None):
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
