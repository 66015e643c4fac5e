"""The `datasets.map` snippet the Dataset tab shows: a standalone script doing exactly what the job does.

It is generated from the same code the job runs: the shared part of `data/mapping.py` (the text spliced into
`job_templates/train.py`) followed by the calls the job makes. Every value from the visitor (dataset id, column
names) goes through `repr()`, so any name is safe in it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .mapping import DatasetMapping, parse_mapping
from .splice import shared_code

_IMPORTS = """\
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset, load_dataset
"""


@lru_cache(maxsize=1)
def _shared() -> str:
    return shared_code().strip("\n")


def mapping_code(
    mapping: DatasetMapping | dict[str, Any],
    *,
    method: str | None = None,
    dataset: str | None = None,
    config: str | None = None,
    split: str = "train",
) -> str:
    """A standalone script (needs only `datasets`) that maps `dataset` as the job does and keeps the columns the
    trainer of `method` reads (all columns when no method is given)."""
    m = parse_mapping(mapping)
    args = [repr(dataset or "<dataset id>")] + ([repr(config)] if config else [])
    lines = [
        f'"""What the training job does to {dataset or "the dataset"}: the same code (trainer_space/data/mapping.py)."""',
        _IMPORTS,
        _shared(),
        "",
        f"MAPPING = parse_mapping({m.to_json()!r})",
        f"ds = load_dataset({', '.join(args)}, split={split!r})",
        "ds = ds.map(map_example, fn_kwargs={'mapping': MAPPING}, remove_columns=ds.column_names)",
    ]
    if "unpair_preference" in m.transforms:
        lines.append("ds = Dataset.from_list(unpair(ds.to_list()))")
    if method is not None:
        lines.append(f"ds = ds.select_columns(list(trainer_columns({method!r}, ds.column_names)))")
    return "\n".join(lines) + "\n"
