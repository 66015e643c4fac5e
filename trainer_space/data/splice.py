"""Keep the job template's copies of the shared modules identical to their sources.

    python -m trainer_space.data.splice          # rewrite job_templates/train.py's copies
    python -m trainer_space.data.splice --check  # exit 1 when a copy is stale (the tests do the same)

Three modules are shared with the job: `data/mapping.py` (the dataset mapping), `data/trl_rules.py` (what TRL
refuses in a final config, and what becomes of rows past max_length) and `estimate/speed_rules.py` (which speed
settings a job turns on for its model and GPU). The shared part of each lies between its
BEGIN/END SHARED markers; train.py holds it between BEGIN/END SPLICED markers naming the module. Generated from the
same text, the `datasets.map` snippet (`data/snippet.py`) uses the mapping's part too.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
MAPPING_PATH = HERE / "mapping.py"
RULES_PATH = HERE / "trl_rules.py"
SPEED_PATH = HERE.parent / "estimate" / "speed_rules.py"  # read as text (not imported): the speed settings' rules
TRAIN_PATH = HERE.resolve().parents[1] / "job_templates" / "train.py"
SHARED_BEGIN = "# ----- BEGIN SHARED WITH job_templates/train.py"
SHARED_END = "# ----- END SHARED WITH job_templates/train.py"
SPLICED_BEGIN = "# ----- BEGIN SPLICED from trainer_space/data/mapping.py"
SPLICED_END = "# ----- END SPLICED from trainer_space/data/mapping.py"
# (source module, train.py's markers around its copy)
SOURCES = [
    (MAPPING_PATH, SPLICED_BEGIN, SPLICED_END),
    (RULES_PATH, "# ----- BEGIN SPLICED from trainer_space/data/trl_rules.py",
     "# ----- END SPLICED from trainer_space/data/trl_rules.py"),
    (SPEED_PATH, "# ----- BEGIN SPLICED from trainer_space/estimate/speed_rules.py",
     "# ----- END SPLICED from trainer_space/estimate/speed_rules.py"),
]  # fmt: skip


def _between(text: str, begin: str, end: str, where: str) -> tuple[int, int]:
    """(start, stop) of the lines strictly between the marker lines starting with `begin` and `end`."""
    start = text.find(begin)
    stop = text.find(end, start + 1)
    if start < 0 or stop < 0:
        raise ValueError(f"{where}: markers {begin!r} / {end!r} not found")
    return text.index("\n", start) + 1, stop


def shared_code(mapping_text: str | None = None, path: Path | None = None) -> str:
    """The shared part of a module (mapping.py by default: what the job and the snippet run)."""
    path = path or MAPPING_PATH
    text = path.read_text(encoding="utf-8") if mapping_text is None else mapping_text
    start, stop = _between(text, SHARED_BEGIN, SHARED_END, path.name)
    return text[start:stop]


def spliced(train_text: str, code: str | None = None) -> str:
    """train.py's text with every shared part put between its SPLICED markers (`code`: the mapping's, for tests)."""
    for path, begin, end in SOURCES:
        start, stop = _between(train_text, begin, end, "train.py")
        part = code if code is not None and path == MAPPING_PATH else shared_code(path=path)
        train_text = train_text[:start] + part + train_text[stop:]
    return train_text


def main(argv: list[str]) -> int:
    current = TRAIN_PATH.read_text(encoding="utf-8")
    fresh = spliced(current)
    if "--check" in argv:
        if fresh != current:
            print("job_templates/train.py's copy of a shared module is stale: run python -m trainer_space.data.splice")
            return 1
        return 0
    if fresh != current:
        TRAIN_PATH.write_text(fresh, encoding="utf-8")
        print("job_templates/train.py updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
