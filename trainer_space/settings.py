"""Settings read once from the environment.

`HF_ENDPOINT` is read by huggingface_hub itself when it is imported; we read the same
variable so that links we build (job pages, repos) point at the same Hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_VIEWER_URL = "https://datasets-server.huggingface.co"
BACKENDS = ("local", "hf-jobs")  # "local": this machine; "hf-jobs": Hugging Face Jobs


@dataclass(frozen=True)
class Settings:
    endpoint: str
    viewer_url: str
    viewer_timeout_s: float  # read timeout of one dataset viewer call
    hub_timeout_s: float  # read timeout of one Hub call (Jobs API, repo info, downloads)
    connect_timeout_s: float  # connecting to the Hub or the viewer
    retry_budget_s: float  # total time one idempotent read may spend, retries and waits included
    max_cost_usd: float  # the Space owner's ceiling on one job's worst-case cost (timeout x price)
    max_running_jobs: int  # a visitor with this many unfinished jobs confirms before starting another
    max_total_cost_usd: float  # the worst case of a visitor's unfinished jobs in a namespace plus a new one
    create_deadline_s: float  # a create whose answer was lost may still be applied by the Hub until this long after
    session_capacity: int  # Gradio sessions kept in memory (their State); the oldest are dropped past it
    on_space: bool  # running as a Hugging Face Space: only HF Jobs, never strangers' jobs on the Space's machine
    local_enabled: bool  # the Local backend (this machine) is offered
    default_backend: str
    home: Path  # the Local backend's jobs database, logs, outputs and prepared environments
    local_python: str | None  # a Python with the templates' dependencies (else one is prepared with uv)
    local_max_jobs: int  # Local jobs running at once (the others wait in the queue)
    llama_cpp_dir: str | None  # llama.cpp tools for local GGUF exports (convert_hf_to_gguf.py, llama-quantize)
    scheduling_alert_s: float = 900.0  # a job SCHEDULING longer than this is flagged in My jobs
    stall_alert_s: float = 600.0  # a RUNNING job with no progress line for this long is said to make no progress
    usage_follow_s: float = 600.0  # one live usage stream in My jobs lasts at most this long (then a click resumes)
    public_origins: tuple[str, ...] = ()  # the app's own origins behind a proxy that rewrites Host (cross-site guard)


def _url(name: str, default: str) -> str:
    value = (os.environ.get(name) or default).strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    return value


def on_a_space() -> bool:
    return os.environ.get("SYSTEM") == "spaces" or bool(os.environ.get("SPACE_ID"))


def _number(name: str, default: float, low: float, high: float) -> float:
    raw = (os.environ.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


def origins(name: str) -> tuple[str, ...]:
    """Comma-separated origins (`https://host[:port]`, lower-cased), or ValueError naming the variable."""
    out = []
    for raw in (os.environ.get(name) or "").split(","):
        if not raw.strip():
            continue
        parsed = urlsplit(raw.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path.strip("/") or parsed.query:
            raise ValueError(f"{name} must be origins like https://trainer.example.org, got {raw.strip()!r}")
        out.append(f"{parsed.scheme}://{parsed.netloc}".lower())
    return tuple(out)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment only, no secrets)."""
    space = on_a_space()
    local = not space and os.environ.get("TRAINER_SPACE_LOCAL", "1").strip().lower() not in ("0", "false", "no")
    default = os.environ.get("TRAINER_SPACE_DEFAULT_BACKEND", "local" if local else "hf-jobs").strip().lower()
    if default not in BACKENDS or (default == "local" and not local):
        default = "hf-jobs"
    home = Path(os.environ.get("TRAINER_SPACE_HOME") or Path.home() / ".cache" / "trainer-space").expanduser()
    return Settings(
        endpoint=_url("HF_ENDPOINT", DEFAULT_ENDPOINT),
        viewer_url=_url("TRAINER_SPACE_VIEWER_URL", DEFAULT_VIEWER_URL),
        viewer_timeout_s=_number("TRAINER_SPACE_VIEWER_TIMEOUT", 10, 0.1, 600),
        hub_timeout_s=_number("TRAINER_SPACE_HUB_TIMEOUT", 15, 0.1, 600),
        connect_timeout_s=_number("TRAINER_SPACE_CONNECT_TIMEOUT", 5, 0.1, 120),
        retry_budget_s=_number("TRAINER_SPACE_RETRY_BUDGET", 30, 0, 600),
        max_cost_usd=_number("TRAINER_SPACE_MAX_COST_USD", 100, 0.01, 1_000_000),
        max_running_jobs=int(_number("TRAINER_SPACE_MAX_RUNNING_JOBS", 3, 1, 1000)),
        max_total_cost_usd=_number("TRAINER_SPACE_MAX_TOTAL_COST_USD", 300, 0.01, 10_000_000),
        create_deadline_s=_number("TRAINER_SPACE_CREATE_DEADLINE_S", 300, 1, 3600),
        session_capacity=int(_number("TRAINER_SPACE_SESSION_CAPACITY", 300, 10, 100_000)),
        on_space=space,
        local_enabled=local,
        default_backend=default,
        home=home.resolve(),
        local_python=os.environ.get("TRAINER_SPACE_LOCAL_PYTHON") or None,
        local_max_jobs=max(1, int(os.environ.get("TRAINER_SPACE_LOCAL_MAX_JOBS", "1") or 1)),
        llama_cpp_dir=os.environ.get("TRAINER_SPACE_LLAMA_CPP_DIR") or None,
        scheduling_alert_s=60 * _number("TRAINER_SPACE_SCHEDULING_ALERT_MIN", 15, 0.01, 10_000),
        stall_alert_s=60 * _number("TRAINER_SPACE_STALL_ALERT_MIN", 10, 0.01, 10_000),
        usage_follow_s=_number("TRAINER_SPACE_USAGE_FOLLOW_S", 600, 1, 3600),
        public_origins=origins("TRAINER_SPACE_PUBLIC_ORIGIN"),
    )
