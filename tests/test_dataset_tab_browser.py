"""The Dataset tab as a visitor sees it, at 1280 and 420 px: honest empty states, the verdict READY once the mapping
is in place, the mapping editor folded away for READY data, the raw example when the tokenizer cannot be loaded,
and nothing stale from an earlier inspection."""

from __future__ import annotations

import os

import pytest

from tests.conftest import SCREENSHOTS

ALPACA = [{"instruction": f"Name a colour number {i}.", "input": "", "output": f"Blue {i}."} for i in range(12)]
CHAT = [
    {"messages": [{"role": "user", "content": f"hello {i}"}, {"role": "assistant", "content": f"hi {i}"}]}
    for i in range(12)
]


def _visible(locator):
    return locator.locator("visible=true")


@pytest.mark.parametrize("width", [1280, 420])
def test_the_dataset_tab_from_empty_to_mapped_to_ready(hub, app_url, browser, width):
    hub.add_dataset("alice/alpaca-shape", {"train": ALPACA})
    hub.add_dataset("alice/chat-shape", {"train": CHAT})
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(app_url)
        page.get_by_text("press Inspect").wait_for()
        assert _visible(page.locator("#verdicts")).count() == 0  # no empty table with headers "1 2 3"
        assert _visible(page.get_by_text("First rows")).count() == 0
        assert _visible(page.get_by_text("Mapping passed to the training job")).count() == 0

        page.get_by_label("Dataset", exact=True).fill("alice/alpaca-shape")
        page.get_by_role("button", name="Inspect", exact=True).click()
        verdicts = page.locator("#verdicts")
        _visible(verdicts.get_by_text("READY with the mapping below")).first.wait_for()
        assert _visible(page.get_by_text("Mapping passed to the training job")).count() == 1  # the editor is open
        page.get_by_label("Model (tokenizer, chat template)").fill("nobody/no-such-model")
        page.get_by_role("button", name="Show example & count tokens").click()
        page.get_by_text("The raw example is shown").wait_for()
        shown = page.get_by_label("First example as the model sees it").input_value()
        assert "Name a colour number 0." in shown
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOTS, f"dataset-mapped-{width}.png"), full_page=True)

        page.get_by_label("Dataset", exact=True).fill("alice/chat-shape")
        page.get_by_role("button", name="Inspect", exact=True).click()
        page.get_by_text("none needed (open to change it)").wait_for()
        assert _visible(page.get_by_text("Mapping passed to the training job")).count() == 0  # folded away
        assert _visible(page.get_by_text("The raw example is shown")).count() == 0  # nothing stale
        assert _visible(page.get_by_label("First example as the model sees it")).count() == 0
        assert _visible(page.locator(".error")).count() == 0
        page.screenshot(path=os.path.join(SCREENSHOTS, f"dataset-ready-{width}.png"), full_page=True)
    finally:
        context.close()
