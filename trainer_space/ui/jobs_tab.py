"""The "My jobs" tab: the visitor's jobs (refreshed while any runs), one job's details, live logs,
cancel with confirmation, the diagnosis of a failed job (its fix carried to the Train tab as a whole config),
progress from the job's own progress lines, live GPU/CPU/RAM usage with peaks, the estimate beside the
measurement, the estimator's accuracy over the visitor's finished jobs, and the Trackio dashboard.
"""

from __future__ import annotations

import html
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from ..errors import InvalidInput
from ..hub.session import TERMINAL_STAGES
from ..jobs import monitor
from ..jobs.accuracy import ACCURACY_COLUMNS, JobEstimate, accuracy_summary, compare, estimate_accuracy
from ..jobs.backends import HF_JOBS, LOCAL
from ..jobs.diagnosis import Diagnosis
from ..jobs.monitor import JobDetails
from ..jobs.progress import Progress, latest_progress, progress_report
from ..jobs.usage import Usage
from ..settings import get_settings
from ..validation import validate_job_id
from .api import split_names
from .common import CONCURRENCY, concurrency, is_signed_in, reader_for, ui_errors, ui_errors_gen
from .compare_view import CSS as COMPARE_CSS
from .compare_view import build_compare
from .continue_panel import build_continue_panel, wire_continue_panel

# what a phone shows first (its width holds about three): the job, its stage, its cost so far
COLUMNS = ["id", "stage", "cost_usd", "kind", "model", "backend", "flavor", "started", "duration_min"]
HEADERS = ["Job", "Stage", "Cost ($)", "Kind", "Model / output", "Where", "Flavor", "Started (UTC)", "Minutes"]
WHERE = {LOCAL: "here", HF_JOBS: "HF Jobs"}  # short: the table's nine columns fit a desktop screen
STAGES = ["SCHEDULING", "RUNNING", "COMPLETED", "ERROR", "CANCELED"]
LOG_LINES = 500  # lines kept in the live log view
LOG_CONCURRENCY = CONCURRENCY["logs"]  # log streams served at once, in their own pool: they never hold up others
USAGE_CONCURRENCY = 20  # live usage streams served at once (their own pool; each lasts TRAINER_SPACE_USAGE_FOLLOW_S)
ACCURACY_HEADERS = ["Job", "Finished", "Where", "Flavor", "Method", "Model", "Est. GB", "GB", "GB ratio",
                    "Est. min", "Min", "Min ratio", "Est. $", "$", "$ ratio"]  # fmt: skip
# The tab's CSS (the app adds it to its own). The log view is a bounded box scrolled to its tail (Gradio sizes it from
# the longest wrapped lines: a job's log made it thousands of pixels tall, and the scroll to the tail did nothing). Tables: headers on one line, no word broken inside a number (they
# scroll sideways instead). Job details: keys and numbers never broken ("Mode l", "$0.0 0"); on a phone each row of
# two key/value pairs becomes two rows of one pair.
CSS = """
#jobs-table th, #jobs-table th *, #estimate-accuracy th, #estimate-accuracy th * {
  white-space: nowrap !important; word-break: keep-all !important}
#jobs-table td, #jobs-table td *, #jobs-table textarea, #estimate-accuracy td, #estimate-accuracy td * {
  word-break: keep-all !important; overflow-wrap: normal !important}
#job-details td, #job-details th {word-break: keep-all !important; overflow-wrap: normal !important}
#job-details td:nth-child(odd) {white-space: nowrap}
#job-versus td, #job-versus th {word-break: keep-all !important; overflow-wrap: normal !important}
.usage-off {display: none !important}
#job-logs .cm-scroller {min-height: 12em !important; max-height: 26em !important}
@media (max-width: 720px) {
  #jobs-table th, #jobs-table td {font-size: 12px !important}
  #jobs-table th *, #jobs-table td * {font-size: 12px !important}
  #job-details table {display: block; width: 100%}
  #job-details tbody {display: block}
  #job-details tr {display: grid; grid-template-columns: 7.5em minmax(0, 1fr); border: 0 !important}
  #job-details td {border-width: 0 0 1px 0 !important; padding: 4px 6px !important}
  #job-details td {overflow-wrap: anywhere !important}
  #job-details td:nth-child(odd) {overflow-wrap: normal !important}
}
"""
CSS += COMPARE_CSS  # the Base vs tuned block's (ui/compare_view.py)
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
    shown = {"backend": lambda r: WHERE.get(r.backend, r.backend), "started": lambda r: r.started.removesuffix(" UTC")}
    values = [{k: shown[k](r) if k in shown else getattr(r, k) for k in COLUMNS} for r in rows]
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


def _seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    return _duration(seconds) if minutes >= 60 else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")


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
        ("Scheduling", _seconds(d.get("scheduling_s")), "Running", _seconds(d.get("running_s"))),
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
    flag = f"**⚠ {_md(d['scheduling_note'])}**\n\n" if d.get("scheduling_note") else ""
    shown = {k: v for k, v in sorted(labels.items()) if k != "name"}
    label_text = ", ".join(f"{_md(k)}={_md(v)}" for k, v in shown.items()) or "none"
    return (
        f"### Job `{d['id']}` " + ("on this machine" if d.get("backend") == "local" else f"in {_md(d['namespace'])}")
        + "\n\n" + flag + "\n".join(rows)
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


def job_facts(details: JobDetails) -> dict[str, Any]:
    """What the progress and estimate views need about the open job (kept in a State: no Hub call to redraw)."""
    return {
        "id": details.id,
        "kind": details.kind,
        "stage": details.stage,
        "estimate": details.to_json()["estimate"],
        "usd_per_hour": details.usd_per_hour,
        "running_s": details.running_s,
        "started_ts": details.started_ts,
        "read_at": time.time(),
        "backend": details.backend,
        "output_repo": details.output_repo if details.config is None or details.config.push_to_hub else None,
        "output_dir": details.output_dir,
    }


def progress_html(facts: dict[str, Any] | None, progress: dict[str, Any] | None, now: float | None = None) -> str:
    """The progress bar and ETA from the job's latest progress line, or the plain sentence when there is none."""
    if not facts or facts.get("kind") != "train":
        return ""
    report = progress_report(Progress.from_json(progress), facts["stage"], started_at=facts.get("started_ts"),
                             now=now, stall_after_s=get_settings().stall_alert_s)  # fmt: skip
    text = html.escape(report.text)
    if report.stalled:
        text = f"<strong>⚠ {text}</strong>"
    bar = ""
    if report.fraction is not None:
        pct = round(100 * report.fraction, 1)
        colour = "var(--error-500, #dc2626)" if report.stalled else "var(--color-accent, #f97316)"
        bar = (f'<div role="progressbar" aria-valuenow="{pct}" aria-valuemin="0" aria-valuemax="100" '
               'style="height:14px;border-radius:7px;background:var(--neutral-200,#e5e7eb);overflow:hidden;'
               f'margin:4px 0"><div style="width:{pct}%;height:100%;background:{colour}"></div></div>'
               f'<span style="font-weight:600">{pct:g}%</span> · ')  # fmt: skip
    return f'<div id="job-progress-inner">{bar}{text}</div>'


def versus_markdown(facts: dict[str, Any] | None, progress: dict[str, Any] | None,
                    usage: dict[str, Any] | None, now: float | None = None) -> str:  # fmt: skip
    """The estimate beside the measurement (peak GPU memory, running time, cost) with the ratio."""
    if not facts or facts.get("kind") != "train":
        return ""
    estimate = JobEstimate.from_env({"TRAINER_SPACE_ESTIMATE": _json(facts.get("estimate"))})
    running = float(facts.get("running_s") or 0.0)
    if facts.get("stage") == "RUNNING":  # still counting: add the time since the details were read
        running += max(0.0, (now or time.time()) - float(facts.get("read_at") or time.time()))
    peaks = Usage.from_json(usage).peaks if usage else None
    prog = Progress.from_json(progress)
    c = compare(estimate, running_s=running if facts.get("stage") != "SCHEDULING" else 0.0,
                usd_per_hour=facts.get("usd_per_hour"), progress_peak_gb=prog.peak_gpu_mem_gb if prog else None,
                metrics_peak_gb=peaks.gpu_mem_gb if peaks and peaks.has_gpu else None)  # fmt: skip
    if estimate is None:
        return "*This job carries no estimate (submitted before estimates were recorded, or without one).*"
    so_far = " so far" if facts.get("stage") not in TERMINAL_STAGES else ""
    rows = ["| | Estimate | Measured" + so_far + " | Measured / estimate |", "|---|---|---|---|"]
    rows += [f"| **{a}** | {b} | {_md(c_)} | {r} |" for a, b, c_, r in c.rows()]
    return f"#### Estimate vs measured (on {_md(estimate.flavor)})\n" + "\n".join(rows)


def _json(value: Any) -> str | None:
    import json

    return json.dumps(value) if value else None


def usage_frames(usage: Usage) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(GPU memory, GPU utilisation, CPU/RAM) frames for the charts, time as UTC datetimes."""
    gpu = pd.DataFrame(usage.gpu_rows(), columns=["time", "gpu", "memory_gb", "utilization"])
    host = pd.DataFrame(usage.host_rows(), columns=["time", "series", "percent"])
    for frame in (gpu, host):
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    return gpu[["time", "gpu", "memory_gb"]], gpu[["time", "gpu", "utilization"]], host


def accuracy_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(ACCURACY_COLUMNS))
    frame.columns = ACCURACY_HEADERS
    return frame


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first) get a
    leading quote in the CSV: job labels and model ids come from the job, and a job may name them as it likes."""
    return frame.map(lambda v: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v)


def accuracy_points(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Long form for the chart: one point per job and measure (ratio measured / estimate)."""
    points = [
        {"job": r["job"][:8], "measure": what, "ratio": r[key]}
        for r in reversed(rows)
        for key, what in (("peak_ratio", "peak GPU memory"), ("time_ratio", "time"), ("cost_ratio", "cost"))
        if r.get(key) is not None
    ]
    return pd.DataFrame(points, columns=["job", "measure", "ratio"])


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
    open_request: gr.State  # set by `open_job` (another tab): opens that job like a click on its row
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
    export_button: gr.Button  # "Export to GGUF →": a completed training job's model, to the GGUF export tab
    export_source: gr.State  # the ExportConfig (JSON) of that model (monitor.export_handoff)
    log_note: gr.Markdown
    stop: gr.Button
    logs: gr.Code
    trackio: gr.HTML
    facts: gr.State  # job_facts() of the open job, as last read
    progress_state: gr.State  # the latest progress line of the open job (Progress.to_json)
    progress: gr.HTML
    versus: gr.Markdown
    usage_state: gr.State  # Usage.to_json of the open job
    usage_note: gr.Markdown
    usage_follow: gr.Button
    gpu_mem_plot: gr.LinePlot
    gpu_util_plot: gr.LinePlot
    host_plot: gr.LinePlot
    plot_boxes: tuple[gr.Column, gr.Column, gr.Column]  # shown or hidden in place of the plots (see build_tab)
    acc_button: gr.Button
    acc_note: gr.Markdown
    acc_table: gr.Dataframe
    acc_plot: gr.ScatterPlot
    acc_csv: gr.DownloadButton

    @property
    def open_job_outputs(self) -> list[Any]:
        """The outputs of `open_job`, for another tab's event."""
        return [self.job_id, self.open_request]

    def open_job(self, job_id: str) -> dict[Any, Any]:
        """Open a job in My jobs from another tab (the Train tab's "Watch it in My jobs"): the job id goes into the
        Job id box and the panel opens on it with its details, live logs, usage and progress, as a click on its row
        does. Wire it as `event(jobs.open_job, [job_id_component], jobs.open_job_outputs)`; switching to the tab is
        the caller's. An empty or invalid id changes nothing."""
        job_id = (job_id or "").strip()
        try:
            job_id = validate_job_id(job_id)
        except InvalidInput:
            return gr.skip()
        return {self.job_id: job_id, self.open_request: {"id": job_id, "at": time.time()}}

    @property
    def panel_outputs(self) -> list[Any]:
        return [self.opened, self.panel, self.details, self.cancel, self.confirm_row, self.diagnosis, self.action,
                self.action_target, self.trackio, self.fix, self.where, self.facts, self.export_button,
                self.export_source]  # fmt: skip

    @property
    def open_outputs(self) -> list[Any]:
        """Opening a job also resets the views of the last one (progress, usage, estimate vs measured)."""
        return [*self.panel_outputs, self.progress_state, self.progress, self.versus, self.usage_state,
                self.usage_note, self.gpu_mem_plot, self.gpu_util_plot, self.host_plot, *self.plot_boxes]  # fmt: skip

    @property
    def usage_outputs(self) -> list[Any]:
        return [self.usage_state, self.usage_note, self.gpu_mem_plot, self.gpu_util_plot, self.host_plot,
                *self.plot_boxes]  # fmt: skip

    def _usage_update(self, usage: Usage, note: str) -> dict[Any, Any]:
        mem, util, host = usage_frames(usage)
        has_gpu = usage.peaks.has_gpu
        return {
            self.usage_state: usage.to_json(),
            self.usage_note: note,
            self.gpu_mem_plot: mem,
            self.gpu_util_plot: util,
            self.host_plot: host,
            **{
                box: gr.Column(elem_classes=_plot_classes(shown))
                for box, shown in zip(self.plot_boxes, (has_gpu, has_gpu, bool(usage.samples)), strict=True)
            },
        }

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

    def on_table_if_ended(self, where: dict[str, str] | None, orgs: str, only_this_app: bool,
                          stages: list[str] | None, oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:  # fmt: skip
        """The table again once the open job has ended, so that its row no longer says RUNNING (no Hub call, and
        nothing changed, while it runs: the table's own timer refreshes it then)."""
        if not where or where.get("stage") not in TERMINAL_STAGES:
            return gr.skip()
        return self.on_table(orgs, only_this_app, stages, oauth_token)

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
        handoff = monitor.export_handoff(d)
        out[self.export_button] = gr.Button(visible=handoff is not None)
        out[self.export_source] = handoff.to_json() if handoff is not None else None
        facts = job_facts(d)
        out[self.facts] = facts
        if not running:
            out[self.confirm_row] = gr.Row(visible=False)
        if embed:
            out[self.trackio] = gr.HTML(trackio_html(d.trackio_url), visible=bool(d.trackio_url))
            out[self.progress_state] = None
            out[self.progress] = progress_html(facts, None)
            out[self.versus] = versus_markdown(facts, None, None)
            out |= self._usage_update(Usage(), "")
        return out

    def on_refresh(self, job_id: str, where: dict[str, str] | None,
                   oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:  # fmt: skip
        """Refresh the open job's panel, leaving the Trackio iframe alone.

        Nothing (no Hub call) when no job is open or the open job had already ended: an ended job does not change.
        """
        if not job_id or (where and where.get("stage") in TERMINAL_STAGES):
            return gr.skip()
        return self.on_open(job_id, oauth_token, embed=False)

    def on_follow(self, job_id: str, where: dict[str, str] | None, oauth_token: gr.OAuthToken | None = None,
                  facts: dict[str, Any] | None = None) -> Iterator[dict[Any, Any]]:  # fmt: skip
        """Stream the job's logs (the last LOG_LINES lines) until it ends; the tail only for an ended job.

        The latest progress line among them (the job's own report, not the last log line) feeds the progress bar.
        """
        if facts and facts.get("stage") == "SCHEDULING":  # log lines come once it runs (the end redraws it anyway)
            facts = {**facts, "stage": "RUNNING"}
        for update in self._follow(job_id, where, oauth_token):
            if self.logs in update:
                found = latest_progress(update[self.logs].splitlines())
                if found is not None:
                    update[self.progress_state] = found.to_json()
                    update[self.progress] = progress_html(facts, found.to_json())
            yield update

    def _follow(self, job_id: str, where: dict[str, str] | None,
                oauth_token: gr.OAuthToken | None = None) -> Iterator[dict[Any, Any]]:  # fmt: skip
        if not job_id:
            return
        session = reader_for(oauth_token)
        job_id = validate_job_id(job_id)
        found = monitor.located(session, job_id, where)
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

    def on_measures(self, facts: dict[str, Any] | None, progress: dict[str, Any] | None,
                    usage: dict[str, Any] | None) -> dict[Any, Any]:  # fmt: skip
        """Redraw the progress and the estimate vs measured table from what is known (no Hub call)."""
        return {self.progress: progress_html(facts, progress), self.versus: versus_markdown(facts, progress, usage)}

    def on_usage(self, job_id: str, where: dict[str, str] | None, oauth_token: gr.OAuthToken | None = None,
                 usage: dict[str, Any] | None = None) -> Iterator[dict[Any, Any]]:  # fmt: skip
        """Stream the job's GPU/CPU/RAM usage into the charts (peaks kept) for at most TRAINER_SPACE_USAGE_FOLLOW_S."""
        if not job_id:
            return
        session = reader_for(oauth_token)
        job_id = validate_job_id(job_id)
        found = monitor.located(session, job_id, where)
        state = Usage.from_json(usage)
        limit = get_settings().usage_follow_s
        last: monitor.UsageView | None = None
        for view in monitor.follow_usage(session, job_id, where=found, usage=state, max_seconds=limit):
            last = view
            if view.ended:
                break
            waiting = "waiting for hardware: usage starts when it runs" if view.stage == "SCHEDULING" else "live"
            yield self._usage_update(view.usage, f"Usage ({waiting}). {view.usage.summary()}")
        if last is None or last.ended:
            usage_now = last.usage if last else state
            note = ("The job has ended: live usage is only sent while a job runs. " + usage_now.summary()
                    if usage_now.peaks.samples else "The job has ended: live usage is only sent while a job runs; "
                    "the measured peak GPU memory comes from its progress lines.")  # fmt: skip
            yield self._usage_update(usage_now, note)
        else:
            yield self._usage_update(last.usage, f"Live usage paused after {limit / 60:.0f} min (peaks kept): press "
                                     f"'Follow usage' to resume. {last.usage.summary()}")  # fmt: skip

    def on_accuracy(self, oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        """The estimator's accuracy over the visitor's finished training jobs: table, chart and CSV."""
        rows = estimate_accuracy(reader_for(oauth_token))
        frame = accuracy_frame(rows)
        path = None
        if rows:
            with tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="estimate-accuracy-", delete=False) as fh:
                spreadsheet_safe(frame).to_csv(fh, index=False)
                path = fh.name
        return {
            self.acc_note: accuracy_summary(rows),
            self.acc_table: frame,
            self.acc_plot: gr.ScatterPlot(accuracy_points(rows), visible=bool(rows)),
            self.acc_csv: gr.DownloadButton(value=path, visible=path is not None),
        }

    def on_stop(self) -> dict[Any, Any]:
        return {self.log_note: "Stopped following. Open the job again to resume.", self.stop: gr.Button(visible=False)}

    def on_ask_cancel(self, job_id: str, facts: dict[str, Any] | None = None) -> dict[Any, Any]:
        job_id, facts = validate_job_id(job_id), facts or {}
        text = monitor.cancel_prompt(job_id, backend=facts.get("backend") or HF_JOBS,
                                     output_repo=facts.get("output_repo"), output_dir=facts.get("output_dir"))  # fmt: skip
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
    open_request = gr.State(None)
    where = gr.State(None)
    with gr.Column(visible=False, elem_id="job-panel") as panel:
        details = gr.Markdown(elem_id="job-details")
        with gr.Row():
            cancel_btn = gr.Button("Cancel job", variant="stop", visible=False, scale=0, min_width=160)
        with gr.Row(visible=False, equal_height=True, elem_id="confirm-cancel") as confirm_row:
            confirm_text = gr.Markdown()
            yes = gr.Button("Yes, cancel", variant="stop", scale=0, min_width=140)
            keep = gr.Button("Keep running", scale=0, min_width=140)
        continuing = build_continue_panel()  # Continue… / Stop after next checkpoint, and the jobs' links
        diagnosis = gr.Markdown(visible=False, elem_id="job-diagnosis", container=True)
        with gr.Row():
            action_btn = gr.Button(visible=False, variant="primary", scale=0, min_width=220)
            export_btn = gr.Button("Export to GGUF →", visible=False, variant="primary", scale=0, min_width=200,
                                   elem_id="export-job")  # fmt: skip
        base_vs_tuned = build_compare()  # "Base vs tuned" of a finished training job (ui/compare_view.py)
        action_target = gr.Textbox(visible=False)
        fix = gr.State(None)
        export_source = gr.State(None)
        facts = gr.State(None)
        progress_state = gr.State(None)
        progress = gr.HTML(elem_id="job-progress")
        versus = gr.Markdown(elem_id="job-versus")
        usage_state = gr.State(None)
        with gr.Row(equal_height=True):
            usage_note = gr.Markdown(elem_id="job-usage-note")
            usage_follow = gr.Button("Follow usage", scale=0, size="sm", min_width=140)
        with gr.Row(elem_id="job-usage"):
            # a plot hidden by `visible` (its own or a parent's) is unmounted while its resize observer still runs,
            # a page error in Gradio's plot: each plot stays mounted, in a column that CSS hides (`_plot_classes`)
            plot = dict(x="time", height=220, x_title="")
            box = dict(min_width=240, elem_classes=_plot_classes(False))
            with gr.Column(**box) as gpu_mem_box:
                gpu_mem_plot = gr.LinePlot(y="memory_gb", color="gpu", title="GPU memory (GB)", y_title="GB", **plot)
            with gr.Column(**box) as gpu_util_box:
                gpu_util_plot = gr.LinePlot(y="utilization", color="gpu", title="GPU utilisation (%)", y_title="%",
                                            y_lim=[0, 100], **plot)  # fmt: skip
            with gr.Column(**box) as host_box:
                host_plot = gr.LinePlot(y="percent", color="series", title="CPU and RAM (%)", y_title="%", **plot)
        with gr.Row(equal_height=True):
            log_note = gr.Markdown()
            stop_btn = gr.Button("Stop following", scale=0, size="sm", min_width=140, visible=False)
        logs = gr.Code(label=f"Logs (last {LOG_LINES} lines)", lines=16, max_lines=16, interactive=False,
                       elem_id="job-logs", wrap_lines=True)  # fmt: skip
        trackio = gr.HTML(visible=False, label="Training metrics (Trackio)")
    with gr.Accordion("Estimate accuracy: the estimate beside what your finished jobs used", open=False,
                      elem_id="estimate-accuracy"):  # fmt: skip
        with gr.Row(equal_height=True):
            acc_note = gr.Markdown("Every finished training job started from this app adds one row.")
            acc_button = gr.Button("Show estimate accuracy", scale=0, min_width=200)
            acc_csv = gr.DownloadButton("Download CSV", visible=False, scale=0, min_width=160)
        acc_table = gr.Dataframe(headers=ACCURACY_HEADERS, interactive=False, wrap=True, max_height=320)
        acc_plot = gr.ScatterPlot(x="job", y="ratio", color="measure", title="Measured / estimated, per job",
                                  y_title="ratio (1 = exact)", height=260, visible=False)  # fmt: skip
    gr.Markdown(
        "**Next:** a finished training job's model (its output repo, or folder here) goes to **GGUF export** for "
        "llama.cpp and Ollama; a failed job's diagnosis carries its fix back to **Train**.",
        elem_classes="next-step",
    )
    tab = JobsTab(
        orgs=orgs, stages=stages, only_app=only_app, refresh=refresh, note=note, table=table, timer=timer,
        job_id=job_id, open_button=open_btn, opened=opened, open_request=open_request, where=where, panel=panel,
        details=details,
        cancel=cancel_btn, confirm_row=confirm_row, confirm_text=confirm_text, yes=yes, keep=keep,
        diagnosis=diagnosis, action=action_btn, action_target=action_target, fix=fix, export_button=export_btn,
        export_source=export_source, log_note=log_note,
        stop=stop_btn, logs=logs, trackio=trackio, facts=facts, progress_state=progress_state, progress=progress,
        versus=versus, usage_state=usage_state, usage_note=usage_note, usage_follow=usage_follow,
        gpu_mem_plot=gpu_mem_plot, gpu_util_plot=gpu_util_plot, host_plot=host_plot,
        plot_boxes=(gpu_mem_box, gpu_util_box, host_box), acc_button=acc_button,
        acc_note=acc_note, acc_table=acc_table, acc_plot=acc_plot, acc_csv=acc_csv,
    )  # fmt: skip

    wire_continue_panel(continuing, tab)
    hub = concurrency("hub")
    table_handler = ui_errors(tab.on_table)
    table_outputs = [table, note, timer]
    for trigger in (refresh.click, orgs.submit, only_app.change, stages.change, timer.tick):
        trigger(table_handler, [orgs, only_app, stages], table_outputs, api_visibility="private",
                show_progress="hidden", **hub)  # fmt: skip
    refresh_handler = ui_errors(tab.on_refresh)
    measures = [facts, progress_state, usage_state], [progress, versus]
    timer.tick(refresh_handler, [opened, where], tab.panel_outputs, api_visibility="private", show_progress="hidden",
               **hub).then(tab.on_measures, *measures, api_visibility="private", show_progress="hidden")  # fmt: skip

    open_handler = ui_errors(tab.on_open)
    follow = ui_errors_gen(tab.on_follow)
    follows = []
    usage = ui_errors_gen(tab.on_usage)
    usages = []
    ends = []  # the panel refreshed once the log stream has ended
    usage_stream = {"api_visibility": "private", "concurrency_limit": USAGE_CONCURRENCY, "concurrency_id": "usage",
                    "show_progress": "hidden"}  # fmt: skip
    for opening in (
        table.select(_pick_row, None, job_id, api_visibility="private").success(
            open_handler, [job_id], tab.open_outputs, api_visibility="private", **hub
        ),
        job_id.submit(open_handler, [job_id], tab.open_outputs, api_visibility="private", **hub),
        open_btn.click(open_handler, [job_id], tab.open_outputs, api_visibility="private", **hub),
        open_request.change(open_handler, [job_id], tab.open_outputs, api_visibility="private", **hub),
    ):
        stream = opening.success(
            follow, [opened, where, facts], [logs, log_note, stop_btn, progress_state, progress],
            api_visibility="private", concurrency_limit=LOG_CONCURRENCY, concurrency_id="logs",
            show_progress="hidden",
        )  # fmt: skip
        refreshed = stream.then(refresh_handler, [opened, where], tab.panel_outputs, api_visibility="private",
                                show_progress="hidden", **hub)  # fmt: skip
        refreshed.then(tab.on_measures, *measures, api_visibility="private", show_progress="hidden")
        # the logs end when the job does: its row in the table says so at once
        refreshed.then(ui_errors(tab.on_table_if_ended), [where, orgs, only_app, stages], table_outputs,
                       api_visibility="private", show_progress="hidden", **hub)  # fmt: skip
        ends.append(refreshed)
        base_vs_tuned.wire(opening, refreshed, inputs=[opened, facts])
        follows.append(stream)
        live = opening.success(usage, [opened, where, usage_state], tab.usage_outputs, **usage_stream)
        live.then(tab.on_measures, *measures, api_visibility="private", show_progress="hidden")
        usages.append(live)
    # ... and its usage stream stops at once, saying it has ended (the open job's stage is known: no metrics read;
    # a job still running, its logs cut short, is followed again)
    for refreshed in ends:
        again = refreshed.then(usage, [opened, where, usage_state], tab.usage_outputs, cancels=list(usages),
                               **usage_stream)  # fmt: skip
        again.then(tab.on_measures, *measures, api_visibility="private", show_progress="hidden")
        usages.append(again)
    resumed = usage_follow.click(usage, [opened, where, usage_state], tab.usage_outputs, cancels=usages,
                                 **usage_stream)  # fmt: skip
    resumed.then(tab.on_measures, *measures, api_visibility="private", show_progress="hidden")
    usages.append(resumed)
    # a new job replaces the streams of the last one
    for trigger in (table.select, job_id.submit, open_btn.click, open_request.change):
        trigger(None, None, None, cancels=follows + usages, api_visibility="private")
    acc_button.click(ui_errors(tab.on_accuracy), None, [acc_note, acc_table, acc_plot, acc_csv],
                     api_visibility="private", **hub)  # fmt: skip
    stop_btn.click(tab.on_stop, None, [log_note, stop_btn], cancels=follows, api_visibility="private")

    cancel_btn.click(ui_errors(tab.on_ask_cancel), [opened, facts], [confirm_row, confirm_text],
                     api_visibility="private")  # fmt: skip
    keep.click(lambda: gr.Row(visible=False), None, confirm_row, api_visibility="private")
    yes.click(ui_errors(tab.on_cancel), [opened], [confirm_row, cancel_btn], api_visibility="private", **hub).success(
        refresh_handler, [opened, where], tab.panel_outputs, api_visibility="private", **hub
    ).then(table_handler, [orgs, only_app, stages], table_outputs, api_visibility="private", show_progress="hidden",
           **hub)  # fmt: skip
    action_btn.click(None, [action_target], None, js=OPEN_TAB_JS, api_visibility="private")
    logs.change(None, None, None, js=SCROLL_LOGS_JS, api_visibility="private")  # follow the tail
    return tab


def _plot_classes(shown: bool) -> list[str]:
    """A usage chart's column, shown or hidden by CSS (`usage-off`), never unmounted."""
    return ["usage-plot"] + ([] if shown else ["usage-off"])


def _pick_row(evt: gr.SelectData) -> str:
    row = evt.row_value or []
    return str(row[0]) if row else gr.skip()
