"""Tokens and rights: org roles checked in dry and real runs, the Trackio Space's write access, tokens redacted from
everything that leaves the app (results, log lines, errors, the app's own log), expected errors logged in one line,
implicit tokens impossible in the app's process, the shared price cache safe from one visitor's failure."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client
from huggingface_hub import JobInfo

from tests.test_train_submit import CHAT
from trainer_space import errors
from trainer_space.hub.session import WHOAMI_CACHE, HubSession, JobRequest
from trainer_space.jobs.config import TrainingConfig
from trainer_space.jobs.training import submit_training
from trainer_space.settings import get_settings
from trainer_space.ui.common import install_log_redaction, ui_errors

ROOT = Path(__file__).resolve().parents[1]
CFG = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/chat", "flavor": "a10g-small"}


pytestmark = pytest.mark.usefixtures("qwen_and_chat")


def _reader(hub) -> str:
    """A member of the org "acme" with the read role."""
    return hub.add_user(
        "rita", token="hf_rita_standin_token_0005",
        orgs=[{"name": "acme", "roleInOrg": "read"}, {"name": "beta", "roleInOrg": "write"}],
    )  # fmt: skip


def _checks(sub) -> dict[str, dict]:
    return {c["name"]: c for c in sub.to_json()["preflight"]}


# ------------------------------------------------------------------------------------------ roles
def test_a_dry_run_into_an_org_the_visitor_is_not_in_is_an_error(hub):
    sub = submit_training(HubSession(hub.alice), TrainingConfig.from_dict({**CFG, "namespace": "acme"}), dry_run=True)
    check = _checks(sub)["namespace"]
    assert check["status"] == "error" and "not a member of 'acme'" in check["message"]
    assert sub.plan.failed  # not "Ready to submit"


def test_the_read_role_cannot_run_or_cancel_jobs_in_the_org_dry_or_real(hub):
    rita = _reader(hub)
    cfg = TrainingConfig.from_dict({**CFG, "namespace": "acme", "output_repo": "rita/out", "trackio_space": "rita/t"})
    dry = submit_training(HubSession(rita), cfg, dry_run=True)
    check = _checks(dry)["namespace"]
    assert check["status"] == "error" and "Your role in 'acme' is 'read'" in check["message"]
    assert "scope" not in check["message"]
    with pytest.raises(errors.TrainerSpaceError, match="Your role in 'acme' is 'read'"):
        submit_training(HubSession(rita), cfg, dry_run=False)
    with pytest.raises(errors.NamespaceRole):
        HubSession(rita).submit_job(JobRequest(image="python:3.12", command=["true"], namespace="acme"))
    assert hub.requests_to("/api/jobs/acme", "POST") == []
    # the write role can; listing the org's jobs is a read, which the read role may do
    beta = submit_training(HubSession(rita), cfg.with_changes(namespace="beta"), dry_run=True)
    assert (
        _checks(beta)["namespace"]["status"] == "ok"
        and "your role there: write" in _checks(beta)["namespace"]["message"]
    )
    assert HubSession(rita).list_jobs(namespaces=["acme"]) == []
    # a job of the org (started by an admin) cannot be cancelled by the read role
    admin = hub.add_user("ann", token="hf_ann_standin_token_0006", orgs=[{"name": "acme", "roleInOrg": "admin"}])
    job = HubSession(admin).submit_job(JobRequest(image="python:3.12", command=["true"], namespace="acme"))
    with pytest.raises(errors.NamespaceRole, match="to cancel jobs there"):
        HubSession(rita).cancel_job(job.id, namespace="acme")
    assert hub.requests_to(f"/api/jobs/acme/{job.id}/cancel") == []


def test_when_the_hub_refuses_a_namespace_the_message_does_not_blame_token_scopes(hub):
    rita = _reader(hub)
    session = HubSession(rita)
    _ = session.visitor
    # the visitor's role was write when whoami was cached, read now: the Hub refuses
    WHOAMI_CACHE.put(session.cache_scope, session.visitor.__class__(**{
        **session.visitor.__dict__, "writable_orgs": ("acme", "beta"),
    }))  # fmt: skip
    with pytest.raises(errors.MissingPermission) as info:
        session.submit_job(JobRequest(image="python:3.12", command=["true"], namespace="acme"))
    message = info.value.message
    assert "role in the organization" in message and "'jobs'" not in message and "namespace acme" in message


def test_the_trackio_space_must_be_writable(hub):
    rita = _reader(hub)
    cfg = TrainingConfig.from_dict({**CFG, "output_repo": "rita/out", "trackio_space": "acme/trackio"})
    check = _checks(submit_training(HubSession(rita), cfg, dry_run=True))["trackio"]
    assert check["status"] == "error" and "your role in 'acme' is 'read'" in check["message"]
    other = cfg.with_changes(trackio_space="bob/trackio")
    check = _checks(submit_training(HubSession(rita), other, dry_run=True))["trackio"]
    assert check["status"] == "error" and "'bob' is not yours" in check["message"]
    ok = _checks(submit_training(HubSession(rita), cfg.with_changes(trackio_space="beta/trackio"), dry_run=True))
    assert ok["trackio"]["status"] == "ok"


# ------------------------------------------------------------------------------------------ spending
def test_seven_days_of_h200_for_a_seven_minute_job_is_refused_with_the_numbers(hub):
    cfg = TrainingConfig.from_dict({**CFG, "flavor": "h200", "timeout": "168h"})
    sub = submit_training(HubSession(hub.alice), cfg, dry_run=True)
    cost = _checks(sub)["cost"]
    assert cost["status"] == "error"
    assert "Worst case $840.00 at most: timeout 168h x $5.00/h on h200" in cost["message"]
    assert "Lower the timeout to at most" in cost["message"]
    quick = submit_training(HubSession(hub.alice), cfg.with_changes(quick_test=True), dry_run=True)
    assert _checks(quick)["cost"]["status"] == "error" and "plenty" not in json.dumps(quick.to_json()["preflight"])


def test_the_owners_ceiling_bounds_every_cap(hub, monkeypatch):
    import dataclasses

    from trainer_space.jobs import spending
    from trainer_space.settings import get_settings

    low = dataclasses.replace(get_settings(), max_cost_usd=2.0)
    monkeypatch.setattr(spending, "get_settings", lambda: low)
    over = TrainingConfig.from_dict({**CFG, "max_cost_usd": 50})
    check = _checks(submit_training(HubSession(hub.alice), over, dry_run=True))["cost"]
    assert check["status"] == "error" and "above this Space's ceiling of $2.00" in check["message"]
    h200x8 = TrainingConfig.from_dict({**CFG, "flavor": "h200x2", "timeout": "168h", "max_cost_usd": 2})
    check = _checks(submit_training(HubSession(hub.alice), h200x8, dry_run=True))["cost"]
    assert check["status"] == "error" and "$1,680.00" in check["message"]


def _export(hub, **changes):
    from trainer_space.jobs.config import ExportConfig
    from trainer_space.jobs.export import submit_export

    hub.add_model("alice/qwen-sft", files={"config.json": json.dumps({"architectures": ["Qwen2ForCausalLM"]})},
                  safetensors={"parameters": {"BF16": 494_032_768}, "total": 494_032_768})  # fmt: skip
    dry = changes.pop("dry_run", True)
    return submit_export(HubSession(hub.alice), ExportConfig.from_dict({"model": "alice/qwen-sft", **changes}),
                         dry_run=dry)  # fmt: skip


def _refused_for_its_price(hub, cfg: dict, export: dict, *said: str) -> None:
    """A dry run says why in its cost check; a real training submission and a real export are refused, no POST."""
    from trainer_space.jobs.preflight import PreflightFailed

    for check in (_checks(submit_training(HubSession(hub.alice), TrainingConfig.from_dict(cfg), dry_run=True)),
                  {c["name"]: c for c in _export(hub, **export).to_json()["preflight"]}):  # fmt: skip
        assert check["cost"]["status"] == "error", check["cost"]
        for text in said:
            assert text in check["cost"]["message"], check["cost"]["message"]
    with pytest.raises(PreflightFailed, match="cost: .*" + said[0]):
        submit_training(HubSession(hub.alice), TrainingConfig.from_dict({**cfg, "allow_many_running": True}),
                        dry_run=False)  # fmt: skip
    with pytest.raises(PreflightFailed, match="cost: .*" + said[0]):
        _export(hub, **export, dry_run=False)
    assert hub.requests_to("/api/jobs", "POST") == []


def test_a_flavor_without_a_price_from_the_hub_is_refused_for_paid_work(hub):
    """rtx-pro-6000 is a flavor name Jobs accept, but the Hub's list (here) gives it no price: never $0."""
    from trainer_space.hub import hardware

    hardware.clear_cache()
    _refused_for_its_price(hub, {**CFG, "flavor": "rtx-pro-6000", "timeout": "168h"},
                           {"flavor": "rtx-pro-6000x8", "timeout": "168h"},
                           "lists no price for", "Pick a flavor the Hub prices")  # fmt: skip
    for item in hub.state.hardware:  # listed, but at $0: not a price either
        if item["name"] == "l4x1":
            item["unitCostUSD"] = item["unitCostMicroUSD"] = 0
    hardware.clear_cache()
    _refused_for_its_price(hub, {**CFG, "flavor": "l4x1"}, {"flavor": "l4x1"}, "lists no price for l4x1")
    hardware.clear_cache()


def test_when_the_hubs_prices_cannot_be_read_estimates_say_so_and_paid_work_waits(hub):
    from trainer_space.hub import hardware
    from trainer_space.ui import api

    hardware.clear_cache()
    hub.fail_next(500, "/api/jobs/hardware", times=10**6)
    try:
        estimate = api.estimate("Qwen/Qwen2.5-0.5B", num_rows=1000)
        assert estimate["prices"] == "built-in"
        assert any("built-in table" in n and "not billed" in n for n in estimate["notes"]), estimate["notes"]
        a10g = next(f for f in estimate["flavors"] if f["flavor"] == "a10g-small")
        assert a10g["usd_per_hour"] == 1.0  # the built-in figure, shown for the estimate
        _refused_for_its_price(hub, CFG, {"flavor": "cpu-upgrade"}, "could not be read", "Try again in a minute")
    finally:
        hub.state.fail_rules.clear()
        hardware.clear_cache()


def test_a_cap_lowers_the_default_timeout_when_the_estimate_still_fits(hub):
    base = submit_training(HubSession(hub.alice), TrainingConfig.from_dict(CFG), dry_run=True)
    assert base.plan.config.timeout == "30m" and base.plan.cost.cap_usd == 0.5
    capped = submit_training(
        HubSession(hub.alice), TrainingConfig.from_dict({**CFG, "max_cost_usd": 0.3}), dry_run=True
    )
    assert capped.plan.config.timeout == "18m" and capped.plan.cost.worst_usd <= 0.3
    assert _checks(capped)["timeout"]["status"] == "warn" and "lowered to 18m" in _checks(capped)["timeout"]["message"]
    assert _checks(capped)["cost"]["status"] == "ok"


def test_more_unfinished_jobs_than_the_limit_need_a_confirmation(hub):
    session = HubSession(hub.alice)
    for i in range(3):  # three jobs that stay scheduled
        hub.plan_next_job(lines=["x"], schedule_s=60)
        session.submit_job(JobRequest(image="python:3.12", command=["true"], labels={"i": str(i)}))
    dry = submit_training(session, TrainingConfig.from_dict(CFG), dry_run=True)
    assert _checks(dry)["running jobs"]["status"] == "warn"
    with pytest.raises(errors.TrainerSpaceError, match="already have 3 unfinished job"):
        submit_training(session, TrainingConfig.from_dict(CFG), dry_run=False)
    confirmed = submit_training(session, TrainingConfig.from_dict({**CFG, "allow_many_running": True}), dry_run=False)
    assert confirmed.how.outcome == "created"


# ------------------------------------------------------------------------------------------ redaction
SECRET = "hf_FAKE_TEST_TOKEN_NOT_REAL_0000000000"  # token-shaped (the redactor must catch it), obviously fake


def _finished_job_logs(hub, app_url) -> tuple[HubSession, JobInfo, dict]:
    """A job of alice's that printed the planned lines and completed, and its last 50 lines through /job_logs."""
    session = HubSession(hub.alice)
    job = session.submit_job(JobRequest(image="python:3.12", command=["true"]))
    deadline = time.time() + 10
    while session.inspect_job(job.id).status.stage != "COMPLETED" and time.time() < deadline:
        time.sleep(0.1)
    return session, job, Client(app_url, oauth_token=hub.alice, verbose=False).predict(job.id, 50, api_name="/job_logs")


def test_job_log_lines_are_redacted_in_the_api_and_the_ui(hub, app_url):
    from trainer_space.jobs import monitor

    hub.plan_next_job(lines=[f"token is {SECRET}", f"again {hub.alice}", "hf_hub_download and hf_transfer stay"])
    session, job, body = _finished_job_logs(hub, app_url)
    assert body["lines"] == ["token is hf_***", "again hf_***", "hf_hub_download and hf_transfer stay"]
    views = list(monitor.follow_logs(session, job.id, where=monitor.JobWhere("hf-jobs", "alice", "COMPLETED")))
    assert SECRET not in json.dumps([v.lines for v in views]) and hub.alice not in json.dumps([v.lines for v in views])


def encodings_of(token: str) -> list[str]:
    """The visitor's token as a job might print it: base64 (alone, and inside a longer base64 text at each of the
    three byte alignments, as `echo "HF_TOKEN=$HF_TOKEN" | base64` prints it), URL-safe base64, URL-encoded (every
    byte), without its `hf_` prefix, hex."""
    import base64
    import urllib.parse

    raw = token.encode()
    return [
        base64.b64encode(raw).decode(),
        *(base64.b64encode(prefix + raw + b"\n").decode() for prefix in (b"HF_TOKEN=", b"TOKEN=", b"T=")),
        base64.urlsafe_b64encode(b"\xfb\xff" + raw).decode(),
        "".join(f"%{b:02X}" for b in raw),
        urllib.parse.quote(f"Bearer {token}"),
        token.removeprefix("hf_"),
        raw.hex(),
    ]


def test_the_visitors_token_printed_encoded_is_redacted_in_the_api_and_the_ui(hub, app_url):
    import base64

    from trainer_space.ui import jobs_tab
    from trainer_space.ui.common import ui_errors_gen

    printed = encodings_of(hub.alice)
    hub.plan_next_job(lines=[f"line {i}: {text}" for i, text in enumerate(printed)])
    _, job, body = _finished_job_logs(hub, app_url)
    with gr.Blocks():
        tab = jobs_tab.build_tab()
    follow = ui_errors_gen(tab.on_follow)  # the UI's log view, as the tab wires it
    views = list(follow(job.id, None, gr.OAuthToken(token=hub.alice, scope="", expires_at=0)))
    shown = {"api": "\n".join(body["lines"]), "ui": views[-1][tab.logs]}
    for where, text in shown.items():
        assert len(text.splitlines()) == len(printed), (where, text)
        for line in text.splitlines():  # what is left of an encoding holds too little of the token to recover it
            assert "hf_***" in line, (where, line)
        for encoded in printed:
            assert encoded not in text, (where, encoded)
        for chunk in text.replace("hf_***", " ").split():  # no base64 run decodes to the token's tail either
            padded = chunk + "=" * (-len(chunk) % 4)
            try:
                decoded = base64.b64decode(padded, altchars=b"-_" if "-" in chunk or "_" in chunk else None)
            except ValueError:
                continue
            assert hub.alice[3:15].encode() not in decoded, (where, chunk)


def test_a_token_pasted_into_a_form_field_is_refused_and_never_echoed_or_sent(hub, app_url, caplog):
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    n = len(hub.requests)
    for call in (
        lambda: client.predict(SECRET, "train", "", "sft", api_name="/inspect_dataset"),
        lambda: client.predict({**CFG, "model": SECRET}, True, api_name="/submit_training"),
        lambda: client.predict({**CFG, "advanced": {"hub_revision": SECRET}}, True, api_name="/submit_training"),
        lambda: client.predict({**CFG, "trackio_project": SECRET}, True, api_name="/submit_training"),
        lambda: client.predict(SECRET, api_name="/job_status"),
    ):
        with pytest.raises(Exception) as info:
            call()
        assert SECRET not in str(info.value)
        assert "access token" in str(info.value) or "not a job id" in str(info.value)
    assert SECRET not in json.dumps([r.path + r.query + r.body.decode("latin-1") for r in hub.requests[n:]])


def test_expected_errors_are_one_line_in_the_log_and_unexpected_ones_are_redacted(caplog, capsys):
    install_log_redaction()
    caplog.set_level(logging.WARNING, logger="trainer_space")

    @ui_errors
    def refuse(oauth_token=None):
        raise errors.InvalidInput(f"bad value {SECRET}")

    @ui_errors
    def crash(oauth_token=None):
        raise RuntimeError(f"boom {SECRET}")

    with pytest.raises(gr.Error) as expected:
        refuse(oauth_token=gr.OAuthToken(token=SECRET, scope="", expires_at=0))
    assert expected.value.print_exception is False and SECRET not in str(expected.value.message)
    records = [r for r in caplog.records if "refuse refused" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None and SECRET not in records[0].getMessage()
    with pytest.raises(gr.Error, match="Unexpected error") as unexpected:
        crash()
    assert unexpected.value.print_exception is False  # Gradio prints no traceback of its own
    crashed = [r for r in caplog.records if "unexpected error in crash" in r.getMessage()]
    assert crashed and SECRET not in (crashed[0].exc_text or "") and "hf_***" in (crashed[0].exc_text or "")
    logging.getLogger("somebody.else").warning("leaked %s", SECRET)  # any logger of the process
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_api_errors_log_no_traceback(hub, app_url, capfd):
    client = Client(app_url, oauth_token=hub.alice, verbose=False)
    with pytest.raises(Exception, match="not a job id"):
        client.predict("../etc", api_name="/job_status")
    time.sleep(0.3)
    err = capfd.readouterr().err
    assert "Traceback" not in err


def test_an_error_message_never_shows_the_servers_working_directory(hub, app_url):
    hub.add_dataset("alice/nofiles", {"train": CHAT}, viewer=False)
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception) as info:
        client.predict("alice/nofiles", "train", "", "sft", api_name="/inspect_dataset")
    assert os.getcwd() not in str(info.value) and str(ROOT) not in str(info.value)


def test_local_paths_never_reach_a_message():
    from trainer_space.errors import hide_paths
    from trainer_space.hub.viewer import clean

    text = (
        f"OSError: Can't load tokenizer from '/tmp/trainer-space-ab12/tokenizer.json' in {ROOT}/x; see "
        "https://huggingface.co/docs/x and hf://datasets/alice/data@main, model alice/broken"
    )
    shown = clean(text)
    assert "/tmp/" not in shown and str(ROOT) not in shown and shown.count("<local path>") == 2
    assert "https://huggingface.co/docs/x" in shown and "hf://datasets/alice/data@main" in shown
    assert "alice/broken" in shown and hide_paths("e.g. 90m or 2h") == "e.g. 90m or 2h"


def test_an_error_names_a_path_only_where_the_files_are_the_visitors_own(monkeypatch):
    from trainer_space.ui import common

    @ui_errors
    def fail(oauth_token=None):
        raise errors.InvalidInput(f"No file at {ROOT}/job_templates/x.py")

    on_a_space = dataclasses.replace(get_settings(), local_enabled=False)
    monkeypatch.setattr(common, "get_settings", lambda: on_a_space)
    with pytest.raises(gr.Error) as info:
        fail()
    assert str(ROOT) not in info.value.message and "<local path>" in info.value.message
    # off Spaces, with the Local backend, the path is the visitor's own file: the message names it
    monkeypatch.setattr(common, "get_settings", lambda: dataclasses.replace(on_a_space, local_enabled=True))
    with pytest.raises(gr.Error) as info:
        fail()
    assert f"{ROOT}/job_templates/x.py" in info.value.message


def test_the_leak_scan_catches_a_token_out_of_place(hub):
    from tests.leakscan import LeakScan

    scan = LeakScan()
    assert scan.scan_hub(hub, "clean") == []
    HubSession(hub.alice).model_info("Qwen/Qwen2.5-0.5B", revision=None)
    hub.state.requests[-1].query = f"token={hub.alice}"  # as if the app had put it in a URL
    assert scan.scan_hub(hub, "planted") == ["planted: a visitor's token outside Authorization in GET " +
                                             hub.state.requests[-1].path]  # fmt: skip
    hub.state.requests[-1].query = ""


# ------------------------------------------------------------------------------------------ shared caches
def test_one_visitors_401_does_not_poison_the_price_cache(hub):
    from trainer_space.hub.hardware import clear_cache

    clear_cache()
    with pytest.raises(errors.InvalidToken):
        HubSession("hf_not_a_valid_token_0000").list_jobs()
    bad = HubSession("hf_not_a_valid_token_0000")
    flavors, from_hub = bad.hardware()
    assert from_hub and all(r.token is None for r in hub.requests_to("/api/jobs/hardware"))
    assert HubSession(hub.alice).hardware() == (flavors, True)


# ------------------------------------------------------------------------------------------ the machine's token
MACHINE_TOKEN = "hf_FAKE_MACHINE_TOKEN_NOT_REAL_0000"


def test_implicit_tokens_are_impossible_in_the_apps_process(hub, tmp_path):
    """A fresh process with HF_TOKEN and a saved login: importing the app turns implicit tokens off before
    huggingface_hub is imported, and a library call made without token= (what transformers does) sends none."""
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "token").write_text(MACHINE_TOKEN)
    hub.add_user("owner", token=MACHINE_TOKEN)
    code = textwrap.dedent(
        """
        import app  # sets HF_HUB_DISABLE_IMPLICIT_TOKEN before gradio imports huggingface_hub
        import huggingface_hub
        from huggingface_hub import HfApi, constants
        from trainer_space.hub.session import HubSession
        assert constants.HF_HUB_DISABLE_IMPLICIT_TOKEN, "implicit tokens still on"
        assert huggingface_hub.get_token() == "MACHINE"  # the machine does have a token...
        HfApi().model_info("Qwen/Qwen2.5-0.5B")  # ... a library call without token= sends none
        huggingface_hub.hf_hub_download("Qwen/Qwen2.5-0.5B", "config.json")
        HubSession(None).model_info("Qwen/Qwen2.5-0.5B")
        from transformers import AutoTokenizer
        AutoTokenizer.from_pretrained("Qwen/Qwen2.5-0.5B")  # transformers lists files with no token of its own
        print("DONE")
        """
    ).replace("MACHINE", MACHINE_TOKEN)
    env = {**os.environ, "HF_TOKEN": MACHINE_TOKEN, "HF_HOME": str(home)}
    env.pop("HF_HUB_DISABLE_IMPLICIT_TOKEN", None)
    env.pop("TRAINER_SPACE_LOCAL_TOKEN", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert "DONE" in out.stdout, out.stderr[-3000:]
    seen = [r for r in hub.requests if MACHINE_TOKEN in json.dumps(r.headers) + r.path + r.query]
    assert len(hub.requests) >= 4 and seen == []
