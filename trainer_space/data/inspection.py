"""Dataset inspection: the dataset viewer API (concurrent calls), a `datasets` streaming fallback, the preview,
and the rows as the trainer will see them.

Everything here is free and fast: no GPU, no job. All Hub and viewer reads go through the visitor's
`HubSession` (their token when signed in, none otherwise). Heavy imports (`datasets`) stay inside the session
method that needs them.

Example:
    >>> result = inspect_dataset(HubSession(None), dataset="trl-lib/Capybara")
    >>> result.methods["sft"].verdict, result.num_rows
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from ..catalog import METHODS
from ..errors import Busy, GatedRepo, HubUnavailable, InvalidInput, RateLimited, RepoNotFound, TrainerSpaceError
from ..hub.http import in_request
from ..hub.session import HubSession
from ..hub.viewer import Viewer, ViewerError, clean
from ..steps import step
from ..validation import looks_like_path, validate_local_path, validate_method, validate_repo_id
from . import detect, local_files
from .detect import MethodReport
from .mapping import DatasetMapping, map_rows, trainer_columns

log = logging.getLogger("trainer_space.data.inspection")

PREVIEW_ROWS = 10  # rows in the API's "preview"
PREVIEW_CELL_CHARS = 1000  # longer strings are cut in the preview (the detector sees the full cell)
SAMPLE_ROWS = 1000  # token statistics sample
PAGE = 100  # the viewer's /rows page size limit
STREAM_ROWS = 100  # rows read by the streaming fallback
STREAM_TIMEOUT_S = 30.0
# Viewer calls (short, each bounded by the viewer timeout) and streaming reads (slow, rare) have separate pools, so
# that datasets without viewer data can never fill the pool every inspection needs.
_POOL = ThreadPoolExecutor(max_workers=48, thread_name_prefix="inspect")
STREAM_SLOTS = 4  # streaming reads at once, for everyone
STREAM_PER_VISITOR = {"signed_in": 1, "anon": 2}  # and per visitor (signed-out visitors share theirs)
_STREAM_POOL = ThreadPoolExecutor(max_workers=STREAM_SLOTS, thread_name_prefix="inspect-stream")
_STREAMS = threading.BoundedSemaphore(STREAM_SLOTS)
_STREAMS_BY_VISITOR: dict[str, int] = {}
_STREAMS_LOCK = threading.Lock()


@dataclass(frozen=True)
class SplitRef:
    config: str
    split: str


SOURCES = {
    "viewer": "the dataset viewer",
    "streaming": "`datasets` streaming (the dataset viewer has no data for it)",
    "local": "the file on this machine, read here",
}


def inspect_prompt(local_files: bool) -> str:
    """What the Dataset tab says before an inspection, true for what can be inspected: Hub datasets through the
    dataset viewer (nothing downloaded) and, on the visitor's own machine (`local_files`), files read here."""
    if not local_files:
        return "Name a dataset and press **Inspect**: nothing is downloaded, the dataset viewer answers."
    return (
        "Name a Hub dataset or a file on this machine (.jsonl, .json, .csv, .parquet, or a folder saved with "
        "`datasets`) and press **Inspect**: the dataset viewer answers for a Hub dataset (nothing is downloaded); a "
        "file is read here."
    )


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
    source: str = "viewer"  # "viewer", "streaming" or "local" (a file or folder on this machine)
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
    def answered_by(self) -> str:
        """Who answered, in words for the page: the dataset viewer, `datasets` streaming, or the file here."""
        return SOURCES.get(self.source, self.source)

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


# ============================================================================ inspect_dataset
def inspect_dataset(
    session: HubSession, *, dataset: str, split: str | None = "train", config: str | None = None
) -> DatasetInspection:
    """Inspect a dataset: splits, row count, first rows, and a verdict per training method.

    Args:
        session: the visitor's session (their token reads gated or private datasets; anonymous otherwise).
        dataset: a dataset id (`owner/name`) or its Hub URL; on the visitor's own machine also a local file
            (.json, .jsonl, .csv, .parquet) or a folder saved with `datasets`.
        split: the split to inspect; empty or None picks "train" when present, else the first split.
        config: the configuration (subset); None picks "default" when present, else the first one.

    Raises:
        InvalidInput: a malformed id, or a config / split the dataset does not have.
        RepoNotFound / GatedRepo / InvalidToken: the dataset does not exist, is private, or is gated.
        HubUnavailable: the viewer failed or timed out, and streaming a few rows failed too.
    """
    started = time.perf_counter()
    if looks_like_path(dataset):
        return inspect_local(validate_local_path(dataset, "dataset"), split=split, started=started)
    repo_id = validate_repo_id(dataset, kind="dataset")
    config, split = (config or "").strip() or None, (split or "").strip() or None
    viewer = session.viewer
    step("asking the dataset viewer for splits, size and first rows")
    guess = SplitRef(config or "default", split or "train")
    f_splits = _POOL.submit(in_request(viewer.get), "splits", dataset=repo_id)  # the request's retry budget
    f_size = _POOL.submit(in_request(viewer.get), "size", dataset=repo_id)
    f_rows = _POOL.submit(in_request(viewer.get), "first-rows", dataset=repo_id, config=guess.config, split=guess.split)
    try:
        try:
            splits = _parse_splits(f_splits.result())
        except ViewerError as err:
            _raise_unless_no_data(err, repo_id, session)
            return _streamed(session, repo_id, config, split, started, err)
        chosen = _choose_split(splits, config, split)
        try:
            first = f_rows.result() if chosen == guess else viewer.get("first-rows", dataset=repo_id, **vars(chosen))
        except ViewerError as err:
            _raise_unless_no_data(err, repo_id, session)
            return _streamed(session, repo_id, chosen.config, chosen.split, started, err, splits)
        num_rows, notes = _row_count(f_size, viewer, repo_id, chosen)
        return _build(repo_id, chosen, splits, first, num_rows, notes, started)
    finally:  # leave no request in flight behind an early answer (they end within the viewer timeout)
        wait([f_splits, f_size, f_rows], timeout=viewer.timeout + 1)


def inspect_local(path: str, *, split: str | None = None, started: float | None = None) -> DatasetInspection:
    """Inspect a dataset on this machine (a validated path) exactly as a Hub dataset."""
    started = time.perf_counter() if started is None else started
    rows, total, split_names, chosen = local_files.read_rows(path, (split or "").strip() or None)
    splits = [SplitRef("default", s) for s in split_names]
    notes = [] if rows else ["The split is empty."]
    return _result(path, SplitRef("default", chosen), splits, rows, {}, total, notes, started, "local")


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


def _raise_unless_no_data(err: ViewerError, repo_id: str, session: HubSession) -> None:
    """Turn a viewer refusal into NotFound / Gated / an outage; return when streaming is worth a try."""
    if err.no_data:
        return
    if err.status in (401, 403, 404):
        problem = _access_problem(repo_id, session, err)
        if problem is not None:
            raise problem
        return  # the dataset exists and is readable: the viewer just does not know it
    if err.status == 429:
        raise RateLimited(err.retry_after)
    raise HubUnavailable(f"the dataset viewer answered {err.status} {err.code}".strip())


def _access_problem(repo_id: str, session: HubSession, err: ViewerError) -> TrainerSpaceError | None:
    """Ask the Hub whether the dataset exists and is gated, to explain the viewer's refusal."""
    try:
        info = session.dataset_info(repo_id)
    except TrainerSpaceError as hub_err:
        return hub_err
    if err.status in (401, 403) and info.gated:
        return GatedRepo(repo_id, "dataset")
    if err.status in (401, 403):
        return RepoNotFound(repo_id, "dataset", detail=err.message)
    return None


def _row_count(f_size: Future, viewer: Viewer, repo_id: str, chosen: SplitRef) -> tuple[int | None, list[str]]:
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
    methods = detect.detect(sample, features=features, dataset=repo_id, config=load_config, split=chosen.split)
    cols = detect.analyze(sample, features)
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
    session: HubSession,
    repo_id: str,
    config: str | None,
    split: str | None,
    started: float,
    why: ViewerError,
    splits: list[SplitRef] | None = None,
) -> DatasetInspection:
    """Read the first rows with `datasets` streaming when the viewer has no data.

    The read runs on its own small pool, at most `STREAM_SLOTS` at once and a few per visitor (more are refused at
    once, not queued). When it takes longer than `STREAM_TIMEOUT_S` the visitor is answered and the read is told to
    stop: it ends at its next row, or when its pending HTTP read times out; its slot is freed only then.
    """
    chosen = SplitRef(config or "default", split or "train")
    visitor = session.cache_scope
    _take_stream_slot(visitor)
    stop = threading.Event()
    try:
        future = _STREAM_POOL.submit(in_request(_stream_rows), session, repo_id, config, chosen.split, stop)
    except BaseException:
        _release_stream_slot(visitor)
        raise
    future.add_done_callback(lambda _: _release_stream_slot(visitor))
    try:
        rows, features = future.result(timeout=STREAM_TIMEOUT_S)
    except FutureTimeout:
        stop.set()  # abandoned: the read stops at its next row or HTTP timeout
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


def _take_stream_slot(visitor: str) -> None:
    """A slot for one streaming read (Busy when this visitor, or everyone, has too many running)."""
    limit = STREAM_PER_VISITOR["anon" if visitor == "anon" else "signed_in"]
    with _STREAMS_LOCK:
        if _STREAMS_BY_VISITOR.get(visitor, 0) >= limit:
            raise Busy(f"A dataset without viewer data is already being read for you ({limit} at a time): wait for it.")
        if not _STREAMS.acquire(blocking=False):
            raise Busy("Too many datasets without viewer data are being read right now.")
        _STREAMS_BY_VISITOR[visitor] = _STREAMS_BY_VISITOR.get(visitor, 0) + 1


def _release_stream_slot(visitor: str) -> None:
    with _STREAMS_LOCK:
        left = _STREAMS_BY_VISITOR.get(visitor, 1) - 1
        if left > 0:
            _STREAMS_BY_VISITOR[visitor] = left
        else:
            _STREAMS_BY_VISITOR.pop(visitor, None)
        _STREAMS.release()


def streams_in_flight() -> int:
    """Streaming reads still running (abandoned ones included, until they stop)."""
    with _STREAMS_LOCK:
        return sum(_STREAMS_BY_VISITOR.values())


def _stream_rows(
    session: HubSession, repo_id: str, config: str | None, split: str, stop: threading.Event
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The first STREAM_ROWS rows and their features, or a clear error (stops early when `stop` is set)."""
    try:
        rows, features = session.stream_rows(
            repo_id, None if config == "default" else config, split, STREAM_ROWS, stop=stop
        )
    except TrainerSpaceError:
        raise
    except Exception as err:
        name = type(err).__name__
        if "Gated" in name or "gated" in str(err):
            raise GatedRepo(repo_id, "dataset") from None
        raise HubUnavailable(
            f"the dataset viewer has no data for '{repo_id}', and reading it with `datasets` failed: "
            f"{name}: {clean(str(err))}"
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
        if detect.value_kind(list(value)) == detect.Kind.MEDIA:
            return "[audio]"
        items = [preview_cell(v, limit) for v in value[:50]]
        return items + ([f"… [{len(value) - 50} more items]"] if len(value) > 50 else [])
    if isinstance(value, dict):
        if detect.value_kind(value) == detect.Kind.MEDIA:
            return "[image]" if "height" in value or "width" in value else "[media]"
        return {str(k): preview_cell(v, limit) for k, v in value.items()}
    kind = detect.value_kind(value)
    return f"[{type(value).__name__}]" if kind == detect.Kind.MEDIA else clean(repr(value))[:limit]


def preview_row(row: dict[str, Any]) -> dict[str, Any]:
    return {str(k): preview_cell(v) for k, v in row.items()}


def revalidate(*, inspection: DatasetInspection, method: str, mapping: DatasetMapping | dict | None) -> MethodReport:
    """Apply an edited mapping to the preview rows and run the detector again."""
    return detect.check_mapping(
        validate_method(method),
        inspection.sample,
        mapping,
        dataset=inspection.dataset,
        config=inspection.load_config,
        split=inspection.split,
    )


def trainer_rows(
    rows: Sequence[dict[str, Any]], method: str, mapping: DatasetMapping | dict | None
) -> list[dict[str, Any]]:
    """The rows as the trainer sees them: mapping applied, only the method's columns kept."""
    method = validate_method(method)
    try:
        mapped = map_rows(rows, detect.normalize_mapping(mapping))
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        raise InvalidInput(f"The mapping does not fit the rows ({type(err).__name__}: {clean(str(err))}).") from None
    group = trainer_columns(method, mapped[0]) if mapped else None
    if group is None:
        raise InvalidInput(
            f"{METHODS[method].title} needs {detect.DATA_FORMATS[method]}: pick a mapping that is READY first."
        )
    return [{k: r[k] for k in group} for r in mapped]


def fetch_sample(
    session: HubSession, *, inspection: DatasetInspection, size: int = SAMPLE_ROWS
) -> list[dict[str, Any]]:
    """Up to `size` rows of the inspected split: the preview plus /rows pages fetched concurrently."""
    rows = inspection.sample
    known = inspection.num_rows if inspection.num_rows is not None else size
    want = min(size, known)
    if inspection.source != "viewer" or len(rows) >= want:
        return rows[:want]
    viewer = session.viewer
    offsets = range(len(rows), want, PAGE)

    def page(offset: int) -> list[dict[str, Any]]:
        length = min(PAGE, want - offset)
        payload = viewer.get(
            "rows", dataset=inspection.dataset, config=inspection.config, split=inspection.split,
            offset=offset, length=length,
        )  # fmt: skip
        return [e.get("row") or {} for e in payload.get("rows") or [] if not e.get("truncated_cells")]

    futures = [_POOL.submit(in_request(page), o) for o in offsets]
    for future in futures:
        try:
            rows.extend(future.result())
        except (ViewerError, HubUnavailable):
            continue  # a partial sample is still a sample (and no request is left in flight)
    return rows[:want]
