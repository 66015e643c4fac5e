"""Another site's page never acts as the signed-in visitor (its requests lose the session cookie), and a token the
caller names (Authorization: Bearer) wins over a session it happens to carry."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import httpx
import pytest


@pytest.fixture
def alice_cookie(hub, app_url, monkeypatch) -> str:
    """alice's session cookie, from the app's own sign-in form."""
    monkeypatch.delenv("TRAINER_SPACE_LOCAL_TOKEN", raising=False)
    answer = httpx.post(f"{app_url}login/huggingface", data={"token": hub.alice}, follow_redirects=False)
    assert answer.status_code == 303
    return answer.headers["set-cookie"].split(";", 1)[0]


def _list_jobs_user(app_url: str, headers: dict[str, str]) -> str:
    with httpx.Client(base_url=app_url, headers=headers, timeout=30) as client:
        event = client.post("gradio_api/call/list_jobs", json={"data": ["", False, ""]}).json()["event_id"]
        stream = client.get(f"gradio_api/call/list_jobs/{event}").text
    data = next(line for line in stream.splitlines() if line.startswith("data:"))
    return json.loads(data[5:])[0]["user"]


def _mcp_list_jobs_user(app_url: str, headers: dict[str, str]) -> str:
    h = {**headers, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-03-26",
            "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}  # fmt: skip
    with httpx.Client(base_url=app_url, timeout=30) as client:
        answer = client.post("gradio_api/mcp/", json=init, headers=h)
        if sid := answer.headers.get("mcp-session-id"):
            h["mcp-session-id"] = sid
        client.post("gradio_api/mcp/", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_jobs", "arguments": {}}}
        text = client.post("gradio_api/mcp/", json=call, headers=h).text
    data = json.loads(next(line for line in text.splitlines() if line.startswith("data:"))[5:])
    return json.loads(data["result"]["content"][0]["text"])["user"]


def test_a_page_of_another_site_calls_the_api_and_mcp_as_nobody(hub, app_url, alice_cookie):
    ours = f"http://{urlparse(app_url).netloc}"
    assert _list_jobs_user(app_url, {"Cookie": alice_cookie, "Origin": ours}) == "alice"  # the app's own page
    assert _list_jobs_user(app_url, {"Cookie": alice_cookie}) == "alice"  # a program sending its cookie
    assert _list_jobs_user(app_url, {"Cookie": alice_cookie, "Origin": "https://evil.example"}) == "local"
    assert _mcp_list_jobs_user(app_url, {"Cookie": alice_cookie, "Origin": "https://evil.example"}) == "local"
    space = {"Host": "someone-trl-trainer.hf.space", "Cookie": alice_cookie}  # as on a Space, behind its proxy
    assert _list_jobs_user(app_url, {**space, "Origin": "https://evil.example"}) == "local"
    assert _list_jobs_user(app_url, {**space, "Origin": "https://someone-trl-trainer.hf.space"}) == "alice"


def test_a_bearer_token_wins_over_a_session_the_caller_carries(hub, app_url, alice_cookie):
    headers = {"Cookie": alice_cookie, "Authorization": f"Bearer {hub.bob}"}
    assert _mcp_list_jobs_user(app_url, headers) == "bob"
    assert _list_jobs_user(app_url, headers) == "bob"
