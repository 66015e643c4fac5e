"""Datasets on this machine (Local backend only): a JSON, JSONL, CSV or Parquet file, or a folder saved with
`datasets` (`save_to_disk`). Read here to inspect them exactly as a Hub dataset (verdicts, mapping, first rows,
token statistics); the job reads the same file with `datasets`.

Only the path the visitor named is read (validated by `validation.validate_local_path`: resolved, existing,
readable, of a known kind). A malformed file is an InvalidInput naming the line or the problem.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..hub.viewer import clean

MAX_ROWS = 1000  # rows read for the verdicts and the token statistics


def _jsonl(path: Path, limit: int) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    total = 0
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            total += 1
            if len(rows) >= limit:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InvalidInput(f"{path.name}, line {number}: not valid JSON ({err.msg}). Fix that line.") from None
            if not isinstance(row, dict):
                raise InvalidInput(f"{path.name}, line {number}: each line must be a JSON object (a row).")
            rows.append(row)
    return rows, total


def _json(path: Path, limit: int) -> tuple[list[dict[str, Any]], int]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _jsonl(path, limit)  # `datasets` reads JSON Lines from .json files too
    if isinstance(data, dict):  # {"data": [...]} or {"column": [values]}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(data) == 1 and lists and all(isinstance(r, dict) for r in lists[0]):
            data = lists[0]
        elif lists and len(lists) == len(data) and len({len(v) for v in lists}) == 1:
            data = [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InvalidInput(f"{path.name}: expected a list of rows (JSON objects), or JSON Lines.")
    return data[:limit], len(data)


def _table(path: Path, limit: int) -> tuple[list[dict[str, Any]], int]:
    import pandas as pd

    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as err:  # pandas / pyarrow parse errors
        raise InvalidInput(f"{path.name} could not be read ({type(err).__name__}: {clean(str(err))}).") from None
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.head(limit).to_dict(orient="records"), len(frame)


def _saved(path: Path, split: str | None, limit: int) -> tuple[list[dict[str, Any]], int, list[str], str]:
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as err:
        raise InvalidInput(f"{path} could not be read ({type(err).__name__}: {clean(str(err))}).") from None
    splits = {"train": saved} if isinstance(saved, datasets.Dataset) else dict(saved)
    chosen = split or ("train" if "train" in splits else next(iter(splits)))
    if chosen not in splits:
        raise InvalidInput(f"{path.name} has no split '{chosen}'. Available splits: {', '.join(splits)}.")
    ds = splits[chosen]
    return [dict(r) for r in ds.select(range(min(limit, len(ds))))], len(ds), list(splits), chosen


def read_rows(path: str, split: str | None = None, limit: int = MAX_ROWS) -> tuple[list[dict], int, list[str], str]:
    """(first `limit` rows, total rows, split names, chosen split) of a local dataset (a validated path)."""
    p = Path(path)
    if p.is_dir():
        return _saved(p, split, limit)
    if split not in (None, "", "train"):
        raise InvalidInput(f"A single file has one split, 'train' (not '{split}').")
    suffix = p.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows, total = _jsonl(p, limit)
        elif suffix == ".json":
            rows, total = _json(p, limit)
        else:
            rows, total = _table(p, limit)
    except UnicodeDecodeError:
        raise InvalidInput(f"{p.name} is not UTF-8 text.") from None
    return rows, total, ["train"], "train"
