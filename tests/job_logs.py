"""The logs of every successful job the suite runs, for the diagnosis' precision test (tests/test_diagnosis.py).

Two sources: job templates run as subprocesses (tests/templates: `train.py`, `export_gguf.py`), whose output is saved
when they exit 0 (`record_template_runs`, installed by tests/conftest.py), and local jobs (tests/test_local*.py), read
back from every Local backend's database under the session's folders (`completed_local_logs`).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path

TEMPLATES = ("train.py", "export_gguf.py")
SAVED_ENV = "TRAINER_SPACE_TEST_JOB_LOGS"  # the folder of this session's saved template logs (made on first use)
CORPUS = Path(__file__).parent / "successful_job_logs"  # real logs kept in the repository (a local job's included)


def _saved() -> Path:
    if not os.environ.get(SAVED_ENV):
        os.environ[SAVED_ENV] = tempfile.mkdtemp(prefix="successful-job-logs-")
    return Path(os.environ[SAVED_ENV])


def _template_of(argv: object) -> str | None:
    if not isinstance(argv, list | tuple) or "--help" in argv:
        return None
    return next((Path(str(a)).name for a in argv if Path(str(a)).name in TEMPLATES and "job_templates" in str(a)), None)


def record_template_runs() -> None:
    """Save the output of every job template that `subprocess.run` runs to success with its output captured."""
    run = subprocess.run
    if getattr(run, "records_job_logs", False):
        return

    def recording(*args, **kwargs):
        done = run(*args, **kwargs)
        template = _template_of(args[0] if args else kwargs.get("args"))
        if template and done.returncode == 0 and done.stdout is not None:
            out, err = done.stdout, done.stderr or ""
            text = out + err if isinstance(out, str) else (out + err).decode("utf-8", "replace")
            fd, _ = tempfile.mkstemp(prefix=f"{template}-", suffix=".log", dir=_saved())
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        return done

    recording.records_job_logs = True  # type: ignore[attr-defined]
    subprocess.run = recording


def template_logs() -> dict[str, str]:
    """name -> text of the template runs saved this session."""
    saved = os.environ.get(SAVED_ENV)
    logs = sorted(Path(saved).glob("*.log")) if saved else []
    return {p.name: p.read_text(encoding="utf-8", errors="replace") for p in logs}


def completed_local_logs(*roots: Path) -> dict[str, str]:
    """name -> text of every COMPLETED local job recorded under `roots` (each Local backend's jobs.sqlite3)."""
    found: dict[str, str] = {}
    for root in roots:
        for database in Path(root).rglob("jobs.sqlite3"):
            with sqlite3.connect(database) as db:
                rows = db.execute("SELECT id, kind, job_dir FROM jobs WHERE stage = 'COMPLETED'").fetchall()
            for job_id, kind, job_dir in rows:
                log = Path(job_dir) / "log.txt"
                if log.is_file():
                    found[f"local-{kind}-{job_id}"] = log.read_text(encoding="utf-8", errors="replace")
    return found


def corpus_logs() -> dict[str, str]:
    """The real successful logs kept in the repository."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.log"))}
