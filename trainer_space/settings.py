"""Settings read once from the environment.

`HF_ENDPOINT` is read by huggingface_hub itself when it is imported; we read the same
variable so that links we build (job pages, repos) point at the same Hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_VIEWER_URL = "https://datasets-server.huggingface.co"


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
    session_capacity: int  # Gradio sessions kept in memory (their State); the oldest are dropped past it


def _url(name: str, default: str) -> str:
    value = (os.environ.get(name) or default).strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    return value


def _number(name: str, default: float, low: float, high: float) -> float:
    raw = (os.environ.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment only, no secrets)."""
    return Settings(
        endpoint=_url("HF_ENDPOINT", DEFAULT_ENDPOINT),
        viewer_url=_url("TRAINER_SPACE_VIEWER_URL", DEFAULT_VIEWER_URL),
        viewer_timeout_s=_number("TRAINER_SPACE_VIEWER_TIMEOUT", 10, 0.1, 600),
        hub_timeout_s=_number("TRAINER_SPACE_HUB_TIMEOUT", 15, 0.1, 600),
        connect_timeout_s=_number("TRAINER_SPACE_CONNECT_TIMEOUT", 5, 0.1, 120),
        retry_budget_s=_number("TRAINER_SPACE_RETRY_BUDGET", 30, 0, 600),
        max_cost_usd=_number("TRAINER_SPACE_MAX_COST_USD", 100, 0.01, 1_000_000),
        max_running_jobs=int(_number("TRAINER_SPACE_MAX_RUNNING_JOBS", 3, 1, 1000)),
        session_capacity=int(_number("TRAINER_SPACE_SESSION_CAPACITY", 300, 10, 100_000)),
    )
