"""The "My jobs" tab: the visitor's jobs, refreshed while any runs."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd

from ..hub import HubSession
from ..jobs import any_running, list_job_rows
from .common import token_of, ui_errors

COLUMNS = ["id", "kind", "model", "stage", "flavor", "started", "duration_min", "cost_usd"]
HEADERS = ["Job", "Kind", "Model / output", "Stage", "Flavor", "Started", "Minutes", "Cost so far ($)"]


def _split_namespaces(text: str | None) -> list[str] | None:
    names = [n.strip() for n in (text or "").replace(",", " ").split() if n.strip()]
    return names or None


@ui_errors
def list_jobs_json(orgs: str = "", only_this_app: bool = False, oauth_token: gr.OAuthToken | None = None) -> dict:
    """API: the visitor's jobs (own namespace plus the orgs named, comma-separated), newest first."""
    session = HubSession(token_of(oauth_token, "list your jobs"), action="list your jobs")
    namespaces = [session.username, *(_split_namespaces(orgs) or [])]
    rows = list_job_rows(session, namespaces=namespaces, only_this_app=bool(only_this_app))
    return {"user": session.username, "jobs": [r.to_json() for r in rows]}


def _table(orgs: str, only_this_app: bool, oauth_token: gr.OAuthToken | None):
    if oauth_token is None or not getattr(oauth_token, "token", None):
        empty = pd.DataFrame(columns=HEADERS)
        return empty, "Sign in with Hugging Face to see your jobs.", gr.Timer(active=False)
    data = list_jobs_json(orgs, only_this_app, oauth_token)
    frame = pd.DataFrame([{k: r[k] for k in COLUMNS} for r in data["jobs"]], columns=COLUMNS)
    frame.columns = HEADERS
    from ..jobs import JobRow

    running = any_running([JobRow(**r) for r in data["jobs"]])
    note = f"{len(frame)} job(s) for {data['user']}" + (" — refreshing while jobs run" if running else "")
    return frame, note, gr.Timer(active=running)


def build_tab() -> SimpleNamespace:
    with gr.Row():
        orgs = gr.Textbox(label="Also show jobs of these orgs (comma-separated)", scale=3)
        only_app = gr.Checkbox(label="Only jobs started from this app", value=False, scale=1)
        refresh = gr.Button("Refresh", scale=0)
    note = gr.Markdown("Sign in with Hugging Face to see your jobs.")
    table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True)
    timer = gr.Timer(5, active=False)

    handler = ui_errors(_table)
    for trigger in (refresh.click, orgs.submit, only_app.change, timer.tick):
        trigger(handler, [orgs, only_app], [table, note, timer], api_visibility="private", show_progress="hidden")
    gr.api(list_jobs_json, api_name="list_jobs")
    return SimpleNamespace(orgs=orgs, only_app=only_app, table=table, note=note, timer=timer, refresh=refresh)
