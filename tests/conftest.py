"""Test set-up: a Hub stand-in on 127.0.0.1, started before anything imports huggingface_hub.

`HF_ENDPOINT` is read once, when huggingface_hub is imported (gradio imports it too), so it is
set here at collection time, before any test module imports the app.
"""

from __future__ import annotations

import os
import tempfile

from tests.hub_standin import HubStandIn, free_port

_PORT = free_port()
_ISOLATED_HOME = tempfile.mkdtemp(prefix="trainer-space-tests-")
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{_PORT}"
os.environ["TRAINER_SPACE_VIEWER_URL"] = f"http://127.0.0.1:{_PORT}/datasets-server"
os.environ["HF_HOME"] = os.path.join(_ISOLATED_HOME, "hf-home")
os.environ["TRACKIO_DIR"] = os.path.join(_ISOLATED_HOME, "trackio")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# the Space's own token must never be used for a visitor's action: make sure none leaks in from the machine
os.environ.pop("HF_TOKEN", None)
os.environ.pop("HUGGING_FACE_HUB_TOKEN", None)

import pytest  # noqa: E402

_STANDIN = HubStandIn(port=_PORT)


@pytest.fixture(scope="session")
def hub_server() -> HubStandIn:
    _STANDIN.start()
    yield _STANDIN
    _STANDIN.stop()


@pytest.fixture
def hub(hub_server: HubStandIn) -> HubStandIn:
    """A fresh Hub stand-in state per test, with users alice and bob."""
    hub_server.reset()
    return hub_server
