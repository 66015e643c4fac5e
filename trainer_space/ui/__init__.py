"""The Gradio UI: thin tabs on top of the service layer. `build_app()` composes them and carries choices across."""

from __future__ import annotations

import gradio as gr

from . import local_oauth

TITLE = "TRL Trainer"
INTRO = (
    "Fine-tune a language model with [TRL](https://huggingface.co/docs/trl) on "
    "[Hugging Face Jobs](https://huggingface.co/docs/huggingface_hub/guides/jobs), from your browser. "
    "Everything runs **with your own account**: sign in, check your dataset, see what it will cost, train, "
    "and export to GGUF. Jobs are billed to you by the minute; checkpoints are pushed to your Hub repos."
)
CSS = """
#intro p {margin: 0.2em 0}
#header {align-items: flex-start}
#job-details thead {display: none}
#embedded-note {display: none !important}
#embedded-note.shown {display: block !important}
#embedded-note p {margin: 0}
#embedded-note a {padding: 0}
@media (max-width: 720px) {
  #header {flex-direction: column-reverse}
  #header > * {width: 100%}
  .form {flex-wrap: wrap}
  .form > div {min-width: 140px !important}
}
"""


# Embedded in a frame, sign-in is in the hands of the browser's third-party cookie rules (Safari and others block
# the Space's session cookie there): the note appears only inside a frame and opens the app in its own tab.
EMBEDDED_NOTE = (
    "<p>You are using the app inside another page. If signing in does not stick there (your browser blocks "
    'cookies in embedded frames), <a id="open-app" target="_blank" rel="noopener">open the app in its own tab</a>.'
    "</p>"
)
_SHOW_EMBEDDED_NOTE_JS = """() => {
  if (window.self === window.top) return;
  const note = document.getElementById('embedded-note');
  const link = document.getElementById('open-app');
  if (note && link) { link.href = window.location.href; note.classList.add('shown'); }
}"""


def launch_options() -> dict:
    """What `launch()` needs besides host and port (the Space, `scripts/run-app.sh` and the tests share it)."""
    return {"css": CSS, "mcp_server": True, "ssr_mode": False}


def _whoami_banner(profile: gr.OAuthProfile | None, oauth_token: gr.OAuthToken | None) -> str:
    if oauth_token is None or not getattr(oauth_token, "token", None):
        return "You are not signed in. **Sign in with Hugging Face** to inspect private data, train and see your jobs."
    name = getattr(profile, "username", None) or "you"
    return f"Signed in as **{name}**. Jobs you start run in your namespace and are billed to your account."


def _carry_dataset(dataset: str, config: str, split: str, method: str, mapping, model: str):
    """Dataset tab -> Train tab: the dataset, its split, the method, the mapping and the model."""
    return (
        dataset or gr.skip(),
        "" if config in (None, "default") else config,
        split or "train",
        method or gr.skip(),
        mapping if isinstance(mapping, dict) else {},
        model or gr.skip(),
    )


def _carry_estimate(flavor: str, timeout: str, model, method, peft, max_length, epochs, batch, accum, ckpt):
    """Estimate tab -> Train tab: the recommended flavor, the timeout and the settings it was computed for."""
    if not flavor:
        return tuple(gr.skip() for _ in range(10))
    return flavor, timeout or gr.skip(), model, method, peft, max_length, epochs, batch, accum, ckpt


FIX_FIELDS = ("model", "method", "peft", "per_device_train_batch_size", "gradient_accumulation_steps",
              "gradient_checkpointing", "max_length", "flavor", "timeout", "output_repo", "resume_from_hub")  # fmt: skip


def _apply_fix(fix: dict | None):
    """My jobs diagnosis -> Train tab: the failed job's settings with the proposed changes applied."""
    if not fix:
        return tuple(gr.skip() for _ in FIX_FIELDS)
    from ..jobspec import format_timeout

    job, changes = fix.get("job") or {}, fix.get("changes") or {}
    values = {
        "model": job.get("model"),
        "method": job.get("method"),
        "flavor": changes.get("flavor") or job.get("flavor"),
        "output_repo": changes.get("output_repo") or job.get("output_repo"),
        **{k: changes.get(k) for k in FIX_FIELDS if k in changes and k not in ("flavor", "output_repo")},
    }
    if changes.get("timeout_s"):
        values["timeout"] = format_timeout(int(changes["timeout_s"]))
    return tuple(gr.skip() if values.get(k) in (None, "") else values[k] for k in FIX_FIELDS)


def build_app() -> gr.Blocks:
    """Build the Blocks (no network, no heavy imports)."""
    local_oauth.install()
    from . import dataset_tab, estimate_tab, export_tab, jobs_tab, train_tab

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        with gr.Row(equal_height=False, elem_id="header"):
            gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="intro")
            gr.LoginButton(scale=0, min_width=270, size="md")
        banner = gr.Markdown(elem_id="signed-in")
        gr.HTML(EMBEDDED_NOTE, padding=False, elem_id="embedded-note")
        with gr.Tabs():
            with gr.Tab("Dataset", id="dataset"):
                data = dataset_tab.build_tab()
            with gr.Tab("Estimate", id="estimate"):
                est = estimate_tab.build_tab(dataset_tab=data)
            with gr.Tab("Train", id="train"):
                train = train_tab.build_tab(dataset_tab=data, estimate_tab=est)
            with gr.Tab("My jobs", id="jobs") as jobs_ui:
                jobs = jobs_tab.build_tab()
            with gr.Tab("GGUF export", id="gguf"):
                export_tab.build_tab()
        gr.on(
            [data.inspection.change, data.mapping_json.change],
            _carry_dataset,
            [data.dataset, data.config, data.split, data.method, data.mapping_json, data.model],
            [train.dataset, train.dataset_config, train.split, train.method, train.mapping, train.model],
            api_visibility="private",
            show_progress="hidden",
        )
        gr.on(
            [est.recommended_flavor.change],
            _carry_estimate,
            [est.recommended_flavor, est.timeout, est.model, est.method, est.peft, est.max_length, est.epochs,
             est.batch, est.grad_accum, est.grad_ckpt],
            [train.flavor, train.timeout, train.model, train.method, train.peft, train.max_length, train.epochs,
             train.batch, train.accum, train.grad_ckpt],
            api_visibility="private",
            show_progress="hidden",
        )  # fmt: skip
        jobs.action.click(
            _apply_fix,
            [jobs.fix],
            [train.model, train.method, train.peft, train.batch, train.accum, train.grad_ckpt, train.max_length,
             train.flavor, train.timeout, train.output_repo, train.resume],
            api_visibility="private",
        )  # fmt: skip
        demo.load(_whoami_banner, None, banner, api_visibility="private")
        demo.load(None, None, None, js=_SHOW_EMBEDDED_NOTE_JS, api_visibility="private")
        # the jobs table loads with the page, again whenever the tab is opened, and itself while jobs run
        gr.on(
            [demo.load, jobs_ui.select],
            jobs_tab.ui_errors(jobs_tab._table),
            [jobs.orgs, jobs.only_app],
            [jobs.table, jobs.note, jobs.timer],
            api_visibility="private",
            show_progress="hidden",
        )
    return demo
