"""A person's path through the app in Chromium, with the checks every step of every journey must pass.

`Journey` wraps a Playwright page. After each answer (`settled()`), it fails on what a visitor would be stuck with
or would see as broken: a control left disabled, Gradio's update objects rendered as text (`__type__`), a page
wider than the screen (horizontal scroll), an uncaught page error. At the end, `finish()` also fails on a Python
traceback in the app's log. Screenshots go to test-output/ (looked at by a person, named by journey and width).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output"

# buttons a visitor cannot press on purpose at the moment of the check (none today: every disabled button is a bug)
_DISABLED_JS = """() => [...document.querySelectorAll('button:disabled')]
  .filter((b) => b.offsetParent !== null && b.getClientRects().length)
  .map((b) => (b.innerText || b.getAttribute('aria-label') || b.id || '?').trim())"""
_OVERFLOW_JS = """() => {
  const page = document.documentElement;
  return page.scrollWidth - page.clientWidth;
}"""
# a table whose columns do not fit scrolls sideways inside itself: on a desktop screen that is a clipped column
_CLIPPED_TABLES_JS = """() => [...document.querySelectorAll('.virtual-table-viewport')]
  .filter((e) => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map((e) => (e.closest('[id]') || {}).id || '?')"""
_BUSY_JS = """() => [...document.querySelectorAll('.progress-text, .eta-bar, .meta-text-center, .progress-level')]
  .some((e) => e.offsetParent !== null)"""


class Journey:
    """One visitor's journey at one screen width (`name` and `width` name its screenshots)."""

    def __init__(self, page, name: str, width: int, app_log: Callable[[], str] | None = None) -> None:
        self.page, self.name, self.width, self.app_log = page, name, width, app_log
        self.errors: list[str] = []
        self.shots = 0
        page.on("pageerror", lambda err: self.errors.append(f"{err} | {(err.stack or '')[:600]}"))

    # ------------------------------------------------------------------ navigation
    def visible(self, locator):
        """The first visible element of a locator (a tab's hidden copies are skipped)."""
        return locator.locator("visible=true").first

    def tab(self, name: str) -> None:
        """Open a tab by its label: every tab is a visible tab button at any width (never behind a menu)."""
        tab = self.page.get_by_role("tab", name=name, exact=True)
        tab.first.wait_for()
        assert tab.first.is_visible(), f"the {name} tab is not reachable without a menu at {self.width} px"
        tab.first.click()
        self.page.wait_for_timeout(300)

    def fill(self, label: str, value: str, *, exact: bool = True) -> None:
        self.visible(self.page.get_by_label(label, exact=exact)).fill(str(value))

    def click(self, name: str, *, exact: bool = True) -> None:
        assert not self.errors, f"page errors before clicking {name!r}: {self.errors}"
        self.visible(self.page.get_by_role("button", name=name, exact=exact)).click()

    def step(self, button: str, *, fill: dict[str, str] | None = None, expect: str | None = None,
             refused: str | None = None, timeout: float = 60) -> None:  # fmt: skip
        """One step of a visitor: fill fields (label -> value), press `button`, wait for the answer (`expect` on the
        page, or an error toast containing `refused`), then the checks of `settled`."""
        for label, value in (fill or {}).items():
            self.fill(label, value)
        self.click(button)
        if refused is not None:
            self.error_toast(refused, timeout=timeout)
        if expect is not None:
            self.wait_text(expect, timeout=timeout)
        self.settled()

    def wait_value(self, label: str, value: str, timeout: float = 30) -> None:
        """Wait until the field labelled `label` holds `value` (filled by the app, e.g. from another tab)."""
        box = self.visible(self.page.get_by_label(label, exact=True))
        deadline = time.monotonic() + timeout
        while box.input_value() != value:
            assert time.monotonic() < deadline, f"{label!r} holds {box.input_value()!r}, not {value!r}"
            self.page.wait_for_timeout(200)

    def wait_text(self, text: str | re.Pattern, timeout: float = 60) -> None:
        self.visible(self.page.get_by_text(text)).wait_for(timeout=timeout * 1000)

    def error_toast(self, contains: str, timeout: float = 60) -> str:
        """Wait for Gradio's error toast that contains `contains`, return its text and close it."""
        toast = self.visible(self.page.locator(".toast-body", has_text=contains))
        toast.wait_for(timeout=timeout * 1000)
        text = toast.inner_text()
        for close in self.page.locator(".toast-close").all():
            if close.is_visible():
                close.click()
        return text

    # ------------------------------------------------------------------ checks
    def settled(self, timeout: float = 30) -> None:
        """After an answer: nothing still busy, no control disabled, no update object shown, no horizontal scroll,
        no page error."""
        deadline = time.monotonic() + timeout
        disabled: list[str] = []
        while time.monotonic() < deadline:
            disabled = self.page.evaluate(_DISABLED_JS)
            if not disabled and not self.page.evaluate(_BUSY_JS):
                break
            self.page.wait_for_timeout(250)
        assert not disabled, f"controls left disabled after an answer ({self.name}, {self.width} px): {disabled}"
        text = self.page.inner_text("body")
        assert "__type__" not in text, f"an update object is shown as text: {text[text.index('__type__') - 80 :][:200]}"
        overflow = self.page.evaluate(_OVERFLOW_JS)
        assert overflow <= 1, f"the page scrolls sideways by {overflow} px at {self.width} px ({self.name})"
        if self.width >= 1200:
            clipped = self.page.evaluate(_CLIPPED_TABLES_JS)
            assert not clipped, f"tables with clipped columns at {self.width} px ({self.name}): {clipped}"
        assert not self.errors, f"page errors: {self.errors}"

    def shot(self, what: str) -> str:
        SCREENSHOTS.mkdir(exist_ok=True)
        self.shots += 1
        path = SCREENSHOTS / f"journey-{self.name}-{self.width}-{self.shots:02d}-{what}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return str(path)

    def finish(self) -> None:
        """The journey's end: the last checks, and no Python traceback in the app's log."""
        self.settled()
        if self.app_log is not None:
            log = self.app_log()
            assert "Traceback" not in log, (
                "a traceback in the app's log:\n" + log[log.index("Traceback") - 300 :][:3000]
            )


def app_log_reader(path: Path | str) -> Callable[[], str]:
    """A reader of an app's log file (the journeys of a subprocess app)."""
    return lambda: Path(path).read_text(errors="replace") if os.path.exists(path) else ""
