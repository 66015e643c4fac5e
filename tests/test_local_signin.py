"""Sign-in off Spaces: a token page of the app itself, a clear message for a token Hugging Face refuses (typed or
set in TRAINER_SPACE_LOCAL_TOKEN), and a button that never says "Logout" for someone who is not signed in."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.conftest import SCREENSHOTS


@pytest.fixture
def no_env_token(monkeypatch):
    monkeypatch.delenv("TRAINER_SPACE_LOCAL_TOKEN", raising=False)


def test_sign_in_asks_for_a_token_says_a_refused_one_and_signs_in_with_a_good_one(hub, app_url, page, no_env_token):
    page.goto(app_url)
    page.get_by_text("Not signed in").first.wait_for()
    page.get_by_role("button", name="Sign in with Hugging Face").click()
    page.get_by_label("Access token").wait_for()
    assert "huggingface.co/settings/tokens" in page.content()
    page.get_by_label("Access token").fill("hf_mistyped_token_000")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    assert "Hugging Face refused this token (401)" in page.get_by_role("alert").inner_text()
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, "local-sign-in-refused.png"), full_page=True)
    page.get_by_label("Access token").fill(hub.alice)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").first.wait_for()
    assert page.get_by_role("button", name="Logout (alice)").count() == 1
    page.get_by_role("button", name="Logout (alice)").click()
    page.get_by_role("button", name="Sign in with Hugging Face").wait_for()


def test_a_refused_token_in_the_environment_is_said_not_ignored(hub, app_url, monkeypatch):
    monkeypatch.setenv("TRAINER_SPACE_LOCAL_TOKEN", "hf_revoked_token_0000")
    answer = httpx.get(f"{app_url}login/huggingface", follow_redirects=False)
    assert answer.status_code == 401
    assert "TRAINER_SPACE_LOCAL_TOKEN was not accepted" in answer.text and "refused this token (401)" in answer.text
    assert "hf_revoked_token_0000" not in answer.text


def test_the_form_refuses_a_post_from_another_site_and_redirects_only_within_the_app(hub, app_url, no_env_token):
    other = httpx.post(
        f"{app_url}login/huggingface", data={"token": hub.alice}, headers={"Origin": "https://evil.test"}
    )
    assert other.status_code == 403
    ok = httpx.post(f"{app_url}login/huggingface", data={"token": hub.alice, "_target_url": "https://evil.test//x"})
    assert ok.status_code == 303 and ok.headers["location"] == "/x"
    page = httpx.get(f"{app_url}login/huggingface", params={"_target_url": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
