"""Test set-up: a Hub stand-in on 127.0.0.1, started before anything imports huggingface_hub.

`HF_ENDPOINT` is read once, when huggingface_hub is imported (gradio imports it too), so it is
set here at collection time, before any test module imports the app.
"""

from __future__ import annotations

import os
import sys
import tempfile

from tests.hub_standin import HubStandIn, free_port
from tests.job_logs import record_template_runs
from tests.leakscan import LEAKS, LIVE_STATES, MACHINE_TOKEN, LogScanner, scan_response

_PORT = free_port()
_ISOLATED_HOME = tempfile.mkdtemp(prefix="trainer-space-tests-")
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{_PORT}"
os.environ["TRAINER_SPACE_VIEWER_URL"] = f"http://127.0.0.1:{_PORT}/datasets-server"
os.environ["HF_HOME"] = os.path.join(_ISOLATED_HOME, "hf-home")
os.environ["TRACKIO_DIR"] = os.path.join(_ISOLATED_HOME, "trackio")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Local backend: jobs, logs and outputs under a throw-away folder, run with this very Python (which has the
# templates' dependencies: no environment is prepared). The suite's default backend is Hugging Face Jobs; the
# Local tests ask for "local" explicitly.
os.environ["TRAINER_SPACE_HOME"] = os.path.join(_ISOLATED_HOME, "trainer-space")
os.environ["TRAINER_SPACE_LOCAL_PYTHON"] = sys.executable
os.environ["TRAINER_SPACE_DEFAULT_BACKEND"] = "hf-jobs"
# a short retry budget: a Hub stand-in told to keep failing answers within seconds (the fault tests set their own)
os.environ["TRAINER_SPACE_RETRY_BUDGET"] = "1"
# The Space's own token must never be used for a visitor's action. The whole suite runs with one, as HF_TOKEN and
# as a saved login (the stand-in knows it, so a leak would even "work"): the leak scan fails any test that sends it.
os.environ.pop("HUGGING_FACE_HUB_TOKEN", None)
os.environ["HF_TOKEN"] = MACHINE_TOKEN
os.makedirs(os.environ["HF_HOME"], exist_ok=True)
with open(os.path.join(os.environ["HF_HOME"], "token"), "w") as _f:
    _f.write(MACHINE_TOKEN)

import logging  # noqa: E402

import pytest  # noqa: E402

_STANDIN = HubStandIn(port=_PORT)
LIVE_STATES.append(_STANDIN.state)
logging.getLogger().addHandler(LogScanner())


def _scan_client_responses() -> None:
    """Every API answer read through gradio_client in the suite (and every error it raises) is scanned."""
    from gradio_client import Client

    predict = Client.predict

    def scanned(self, *args, **kwargs):
        try:
            result = predict(self, *args, **kwargs)
        except Exception as err:
            scan_response(str(err))
            raise
        scan_response(result)
        return result

    Client.predict = scanned


_scan_client_responses()
record_template_runs()  # every successful job's log feeds the diagnosis' precision test (tests/job_logs.py)


def pytest_collection_modifyitems(items) -> None:
    """Tests marked `after_jobs` read what every other test left (the logs of successful jobs): they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_jobs") is not None)


@pytest.fixture(scope="session")
def hub_server() -> HubStandIn:
    _STANDIN.start()
    yield _STANDIN
    _STANDIN.stop()


@pytest.fixture
def hub(hub_server: HubStandIn, request) -> HubStandIn:
    """A fresh Hub stand-in state per test, with users alice and bob (and the machine's own token, which nothing
    may send). After the test, everything the stand-in received is scanned for tokens out of place."""
    from trainer_space.data.tokens import TOKENIZER_CACHE
    from trainer_space.estimate.model_facts import FACTS_CACHE
    from trainer_space.hub import hardware
    from trainer_space.hub.session import WHOAMI_CACHE
    from trainer_space.jobs.submission import forget_pending

    hub_server.reset()
    forget_pending()  # the app's memory of the previous test's Hub: its unconfirmed and just-created jobs
    # and what it read from that Hub: a hardware list that failed (the built-in table, no price, for a minute), the
    # visitor's account, a model's facts, a tokenizer. Each test starts from what its own Hub answers.
    hardware.clear_cache()
    for cache in (WHOAMI_CACHE, FACTS_CACHE, TOKENIZER_CACHE):
        cache.clear()
    hub_server.add_user("space-owner", token=MACHINE_TOKEN)
    yield hub_server
    leaks = LEAKS.scan_hub(hub_server, request.node.nodeid)
    if leaks:
        pytest.fail("token leak:\n" + "\n".join(leaks), pytrace=False)


@pytest.fixture(scope="session")
def tokenizer_files(tmp_path_factory) -> dict[str, bytes]:
    """The tiny test tokenizer (ChatML template), standing in for Qwen's own."""
    from tests.tiny_model import build_tiny_tokenizer

    path = tmp_path_factory.mktemp("tokenizer")
    build_tiny_tokenizer(path)
    return {p.name: p.read_bytes() for p in path.iterdir()}


def add_qwen(hub: HubStandIn, tokenizer_files: dict[str, bytes], repo_id: str = "Qwen/Qwen2.5-0.5B") -> None:
    """Qwen2.5-0.5B as the stand-in serves it: its config.json and parameter count, the tiny tokenizer."""
    import json

    from tests.test_train_submit import QWEN_05B

    safetensors = {"parameters": {"BF16": 494_032_768}, "total": 494_032_768}
    hub.add_model(repo_id, files={**tokenizer_files, "config.json": json.dumps(QWEN_05B)}, safetensors=safetensors)


@pytest.fixture
def qwen_and_chat(hub: HubStandIn, tokenizer_files: dict[str, bytes]) -> HubStandIn:
    """Qwen2.5-0.5B (its config, the tiny tokenizer) and alice's chat dataset (5,000 rows) on the stand-in."""
    from tests.test_train_submit import CHAT

    add_qwen(hub, tokenizer_files)
    hub.add_dataset("alice/chat", {"train": CHAT}, num_rows={"train": 5000})
    return hub


def stop_local_jobs() -> None:
    """Cancel what a test left running on the local backend of this TRAINER_SPACE_HOME, and close it."""
    from trainer_space.jobs.backends.local import local_backend

    engine = local_backend()
    for job in engine.list_jobs(stages=["SCHEDULING", "RUNNING"]):
        engine.cancel_job(job.id)
    engine.close()


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_line(LEAKS.summary())
    for leak in LEAKS.leaks[:20]:
        terminalreporter.write_line(f"  {leak}")


@pytest.fixture(scope="session")
def app_url(hub_server: HubStandIn) -> str:
    """The whole app, launched once on a free port, signed in locally as alice (mock OAuth)."""
    hub_server.reset()
    os.environ["TRAINER_SPACE_LOCAL_TOKEN"] = "hf_alice_standin_token_0001"
    from trainer_space.ui import build_app, launch_options, queue_options

    demo = build_app()
    port = free_port()
    demo.queue(**queue_options()).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options()
    )
    yield f"http://127.0.0.1:{port}/"
    demo.close()
    os.environ.pop("TRAINER_SPACE_LOCAL_TOKEN", None)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser page (own cookies), signed out."""
    context = browser.new_context(viewport={"width": 1300, "height": 950})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


def sign_in(page, app_url: str) -> None:
    """Click "Sign in with Hugging Face" (local mock OAuth signs in as alice)."""
    page.goto(app_url)
    page.get_by_role("button", name="Sign in with Hugging Face").click()
    page.get_by_text("Signed in as").wait_for()


SCREENSHOTS = os.path.join(os.path.dirname(__file__), "..", "test-output")
