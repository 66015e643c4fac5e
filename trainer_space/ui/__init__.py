"""The Gradio UI: thin tabs on top of the service layer. `build_app()` composes them and carries choices across."""

from __future__ import annotations

import functools

import gradio as gr

from ..data.detect import mapped_fields
from ..data.inspection import DatasetInspection
from ..data.mapping import default_rewards
from ..jobs.backends.local import start_local_backend
from ..jobs.config import ExportConfig, TrainingConfig
from ..settings import get_settings
from . import api, cross_site, local_oauth
from .common import CONCURRENCY, DEFAULT_CONCURRENCY, concurrency, install_log_redaction, ui_errors
from .estimate_tab import CSS as _estimate_css
from .estimate_tab import EstimateTab
from .export_tab import ExportTab, quant_choices
from .jobs_tab import CSS as _jobs_css
from .train_tab import TrainTab

TITLE = "TRL Trainer"
INTRO = (
    "Fine-tune a language model with [TRL](https://huggingface.co/docs/trl) on "
    "[Hugging Face Jobs](https://huggingface.co/docs/huggingface_hub/guides/jobs), from your browser. "
    "Everything runs **with your own account**: sign in, check your dataset, see what it will cost, train, "
    "and export to GGUF. Jobs are billed to you by the minute; checkpoints are pushed to your Hub repos."
)
CSS = """
#intro p {margin: 0.2em 0}
@media (max-width: 720px) {.tab-container button {padding-left: 5px !important; padding-right: 5px !important}}
@media (max-width: 720px) {.json-node, .json-node * {overflow-wrap: anywhere !important; word-break: break-all}}
@media (max-width: 720px) {
  [id^="confirm-"] {flex-wrap: wrap !important}
  [id^="confirm-"] > *:first-child {flex: 1 1 100% !important; min-width: 100% !important}
  [id^="confirm-"] > button {flex: 1 1 40% !important; min-width: 0 !important}
}
#header {align-items: flex-start}
#job-details thead {display: none}
#embedded-note {display: none !important}
#embedded-note.shown {display: block !important}
#embedded-note p {margin: 0}
#embedded-note a {padding: 0}
#verdicts span.text {word-break: normal !important; overflow-wrap: normal !important}
#token-stats th, #token-stats td {word-break: keep-all !important; overflow-wrap: normal !important}
#token-stats table {display: block; overflow-x: auto}
@media (max-width: 720px) {#verdicts span.text {font-size: 11px}}
@media (max-width: 720px) {
  #header {flex-direction: column-reverse}
  #header > * {width: 100%}
  .form {flex-wrap: wrap}
  .form > div {min-width: 140px !important}
}
"""
# ---- the tabs' own CSS (issue 16: My jobs and Estimate on a phone) ----
CSS += _jobs_css + _estimate_css


# Embedded in another page (an iframe, or Gradio's <gradio-app> web component), Hugging Face's sign-in page cannot
# open in place (it refuses frames; the web component would send the host page to its own /login/huggingface), and
# browsers may keep the app's session cookie from embedded pages. So there, "Sign in" opens the app in its own tab
# and a note says so; the embed picks up the sign-in on reload only where the browser shares the app's cookies.
EMBEDDED_NOTE = (
    "<p>You are using the app inside another page: <b>signing in opens the app in its own tab</b> (Hugging Face's "
    'sign-in page cannot be shown here). <a id="open-app" target="_blank" rel="noopener">Open the app in its own '
    "tab</a> and work there; this copy picks up your sign-in after a reload only if your browser shares cookies "
    "with embedded pages.</p>"
)
_EMBEDDED_JS = """() => {
  const inFrame = window.self !== window.top;
  const component = window.__gradio_mode__ !== 'app' && document.querySelector('gradio-app');
  if (!inFrame && !component) return;
  if (inFrame) {  // a Space's own page on huggingface.co frames the app: Gradio's sign-in works there as it is
    const ancestors = window.location.ancestorOrigins;
    const top = ancestors && ancestors.length ? ancestors[ancestors.length - 1] : document.referrer;
    if (/^https:\\/\\/([a-z0-9-]+\\.)*huggingface\\.co(\\/|$)/.test(top || '')) return;
  }
  let appUrl = window.location.href;
  if (!inFrame) {  // <gradio-app src="https://..." | src="owner/space" | space="owner/space" | host="...">
    const src = component.getAttribute('src') || '';
    const space = component.getAttribute('space') || (/^[\\w.-]+\\/[\\w.-]+$/.test(src) ? src : '');
    const host = component.getAttribute('host');
    appUrl = space ? 'https://huggingface.co/spaces/' + space
      : src ? new URL(src, window.location.href).href : host ? 'https://' + host.replace(/^https?:\\/\\//, '') : '';
  }
  const note = document.getElementById('embedded-note');
  const link = document.getElementById('open-app');
  if (note) note.classList.add('shown');
  if (link) { if (appUrl) link.href = appUrl; else link.removeAttribute('href'); }
  document.addEventListener('click', (event) => {
    const button = event.target.closest('#login-button');
    if (!button || !/Sign in/.test(button.innerText)) return;  // "Logout" works in place
    event.stopImmediatePropagation();
    event.preventDefault();
    if (appUrl) window.open(appUrl, '_blank', 'noopener');
  }, true);
}"""


def queue_options() -> dict:
    """What `Blocks.queue()` takes (the Space, `scripts/run-app.sh` and the tests share it)."""
    return {"default_concurrency_limit": DEFAULT_CONCURRENCY}


def launch_options() -> dict:
    """What `launch()` needs besides host and port (the Space, `scripts/run-app.sh` and the tests share it).

    Threads: one per concurrency slot plus room for the default events. Sessions: Gradio keeps each session's
    state in memory (10,000 sessions by default, ~0.37 MiB each); `TRAINER_SPACE_SESSION_CAPACITY` bounds it.
    """
    threads = sum(CONCURRENCY.values()) + 4 * DEFAULT_CONCURRENCY
    return {
        "css": CSS, "mcp_server": True, "ssr_mode": False, "max_threads": threads,
        "state_session_capacity": get_settings().session_capacity,
    }  # fmt: skip


def _whoami_banner(profile: gr.OAuthProfile | None, oauth_token: gr.OAuthToken | None) -> str:
    local = get_settings().local_enabled
    if oauth_token is None or not getattr(oauth_token, "token", None):
        if local:
            return (
                "Not signed in: jobs run **on this machine** and keep their outputs here. **Sign in with Hugging "
                "Face** to read private data, push to the Hub or run on Hugging Face Jobs."
            )
        return "You are not signed in. **Sign in with Hugging Face** to inspect private data, train and see your jobs."
    name = getattr(profile, "username", None) or "you"
    jobs = "Jobs on Hugging Face run in your namespace and are billed to your account."
    return f"Signed in as **{name}**. {jobs}" + (" Jobs on this machine are free." if local else "")


def _carry_dataset(
    train: TrainTab, dataset: str, config: str, split: str, method: str, mapping, model: str, inspection=None
):
    """Dataset tab -> Train tab: the dataset, its split, the method, the mapping, the model, and GRPO's default
    rewards for that data (accuracy only when the mapped data has an answer column)."""
    f = train.fields
    mapping = mapping if isinstance(mapping, dict) else {}
    rewards = gr.skip()
    if isinstance(inspection, DatasetInspection):
        rewards = default_rewards(mapped_fields(inspection.sample, mapping or None))
    return {
        f["dataset"]: dataset or gr.skip(),
        f["dataset_config"]: "" if config in (None, "default") else config,
        f["split"]: split or "train",
        f["method"]: method or gr.skip(),
        f["mapping"]: mapping,
        f["model"]: model or gr.skip(),
        f["reward_funcs"]: rewards,
    }


# Estimate tab component -> the Train tab field it sets (the recommended flavor and timeout, and the settings the
# estimate was computed for)
_CARRIED_ESTIMATE = ("backend", "model", "method", "peft", "max_length", "num_train_epochs",
                     "per_device_train_batch_size", "gradient_accumulation_steps", "gradient_checkpointing")  # fmt: skip


def _carry_estimate(train: TrainTab, est: EstimateTab, values: dict):
    """Estimate tab -> Train tab: the recommended flavor, the timeout and the settings it was computed for."""
    if not values[est.recommended_flavor]:
        return gr.skip()
    out = {train.fields[name]: values[est.config_fields[name]] for name in _CARRIED_ESTIMATE}
    return out | {train.fields["flavor"]: values[est.recommended_flavor], train.fields["timeout"]: values[est.timeout]}


def _apply_fix(train: TrainTab, export: ExportTab, fix: dict | None):
    """My jobs diagnosis -> the job's tab: its whole config, with the proposed changes applied."""
    if not fix:
        return gr.skip()
    if fix.get("kind") == "export_gguf":
        return export.form_values(ExportConfig.from_dict(fix["config"]))
    return train.form_values(TrainingConfig.from_dict(fix["config"]))


def _hand_to_export(export: ExportTab, source: dict | None):
    """My jobs -> GGUF export: a completed training job's model (its output repo, or folder here), on its backend."""
    if not source:
        return gr.skip()
    cfg = ExportConfig.from_dict(source)
    values = export.form_values(cfg)
    return values | {export.quants: gr.update(**quant_choices(cfg.resolved_backend, values[export.quants]))}


def build_app() -> gr.Blocks:
    """Build the Blocks (no network, no heavy imports)."""
    install_log_redaction()
    start_local_backend()  # off Spaces: a job the last run left running is stopped now, not at the first page
    local_oauth.install()
    cross_site.install()
    from . import dataset_tab, estimate_tab, export_tab, jobs_tab, train_tab

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        with gr.Row(equal_height=False, elem_id="header"):
            gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="intro")
            gr.LoginButton(scale=0, min_width=270, size="md", elem_id="login-button")
        banner = gr.Markdown(elem_id="signed-in")
        gr.HTML(EMBEDDED_NOTE, padding=False, elem_id="embedded-note")
        with gr.Tabs() as tabs:
            with gr.Tab("Dataset", id="dataset"):
                data = dataset_tab.build_tab()
            with gr.Tab("Estimate", id="estimate"):
                est = estimate_tab.build_tab(dataset_tab=data)
            with gr.Tab("Train", id="train"):
                train = train_tab.build_tab()
            with gr.Tab("My jobs", id="jobs") as jobs_ui:
                jobs = jobs_tab.build_tab()
            with gr.Tab("GGUF export", id="gguf"):
                export = export_tab.build_tab()
        carried = [data.dataset, data.config, data.split, data.method, data.mapping_json, data.model, data.inspection]
        gr.on(
            [data.inspection.change, data.mapping_json.change],
            functools.partial(_carry_dataset, train),
            carried,
            [
                train.fields[k]
                for k in ("dataset", "dataset_config", "split", "method", "mapping", "model", "reward_funcs")
            ],
            api_visibility="private",
            show_progress="hidden",
        )
        gr.on(
            [est.recommended_flavor.change],
            functools.partial(_carry_estimate, train, est),
            {est.recommended_flavor, est.timeout, *est.config_fields.values()},
            [train.fields[k] for k in (*_CARRIED_ESTIMATE, "flavor", "timeout")],
            api_visibility="private",
            show_progress="hidden",
        )
        jobs.action.click(
            ui_errors(functools.partial(_apply_fix, train, export)),
            [jobs.fix],
            [*train.fields.values(), *export.fields.values()],
            api_visibility="private",
        )
        # Train and GGUF export -> My jobs: the job just created, open in its tab
        for source in (train, export):
            source.watch_button.click(
                lambda: gr.Tabs(selected="jobs"), None, tabs, api_visibility="private", queue=False,
                show_progress="hidden",
            ).then(jobs.open_job, [source.job_id], jobs.open_job_outputs, api_visibility="private",
                   show_progress="hidden")  # fmt: skip
        # My jobs -> GGUF export: a completed training job's model
        jobs.export_button.click(
            lambda: gr.Tabs(selected="gguf"), None, tabs, api_visibility="private", queue=False, show_progress="hidden"
        ).then(ui_errors(functools.partial(_hand_to_export, export)), [jobs.export_source],
               list(export.fields.values()), api_visibility="private", show_progress="hidden")  # fmt: skip
        api.register()
        demo.load(_whoami_banner, None, banner, api_visibility="private")
        demo.load(None, None, None, js=_EMBEDDED_JS, api_visibility="private")
        # the jobs table loads with the page, again whenever the tab is opened, and itself while jobs run
        gr.on(
            [demo.load, jobs_ui.select],
            ui_errors(jobs.on_table_load),
            [jobs.orgs, jobs.only_app],
            [jobs.table, jobs.note, jobs.timer],
            api_visibility="private",
            show_progress="hidden",
            **concurrency("hub"),
        )
    endpoints = {e.__name__ for e in api.ENDPOINTS}
    for fn in demo.fns.values():  # Gradio's own events (the LoginButton's status check) are not tools or API
        if fn.api_visibility == "public" and fn.name not in endpoints:
            fn.api_visibility = "private"
    return demo
