"""The Gradio UI: thin tabs on top of the service layer. `build_app()` composes them."""

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


def _whoami_banner(profile: gr.OAuthProfile | None, oauth_token: gr.OAuthToken | None) -> str:
    if oauth_token is None or not getattr(oauth_token, "token", None):
        return "You are not signed in. **Sign in with Hugging Face** to inspect private data, train and see your jobs."
    name = getattr(profile, "username", None) or "you"
    return f"Signed in as **{name}**. Jobs you start run in your namespace and are billed to your account."


def build_app() -> gr.Blocks:
    """Build the Blocks (no network, no heavy imports)."""
    local_oauth.install()
    from . import export_tab, jobs_tab, train_tab

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="intro")
            gr.LoginButton(scale=0, min_width=200, size="md")
        banner = gr.Markdown(elem_id="signed-in")
        with gr.Tabs():
            with gr.Tab("Dataset", id="dataset"):
                gr.Markdown("Dataset inspection is coming here.")
            with gr.Tab("Estimate", id="estimate"):
                gr.Markdown("Memory, time and cost estimates are coming here.")
            with gr.Tab("Train", id="train"):
                train_tab.build_tab()
            with gr.Tab("My jobs", id="jobs"):
                jobs = jobs_tab.build_tab()
            with gr.Tab("GGUF export", id="gguf"):
                export_tab.build_tab()
        demo.load(_whoami_banner, None, banner, api_visibility="private")
        demo.load(jobs_tab.ui_errors(jobs_tab._table), [jobs.orgs, jobs.only_app], [jobs.table, jobs.note, jobs.timer],
                  api_visibility="private")  # fmt: skip
    return demo
