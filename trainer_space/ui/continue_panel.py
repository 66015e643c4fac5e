"""My jobs: Continue… (an ended training job, from its last checkpoint) and Stop after the next checkpoint (a running
one), with the links between a job and its continuations. A thin UI over `jobs/continuing.py` and
`jobs/stopping.py`; `jobs_tab.build_tab` places it under the job's details (`build_continue_panel`) and wires it
(`wire_continue_panel`)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..jobs.checks import Status
from ..jobs.continuing import Continuation, continue_job, job_actions, plan_continue
from ..jobs.stopping import request_stop, stop_state
from ..validation import validate_job_id
from .common import concurrency, reader_for, ui_errors

ICONS = {Status.OK: "ok", Status.WARN: "warning", Status.ERROR: "error"}


def _md(text: Any) -> str:
    """Text safe in Markdown (no HTML, links or formatting), as the job details write it."""
    out = html.escape(str(text if text is not None else ""), quote=False)
    for ch in "\\`*_[]|#":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def links_markdown(continues: str | None, continued_by: tuple[str, ...], stopping: str = "") -> str:
    """The job's links (ids only: they are validated job ids) and its stop request, as Markdown."""
    parts = []
    if continues:
        parts.append(f"**Continues job** `{continues}` (from its last checkpoint).")
    if continued_by:
        parts.append("**Continued by job** " + ", ".join(f"`{j}`" for j in continued_by) + ".")
    if stopping:
        parts.append(f"**{_md(stopping)}**")
    return "  \n".join(parts)


def plan_markdown(found: Continuation) -> str:
    """What Continue… shows before the confirmation: where it resumes, the figures, the checks."""
    if not found.eligible or found.plan is None:
        text = f"**{_md(found.reason)}**"
        if found.hint:
            text += f"\n\n{_md(found.hint)}"
        return text
    lines = [f"**{_md(found.reason)}**", "", _md(found.summary())]
    if found.flavor_note:
        lines += ["", _md(found.flavor_note)]
    if found.hint:
        lines += ["", _md(found.hint)]
    lines += ["", *(f"- **{_md(c.name)}** ({ICONS[c.status]}): {_md(c.message)}" for c in found.plan.checks
                    if c.status != Status.OK or c.name in ("estimate", "timeout", "cost"))]  # fmt: skip
    return "\n".join(lines)


@dataclass
class ContinuePanel:
    links: gr.Markdown
    stop: gr.Button
    open_continue: gr.Button
    box: gr.Column
    flavor: gr.Dropdown
    plan: gr.Markdown
    resubmit: gr.Code
    confirm: gr.Button
    close: gr.Button
    result: gr.Markdown
    watch: gr.Button
    new_job: gr.State

    @property
    def outputs(self) -> list[Any]:
        return [self.links, self.stop, self.open_continue, self.box, self.result, self.watch]

    @property
    def plan_outputs(self) -> list[Any]:
        return [self.box, self.flavor, self.plan, self.resubmit, self.confirm, self.result, self.watch]

    def on_show(self, job_id: str, oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        """The open job's links and buttons (a new job opened, or its stage changed)."""
        if not job_id:
            return gr.skip()
        actions = job_actions(reader_for(oauth_token), validate_job_id(job_id))
        request = stop_state(actions.job_id)
        stopping = request.sentence() if request is not None else ""
        waiting = request is not None and request.waiting
        return {
            self.links: links_markdown(actions.links.continues, actions.links.continued_by, stopping),
            self.stop: gr.Button(visible=actions.can_stop and not waiting),
            self.open_continue: gr.Button(visible=actions.can_continue),
            self.box: gr.Column(visible=False),
            self.result: "",
            self.watch: gr.Button(visible=False),
        }

    def on_plan(self, job_id: str, flavor: str | None = None, oauth_token: gr.OAuthToken | None = None):
        """Continue…: read the checkpoint, plan the new job on the flavor picked (or the suggested one)."""
        session = reader_for(oauth_token)
        found = plan_continue(session, validate_job_id(job_id), flavor=flavor or None)
        prices = {f.name: f for f in session.hardware()[0]}
        choices = [(f"{n} · {prices[n].pretty_name}, ${prices[n].usd_per_hour:,.2f}/h" if n in prices else n, n)
                   for n in found.flavors]  # fmt: skip
        local = found.backend == "local"
        resubmit = json.dumps(found.resubmit.to_json(), indent=1) if found.resubmit else ""
        return {
            self.box: gr.Column(visible=True),
            self.flavor: gr.Dropdown(choices=choices, value=found.flavor, visible=found.eligible and not local),
            self.plan: plan_markdown(found),
            self.resubmit: gr.Code(resubmit, visible=found.resubmit is not None),
            self.confirm: gr.Button(
                f"Continue from step {found.checkpoint.step}" if found.checkpoint else "Continue",
                visible=found.ok,
            ),
            self.result: "",
            self.watch: gr.Button(visible=False),
        }

    def on_confirm(self, job_id: str, flavor: str | None = None, oauth_token: gr.OAuthToken | None = None):
        """Create the continuation (at most once: a second click returns the same job)."""
        session = reader_for(oauth_token)
        made = continue_job(session, validate_job_id(job_id), flavor=flavor or None)
        new = made.job
        links = job_actions(session, made.job_id).links  # the old job now names its continuation
        how = "already submitted" if made.how and made.how.outcome == "existing" else "submitted"
        gr.Info(f"Job {new.id} {how}: it continues {made.job_id}.")
        return {
            self.result: f"**Job `{new.id}` {how}**: it continues `{_md(made.job_id)}` from step "
            f"{made.checkpoint.step}. {_md(made.summary())}",
            self.confirm: gr.Button(visible=False),
            self.watch: gr.Button(visible=True),
            self.new_job: new.id,
            self.links: links_markdown(links.continues, links.continued_by),
        }

    def on_stop(self, job_id: str, oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:
        """Stop after the next checkpoint: the app watches the job and cancels it right after that checkpoint."""
        request = request_stop(reader_for(oauth_token), validate_job_id(job_id))
        gr.Info(request.sentence())
        return {self.links: links_markdown(None, (), request.sentence()), self.stop: gr.Button(visible=False)}


def build_continue_panel() -> ContinuePanel:
    """The panel's components, inside the job panel (under the details)."""
    links = gr.Markdown(elem_id="job-links")
    with gr.Row():
        stop = gr.Button("Stop after next checkpoint", visible=False, scale=0, min_width=220, elem_id="stop-after")
        open_continue = gr.Button("Continue…", visible=False, variant="primary", scale=0, min_width=160,
                                  elem_id="continue-job")  # fmt: skip
    with gr.Column(visible=False, elem_id="continue-box") as box:
        flavor = gr.Dropdown(label="Flavor for the new job", choices=[], visible=False, elem_id="continue-flavor")
        plan = gr.Markdown(elem_id="continue-plan")
        resubmit = gr.Code(label="Its config to submit again (with the diagnosis' fix)", language="json",
                           visible=False, interactive=False)  # fmt: skip
        with gr.Row():
            confirm = gr.Button("Continue", variant="primary", visible=False, scale=0, min_width=220,
                                elem_id="continue-confirm")  # fmt: skip
            close = gr.Button("Not now", scale=0, min_width=120)
        result = gr.Markdown(elem_id="continue-result")
        watch = gr.Button("Watch it →", visible=False, variant="primary", scale=0, min_width=160,
                          elem_id="continue-watch")  # fmt: skip
    return ContinuePanel(links, stop, open_continue, box, flavor, plan, resubmit, confirm, close, result, watch,
                         gr.State(None))  # fmt: skip


def wire_continue_panel(panel: ContinuePanel, tab: Any) -> None:
    """Its events (`tab`: the My jobs tab, `jobs_tab.JobsTab`): shown again when another job opens or the open job's stage changes (the tab's refresh)."""
    hub, plan = concurrency("hub"), concurrency("plan")
    private = {"api_visibility": "private"}
    show = ui_errors(panel.on_show)
    for state in (tab.opened, tab.where):
        state.change(show, [tab.opened], panel.outputs, show_progress="hidden", **private, **hub)
    panel.open_continue.click(ui_errors(panel.on_plan), [tab.opened], panel.plan_outputs, **private, **plan)
    panel.flavor.input(ui_errors(panel.on_plan), [tab.opened, panel.flavor], panel.plan_outputs, **private, **plan)
    panel.confirm.click(ui_errors(panel.on_confirm), [tab.opened, panel.flavor],
                        [panel.result, panel.confirm, panel.watch, panel.new_job, panel.links], **private, **plan
                        ).success(ui_errors(tab.on_table), [tab.orgs, tab.only_app, tab.stages],
                                  [tab.table, tab.note, tab.timer], show_progress="hidden", **private, **hub)  # fmt: skip
    panel.close.click(lambda: gr.Column(visible=False), None, panel.box, **private)
    panel.watch.click(tab.open_job, [panel.new_job], tab.open_job_outputs, **private)
    panel.stop.click(ui_errors(panel.on_stop), [tab.opened], [panel.links, panel.stop], **private, **hub)
