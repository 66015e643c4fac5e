"""The Hub stand-in's HTTP surface (Starlette), speaking the Hub's wire format.

Routes follow what huggingface_hub 2.4 sends: whoami, jobs (create, list, inspect,
logs as server-sent events, cancel, hardware), repos (create, info, preupload, commit,
tree, resolve) and, under `/datasets-server`, the dataset viewer API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .state import TERMINAL, HubState, RecordedRequest, User, decode_commit_payload, iso
from .viewer import viewer_routes

JOB_FLAVORS = {
    "cpu-basic", "cpu-upgrade", "cpu-performance", "cpu-xl", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1",
    "l40sx4", "l40sx8", "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4",
    "a100x8", "h200", "h200x2", "h200x4", "h200x8", "rtx-pro-6000", "rtx-pro-6000x2", "rtx-pro-6000x4",
    "rtx-pro-6000x8",
}  # fmt: skip


def error(status: int, message: str, code: str | None = None) -> JSONResponse:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def build_app(state: HubState) -> Starlette:
    def current_user(request: Request) -> User | None:
        auth = request.headers.get("authorization", "")
        return state.user_for(auth[7:] if auth.lower().startswith("bearer ") else None)

    def require_user(request: Request) -> User | JSONResponse:
        user = current_user(request)
        if user is None:
            return error(401, "Invalid credentials in Authorization header")
        return user

    # ------------------------------------------------------------------ whoami
    async def whoami(request: Request) -> Response:
        user = require_user(request)
        return user if isinstance(user, Response) else JSONResponse(user.whoami())

    # ------------------------------------------------------------------ jobs
    def job_namespace_guard(request: Request, ns: str) -> User | JSONResponse:
        user = require_user(request)
        if isinstance(user, Response):
            return user
        if ns not in user.namespaces():
            return error(403, f"You don't have access to namespace {ns}")
        return user

    async def hardware(request: Request) -> Response:
        return JSONResponse(state.hardware)

    async def create_job(request: Request) -> Response:
        ns = request.path_params["ns"]
        user = job_namespace_guard(request, ns)
        if isinstance(user, Response):
            return user
        if not user.jobs_permission:
            return error(403, "missing permissions: job.write")
        if not user.can_write(ns):  # an org member with the read role
            return error(403, f"You don't have the rights to run jobs in the namespace {ns} (your role: read)")
        if not user.can_pay:
            return error(402, "Pre-paid credit balance is insufficient - add a payment method or credits")
        spec = await request.json()
        if not isinstance(spec.get("command"), list) or not all(isinstance(c, str) for c in spec["command"]):
            return error(400, "command must be a list of strings")
        if not spec.get("dockerImage") and not spec.get("spaceId"):
            return error(400, "dockerImage or spaceId is required")
        if spec.get("flavor", "cpu-basic") not in JOB_FLAVORS:
            return error(400, f"Invalid flavor {spec.get('flavor')}")
        for key in ("environment", "secrets", "labels"):
            if key in spec and not isinstance(spec[key], dict):
                return error(400, f"{key} must be an object")
        job = state.new_job(ns, user, spec)
        return JSONResponse(job.to_json(state.endpoint))

    async def list_jobs(request: Request) -> Response:
        ns = request.path_params["ns"]
        user = job_namespace_guard(request, ns)
        if isinstance(user, Response):
            return user
        stages = request.query_params.getlist("stage")
        labels = (
            [] if state.ignore_label_filters else [lbl.split("=", 1) for lbl in request.query_params.getlist("label")]
        )
        out = []
        for job in sorted(state.jobs.values(), key=lambda j: j.created, reverse=True):
            if job.namespace != ns:
                continue
            body = job.to_json(state.endpoint)
            if stages and body["status"]["stage"] not in stages:
                continue
            job_labels = body.get("labels") or {}
            if any(job_labels.get(k) != (v[0] if v else None) for k, *v in labels):
                continue
            out.append(body)
        return JSONResponse(out)

    def find_job(request: Request) -> tuple[Any, JSONResponse | None]:
        ns, job_id = request.path_params["ns"], request.path_params["job_id"]
        user = job_namespace_guard(request, ns)
        if isinstance(user, Response):
            return None, user
        job = state.jobs.get(job_id)
        if job is None or job.namespace != ns:
            return None, error(404, f"Job {job_id} not found")
        return job, None

    async def inspect_job(request: Request) -> Response:
        job, err = find_job(request)
        return err or JSONResponse(job.to_json(state.endpoint))

    async def cancel_job(request: Request) -> Response:
        job, err = find_job(request)
        if err:
            return err
        if not current_user(request).can_write(job.namespace):
            return error(403, f"You don't have the rights to cancel jobs in the namespace {job.namespace}")
        if job.stage()[0] not in TERMINAL:
            job.canceled_at = time.time()
        return JSONResponse({})

    async def job_logs(request: Request) -> Response:
        job, err = find_job(request)
        if err:
            return err
        tail = request.query_params.get("tail")
        with state.lock:
            cut_after = state.cut_logs.pop(0) if state.cut_logs else None
        if job.plan.logs_stream != "normal":
            stamp = iso(job.started)
            return misbehaving_stream(job.plan.logs_stream, "log", lambda n: {"data": f"line {n}", "timestamp": stamp})

        async def events():
            sent = 0
            first = True
            given = 0
            last_beat = time.time()
            while True:
                evs = job.log_events()
                if first and tail is not None:
                    sent = max(0, len(evs) - int(tail))
                first = False
                for ev in evs[sent:]:
                    if cut_after is not None and given >= cut_after:
                        raise Dropped()  # the connection is cut in the middle of the stream
                    given += 1
                    yield f"event: log\ndata: {json.dumps(ev)}\n\n"
                sent = max(sent, len(evs))
                if job.stage()[0] in TERMINAL:
                    return
                if time.time() - last_beat > 1:
                    last_beat = time.time()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.05)

        return StreamingResponse(events(), media_type="text/event-stream")

    async def job_metrics(request: Request) -> Response:
        """Like the Hub: no history, one `metric` event per interval while the job runs, a keep-alive comment every
        30 s; nothing while it is scheduled; the stream does not end when the job does (clients time out); a job
        that has already ended answers 406."""
        job, err = find_job(request)
        if err:
            return err
        if job.plan.metrics_stream != "normal":
            return misbehaving_stream(job.plan.metrics_stream, "metric", job.metric_at)
        if job.stage()[0] in TERMINAL:
            return error(406, "Job is not running")

        async def events():
            last_beat, sent = time.time(), 0
            while True:
                now = time.time()
                stage = job.stage(now)[0]
                if stage in TERMINAL and now - (job.canceled_at or job.natural_end) > 60:
                    return  # a test server does not keep silent streams forever
                due = int((now - job.started) // job.plan.metrics_interval_s) + 1 if stage == "RUNNING" else 0
                if stage == "RUNNING" and due > sent:
                    yield f"event: metric\ndata: {json.dumps(job.metric_at(due - 1), separators=(',', ':'))}\n\n"
                    sent = due
                if now - last_beat > 30:
                    last_beat = now
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.02)

        return StreamingResponse(events(), media_type="text/event-stream")

    # ------------------------------------------------------------------ repos
    async def create_repo(request: Request) -> Response:
        user = require_user(request)
        if isinstance(user, Response):
            return user
        body = await request.json()
        name, org = body.get("name"), body.get("organization")
        ns = org or user.name
        repo_type = body.get("type") or "model"
        if not name or "/" in name:
            return error(400, "Invalid repo name")
        if not user.can_write(ns):
            return error(403, f"You don't have the rights to create a repo under {ns}")
        repo_id = f"{ns}/{name}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{state.endpoint}/{prefix}{repo_id}"
        if state.repo(repo_id, repo_type) is not None:
            return JSONResponse({"error": "You already created this repo", "url": url}, status_code=409)
        private = bool(body.get("private")) or body.get("visibility") == "private"
        state.add_repo(repo_id, repo_type, private=private)
        return JSONResponse({"url": url, "name": repo_id})

    def parse_repo_path(rest: str) -> tuple[str, str, str]:
        """Split '<repo_id>/<op>/<rest>' where op is revision/preupload/commit/tree/paths-info."""
        for op in ("/revision/", "/preupload/", "/commit/", "/tree/", "/paths-info/"):
            if op in rest:
                repo_id, tail = rest.split(op, 1)
                return repo_id, op.strip("/"), tail
        return rest, "info", ""

    async def validate_yaml(request: Request) -> Response:
        """Model-card metadata check that upload_folder runs for a README.md: accept what parses."""
        body = await request.json()
        try:
            import yaml

            yaml.safe_load(body.get("content", "").split("---")[1] if "---" in body.get("content", "") else "")
        except Exception as err:  # report any parse error like the Hub does
            return JSONResponse({"errors": [{"message": str(err)}], "warnings": []}, status_code=400)
        return JSONResponse({"errors": [], "warnings": []})

    async def repo_api(request: Request) -> Response:
        repo_type = request.path_params["rtype"]
        repo_id, op, tail = parse_repo_path(request.path_params["rest"])
        repo = state.repo(repo_id, repo_type)
        user = current_user(request)
        if repo is None or not repo.readable_by(user):
            return error(404, "Repository not found", "RepoNotFound")
        if op in ("info", "revision"):
            return JSONResponse(repo.info(state.endpoint))
        if op == "tree":
            path = tail.split("/", 1)[1] if "/" in tail else ""
            recursive = request.query_params.get("recursive") in ("1", "true", "True")
            return JSONResponse(tree(repo, unquote(path), recursive))
        if op == "paths-info":
            form = await request.form()
            paths = form.getlist("paths")
            return JSONResponse(
                [{"type": "file", "path": p, "size": len(repo.files[p]), "oid": "x"} for p in paths if p in repo.files]
            )
        # write operations
        if user is None:
            return error(401, "Invalid credentials in Authorization header")
        if not user.can_write(repo.owner):
            return error(403, "You don't have the rights to write to this repo")
        if op == "preupload":
            body = await request.json()
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in body.get("files", [])
            ]
            return JSONResponse({"files": files, "commitOid": repo.sha})
        if op == "commit":
            try:
                summary, added, deleted = decode_commit_payload(await request.body())
            except ValueError as err:
                return error(400, str(err))
            oid = repo.commit(summary, added, deleted)
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            return JSONResponse(
                {"commitUrl": f"{state.endpoint}/{prefix}{repo_id}/commit/{oid}", "commitOid": oid, "success": True}
            )
        return error(404, "Not found")

    def tree(repo, path: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = path.rstrip("/") + "/" if path else ""
        entries: dict[str, dict[str, Any]] = {}
        for p, data in sorted(repo.files.items()):
            if not p.startswith(prefix):
                continue
            rel = p[len(prefix) :]
            if recursive or "/" not in rel:
                entries[p] = {"type": "file", "path": p, "size": len(data), "oid": "0" * 40}
                if recursive:
                    parts = p.split("/")[:-1]
                    for i in range(len(prefix.split("/")) - 1, len(parts)):
                        d = "/".join(parts[: i + 1])
                        entries.setdefault(d, {"type": "directory", "path": d, "oid": "0" * 40})
            else:
                d = prefix + rel.split("/", 1)[0]
                entries.setdefault(d, {"type": "directory", "path": d, "oid": "0" * 40})
        return list(entries.values())

    async def resolve(request: Request) -> Response:
        parts = request.url.path.lstrip("/").split("/")
        repo_type = "model"
        if parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0][:-1], parts[1:]
        if "resolve" not in parts:
            return error(404, "Not found")
        i = parts.index("resolve")
        repo_id = "/".join(parts[:i])
        path = unquote("/".join(parts[i + 2 :]))
        repo = state.repo(repo_id, repo_type)
        user = current_user(request)
        if repo is None or not repo.readable_by(user):
            return error(404, "Repository not found", "RepoNotFound")
        if not repo.files_readable_by(user):
            return error(403 if user else 401, f"Access to model {repo_id} is restricted", "GatedRepo")
        if path not in repo.files:
            return error(404, "Entry not found", "EntryNotFound")
        data = repo.files[path]
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{abs(hash(data)):x}"', "Content-Length": str(len(data))}
        if request.method == "HEAD":
            return Response(b"", headers=headers)
        return Response(data, headers=headers, media_type="application/octet-stream")

    routes = [
        Route("/api/whoami-v2", whoami),
        Route("/api/jobs/hardware", hardware),
        Route("/api/jobs/{ns}", create_job, methods=["POST"]),
        Route("/api/jobs/{ns}", list_jobs, methods=["GET"]),
        Route("/api/jobs/{ns}/{job_id}", inspect_job, methods=["GET"]),
        Route("/api/jobs/{ns}/{job_id}/logs", job_logs, methods=["GET"]),
        Route("/api/jobs/{ns}/{job_id}/metrics", job_metrics, methods=["GET"]),
        Route("/api/jobs/{ns}/{job_id}/cancel", cancel_job, methods=["POST"]),
        Route("/api/repos/create", create_repo, methods=["POST"]),
        Route("/api/validate-yaml", validate_yaml, methods=["POST"]),
        Route("/api/{rtype:str}s/{rest:path}", repo_api, methods=["GET", "POST"]),
        *viewer_routes(state, current_user),
        Route("/{rest:path}", resolve, methods=["GET", "HEAD"]),
    ]

    return Starlette(routes=routes, middleware=[Middleware(RecordAndFail, state=state)])


def misbehaving_stream(mode: str, event: str, data: Any) -> StreamingResponse:
    """A stream that never ends while the client listens: only keep-alive comments ("keep-alive", ten a second), or
    `event` events without end ("endless", `data(n)` for the n-th)."""

    async def events():
        n = 0
        while True:
            if mode == "keep-alive":
                yield ": keep-alive\n\n"
                await asyncio.sleep(0.1)
            else:
                yield f"event: {event}\ndata: {json.dumps(data(n), separators=(',', ':'))}\n\n"
                n += 1
                await asyncio.sleep(0.002)

    return StreamingResponse(events(), media_type="text/event-stream")


class Dropped(Exception):
    """Raised to make uvicorn drop a connection in the middle of an answer (a fault the tests inject)."""


def _is_drop(exc: BaseException | None) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_drop(e) for e in exc.exceptions)
    return isinstance(exc, Dropped)


class _QuietDrops(logging.Filter):
    """uvicorn logs an exception that ends an answer: not the drops the tests ask for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _is_drop(record.exc_info[1] if record.exc_info else None)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class RecordAndFail:
    """Records every request, applies the fault rules, and gives every answer an exact Date header."""

    def __init__(self, app, state: HubState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method, path = scope["method"], scope["path"]
        self.state.requests.append(
            RecordedRequest(
                method=method,
                path=path,
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=body,
            )
        )
        auth = headers.get("authorization", "")
        query = scope.get("query_string", b"").decode("latin-1")
        where = f"{path}?{query}" if query else path  # a rule's prefix may name a query too (one dataset's viewer)
        rule = self.state.match_failure(method, where, auth[7:] if auth.lower().startswith("bearer ") else None)

        replayed = False

        async def replay():  # the body once, then the real channel (a streaming answer waits on it for disconnects)
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def dated(message):
            if message["type"] == "http.response.start":
                hdrs = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                hdrs.append((b"date", formatdate(time.time(), usegmt=True).encode()))
                message = {**message, "headers": hdrs}
            await send(message)

        async def swallow(message):  # the app's own answer, dropped (mode "after" / "drop_after")
            return None

        if rule is None:
            await self.app(scope, replay, dated)
            return
        if rule.mode in ("delay", "hang"):
            generation = self.state.generation
            await asyncio.sleep(rule.delay_s)
            if generation != self.state.generation:  # the test that asked for it has ended: not applied to the next
                await error(503, "stand-in reset meanwhile")(scope, replay, dated)
                return
            if rule.mode == "delay":
                await self.app(scope, replay, dated)
                return
        if rule.mode in ("after", "drop_after"):
            await self.app(scope, replay, swallow)
            await asyncio.sleep(rule.delay_s)  # e.g. a 504 that comes after 10 s, the job created meanwhile
        if rule.mode in ("drop", "drop_after"):
            # headers and part of a chunked body, then the connection is closed: the client sees it cut mid-answer
            await dated({"type": "http.response.start", "status": 200,
                         "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await dated({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
            raise Dropped()
        resp = error(rule.status, rule.message)
        for k, v in rule.headers.items():
            resp.headers[k] = v
        await resp(scope, replay, dated)
