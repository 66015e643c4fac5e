"""A Hub stand-in for tests: a real HTTP server on 127.0.0.1 that the real huggingface_hub client talks to.

It speaks the Hub's wire format closely enough for `HfApi` to work unchanged:

* `GET /api/whoami-v2` (several tokens map to several users),
* jobs: create, list (`stage=` / `label=k=v` filters), inspect (with `durations`), logs as server-sent events
  (full history replayed on every connection, `tail=`), metrics as server-sent events (`event: metric`, no
  history, 406 once the job has ended), either stream misbehaving on demand (keep-alive only, endless), cancel, `GET /api/jobs/hardware`,
* repos: `POST /api/repos/create`, `GET /api/{models|datasets|spaces}/{id}[/revision/{rev}]`, preupload,
  commit (regular, base64 uploads: a real `upload_folder` / `push_to_hub` completes), tree, paths-info,
  and file downloads `/{id}/resolve/{rev}/{path}` (so `hf_hub_download` / `snapshot_download` work),
* the dataset viewer under `/datasets-server`: `/is-valid`, `/splits`, `/first-rows`, `/rows`, `/size`, `/info`.

Jobs move SCHEDULING -> RUNNING -> COMPLETED (or the plan's final stage) on the clock and print log lines.
Every request is recorded; any path can be told to fail with a given status.

Fixture API (`hub` in tests/conftest.py)::

    hub.url, hub.viewer_url
    token = hub.add_user("carol", orgs=[{"name": "acme", "roleInOrg": "write"}], can_pay=True, jobs_permission=True)
    hub.alice, hub.bob                        # tokens of two users created for every test
    hub.add_model("alice/tiny", files=path_or_dict, gated=False, private=False, safetensors={...})
    hub.add_dataset("alice/data", {"train": rows}, config="default", gated=False, num_rows=None)
    hub.files("alice/out")                    # {path: bytes} of a repo (model by default)
    hub.add_checkpoint("alice/out", step=300, max_steps=1000)  # last-checkpoint/ as hub_strategy=checkpoint pushes it
    hub.plan_next_job(lines=[progress_line(300, 1000, checkpoint=(300, True))], ...)  # a job's progress lines
    hub.plan_next_job(lines=[...], final_stage="ERROR", message="...", schedule_s=0.2, line_interval_s=0.1)
    hub.plan_next_job(metrics=[metric_sample(cpu_pct=80, ram_gb=6, gpus=[(95, 11.2, 24.0)]), ...],
                      metrics_interval_s=1.0)  # what GET .../metrics streams while the job runs
    hub.plan_next_job(logs_stream="keep-alive", metrics_stream="endless")  # streams that never end by themselves
    hub.fail_next(status, path_prefix="/api/jobs", method=None, message="...", times=1, headers=None)
    hub.fault("/api/jobs/alice", mode="drop_after", method="POST")  # faults: see FailRule (status, after, drop,
    hub.slow_down(token, delay_s=2.0)         #   drop_after, delay, hang), per token; slow_down: one visitor's calls
    hub.fault("/datasets-server/splits?dataset=anon%2Fslow", mode="hang")  # a prefix may include the query
    hub.cut_logs(after_events=2)              # the next log stream is cut after 2 events (the client reconnects)
    hub.state.ignore_label_filters = True     # job lists ignore `?label=` (every job of the namespace comes back)
    hub.requests                              # list of RecordedRequest (method, path, query, headers, body, json())
    hub.jobs                                  # {job_id: Job}; job.spec is the exact body the client sent
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

from .state import FailRule, HubState, JobPlan, RecordedRequest
from .state import metric_sample as metric_sample  # re-exported for tests


def progress_line(step: int, total: int | None, *, checkpoint: tuple[int, bool] | None = None,
                  t: float | None = None) -> str:  # fmt: skip
    """A `TRAINER_SPACE_PROGRESS` line as job_templates/train.py prints it; `checkpoint`: (step, pushed) of the
    checkpoint it reports (saved now; pushed now too, or not yet)."""
    now = time.time() if t is None else t
    payload: dict[str, Any] = {"step": step, "total": total, "tokens_per_s": 900.0, "peak_gpu_mem_gb": 11.5,
                               "eta_s": 60.0, "loss": 1.5, "done": False, "t": now}  # fmt: skip
    if checkpoint is not None:
        payload["checkpoint"] = {"step": checkpoint[0], "saved_t": now, "pushed_t": now if checkpoint[1] else None}
    return "TRAINER_SPACE_PROGRESS " + json.dumps(payload, separators=(",", ":"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubStandIn:
    """Runs the stand-in in a background thread (uvicorn) and offers test helpers."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.viewer_url = f"{self.url}/datasets-server"
        self.state = HubState()
        self.state.endpoint = self.url
        self._server = None
        self._thread: threading.Thread | None = None
        self.alice = self.bob = ""

    # ---- lifecycle
    def start(self) -> HubStandIn:
        import uvicorn

        from .app import build_app

        # uvicorn's own Date header is cached for a second; the app sets an exact one (the logs client uses it)
        config = uvicorn.Config(
            build_app(self.state), host="127.0.0.1", port=self.port, log_level="warning", date_header=False,
            timeout_graceful_shutdown=2,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("Hub stand-in did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset(self) -> None:
        """Forget everything, then create the two default users alice and bob."""
        self.state.reset()
        self.alice = self.add_user(
            "alice", token="hf_alice_standin_token_0001", orgs=[{"name": "alice-org", "roleInOrg": "admin"}]
        )
        self.bob = self.add_user("bob", token="hf_bob_standin_token_0002")

    # ---- arranging
    def add_user(self, name: str, token: str | None = None, **kwargs: Any) -> str:
        return self.state.add_user(name, token, **kwargs)

    def add_model(self, repo_id: str, files: dict[str, bytes | str] | Path | str | None = None, *,
                  safetensors: dict[str, Any] | None = None, **kwargs: Any):  # fmt: skip
        repo = self.state.add_repo(repo_id, "model", files, **kwargs)
        if safetensors is not None:
            repo.extra_info["safetensors"] = safetensors
        return repo

    def add_dataset(self, repo_id: str, splits: dict[str, list[dict[str, Any]]], *, config: str = "default",
                    num_rows: dict[str, int] | None = None, viewer: bool = True, **kwargs: Any):  # fmt: skip
        from .state import ViewerDataset

        repo = self.state.repo(repo_id, "dataset") or self.state.add_repo(repo_id, "dataset", **kwargs)
        data = self.state.viewer.setdefault(repo_id, ViewerDataset(rows={}, viewer=viewer))
        data.viewer = viewer
        for split, rows in splits.items():
            data.rows[(config, split)] = rows
            if num_rows and split in num_rows:
                data.num_rows[(config, split)] = num_rows[split]
        return repo

    def add_checkpoint(self, repo_id: str, *, step: int, max_steps: int | None, private: bool = True) -> None:
        """`last-checkpoint/` in a model repo, as transformers pushes it with hub_strategy="checkpoint" (the repo is
        created when missing): trainer_state.json with the step reached and the steps in all, and stub weights."""
        state = {"global_step": step, "max_steps": max_steps, "epoch": 0.5, "log_history": [], "save_steps": 100}
        files = {
            "last-checkpoint/trainer_state.json": json.dumps(state).encode(),
            "last-checkpoint/adapter_config.json": b"{}",
            "last-checkpoint/adapter_model.safetensors": b"stub",
            "last-checkpoint/optimizer.pt": b"stub",
        }
        repo = self.state.repo(repo_id)
        if repo is None:
            self.state.add_repo(repo_id, "model", files, private=private)
        else:
            with self.state.lock:
                repo.commit(f"Training in progress, step {step}, checkpoint", files, [])

    def plan_next_job(self, **kwargs: Any) -> JobPlan:
        plan = JobPlan(**kwargs)
        self.state.job_plans.append(plan)
        return plan

    def fail_next(self, status: int, path_prefix: str = "/api", method: str | None = None, message: str = "",
                  times: int = 1, headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.state.fail_rules.append(
            FailRule(status, path_prefix, method, message or f"stand-in error {status}", times, headers or {})
        )

    def fault(self, path_prefix: str = "/api", *, mode: str, status: int = 502, method: str | None = None,
              times: int = 1, delay_s: float = 0.0, token: str | None = None,
              headers: dict[str, str] | None = None) -> None:  # fmt: skip
        """A fault on matching requests (see `FailRule` for the modes)."""
        if mode == "hang" and not delay_s:
            delay_s = 30.0
        self.state.fail_rules.append(
            FailRule(
                status, path_prefix, method, f"stand-in error {status}", times, headers or {}, mode, delay_s, token
            )
        )

    def slow_down(self, token: str, delay_s: float, path_prefix: str = "/api", times: int = 10**6) -> None:
        """Every matching call of one visitor (by token) answers `delay_s` late."""
        self.fault(path_prefix, mode="delay", delay_s=delay_s, token=token, times=times)

    def cut_logs(self, after_events: int, times: int = 1) -> None:
        """The next `times` log streams are cut (connection dropped) after `after_events` events."""
        self.state.cut_logs.extend([after_events] * times)

    # ---- asserting
    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        repo = self.state.repo(repo_id, repo_type)
        return dict(repo.files) if repo else {}

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    @property
    def jobs(self):
        return self.state.jobs

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix) and (method is None or r.method == method)]
