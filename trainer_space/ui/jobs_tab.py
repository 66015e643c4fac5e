"""The "My jobs" tab: the visitor's jobs (refreshed while any runs), one job's details, live logs,
cancel with confirmation, the diagnosis of a failed job, and the Trackio dashboard of a training job.

API: `/list_jobs`, `/job_status`, `/job_logs`, `/cancel_job` (JSON, the caller's own token).
"""

from __future__ import annotations

import html
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pandas as pd

from ..hub import TERMINAL_STAGES
from ..jobs import JobRow, any_running, cancel, job_log_tail, job_status, list_job_rows
from ..validation import validate_job_id
from .common import session_for, ui_errors, ui_errors_gen

COLUMNS = ["id", "kind", "model", "stage", "flavor", "started", "duration_min", "cost_usd"]
HEADERS = ["Job", "Kind", "Model / output", "Stage", "Flavor", "Started", "Minutes", "Cost so far ($)"]
STAGES = ["SCHEDULING", "RUNNING", "COMPLETED", "ERROR", "CANCELED"]
LOG_LINES = 500  # lines kept in the live log view
LOG_CONCURRENCY = 20  # log streams served at once, in their own pool: they never hold up other events
# diagnosis kind -> the tab whose button the action opens (tab labels as composed in ui/__init__.py)
ACTION_TABS = {
    "dataset_columns": "Dataset",
    "chat_template": "Dataset",
    "oom": "Train",
    "timeout": "Train",
    "qlora_unavailable": "Train",
    "missing_package": "Train",
    "disk_full": "Train",
    "ram_oom": "Train",
    "gguf_pre_tokenizer": "GGUF export",
}
_SCROLL_LOGS_JS = """() => {
  const bottom = () => {
    const view = document.querySelector('#job-logs .cm-scroller');
    if (view) view.scrollTop = view.scrollHeight;
  };
  setTimeout(bottom, 50);
  setTimeout(bottom, 300);
}"""
_OPEN_TAB_JS = """(target) => {
  const tab = [...document.querySelectorAll('button[role="tab"]')].find((b) => b.textContent.trim() === target);
  if (tab) { tab.click(); window.scrollTo({top: 0, behavior: "smooth"}); }
}"""


# ---------------------------------------------------------------------------------------------- API
def _split_namespaces(text: str | None) -> list[str] | None:
    names = [n.strip() for n in (text or "").replace(",", " ").split() if n.strip()]
    return names or None


@ui_errors
def list_jobs_json(
    orgs: str = "", only_this_app: bool = False, stages: str = "", oauth_token: gr.OAuthToken | None = None
) -> dict:
    """API: the visitor's jobs (own namespace plus the orgs named, comma-separated), newest first.

    `stages`: comma-separated stages to keep (e.g. "RUNNING,ERROR"); empty keeps all.
    """
    session = session_for(oauth_token, "list your jobs")
    namespaces = [session.username, *(_split_namespaces(orgs) or [])]
    rows = list_job_rows(session, namespaces=namespaces, only_this_app=bool(only_this_app))
    keep = {s.upper() for s in _split_namespaces(stages) or []}
    return {"user": session.username, "jobs": [r.to_json() for r in rows if not keep or r.stage in keep]}


@ui_errors
def job_status_json(job_id: str, oauth_token: gr.OAuthToken | None = None) -> dict:
    """API: one job's details (stage, times, cost so far, links) and, once it has ended, its diagnosis."""
    return job_status(session_for(oauth_token, "see your jobs"), job_id)


@ui_errors
def job_logs_json(job_id: str, tail: int = 200, oauth_token: gr.OAuthToken | None = None) -> dict:
    """API: the last `tail` log lines of a job (1 to 5000)."""
    return job_log_tail(session_for(oauth_token, "read job logs"), job_id, tail)


@ui_errors
def cancel_job_json(job_id: str, oauth_token: gr.OAuthToken | None = None) -> dict:
    """API: cancel one of your jobs (billing stops; pushed checkpoints stay on the Hub). Returns its stage."""
    return cancel(session_for(oauth_token, "cancel jobs"), job_id)


# ---------------------------------------------------------------------------------------------- table
def _table_view(orgs: str, only_this_app: bool, stages: list[str] | None, oauth_token: gr.OAuthToken | None):
    if oauth_token is None or not getattr(oauth_token, "token", None):
        empty = pd.DataFrame(columns=HEADERS)
        return empty, "Sign in with Hugging Face to see your jobs.", gr.Timer(active=False)
    data = list_jobs_json(orgs, only_this_app, "", oauth_token)
    running = any_running([JobRow(**r) for r in data["jobs"]])  # all jobs: a filtered-out one may still finish
    rows = [r for r in data["jobs"] if not stages or r["stage"] in stages]
    frame = pd.DataFrame([{k: r[k] for k in COLUMNS} for r in rows], columns=COLUMNS)
    frame.columns = HEADERS
    shown = f"{len(rows)} of {len(data['jobs'])}" if stages else f"{len(rows)}"
    note = f"{shown} job(s) for {data['user']}" + (" — refreshing while jobs run" if running else "")
    if rows:
        note += ". Click a row for details and logs."
    return frame, note, gr.Timer(active=running)


def _table(orgs: str, only_this_app: bool, oauth_token: gr.OAuthToken | None):
    """The table with no stage filter (the app's `demo.load` calls this one)."""
    return _table_view(orgs, only_this_app, None, oauth_token)


def _pick_row(evt: gr.SelectData) -> str:
    row = evt.row_value or []
    return str(row[0]) if row else gr.skip()


# ---------------------------------------------------------------------------------------------- one job
def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell (no HTML, no links, no formatting)."""
    out = html.escape(str(text if text is not None else ""), quote=False)
    for ch in "\\`*_[]|#":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def _duration(seconds: int | None) -> str:
    if not seconds:
        return "—"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min"


def _when(iso: str | None) -> str:
    return iso.replace("T", " ").replace("Z", " UTC") if iso else "—"


def details_markdown(d: dict[str, Any]) -> str:
    """The details panel for one `/job_status` answer (values escaped: labels and messages are free text)."""
    labels = d.get("labels") or {}
    kind = d["kind"] + (f" ({labels['method']})" if labels.get("method") else "")
    stage = f"**{_md(d['stage'])}**" + (f" — {_md(d['message'])}" if d.get("message") else "")
    pairs = [
        ("Stage", stage, "Flavor", _md(d["flavor"])),
        ("Kind", _md(kind), "Timeout", _duration(d.get("timeout_s"))),
        ("Model", _md(labels.get("model") or "—"), "Duration", f"{d['duration_min']:g} min"),
        ("Created", _when(d.get("created_at")), "Cost so far", f"${d['cost_usd']:.2f}"),
        ("Started", _when(d.get("started_at")), "Finished", _when(d.get("finished_at"))),
    ]
    rows = ["| | | | |", "|---|---|---|---|"]  # a blank header: every row is a pair of key/value cells
    rows += [f"| **{a}** | {b} | **{c}** | {e} |" for a, b, c, e in pairs]
    links = [f"[Job page]({d['url']})"]
    if d.get("output_url"):
        links.append(f"[Output repo {_md(d['output_repo'])}]({d['output_url']})")
    if d.get("trackio_space"):
        links.append(f"[Trackio Space](https://huggingface.co/spaces/{d['trackio_space']})")
    shown = {k: v for k, v in sorted(labels.items()) if k != "name"}
    label_text = ", ".join(f"{_md(k)}={_md(v)}" for k, v in shown.items()) or "none"
    return (
        f"### Job `{d['id']}` in {_md(d['namespace'])}\n\n" + "\n".join(rows)
        + f"\n\nLabels: {label_text}\n\n" + " · ".join(links)
    )  # fmt: skip


def diagnosis_markdown(diag: dict[str, Any] | None) -> str:
    if not diag:
        return ""
    text = f"### {_md(diag['title'])}\n{_md(diag['explanation'])}\n\n"
    if diag.get("action"):
        text += f"**What to do:** {_md(diag['action'])}\n\n"
    hint = {k: v for k, v in (diag.get("action_hint") or {}).items() if v not in (None, "", [])}
    if hint:
        text += "Settings for the fix: " + ", ".join(f"{_md(k)} = {_md(v)}" for k, v in hint.items()) + "\n\n"
    if diag.get("evidence"):
        text += f"Seen in the job: {_md(diag['evidence'][:400])}"
    return text


def trackio_html(url: str | None) -> str:
    """The Trackio dashboard in an iframe (`url` is built from validated labels, and escaped again here)."""
    if not url:
        return ""
    src = html.escape(url, quote=True)
    return (
        f'<h4 style="margin:8px 0">Training metrics (Trackio) · <a href="{src}" target="_blank" '
        'rel="noopener noreferrer">open in a new tab</a></h4>'
        f'<iframe src="{src}" title="Trackio dashboard" loading="lazy" referrerpolicy="no-referrer" '
        'style="width:100%;height:520px;border:1px solid var(--border-color-primary);border-radius:8px"></iframe>'
    )


PANEL_OUTPUTS = 11


def fix_of(d: dict[str, Any]) -> dict[str, Any] | None:
    """The proposed fix of a failed job: the diagnosis kind, its settings, and the job's own settings."""
    diag = d.get("diagnosis")
    if not diag or not diag.get("action_hint"):
        return None
    labels = d.get("labels") or {}
    job = {"model": labels.get("model"), "method": labels.get("method"), "flavor": d.get("flavor"),
           "output_repo": d.get("output_repo")}  # fmt: skip
    return {"kind": diag["kind"], "job_id": d["id"], "job": job, "changes": diag["action_hint"]}


def _open_job(job_id: str, oauth_token: gr.OAuthToken | None, embed: bool = True):
    """Details, diagnosis, cancel button and (with `embed`) the Trackio dashboard of one job.

    Also returns where the job lives and its stage (a `gr.State`), so that the log view and later refreshes
    need not look the job up again, and an ended job's panel is not refreshed at all.
    """
    job_id = validate_job_id(job_id)
    d = job_status(session_for(oauth_token, "see your jobs"), job_id)
    diag = d.get("diagnosis")
    running = d["stage"] not in TERMINAL_STAGES
    target = ACTION_TABS.get(diag["kind"]) if diag else None
    if target == "GGUF export" and d["kind"] != "export_gguf":
        target = None
    return (
        d["id"],
        gr.Column(visible=True),
        details_markdown(d),
        gr.Button(visible=running),
        gr.Row(visible=False) if not running else gr.skip(),
        gr.Markdown(diagnosis_markdown(diag), visible=bool(diag)),
        gr.Button(f"Open the {target} tab", visible=True) if target else gr.Button(visible=False),
        target or "",
        gr.HTML(trackio_html(d.get("trackio_url")), visible=bool(d.get("trackio_url"))) if embed else gr.skip(),
        fix_of(d),
        {"namespace": d["namespace"], "stage": d["stage"]},
    )


def _ended(where: dict[str, str] | None) -> bool:
    return bool(where) and where.get("stage") in TERMINAL_STAGES


def _refresh_open(job_id: str, where: dict[str, str] | None, oauth_token: gr.OAuthToken | None):
    """Refresh the open job's panel, leaving the Trackio iframe alone.

    Nothing (no Hub call) when no job is open or the open job had already ended: an ended job does not change.
    """
    if not job_id or _ended(where):
        return tuple(gr.skip() for _ in range(PANEL_OUTPUTS))
    return _open_job(job_id, oauth_token, embed=False)


_END = object()


def _stop_button(visible: bool) -> gr.Button:
    """An update of the "Stop following" button (made per call: a component made at import could render)."""
    return gr.Button(visible=visible)


def _pump(lines: Iterator[str], out: queue.Queue, stop: threading.Event) -> None:
    """Copy log lines into `out` until the job ends, an error, or `stop` (then the stream is closed)."""
    try:
        for line in lines:
            if stop.is_set():
                return
            out.put(line)
        out.put(_END)
    except Exception as err:  # handed to the handler, which raises it at the UI boundary
        out.put(err)
    finally:
        close = getattr(lines, "close", None)
        if close is not None:
            close()


def _follow_logs(
    job_id: str, where: dict[str, str] | None, oauth_token: gr.OAuthToken | None
) -> Iterator[tuple[str, str, Any]]:
    """Stream the job's logs (the last LOG_LINES lines) until it ends; the tail only for an ended job.

    `where`: the job's namespace and stage as the panel just read them (else the job is looked up).
    Yields (log text, note, "Stop following" button update).
    """
    if not job_id:
        return
    session = session_for(oauth_token, "read job logs")
    job_id = validate_job_id(job_id)
    if where and where.get("namespace") and where.get("stage"):
        namespace, stage = where["namespace"], where["stage"]
    else:
        found = session.find_job(job_id)
        namespace, stage = found.owner.name, found.status.stage
    if stage in TERMINAL_STAGES:
        lines = session.job_logs(job_id, namespace=namespace, tail=LOG_LINES)
        yield "\n".join(lines), f"Job {stage.lower()}: its last {len(lines)} log lines.", _stop_button(False)
        return
    buffer: deque[str] = deque(maxlen=LOG_LINES)
    out: queue.Queue = queue.Queue()
    stop = threading.Event()
    # the blocking SSE read runs in its own thread so that this handler can pace updates (and stop)
    threading.Thread(
        target=_pump, args=(session.follow_logs(job_id, namespace=namespace, tail=LOG_LINES), out, stop), daemon=True
    ).start()
    yield "", f"Following the logs of {job_id} live ({stage.lower()}) …", _stop_button(True)
    try:
        last, dirty = 0.0, False
        while True:
            try:
                item = out.get(timeout=0.5)
            except queue.Empty:
                item = None
            while item is not None and item is not _END and not isinstance(item, Exception):
                buffer.append(str(item))
                dirty = True
                item = out.get_nowait() if not out.empty() else None
            if isinstance(item, Exception):
                raise item
            if item is _END:
                break
            if dirty and time.monotonic() - last >= 0.4:
                last, dirty = time.monotonic(), False
                yield "\n".join(buffer), f"Following the logs of {job_id} live …", gr.skip()
        yield "\n".join(buffer), "The job has ended; details and diagnosis are updated above.", _stop_button(False)
    finally:
        stop.set()


def _ask_cancel(job_id: str):
    job_id = validate_job_id(job_id)
    text = f"**Cancel job `{job_id}`?** It stops billing; the last pushed checkpoint stays on the Hub."
    return gr.Row(visible=True), text


def _do_cancel(job_id: str, oauth_token: gr.OAuthToken | None):
    result = cancel(session_for(oauth_token, "cancel jobs"), job_id)
    gr.Info(f"Job {result['id']}: {result['stage']}.")
    return gr.Row(visible=False), gr.Button(visible=result["stage"] not in TERMINAL_STAGES)


# ---------------------------------------------------------------------------------------------- layout
def build_tab() -> SimpleNamespace:
    """Build the tab inside the caller's `gr.Tab`; returns the components the app wires (`demo.load`)."""
    with gr.Row(equal_height=True):
        orgs = gr.Textbox(label="Also show jobs of these orgs (comma-separated)", scale=3)
        stages = gr.Dropdown(STAGES, value=[], multiselect=True, label="Stages (all when empty)", scale=2)
        only_app = gr.Checkbox(label="Only jobs started from this app", value=False, scale=1)
        refresh = gr.Button("Refresh", scale=0)
    note = gr.Markdown("Sign in with Hugging Face to see your jobs.")
    table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, max_height=360, elem_id="jobs-table")
    timer = gr.Timer(5, active=False)
    with gr.Row(equal_height=True):
        job_id = gr.Textbox(label="Job id", placeholder="Click a row above, or paste a job id", scale=4)
        open_btn = gr.Button("Open", scale=0, min_width=100)
    opened = gr.State("")
    where = gr.State(None)  # {"namespace", "stage"} of the open job, as last read
    with gr.Column(visible=False, elem_id="job-panel") as panel:
        details = gr.Markdown(elem_id="job-details")
        with gr.Row():
            cancel_btn = gr.Button("Cancel job", variant="stop", visible=False, scale=0, min_width=160)
        with gr.Row(visible=False, equal_height=True, elem_id="confirm-cancel") as confirm_row:
            confirm_text = gr.Markdown()
            yes = gr.Button("Yes, cancel", variant="stop", scale=0, min_width=140)
            keep = gr.Button("Keep running", scale=0, min_width=140)
        diagnosis = gr.Markdown(visible=False, elem_id="job-diagnosis", container=True)
        with gr.Row():
            action_btn = gr.Button(visible=False, variant="primary", scale=0, min_width=220)
        action_target = gr.Textbox(visible=False)
        fix = gr.State(None)  # what the diagnosis proposes, for a tab that wants to prefill the fix
        with gr.Row(equal_height=True):
            log_note = gr.Markdown()
            stop_btn = gr.Button("Stop following", scale=0, size="sm", min_width=140, visible=False)
        logs = gr.Code(label=f"Logs (last {LOG_LINES} lines)", lines=16, max_lines=16, interactive=False,
                       elem_id="job-logs", wrap_lines=True)  # fmt: skip
        trackio = gr.HTML(visible=False, label="Training metrics (Trackio)")

    table_handler = ui_errors(_table_view)
    for trigger in (refresh.click, orgs.submit, only_app.change, stages.change, timer.tick):
        trigger(table_handler, [orgs, only_app, stages], [table, note, timer], api_visibility="private",
                show_progress="hidden")  # fmt: skip
    panel_outputs = [opened, panel, details, cancel_btn, confirm_row, diagnosis, action_btn, action_target, trackio,
                     fix, where]  # fmt: skip
    assert len(panel_outputs) == PANEL_OUTPUTS
    timer.tick(
        ui_errors(_refresh_open), [opened, where], panel_outputs, api_visibility="private", show_progress="hidden"
    )

    open_handler, refresh_handler = ui_errors(_open_job), ui_errors(_refresh_open)
    follow = ui_errors_gen(_follow_logs)
    follows = []
    for opening in (
        table.select(_pick_row, None, job_id, api_visibility="private").success(
            open_handler, [job_id], panel_outputs, api_visibility="private"
        ),
        job_id.submit(open_handler, [job_id], panel_outputs, api_visibility="private"),
        open_btn.click(open_handler, [job_id], panel_outputs, api_visibility="private"),
    ):
        stream = opening.success(
            follow, [opened, where], [logs, log_note, stop_btn], api_visibility="private", concurrency_limit=LOG_CONCURRENCY,
            concurrency_id="logs", show_progress="hidden",
        )  # fmt: skip
        stream.then(refresh_handler, [opened, where], panel_outputs, api_visibility="private", show_progress="hidden")
        follows.append(stream)
    for trigger in (table.select, job_id.submit, open_btn.click):  # a new job replaces the stream of the last one
        trigger(None, None, None, cancels=follows, api_visibility="private")
    stop_btn.click(lambda: ("Stopped following. Open the job again to resume.", _stop_button(False)), None,
                   [log_note, stop_btn], cancels=follows, api_visibility="private")  # fmt: skip

    cancel_btn.click(ui_errors(_ask_cancel), [opened], [confirm_row, confirm_text], api_visibility="private")
    keep.click(lambda: gr.Row(visible=False), None, confirm_row, api_visibility="private")
    yes.click(ui_errors(_do_cancel), [opened], [confirm_row, cancel_btn], api_visibility="private").success(
        refresh_handler, [opened, where], panel_outputs, api_visibility="private"
    ).then(
        table_handler, [orgs, only_app, stages], [table, note, timer], api_visibility="private", show_progress="hidden"
    )
    action_btn.click(None, [action_target], None, js=_OPEN_TAB_JS, api_visibility="private")
    logs.change(None, None, None, js=_SCROLL_LOGS_JS, api_visibility="private")  # follow the tail

    gr.api(list_jobs_json, api_name="list_jobs")
    gr.api(job_status_json, api_name="job_status")
    gr.api(job_logs_json, api_name="job_logs")
    gr.api(cancel_job_json, api_name="cancel_job")
    return SimpleNamespace(
        orgs=orgs, only_app=only_app, stages=stages, table=table, note=note, timer=timer, refresh=refresh,
        job_id=job_id, opened=opened, details=details, diagnosis=diagnosis, logs=logs, cancel=cancel_btn,
        action=action_btn, action_target=action_target, fix=fix,
    )  # fmt: skip
