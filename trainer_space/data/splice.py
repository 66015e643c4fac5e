"""Keep the job template's copy of the dataset mapping identical to `trainer_space/data/mapping.py`.

    python -m trainer_space.data.splice          # rewrite job_templates/train.py's copy
    python -m trainer_space.data.splice --check  # exit 1 when the copy is stale (the tests do the same)

The shared part of mapping.py lies between its BEGIN/END SHARED markers; train.py holds it between BEGIN/END
SPLICED markers. Generated from the same text, the `datasets.map` snippet (`data/snippet.py`) uses it too.
"""

from __future__ import annotations

import sys
from pathlib import Path

MAPPING_PATH = Path(__file__).with_name("mapping.py")
TRAIN_PATH = Path(__file__).resolve().parents[2] / "job_templates" / "train.py"
SHARED_BEGIN = "# ----- BEGIN SHARED WITH job_templates/train.py"
SHARED_END = "# ----- END SHARED WITH job_templates/train.py"
SPLICED_BEGIN = "# ----- BEGIN SPLICED from trainer_space/data/mapping.py"
SPLICED_END = "# ----- END SPLICED from trainer_space/data/mapping.py"


def _between(text: str, begin: str, end: str, where: str) -> tuple[int, int]:
    """(start, stop) of the lines strictly between the marker lines starting with `begin` and `end`."""
    start = text.find(begin)
    stop = text.find(end, start + 1)
    if start < 0 or stop < 0:
        raise ValueError(f"{where}: markers {begin!r} / {end!r} not found")
    return text.index("\n", start) + 1, stop


def shared_code(mapping_text: str | None = None) -> str:
    """The shared part of mapping.py (what the job and the snippet run)."""
    text = MAPPING_PATH.read_text(encoding="utf-8") if mapping_text is None else mapping_text
    start, stop = _between(text, SHARED_BEGIN, SHARED_END, "mapping.py")
    return text[start:stop]


def spliced(train_text: str, code: str | None = None) -> str:
    """train.py's text with the shared code put between its SPLICED markers."""
    start, stop = _between(train_text, SPLICED_BEGIN, SPLICED_END, "train.py")
    return train_text[:start] + (shared_code() if code is None else code) + train_text[stop:]


def main(argv: list[str]) -> int:
    current = TRAIN_PATH.read_text(encoding="utf-8")
    fresh = spliced(current)
    if "--check" in argv:
        if fresh != current:
            print("job_templates/train.py's copy of the mapping is stale: run python -m trainer_space.data.splice")
            return 1
        return 0
    if fresh != current:
        TRAIN_PATH.write_text(fresh, encoding="utf-8")
        print("job_templates/train.py updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
