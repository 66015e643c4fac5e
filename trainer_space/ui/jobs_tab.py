"""The "My jobs" tab: the visitor's jobs (refreshed while any runs), one job's details, live logs,
cancel with confirmation, the diagnosis of a failed job (its fix carried to the Train tab as a whole config),
and the Trackio dashboard of a training job.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from ..hub.session import TERMINAL_STAGES
from ..jobs import monitor
from ..jobs.backends import BACKEND_LABELS
from ..jobs.diagnosis import Diagnosis
from ..jobs.monitor import JobDetails
from ..settings import get_settings
from ..validation import validate_job_id
from .api import split_names
from .common import CONCURRENCY, concurrency, is_signed_in, reader_for, ui_errors, ui_errors_gen

COLUMNS = ["id", "kind", "model", "stage", "backend", "flavor", "started", "duration_min", "cost_usd"]
HEADERS = ["Job", "Kind", "Model / output", "Stage", "Where", "Flavor", "Started", "Minutes", "Cost so far ($)"]
STAGES = ["SCHEDULING", "RUNNING", "COMPLETED", "ERROR", "CANCELED"]
LOG_LINES = 500  # lines kept in the live log view
LOG_CONCURRENCY = CONCURRENCY["logs"]  # log streams served at once, in their own pool: they never hold up others
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
SCROLL_LOGS_JS = """() => {
  const bottom = () => {
    const view = document.querySelector('#job-logs .cm-scroller');
    if (view) view.scrollTop = view.scrollHeight;
  };
  setTimeout(bottom, 50);
  setTimeout(bottom, 300);
}"""
OPEN_TAB_JS = """(target) => {
  const tab = [...document.querySelectorAll('button[role="tab"]')].find((b) => b.textContent.trim() === target);
  if (tab) { tab.click(); window.scrollTo({top: 0, behavior: "smooth"}); }
}"""


def jobs_frame(rows: list[monitor.JobRow]) -> pd.DataFrame:
    values = [{k: BACKEND_LABELS.get(r.backend, r.backend) if k == "backend" else getattr(r, k) for k in COLUMNS}
              for r in rows]  # fmt: skip
    frame = pd.DataFrame(values, columns=COLUMNS)
    frame.columns = HEADERS
    return frame


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


def details_markdown(details: JobDetails) -> str:
    """The details panel of one job (values escaped: labels and messages are free text)."""
    d = details.to_json()
    labels = d.get("labels") or {}
    cfg = d.get("config") or {}
    method = cfg.get("method") or labels.get("method")
    kind = d["kind"] + (f" ({method})" if method else "")
    stage = f"**{_md(d['stage'])}**" + (f" — {_md(d['message'])}" if d.get("message") else "")
    pairs = [
        ("Stage", stage, "Flavor", _md(d["flavor"])),
        ("Kind", _md(kind), "Timeout", _duration(d.get("timeout_s"))),
        ("Model", _md(cfg.get("model") or labels.get("model") or "—"), "Duration", f"{d['duration_min']:g} min"),
        ("Created", _when(d.get("created_at")), "Cost so far", f"${d['cost_usd']:.2f}"),
        ("Started", _when(d.get("started_at")), "Finished", _when(d.get("finished_at"))),
    ]
    if cfg.get("dataset"):
        pairs.append(("Dataset", _md(cfg["dataset"]), "Learning rate", _md(cfg.get("learning_rate") or "preset")))
    rows = ["| | | | |", "|---|---|---|---|"]  # a blank header: every row is a pair of key/value cells
    rows += [f"| **{a}** | {b} | **{c}** | {e} |" for a, b, c, e in pairs]
    links = [f"[Job page]({d['url']})"] if d.get("url") else []
    if d.get("output_dir"):
        links.append(f"Outputs on this machine: {_md(d['output_dir'])}")
    if d.get("output_url"):
        links.append(f"[Output repo {_md(d['output_repo'])}]({d['output_url']})")
    if d.get("trackio_space"):
        links.append(f"[Trackio Space](https://huggingface.co/spaces/{d['trackio_space']})")
    shown = {k: v for k, v in sorted(labels.items()) if k != "name"}
    label_text = ", ".join(f"{_md(k)}={_md(v)}" for k, v in shown.items()) or "none"
    return (
        f"### Job `{d['id']}` " + ("on this machine" if d.get("backend") == "local" else f"in {_md(d['namespace'])}")
        + "\n\n" + "\n".join(rows)
        + f"\n\nLabels: {label_text}\n\n" + " · ".join(links)
    )  # fmt: skip


def diagnosis_markdown(diagnosis: Diagnosis | None) -> str:
    if diagnosis is None:
        return ""
    diag = diagnosis.to_json()
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


@dataclass
class JobsTab:
    orgs: gr.Textbox
    stages: gr.Dropdown
    only_app: gr.Checkbox
    refresh: gr.Button
    note: gr.Markdown
    table: gr.Dataframe
    timer: gr.Timer
    job_id: gr.Textbox
    open_button: gr.Button
    opened: gr.State  # the id of the job the panel shows
    where: gr.State  # {"namespace", "stage"} of the open job, as last read
    panel: gr.Column
    details: gr.Markdown
    cancel: gr.Button
    confirm_row: gr.Row
    confirm_text: gr.Markdown
    yes: gr.Button
    keep: gr.Button
    diagnosis: gr.Markdown
    action: gr.Button
    action_target: gr.Textbox
    fix: gr.State  # {"kind", "config"}: the failed job's whole config with the fix applied, for its tab
    log_note: gr.Markdown
    stop: gr.Button
    logs: gr.Code
    trackio: gr.HTML

    @property
    def panel_outputs(self) -> list[Any]:
        return [self.opened, self.panel, self.details, self.cancel, self.confirm_row, self.diagnosis, self.action,
                self.action_target, self.trackio, self.fix, self.where]  # fmt: skip

    # ------------------------------------------------------------------ table
    def on_table(self, orgs: str, only_this_app: bool, stages: list[str] | None,
                 oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:  # fmt: skip
        signed_in = is_signed_in(oauth_token)
        if not signed_in and not get_settings().local_enabled:
            return {
                self.table: pd.DataFrame(columns=HEADERS),
                self.note: "Sign in with Hugging Face to see your jobs.",
                self.timer: gr.Timer(active=False),
            }
        session = reader_for(oauth_token)
        user = session.username if signed_in else "this machine"
        namespaces = [session.username, *split_names(orgs)] if signed_in else None
        all_rows = monitor.list_job_rows(session, namespaces=namespaces, only_this_app=only_this_app)
        running = monitor.any_running(all_rows)  # all jobs: a filtered-out one may still finish
        rows = [r for r in all_rows if not stages or r.stage in stages]
        shown = f"{len(rows)} of {len(all_rows)}" if stages else f"{len(rows)}"
        note = f"{shown} job(s) for {user}" + (" — refreshing while jobs run" if running else "")
        if rows:
            note += ". Click a row for details and logs."
        return {self.table: jobs_frame(rows), self.note: note, self.timer: gr.Timer(active=running)}

    def on_table_load(self, orgs: str, only_this_app: bool, oauth_token: gr.OAuthToken | None = None):
        """The table with no stage filter (the app's `demo.load` calls this one)."""
        return self.on_table(orgs, only_this_app, None, oauth_token)

    # ------------------------------------------------------------------ one job
    def on_open(self, job_id: str, oauth_token: gr.OAuthToken | None = None, *, embed: bool = True) -> dict[Any, Any]:
        """Details, diagnosis, cancel button and (with `embed`) the Trackio dashboard of one job.

        Also keeps where the job lives and its stage (`where`), so that the log view and later refreshes need not
        look the job up again, and an ended job's panel is not refreshed at all.
        """
        status = monitor.job_status(reader_for(oauth_token), validate_job_id(job_id))
        d, diag = status.details, status.diagnosis
        running = d.stage not in TERMINAL_STAGES
        target = ACTION_TABS.get(diag.kind) if diag else None
        if target == "GGUF export" and d.kind != "export_gguf":
            target = None
        if target in ("Train", "GGUF export") and status.fix is None:
            target = None  # nothing to carry: the job was not submitted by this app with a config
        out = {
            self.opened: d.id,
            self.panel: gr.Column(visible=True),
            self.details: details_markdown(d),
            self.cancel: gr.Button(visible=running),
            self.diagnosis: gr.Markdown(diagnosis_markdown(diag), visible=diag is not None),
            self.action: gr.Button(f"Open the {target} tab", visible=True) if target else gr.Button(visible=False),
            self.action_target: target or "",
            self.fix: {"kind": d.kind, "config": status.fix.to_json()} if status.fix else None,
            self.where: {"backend": d.backend, "namespace": d.namespace, "stage": d.stage},
        }
        if not running:
            out[self.confirm_row] = gr.Row(visible=False)
        if embed:
            out[self.trackio] = gr.HTML(trackio_html(d.trackio_url), visible=bool(d.trackio_url))
        return out

    def on_refresh(self, job_id: str, where: dict[str, str] | None,
                   oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:  # fmt: skip
        """Refresh the open job's panel, leaving the Trackio iframe alone.

        Nothing (no Hub call) when no job is open or the open job had already ended: an ended job does not change.
        """
        if not job_id or (where and where.get("stage") in TERMINAL_STAGES):
            return {}
        return self.on_open(job_id, oauth_token, embed=False)

    def on_follow(self, job_id: str, where: dict[str, str] | None,
                  oauth_token: gr.OAuthToken | None = None) -> Iterator[dict[Any, Any]]:  # fmt: skip
        """Stream the job's logs (the last LOG_LINES lines) until it ends; the tail only for an ended job."""
        if not job_id:
            return
        session = reader_for(oauth_token)
        job_id = validate_job_id(job_id)
        known = where if where and {"backend", "namespace", "stage"} <= set(where) else None
        found = monitor.JobWhere(**known) if known else monitor.where_is(session, job_id)
        stage = found.stage
        if stage not in TERMINAL_STAGES:
            yield {self.log_note: f"Following the logs of {job_id} live ({stage.lower()}) …",
                   self.stop: gr.Button(visible=True)}  # fmt: skip
        for view in monitor.follow_logs(session, job_id, where=found, keep=LOG_LINES):
            text = "\n".join(view.lines)
            if not view.ended:
                yield {self.logs: text, self.log_note: f"Following the logs of {job_id} live …"}
            elif stage in TERMINAL_STAGES:
                yield {self.logs: text, self.log_note: f"Job {stage.lower()}: its last {len(view.lines)} log lines.",
                       self.stop: gr.Button(visible=False)}  # fmt: skip
            else:
                yield {self.logs: text, self.log_note: "The job has ended; details and diagnosis are updated above.",
                       self.stop: gr.Button(visible=False)}  # fmt: skip

    def on_stop(self) -> dict[Any, Any]:
        return {self.log_note: "Stopped following. Open the job again to resume.", self.stop: gr.Button(visible=False)}

    def on_ask_cancel(self, job_id: str) -> dict[Any, Any]:
        job_id = validate_job_id(job_id)
        text = f"**Cancel job `{job_id}`?** It stops billing; the last pushed checkpoint stays on the Hub."
        return {self.confirm_row: gr.Row(visible=True), self.confirm_text: text}

    def on_cancel(self, job_id: str, oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        result = monitor.cancel(reader_for(oauth_token), job_id)
        gr.Info(f"Job {result.id}: {result.stage}.")
        return {
            self.confirm_row: gr.Row(visible=False),
            self.cancel: gr.Button(visible=result.stage not in TERMINAL_STAGES),
        }


def build_tab() -> JobsTab:
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
    where = gr.State(None)
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
        fix = gr.State(None)
        with gr.Row(equal_height=True):
            log_note = gr.Markdown()
            stop_btn = gr.Button("Stop following", scale=0, size="sm", min_width=140, visible=False)
        logs = gr.Code(label=f"Logs (last {LOG_LINES} lines)", lines=16, max_lines=16, interactive=False,
                       elem_id="job-logs", wrap_lines=True)  # fmt: skip
        trackio = gr.HTML(visible=False, label="Training metrics (Trackio)")
    tab = JobsTab(
        orgs=orgs, stages=stages, only_app=only_app, refresh=refresh, note=note, table=table, timer=timer,
        job_id=job_id, open_button=open_btn, opened=opened, where=where, panel=panel, details=details,
        cancel=cancel_btn, confirm_row=confirm_row, confirm_text=confirm_text, yes=yes, keep=keep,
        diagnosis=diagnosis, action=action_btn, action_target=action_target, fix=fix, log_note=log_note,
        stop=stop_btn, logs=logs, trackio=trackio,
    )  # fmt: skip

    hub = concurrency("hub")
    table_handler = ui_errors(tab.on_table)
    table_outputs = [table, note, timer]
    for trigger in (refresh.click, orgs.submit, only_app.change, stages.change, timer.tick):
        trigger(table_handler, [orgs, only_app, stages], table_outputs, api_visibility="private",
                show_progress="hidden", **hub)  # fmt: skip
    refresh_handler = ui_errors(tab.on_refresh)
    timer.tick(refresh_handler, [opened, where], tab.panel_outputs, api_visibility="private", show_progress="hidden",
               **hub)  # fmt: skip

    open_handler = ui_errors(tab.on_open)
    follow = ui_errors_gen(tab.on_follow)
    follows = []
    for opening in (
        table.select(_pick_row, None, job_id, api_visibility="private").success(
            open_handler, [job_id], tab.panel_outputs, api_visibility="private", **hub
        ),
        job_id.submit(open_handler, [job_id], tab.panel_outputs, api_visibility="private", **hub),
        open_btn.click(open_handler, [job_id], tab.panel_outputs, api_visibility="private", **hub),
    ):
        stream = opening.success(
            follow, [opened, where], [logs, log_note, stop_btn], api_visibility="private",
            concurrency_limit=LOG_CONCURRENCY, concurrency_id="logs", show_progress="hidden",
        )  # fmt: skip
        stream.then(refresh_handler, [opened, where], tab.panel_outputs, api_visibility="private",
                    show_progress="hidden", **hub)  # fmt: skip
        follows.append(stream)
    for trigger in (table.select, job_id.submit, open_btn.click):  # a new job replaces the stream of the last one
        trigger(None, None, None, cancels=follows, api_visibility="private")
    stop_btn.click(tab.on_stop, None, [log_note, stop_btn], cancels=follows, api_visibility="private")

    cancel_btn.click(ui_errors(tab.on_ask_cancel), [opened], [confirm_row, confirm_text], api_visibility="private")
    keep.click(lambda: gr.Row(visible=False), None, confirm_row, api_visibility="private")
    yes.click(ui_errors(tab.on_cancel), [opened], [confirm_row, cancel_btn], api_visibility="private", **hub).success(
        refresh_handler, [opened, where], tab.panel_outputs, api_visibility="private", **hub
    ).then(table_handler, [orgs, only_app, stages], table_outputs, api_visibility="private", show_progress="hidden",
           **hub)  # fmt: skip
    action_btn.click(None, [action_target], None, js=OPEN_TAB_JS, api_visibility="private")
    logs.change(None, None, None, js=SCROLL_LOGS_JS, api_visibility="private")  # follow the tail
    return tab


def _pick_row(evt: gr.SelectData) -> str:
    row = evt.row_value or []
    return str(row[0]) if row else gr.skip()
