"""In-memory state of the Hub stand-in: users, repos, dataset-viewer data, jobs, requests.

Everything a test wants to arrange or assert goes through `HubState` (see `HubStandIn`
in `__init__.py` for the fixture-facing API).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TERMINAL = {"COMPLETED", "CANCELED", "ERROR", "DELETED"}


def iso(ts: float) -> str:
    """Hub-style timestamp: ISO 8601 with milliseconds and a literal Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class User:
    name: str
    token: str
    orgs: list[dict[str, Any]] = field(default_factory=list)
    can_pay: bool = True
    jobs_permission: bool = True
    write_permission: bool = True
    fullname: str = ""

    @property
    def id(self) -> str:
        return hashlib.md5(self.name.encode()).hexdigest()[:24]

    def namespaces(self) -> set[str]:
        return {self.name, *(o["name"] for o in self.orgs)}

    def can_write(self, namespace: str) -> bool:
        if not self.write_permission:
            return False
        if namespace == self.name:
            return True
        return any(
            o["name"] == namespace and o.get("roleInOrg") in ("admin", "write", "contributor") for o in self.orgs
        )

    def whoami(self) -> dict[str, Any]:
        return {
            "type": "user",
            "id": self.id,
            "name": self.name,
            "fullname": self.fullname or self.name.title(),
            "email": f"{self.name}@example.com",
            "isPro": True,
            "canPay": self.can_pay,
            "avatarUrl": f"/avatars/{self.name}.png",
            "orgs": [{"type": "org", "id": hashlib.md5(o["name"].encode()).hexdigest()[:24], **o} for o in self.orgs],
            "auth": {
                "type": "access_token",
                "accessToken": {
                    "displayName": "oauth",
                    "role": "fineGrained",
                    "fineGrained": {
                        "scoped": [
                            {
                                "entity": {"type": "user", "name": self.name},
                                "permissions": (["job.write"] if self.jobs_permission else [])
                                + (["repo.write"] if self.write_permission else []),
                            }
                        ]
                    },
                },
            },
        }


@dataclass
class Repo:
    repo_id: str
    repo_type: str = "model"  # "model" | "dataset" | "space"
    private: bool = False
    gated: bool = False
    granted: set[str] = field(default_factory=set)  # users with access to a gated repo
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    extra_info: dict[str, Any] = field(default_factory=dict)  # merged into the /api/{type}s/{id} answer
    sha: str = field(default_factory=lambda: uuid.uuid4().hex + "00000000")
    created: float = field(default_factory=time.time)

    @property
    def owner(self) -> str:
        return self.repo_id.split("/")[0]

    def readable_by(self, user: User | None) -> bool:
        if not self.private:
            return True
        return user is not None and self.owner in user.namespaces()

    def files_readable_by(self, user: User | None) -> bool:
        if not self.readable_by(user):
            return False
        if not self.gated:
            return True
        return user is not None and (user.name in self.granted or self.owner in user.namespaces())

    def info(self, endpoint: str) -> dict[str, Any]:
        siblings = [{"rfilename": p, "size": len(b), "blobId": _oid(b)} for p, b in sorted(self.files.items())]
        info: dict[str, Any] = {
            "_id": hashlib.md5(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "author": self.owner,
            "sha": self.sha,
            "private": self.private,
            "gated": "manual" if self.gated else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "createdAt": iso(self.created),
            "lastModified": iso(self.created),
        }
        if self.repo_type == "model" and "config.json" in self.files:
            try:
                cfg = json.loads(self.files["config.json"])
                info["config"] = {"architectures": cfg.get("architectures"), "model_type": cfg.get("model_type")}
            except ValueError:
                pass
        info.update(self.extra_info)
        return info

    def commit(self, summary: str, added: dict[str, bytes], deleted: list[str]) -> str:
        for path in deleted:
            if path.endswith("/"):
                for p in [p for p in self.files if p.startswith(path)]:
                    del self.files[p]
            else:
                self.files.pop(path, None)
        self.files.update(added)
        self.sha = hashlib.sha1((self.sha + summary + str(time.time())).encode()).hexdigest()
        self.commits.append({"summary": summary, "added": sorted(added), "deleted": deleted, "oid": self.sha})
        return self.sha


@dataclass
class ViewerDataset:
    """What the dataset viewer knows about one dataset: rows per (config, split)."""

    rows: dict[tuple[str, str], list[dict[str, Any]]]
    features: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    num_rows: dict[tuple[str, str], int] = field(default_factory=dict)  # overrides len(rows)
    viewer: bool = True


@dataclass
class JobPlan:
    """How a job behaves once created: stays SCHEDULING, then prints lines, then ends."""

    lines: list[str] = field(
        default_factory=lambda: [
            "Loading model and dataset",
            "{'loss': 2.31, 'learning_rate': 2e-05, 'epoch': 0.1}",
            "{'loss': 1.87, 'learning_rate': 1e-05, 'epoch': 0.2}",
            "Pushed to the Hub",
        ]
    )
    final_stage: str = "COMPLETED"
    message: str | None = None
    schedule_s: float = 0.2
    line_interval_s: float = 0.1
    # `GET .../metrics`: one `metric` event every `metrics_interval_s` while RUNNING (the Hub: once per second);
    # the i-th event is metrics[i] (the last one repeated); None: an idle CPU sample with no GPU
    metrics: list[dict[str, Any]] | None = None
    metrics_interval_s: float = 1.0
    # how the logs and metrics streams misbehave, whatever the job's stage: "normal" (as above), "keep-alive" (only
    # keep-alive comments, ten a second, for as long as the client listens) or "endless" (events without end, as
    # fast as the client reads: log lines all stamped with the job's start, so a no-follow read never sees its end)
    logs_stream: str = "normal"
    metrics_stream: str = "normal"


def metric_sample(
    cpu_pct: float = 0.0,
    ram_gb: float = 1.0,
    gpus: list[tuple[float, float, float]] | None = None,
    *,
    millicores: int = 8000,
    ram_total_gb: float = 32.0,
    replica: str = "r0a1b",
) -> dict[str, Any]:
    """One `metric` event's data as the Hub sends it: `gpus` as (utilization %, used GB, total GB) per GPU."""
    return {
        "cpu_usage_pct": cpu_pct,
        "cpu_millicores": millicores,
        "memory_used_bytes": int(ram_gb * 1e9),
        "memory_total_bytes": int(ram_total_gb * 1e9),
        "rx_bps": 1200,
        "tx_bps": 300,
        "gpus": {
            f"{0x882FA930 + i:08x}": {
                "utilization": util,
                "memory_used_bytes": int(used * 1e9),
                "memory_total_bytes": int(total * 1e9),
            }
            for i, (util, used, total) in enumerate(gpus or [])
        },
        "replica": replica,
    }


@dataclass
class Job:
    id: str
    namespace: str
    owner: User
    spec: dict[str, Any]
    plan: JobPlan
    created: float = field(default_factory=time.time)
    canceled_at: float | None = None

    # ---- timeline, computed from the clock so that no background thread is needed
    @property
    def started(self) -> float:
        return self.created + self.plan.schedule_s

    @property
    def natural_end(self) -> float:
        return self.started + self.plan.line_interval_s * (len(self.plan.lines) + 1)

    def stage(self, now: float | None = None) -> tuple[str, str | None]:
        now = time.time() if now is None else now
        if self.canceled_at is not None:
            return "CANCELED", "Job canceled by user"
        if now < self.started:
            return "SCHEDULING", None
        timeout = self.spec.get("timeoutSeconds")
        if timeout and now >= self.started + timeout and self.natural_end > self.started + timeout:
            return "ERROR", f"Job timeout exceeded ({timeout}s)"
        if now < self.natural_end:
            return "RUNNING", None
        return self.plan.final_stage, self.plan.message

    def metric_at(self, index: int) -> dict[str, Any]:
        """The `index`-th metric event of the job's run (the plan's samples, the last one repeated)."""
        samples = self.plan.metrics or [metric_sample()]
        return samples[min(index, len(samples) - 1)]

    def log_events(self, now: float | None = None) -> list[dict[str, str]]:
        now = time.time() if now is None else now
        end = self.canceled_at if self.canceled_at is not None else now
        timeout = self.spec.get("timeoutSeconds")
        if timeout:
            end = min(end, self.started + timeout)
        events = []
        if end >= self.started:
            events.append(
                {"data": "===== Job started at " + iso(self.started) + " =====", "timestamp": iso(self.started)}
            )
        for i, line in enumerate(self.plan.lines):
            ts = self.started + self.plan.line_interval_s * (i + 1) - self.plan.line_interval_s / 2
            if ts <= end:
                events.append({"data": line, "timestamp": iso(ts)})
        return events

    def to_json(self, endpoint: str) -> dict[str, Any]:
        now = time.time()
        stage, message = self.stage(now)
        started = self.started if stage != "SCHEDULING" else None
        finished = None
        if stage in TERMINAL:
            finished = self.canceled_at or min(
                self.natural_end, self.started + (self.spec.get("timeoutSeconds") or 10**9)
            )
        body: dict[str, Any] = {
            "id": self.id,
            "createdAt": iso(self.created),
            "startedAt": iso(started) if started else None,
            "finishedAt": iso(finished) if finished else None,
            "owner": {
                "id": self.owner.id if self.namespace == self.owner.name else "org",
                "name": self.namespace,
                "type": "user" if self.namespace == self.owner.name else "org",
            },
            "initiator": {"type": "user", "id": self.owner.id, "name": self.owner.name},
            "command": self.spec.get("command"),
            "arguments": self.spec.get("arguments", []),
            "environment": self.spec.get("environment", {}),
            # like the Hub: secret values are never returned, only their names
            "secrets": dict.fromkeys(self.spec.get("secrets") or {}, "********") or None,
            "flavor": self.spec.get("flavor", "cpu-basic"),
            "labels": self.spec.get("labels"),
            "status": {"stage": stage, "message": message},
            "durations": {
                "schedulingSecs": int(min(now, self.started) - self.created),
                "runningSecs": int(max(0.0, (finished or now) - self.started)) if started else 0,
                "totalSecs": int((finished or now) - self.created),
            },
        }
        if "timeoutSeconds" in self.spec:
            body["timeoutSeconds"] = self.spec["timeoutSeconds"]
        if "dockerImage" in self.spec:
            body["dockerImage"] = self.spec["dockerImage"]
        if "spaceId" in self.spec:
            body["spaceId"] = self.spec["spaceId"]
        return body


@dataclass
class FailRule:
    """How to misbehave on matching requests, `times` times.

    mode: "status" answer `status` instead of handling the request; "after" handle it (a job is created), wait
    `delay_s`, then answer `status`; "drop" close the connection mid-answer without handling the request; "drop_after" handle it,
    then close the connection mid-answer; "delay" wait `delay_s`, then handle it normally (a create is applied then,
    whether or not the client still waits: a slow Hub); "hang" wait `delay_s` (default: longer than any client
    timeout), then answer `status` without handling it. A request delayed past a reset of the stand-in is dropped.
    token: only requests carrying this bearer token.
    """

    status: int
    path_prefix: str
    method: str | None
    message: str
    times: int
    headers: dict[str, str]
    mode: str = "status"
    delay_s: float = 0.0
    token: str | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


DEFAULT_HARDWARE: list[dict[str, Any]] = [
    # name, pretty, cpu, ram, accelerator (model, count, vram per GPU), $/hour
    ("cpu-basic", "CPU Basic", "2 vCPU", "16 GB", None, 0.01),
    ("cpu-upgrade", "CPU Upgrade", "8 vCPU", "32 GB", None, 0.03),
    ("t4-small", "Nvidia T4 - small", "4 vCPU", "15 GB", ("T4", 1, "16 GB"), 0.40),
    ("t4-medium", "Nvidia T4 - medium", "8 vCPU", "30 GB", ("T4", 1, "16 GB"), 0.60),
    ("l4x1", "1x Nvidia L4", "8 vCPU", "30 GB", ("L4", 1, "24 GB"), 0.80),
    ("l4x4", "4x Nvidia L4", "48 vCPU", "186 GB", ("L4", 4, "24 GB"), 3.80),
    ("a10g-small", "Nvidia A10G - small", "4 vCPU", "15 GB", ("A10G", 1, "24 GB"), 1.00),
    ("a10g-large", "Nvidia A10G - large", "12 vCPU", "46 GB", ("A10G", 1, "24 GB"), 1.50),
    ("a10g-largex2", "2x Nvidia A10G - large", "24 vCPU", "92 GB", ("A10G", 2, "24 GB"), 3.00),
    ("l40sx1", "1x Nvidia L40S", "8 vCPU", "62 GB", ("L40S", 1, "48 GB"), 1.80),
    ("a100-large", "Nvidia A100 - large", "12 vCPU", "142 GB", ("A100", 1, "80 GB"), 2.50),
    ("h200", "1x Nvidia H200", "23 vCPU", "256 GB", ("H200", 1, "141 GB"), 5.00),
    ("h200x2", "2x Nvidia H200", "46 vCPU", "512 GB", ("H200", 2, "141 GB"), 10.00),
]


def hardware_json(rows: list[tuple] | None = None) -> list[dict[str, Any]]:
    out = []
    for name, pretty, cpu, ram, acc, usd_h in rows or DEFAULT_HARDWARE:
        per_min = usd_h / 60
        out.append(
            {
                "name": name,
                "prettyName": pretty,
                "cpu": cpu,
                "ram": ram,
                "ephemeralStorage": "50 GB",
                "accelerator": None
                if acc is None
                else {
                    "type": "gpu",
                    "model": acc[0],
                    "quantity": str(acc[1]),
                    "vram": acc[2],
                    "manufacturer": "Nvidia",
                },
                "unitCostMicroUSD": round(per_min * 1e6),
                "unitCostUSD": round(per_min, 6),
                "unitLabel": "minute",
            }
        )
    return out


class HubState:
    """Everything the stand-in knows. Thread-safe enough for tests (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.endpoint = ""
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.generation = getattr(self, "generation", 0) + 1  # a request delayed past a reset is not applied
            self.users: dict[str, User] = {}
            self.repos: dict[tuple[str, str], Repo] = {}
            self.viewer: dict[str, ViewerDataset] = {}
            self.jobs: dict[str, Job] = {}
            self.job_plans: list[JobPlan] = []
            self.fail_rules: list[FailRule] = []
            self.requests: list[RecordedRequest] = []
            self.hardware: list[dict[str, Any]] = hardware_json()
            self.viewer_delay_s = 0.0
            self.ignore_label_filters = False  # a Hub that ignores `?label=` on job lists (answers every job)
            self.cut_logs: list[int] = []  # the next log streams are cut after this many events each

    # ---- users
    def add_user(self, name: str, token: str | None = None, **kwargs: Any) -> str:
        token = token or f"hf_{name}_{uuid.uuid4().hex[:12]}"
        with self.lock:
            self.users[token] = User(name=name, token=token, **kwargs)
        return token

    def user_for(self, token: str | None) -> User | None:
        return self.users.get(token or "")

    # ---- repos
    def add_repo(
        self,
        repo_id: str,
        repo_type: str = "model",
        files: dict[str, bytes | str] | Path | str | None = None,
        **kwargs: Any,
    ) -> Repo:
        data: dict[str, bytes] = {}
        if isinstance(files, (str, Path)):
            root = Path(files)
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    data[p.relative_to(root).as_posix()] = p.read_bytes()
        elif files:
            data = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
        repo = Repo(repo_id=repo_id, repo_type=repo_type, files=data, **kwargs)
        with self.lock:
            self.repos[(repo_type, repo_id)] = repo
        return repo

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    # ---- jobs
    def new_job(self, namespace: str, owner: User, spec: dict[str, Any]) -> Job:
        with self.lock:
            plan = self.job_plans.pop(0) if self.job_plans else JobPlan()
            job = Job(id=uuid.uuid4().hex[:24], namespace=namespace, owner=owner, spec=spec, plan=plan)
            self.jobs[job.id] = job
            return job

    # ---- failures
    def match_failure(self, method: str, path: str, token: str | None = None) -> FailRule | None:
        with self.lock:
            for rule in self.fail_rules:
                if rule.token is not None and rule.token != token:
                    continue
                if path.startswith(rule.path_prefix) and (rule.method is None or rule.method == method):
                    rule.times -= 1
                    if rule.times <= 0:
                        self.fail_rules.remove(rule)
                    return rule
        return None


def decode_commit_payload(body: bytes) -> tuple[str, dict[str, bytes], list[str]]:
    """Parse the ndjson body of POST /api/{type}s/{id}/commit/{rev} (regular uploads only)."""
    summary, added, deleted = "", {}, []
    for raw in body.splitlines():
        if not raw.strip():
            continue
        item = json.loads(raw)
        key, value = item.get("key"), item.get("value", {})
        if key == "header":
            summary = value.get("summary", "")
        elif key == "file":
            content = value.get("content", "")
            added[value["path"]] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
        elif key in ("deletedFile", "deletedFolder"):
            deleted.append(value["path"] + ("/" if key == "deletedFolder" and not value["path"].endswith("/") else ""))
        elif key == "lfsFile":
            raise ValueError("the stand-in accepts regular uploads only")
    return summary, added, deleted
