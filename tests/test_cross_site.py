"""Another site's page never acts as the signed-in visitor (its requests lose the session cookie), and a token the
caller names (Authorization: Bearer) wins over a session it happens to carry."""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
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
    elsewhere = {**headers, "Origin": "https://agent.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
    assert _mcp_list_jobs_user(app_url, elsewhere) == "bob"  # a page or agent elsewhere with its own token
    assert _list_jobs_user(app_url, elsewhere) == "bob"


EVIL = "http://evil.example"


def _call(app_url: str, headers: dict[str, str]) -> httpx.Response:
    """POST /gradio_api/call/list_jobs as a page would (the answer's CORS headers are what a browser reads)."""
    with httpx.Client(base_url=app_url, timeout=30) as client:
        return client.post("gradio_api/call/list_jobs", json={"data": ["", False, ""]}, headers=headers)


@pytest.mark.parametrize("forwarded", ["evil.example", "{ours}, evil.example", "{ours}"])
def test_forwarded_headers_never_make_another_site_the_app(hub, app_url, alice_cookie, forwarded):
    """A forged X-Forwarded-Host (or X-Forwarded-Proto, Forwarded) names another site, or the app itself: a request
    whose Origin is another site still acts as nobody, through the API and MCP."""
    ours = urlparse(app_url).netloc
    forged = {"Cookie": alice_cookie, "Origin": EVIL, "X-Forwarded-Host": forwarded.format(ours=ours),
              "X-Forwarded-Proto": "http", "Forwarded": "host=evil.example;proto=http"}  # fmt: skip
    assert _list_jobs_user(app_url, forged) == "local"
    assert _mcp_list_jobs_user(app_url, forged) == "local"
    space = {**forged, "Host": "someone-trl-trainer.hf.space"}  # as on a Space, behind its proxy
    assert _list_jobs_user(app_url, space) == "local"


def test_cors_never_allows_credentials_for_another_origin(hub, app_url, alice_cookie):
    """Neither the preflight nor the answer tells a browser that another origin may read a credentialed call."""
    preflight = {"Origin": EVIL, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-forwarded-host"}  # fmt: skip
    for host in (None, "someone-trl-trainer.hf.space", "127.0.0.1"):
        headers = {**preflight, **({"Host": host} if host else {})}
        with httpx.Client(base_url=app_url, timeout=30) as client:
            answer = client.options("gradio_api/call/list_jobs", headers=headers)
        assert answer.headers.get("access-control-allow-credentials") is None, (host, dict(answer.headers))
        actual = _call(app_url, {"Cookie": alice_cookie, "Origin": EVIL, "X-Forwarded-Host": "evil.example",
                                 **({"Host": host} if host else {})})  # fmt: skip
        assert actual.headers.get("access-control-allow-credentials") is None, (host, dict(actual.headers))
    own = _call(app_url, {"Cookie": alice_cookie, "Origin": f"http://{urlparse(app_url).netloc}"})
    assert own.status_code == 200  # the app's own page is unaffected


def test_what_a_browser_cannot_forge_decides(hub, app_url, alice_cookie, monkeypatch):
    """Sec-Fetch-Site (set by the browser) of another site acts as nobody even without an Origin; a navigation
    (the OAuth callback) keeps its session; the configured public origin and SPACE_HOST are the app's own."""
    from trainer_space import settings
    from trainer_space.settings import get_settings
    from trainer_space.ui import cross_site

    cookie = {"Cookie": alice_cookie}
    assert _list_jobs_user(app_url, {**cookie, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}) == "local"
    assert _list_jobs_user(app_url, {**cookie, "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}) == "local"
    assert _list_jobs_user(app_url, {**cookie, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}) == "alice"
    assert not cross_site.from_another_site([(b"sec-fetch-site", b"cross-site"), (b"sec-fetch-mode", b"navigate")])
    public = {**cookie, "Origin": "https://trainer.example.org"}  # behind a proxy that rewrites Host
    assert _list_jobs_user(app_url, public) == "local"
    monkeypatch.setenv("TRAINER_SPACE_PUBLIC_ORIGIN", "https://Trainer.example.org/, https://other.example:8443")
    configured = dataclasses.replace(get_settings(), public_origins=settings.origins("TRAINER_SPACE_PUBLIC_ORIGIN"))
    assert configured.public_origins == ("https://trainer.example.org", "https://other.example:8443")
    monkeypatch.setattr(cross_site, "get_settings", lambda: configured)
    assert _list_jobs_user(app_url, public) == "alice"
    assert _list_jobs_user(app_url, {**public, "Origin": "http://trainer.example.org"}) == "local"  # not its scheme
    monkeypatch.setenv("SPACE_HOST", "someone-trl-trainer.hf.space")
    assert _list_jobs_user(app_url, {**cookie, "Origin": "https://someone-trl-trainer.hf.space"}) == "alice"
    for bad in ("trainer.example.org", "https://trainer.example.org/path", "ftp://x.example"):
        monkeypatch.setenv("TRAINER_SPACE_PUBLIC_ORIGIN", bad)
        with pytest.raises(ValueError, match="TRAINER_SPACE_PUBLIC_ORIGIN must be origins"):
            settings.origins("TRAINER_SPACE_PUBLIC_ORIGIN")


@pytest.fixture
def evil_site(tmp_path, app_url):
    """Another site's page that calls the app with the visitor's cookies (credentials: include), forging
    X-Forwarded-Host with its own host, and tells what it could read."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from tests.hub_standin import free_port

    (tmp_path / "evil.html").write_text(
        """<script>
        async function attack(app) {
          const host = location.host;
          try {
            const posted = await fetch(app + "gradio_api/call/list_jobs", {method: "POST", credentials: "include",
              headers: {"Content-Type": "application/json", "X-Forwarded-Host": host},
              body: JSON.stringify({data: ["", false, ""]})});
            const id = (await posted.json()).event_id;
            const stream = await fetch(app + "gradio_api/call/list_jobs/" + id, {credentials: "include",
              headers: {"X-Forwarded-Host": host}});
            return "read: " + await stream.text();
          } catch (err) { return "refused: " + err; }
        }
        async function blind(app) {  // a simple request, no preflight: the browser sends it, the page reads nothing
          await fetch(app + "gradio_api/call/list_jobs", {method: "POST", mode: "no-cors", credentials: "include",
            headers: {"Content-Type": "text/plain"}, body: JSON.stringify({data: ["", false, ""]})});
          return "sent";
        }
        </script>"""
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])  # another site; the same site on another port
def test_a_real_browser_page_on_another_origin_cannot_act_as_the_visitor(hub, app_url, page, evil_site, host):
    from tests.conftest import sign_in

    sign_in(page, app_url)  # alice is signed in, in this browser
    page.goto(f"http://{host}:{evil_site}/evil.html")
    before = len(hub.requests)
    said = page.evaluate("app => attack(app)", app_url)
    assert "alice" not in said, said
    assert page.evaluate("app => blind(app)", app_url) == "sent"
    page.wait_for_timeout(1500)
    as_alice = [r for r in hub.requests[before:] if r.token == hub.alice]
    assert as_alice == [], [r.path for r in as_alice]  # nothing was done with alice's token
