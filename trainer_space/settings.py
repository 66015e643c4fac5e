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
    viewer_timeout_s: float
    hub_timeout_s: float


def _url(name: str, default: str) -> str:
    value = (os.environ.get(name) or default).strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (environment only, no secrets)."""
    return Settings(
        endpoint=_url("HF_ENDPOINT", DEFAULT_ENDPOINT),
        viewer_url=_url("TRAINER_SPACE_VIEWER_URL", DEFAULT_VIEWER_URL),
        viewer_timeout_s=float(os.environ.get("TRAINER_SPACE_VIEWER_TIMEOUT", "10")),
        hub_timeout_s=float(os.environ.get("TRAINER_SPACE_HUB_TIMEOUT", "15")),
    )
