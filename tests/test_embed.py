"""The app embedded in another site's page, both ways the README shows: an iframe and Gradio's <gradio-app> web
component. In both, "Sign in" opens the app in its own tab (never the host page's /login/huggingface, never the
Hugging Face sign-in page inside a frame) and a note says what to do; at top level neither happens."""

from __future__ import annotations

import functools
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import gradio
import pytest

from tests.conftest import SCREENSHOTS
from tests.hub_standin import free_port


def _component_script(app_url: str) -> str:
    """What the web component's gradio.js loads, from the app itself (the README uses Gradio's CDN copy)."""
    loader = (Path(gradio.__file__).parent / "templates" / "frontend" / "gradio.js").read_text()
    (asset,) = re.findall(r"\./(assets/index-[\w-]+\.js)", loader)
    return f"{app_url}{asset}"


@pytest.fixture
def host_site(tmp_path, app_url):
    """Another site (another origin) with the two embeddings, each on its own page."""
    (tmp_path / "iframe.html").write_text(
        f'<h1>My blog</h1><iframe src="{app_url}" style="width:1200px;height:700px"></iframe>'
    )
    (tmp_path / "component.html").write_text(
        f'<h1>My blog</h1><script type="module" src="{_component_script(app_url)}"></script>'
        f'<gradio-app src="{app_url}"></gradio-app>'
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_at_top_level_sign_in_works_in_place_and_no_note_shows(hub, app_url, page, monkeypatch):
    monkeypatch.delenv("TRAINER_SPACE_LOCAL_TOKEN", raising=False)
    page.goto(app_url)
    page.get_by_role("button", name="Sign in with Hugging Face").click()
    page.get_by_label("Access token").wait_for()  # the app's own sign-in page, in this tab
    page.goto(app_url)
    page.get_by_role("button", name="Sign in with Hugging Face").wait_for()
    assert not page.locator("#embedded-note").is_visible()


@pytest.mark.parametrize("embedding", ["iframe", "component"])
def test_embedded_sign_in_opens_the_app_in_its_own_tab_and_says_so(hub, app_url, page, host_site, embedding):
    page.goto(f"{host_site}/{embedding}.html")
    root = page.frame_locator("iframe") if embedding == "iframe" else page
    note = root.locator("#embedded-note")
    note.get_by_text("signing in opens the app in its own tab").wait_for(timeout=30_000)
    link = root.get_by_role("link", name="Open the app in its own tab")
    assert link.get_attribute("href") == app_url and link.get_attribute("target") == "_blank"
    with page.expect_popup() as popup:
        root.get_by_role("button", name="Sign in with Hugging Face").click()
    popup.value.wait_for_load_state()
    assert popup.value.url == app_url
    page.wait_for_timeout(1000)  # Gradio's own handler would have navigated after 500 ms
    assert page.url == f"{host_site}/{embedding}.html"
    if embedding == "iframe":
        assert page.frames[1].url == app_url  # the frame did not go to the sign-in page either
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, f"embedded-{embedding}.png"))
