"""Sign-in off Spaces.

On a Space, Gradio's real OAuth routes sign the visitor in. Elsewhere Gradio mocks them with the
machine's own token and refuses to start without one. Here, a local run signs in with the token
in `TRAINER_SPACE_LOCAL_TOKEN` when a developer sets it (to try the app against the Hub or the test
stand-in); with none, the app still starts and "Sign in" leaves the visitor signed out, so every
action answers "Sign in with Hugging Face to ...". The machine's `HF_TOKEN` is never used.
"""

from __future__ import annotations

import os
import time
from typing import Any

LOCAL_TOKEN_ENV = "TRAINER_SPACE_LOCAL_TOKEN"


def _mocked_oauth_info() -> dict[str, Any]:
    token = os.environ.get(LOCAL_TOKEN_ENV, "").strip()
    name, fullname, picture = "local-visitor", "Local visitor (not signed in)", ""
    if token:
        from ..errors import TrainerSpaceError
        from ..hub.session import HubSession

        try:
            me = HubSession(token).visitor
            name, fullname, picture = me.name, me.fullname, me.avatar_url
        except TrainerSpaceError:  # bad token or Hub unreachable: stay signed out rather than fail to start
            token = ""
    now = int(time.time())
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": 8 * 3600,
        "id_token": "local",
        "scope": "openid profile jobs read-repos write-repos manage-repos",
        "expires_at": now + 8 * 3600,
        "userinfo": {
            "sub": "0",
            "name": fullname,
            "preferred_username": name,
            "profile": "",
            "picture": picture,
            "website": "",
            "aud": "local",
            "auth_time": now,
            "nonce": "local",
            "iat": now,
            "exp": now + 8 * 3600,
            "iss": "local",
        },
    }


def install() -> None:
    """Replace Gradio's local OAuth mock (which needs the machine's token) with ours. No-op on Spaces."""
    if os.environ.get("SYSTEM") == "spaces" or os.environ.get("SPACE_ID"):
        return
    import gradio.oauth

    gradio.oauth._get_mocked_oauth_info = _mocked_oauth_info
