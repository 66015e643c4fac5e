"""My jobs' "Base vs tuned" block: a finished training job's prompts with the base and tuned answers side by side
(stacked on a phone, long answers wrapped), and the eval loss before -> after. A thin view over `jobs/compare.py`,
the service `/base_vs_tuned` answers from too."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..errors import InvalidInput, TrainerSpaceError
from ..hub.session import TERMINAL_STAGES
from ..jobs.compare import BaseVsTuned, base_vs_tuned
from .common import concurrency, reader_for, ui_errors

# side by side from 641 px, one above the other below; answers wrap anywhere (a long token never widens the page)
CSS = """
#base-vs-tuned .bvt-item {border: 1px solid var(--border-color-primary, #e5e7eb); border-radius: 8px;
  padding: 8px 10px; margin: 8px 0}
#base-vs-tuned .bvt-prompt {font-weight: 600; margin-bottom: 6px}
#base-vs-tuned .bvt-sides {display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 10px}
#base-vs-tuned .bvt-side {min-width: 0}
#base-vs-tuned .bvt-label {font-size: 12px; text-transform: uppercase; opacity: .7}
#base-vs-tuned .bvt-text, #base-vs-tuned .bvt-prompt {white-space: pre-wrap; overflow-wrap: anywhere;
  word-break: break-word}
#base-vs-tuned .bvt-loss {font-weight: 600}
@media (max-width: 640px) {#base-vs-tuned .bvt-sides {grid-template-columns: minmax(0, 1fr)}}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _side(label: str, text: str, stopped: bool | None, tokens: int | None) -> str:
    ending = ""
    if stopped is False:
        ending = f" <em>(did not stop within {tokens} new tokens)</em>" if tokens else " <em>(did not stop)</em>"
    return (f'<div class="bvt-side"><div class="bvt-label">{label}</div>'
            f'<div class="bvt-text">{_e(text) or "<em>(empty)</em>"}{ending}</div></div>')  # fmt: skip


def compare_html(answer: BaseVsTuned) -> str:
    """The block's content: the sentence, then each prompt with the two answers, then the notes."""
    from ..jobs.compare import loss_sentence

    parts = [f"<p>{_e(answer.message)}</p>"]
    if answer.status != "ready":
        return parts[0]
    loss = loss_sentence(answer.eval_loss)
    if loss:
        parts[0] = f"<p>{_e(answer.message.replace(loss, '').strip())}</p><p class='bvt-loss'>{_e(loss)}</p>"
    source = f" Dataset prompts: {_e(answer.source)}." if answer.source else ""
    parts.append(f"<p><small>Read from the {_e(answer.where or 'job')}.{source}</small></p>")
    for i, item in enumerate(answer.items, 1):
        mine = " <small>(your prompt)</small>" if item.origin == "yours" else ""
        sides = (_side("Base", item.base, item.base_stopped, answer.max_new_tokens)
                 + _side("Tuned", item.tuned, item.tuned_stopped, answer.max_new_tokens))  # fmt: skip
        parts.append(f'<div class="bvt-item"><div class="bvt-prompt">{i}.{mine} {_e(item.prompt)}</div>'
                     f'<div class="bvt-sides">{sides}</div></div>')  # fmt: skip
    parts += [f"<p><small>Note: {_e(n)}</small></p>" for n in answer.notes]
    return "\n".join(parts)


@dataclass
class CompareView:
    box: gr.Accordion
    content: gr.HTML
    shown: gr.State  # the id of the job whose comparison is shown (read once per job)

    def on_open(self, job_id: str, facts: dict[str, Any] | None, shown: str | None,
                oauth_token: gr.OAuthToken | None = None) -> dict[Any, Any]:  # fmt: skip
        """The block for the open job: hidden (no Hub call) unless it is a training job that has ended; read once."""
        if not job_id or not facts or facts.get("id") != job_id:
            return {self.box: gr.Accordion(visible=False), self.shown: None}
        if facts.get("kind") != "train" or facts.get("stage") not in TERMINAL_STAGES:
            return {self.box: gr.Accordion(visible=False), self.shown: None}
        if shown == job_id:
            return gr.skip()
        try:
            text = compare_html(base_vs_tuned(reader_for(oauth_token), job_id))
        except InvalidInput:
            return {self.box: gr.Accordion(visible=False), self.shown: job_id}
        except TrainerSpaceError as err:  # the Hub down, no access: said in the block, the panel stays usable
            text = f"<p>Base vs tuned could not be read: {_e(err)}</p>"
        return {self.box: gr.Accordion(visible=True), self.content: text, self.shown: job_id}

    def wire(self, *events: Any, inputs: list[Any]) -> None:
        """Read the comparison after each of `events` (a job opened, its panel refreshed once it ended); `inputs`:
        the open job's id and its facts (jobs_tab.job_facts)."""
        handler = ui_errors(self.on_open)
        for event in events:
            event.then(handler, [*inputs, self.shown], [self.box, self.content, self.shown],
                       api_visibility="private", show_progress="hidden", **concurrency("hub"))  # fmt: skip


def build_compare() -> CompareView:
    """The block, inside the job panel: hidden until a finished training job is open."""
    with gr.Accordion("Base vs tuned", open=True, visible=False, elem_id="base-vs-tuned") as box:
        content = gr.HTML(elem_id="base-vs-tuned-content")
    return CompareView(box=box, content=content, shown=gr.State(None))
