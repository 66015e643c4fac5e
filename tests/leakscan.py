"""The suite's leak scan: every request the Hub stand-in receives, every job spec, every API response read through
gradio_client and every log record of the test process are checked for tokens.

Rules: a visitor's token may appear only in the `Authorization` header of a request and in the `secrets` of a job
it creates; the machine's own token (set as HF_TOKEN and as a saved login for the whole suite) never at all.
`tests/conftest.py` runs the scan after every test that uses the stand-in and prints the totals at the end.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

MACHINE_TOKEN = "hf_FAKE_MACHINE_TOKEN_NOT_REAL_1111"  # the Space's own token, as the suite's environment has it


@dataclass
class LeakScan:
    requests: int = 0
    job_specs: int = 0
    responses: int = 0
    log_lines: int = 0
    leaks: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- the Hub stand-in
    def scan_hub(self, hub, where: str) -> list[str]:
        """Leaks in what the stand-in received (and the jobs it holds) since its last reset."""
        visitors = [t for t in hub.state.users if t != MACHINE_TOKEN]
        found: list[str] = []
        for req in list(hub.requests):
            headers = {k: v for k, v in req.headers.items() if k != "authorization"}
            body = req.body.decode("latin-1")
            if req.method == "POST" and req.path.startswith("/api/jobs/"):
                try:
                    spec = json.loads(body)
                    spec.pop("secrets", None)
                    body = json.dumps(spec)
                except (ValueError, AttributeError):
                    pass
            outside = json.dumps(headers) + req.path + req.query + body
            if MACHINE_TOKEN in outside + req.headers.get("authorization", ""):
                found.append(f"{where}: the machine's token sent in {req.method} {req.path}")
            for token in visitors:
                if token in outside:
                    found.append(f"{where}: a visitor's token outside Authorization in {req.method} {req.path}")
        for job in list(hub.jobs.values()):
            spec = {k: v for k, v in job.spec.items() if k != "secrets"}
            text = json.dumps(spec)
            if any(t in text for t in [*visitors, MACHINE_TOKEN]):
                found.append(f"{where}: a token in the spec of job {job.id} (outside its secrets)")
            if MACHINE_TOKEN in json.dumps(job.spec.get("secrets") or {}):
                found.append(f"{where}: the machine's token as a secret of job {job.id}")
        with self._lock:
            self.requests += len(hub.requests)
            self.job_specs += len(hub.jobs)
            self.leaks += found
        return found

    # ---- responses and logs
    def scan_text(self, text: str, tokens: list[str], where: str, counter: str) -> None:
        hits = [t for t in [*tokens, MACHINE_TOKEN] if t and t in text]
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)
            self.leaks += [f"{where}: a token in {counter.replace('_', ' ')}" for _ in hits]

    def summary(self) -> str:
        return (
            f"leak scan: {self.requests} Hub requests, {self.job_specs} job specs, {self.responses} API responses, "
            f"{self.log_lines} log lines scanned; leaks found: {len(self.leaks)}"
        )


LEAKS = LeakScan()
KNOWN_TOKENS: set[str] = set()  # every visitor token any test created
LIVE_STATES: list[Any] = []  # the stand-ins' states: their current users' tokens are known too


def known_tokens() -> list[str]:
    for state in LIVE_STATES:
        KNOWN_TOKENS.update(t for t in list(state.users) if t != MACHINE_TOKEN)
    return sorted(KNOWN_TOKENS)


class LogScanner(logging.Handler):
    """Scans every log record of the process (message and traceback) for known tokens."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage() + (record.exc_text or "")
        except Exception:
            return
        LEAKS.scan_text(text, known_tokens(), f"log {record.name}", "log_lines")


def scan_response(result: Any) -> None:
    text = json.dumps(result, default=str)
    LEAKS.scan_text(text, known_tokens(), "API response", "responses")
