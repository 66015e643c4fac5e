"""The Train tab on a slow Hub, as a visitor sees it: named steps while Preview and Submit run, the buttons
disabled meanwhile, a way to the created job, and the exact template to download beside the reproduce commands."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import SCREENSHOTS, add_qwen, sign_in
from tests.test_jobs_tab import open_tab

ROWS = [
    {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
    for i in range(20)
]
TEMPLATE = Path(__file__).resolve().parents[1] / "job_templates" / "train.py"


def _visible(locator):
    return locator.locator("visible=true").first


@pytest.mark.parametrize("width", [1280, 420])
def test_preview_and_submit_show_their_steps_disable_the_buttons_and_lead_to_the_job(
    hub, app_url, browser, tokenizer_files, width
):
    context = browser.new_context(viewport={"width": width, "height": 950})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        _the_train_tab(hub, app_url, page, tokenizer_files, width)
    finally:
        context.close()


def _the_train_tab(hub, app_url, page, tokenizer_files, width: int) -> None:
    model = f"alice/slow-model-{width}"  # its own id: no earlier test's cache answers for it
    add_qwen(hub, tokenizer_files, repo_id=model)
    hub.add_dataset("alice/chat", {"train": ROWS}, num_rows={"train": 2000})
    hub.plan_next_job(lines=["training"] * 200, line_interval_s=0.5)
    sign_in(page, app_url)
    open_tab(page, "Train")
    _visible(page.get_by_label("Model (Hub id, or a model folder on this machine)")).fill(model)
    _visible(page.get_by_label("Dataset", exact=True)).fill("alice/chat")
    _visible(page.get_by_label("Hardware")).fill("a10g-small")
    hub.fault("/api/models", mode="delay", delay_s=1.5, times=4)  # a slow Hub: each model read takes 1.5 s
    preview = _visible(page.get_by_role("button", name="Preview"))
    preview.click()
    # the step the action is at, not a bare spinner
    page.wait_for_function("() => document.body.innerText.includes('Reading the model…')")
    assert preview.is_disabled() and _visible(page.get_by_role("button", name="Submit training job")).is_disabled()
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, f"train-preview-in-progress-{width}.png"), full_page=True)
    try:
        _visible(page.get_by_text("Ready to submit")).wait_for(timeout=60_000)
    except Exception as err:  # say what the visitor saw instead
        page.screenshot(path=os.path.join(SCREENSHOTS, f"train-preview-not-ready-{width}.png"), full_page=True)
        raise AssertionError(f"no 'Ready to submit'; the page said:\n{page.inner_text('body')[:4000]}") from err
    page.wait_for_function("() => [...document.querySelectorAll('button')].some(b => b.innerText === 'Preview' "
                           "&& !b.disabled)")  # fmt: skip
    assert _visible(page.get_by_role("button", name="Watch it in My jobs →")).count() == 0  # no job yet

    _visible(page.get_by_role("button", name="Submit training job")).click()
    _visible(page.get_by_role("button", name="Yes, start it")).click()
    _visible(page.get_by_text("Submitted:")).wait_for(timeout=60_000)
    (job,) = hub.jobs.values()
    watch = _visible(page.get_by_role("button", name="Watch it in My jobs →"))
    watch.wait_for()
    page.screenshot(path=os.path.join(SCREENSHOTS, f"train-submitted-{width}.png"), full_page=True)

    page.get_by_text("Reproduce without the app").first.click()
    assert hashlib.sha256(TEMPLATE.read_bytes()).hexdigest() in page.content()
    with page.expect_download() as download:
        _visible(page.get_by_role("button", name="Download train.py")).click()
    assert Path(download.value.path()).read_bytes() == TEMPLATE.read_bytes()

    watch.click()  # My jobs opens, on this job
    _visible(page.locator("#job-details")).wait_for()  # My jobs is the open tab
    _visible(page.locator("#job-details").get_by_text(job.id)).wait_for()
    _visible(page.locator("#job-details").get_by_text("RUNNING", exact=True)).wait_for()
    page.screenshot(path=os.path.join(SCREENSHOTS, f"train-watch-in-my-jobs-{width}.png"), full_page=True)
