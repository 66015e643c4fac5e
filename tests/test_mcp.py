"""The app as an MCP server, through a real MCP client (the `mcp` package, streamable HTTP), acting for the caller
whose token comes in the `Authorization: Bearer` header."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from tests.conftest import add_qwen
from tests.leakscan import scan_response

TOOLS = {"inspect_dataset", "estimate", "submit_training", "list_jobs", "job_status", "job_logs", "cancel_job",
         "export_gguf", "estimate_accuracy", "continue_job", "stop_after_checkpoint", "base_vs_tuned"}  # fmt: skip
ROWS = [
    {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}
    for i in range(12)
]


class Mcp:
    """One MCP client session: `tools()` lists the tools, `call(name, **args)` answers (parsed JSON, or the error
    text with `error=True`)."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def tools(self) -> list[Any]:
        return (await self.session.list_tools()).tools

    async def call(self, name: str, **arguments: Any) -> tuple[bool, Any]:
        result = await self.session.call_tool(name, arguments)
        text = "\n".join(c.text for c in result.content if getattr(c, "text", None))
        scan_response(text)
        if result.isError:
            return True, text
        try:
            return False, json.loads(text)
        except json.JSONDecodeError:
            return False, text


def run_mcp(app_url: str, token: str | None, steps, authorization: str | None = None) -> Any:
    """Run `steps(mcp)` in one MCP session against the app, with `Authorization: Bearer <token>` when given (or the
    `authorization` header as it is)."""
    authorization = authorization or (f"Bearer {token}" if token else None)
    headers = {"Authorization": authorization} if authorization else {}

    async def main() -> Any:
        async with (
            streamablehttp_client(f"{app_url}gradio_api/mcp/", headers=headers) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await steps(Mcp(session))

    with ThreadPoolExecutor(1) as pool:  # its own thread: a browser test's event loop may be running in this one
        return pool.submit(asyncio.run, main()).result()


def test_every_tool_is_listed_under_its_api_name_with_every_parameter_described(hub, app_url):
    tools = run_mcp(app_url, hub.alice, lambda mcp: mcp.tools())
    by_name = {t.name: t for t in tools}
    assert set(by_name) == TOOLS  # no internal events (the login button's status check) among them
    for tool in tools:
        assert len(tool.description) > 60, tool.name
        properties = tool.inputSchema["properties"]
        assert properties, tool.name
        for name, schema in properties.items():
            assert schema.get("description"), f"{tool.name}.{name} is not described"
        assert "oauth_token" not in properties and "authorization" not in properties
    assert by_name["estimate"].inputSchema["properties"]["method"]["enum"] == ["sft", "dpo", "grpo", "reward", "kto"]
    assert by_name["estimate"].inputSchema["properties"]["peft"]["enum"] == ["full", "lora", "qlora"]
    config = by_name["submit_training"].inputSchema["properties"]["config"]["anyOf"][0]
    assert {"method", "model", "dataset", "per_device_train_batch_size", "learning_rate", "flavor"} <= set(
        config["properties"]
    )
    assert config["properties"]["per_device_train_batch_size"]["description"]
    assert "Returns:" in by_name["list_jobs"].description


def test_a_caller_with_a_bearer_token_inspects_estimates_submits_lists_reads_logs_and_cancels(
    hub, app_url, tokenizer_files
):
    add_qwen(hub, tokenizer_files)
    hub.add_dataset("alice/private-chat", {"train": ROWS}, num_rows={"train": 1000}, private=True)
    from trainer_space.hub.session import HubSession, JobRequest

    bobs = HubSession(hub.bob).submit_job(JobRequest(image="python:3.12", command=["true"], flavor="t4-small"))
    hub.plan_next_job(lines=["loading the model", *["training"] * 200], schedule_s=0.1, line_interval_s=0.3)
    cfg = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "alice/private-chat", "quick_test": True}

    async def steps(mcp: Mcp) -> dict[str, Any]:
        out = {}
        out["inspect"] = await mcp.call("inspect_dataset", dataset="alice/private-chat", method="dpo")
        out["estimate"] = await mcp.call("estimate", model="Qwen/Qwen2.5-0.5B", dataset="alice/private-chat")
        full = {k: v for k, v in cfg.items() if k != "quick_test"}
        out["dry"] = await mcp.call("submit_training", config=json.dumps(full), dry_run=True)  # a JSON string too
        out["real"] = await mcp.call("submit_training", config=cfg, dry_run=False)
        out["again"] = await mcp.call("submit_training", config=cfg, dry_run=False)
        assert not out["real"][0], out["real"][1]
        job_id = out["real"][1]["job_id"]
        out["list"] = await mcp.call("list_jobs")
        out["status"] = await mcp.call("job_status", job_id=job_id)
        out["logs"] = await mcp.call("job_logs", job_id=job_id, tail=20)
        out["cancel"] = await mcp.call("cancel_job", job_id=job_id)
        out["bobs"] = await mcp.call("job_status", job_id=bobs.id)
        return out

    out = run_mcp(app_url, hub.alice, steps)
    errors = {k: v[1] for k, v in out.items() if v[0] and k != "bobs"}
    assert errors == {}
    inspected = out["inspect"][1]
    assert inspected["preview"][0]["messages"][0]["content"] == "question 0"  # alice's private data, read as alice
    assert inspected["method"] == "dpo" and inspected["verdict"] == "INCOMPATIBLE"  # the method asked for
    assert inspected["methods"]["sft"]["verdict"] == "READY"
    assert out["estimate"][1]["recommended"] and out["estimate"][1]["timeout"]
    dry = out["dry"][1]
    assert dry["submitted"] is False and dry["job_id"] is None
    # no flavor or timeout given: the estimate's recommendation and timeout
    assert (dry["flavor"], dry["timeout"]) == (out["estimate"][1]["recommended"], out["estimate"][1]["timeout"])
    real = out["real"][1]
    assert real["submitted"] is True and hub.jobs[real["job_id"]].namespace == "alice"
    assert out["again"][1]["job_id"] == real["job_id"]  # the same config twice: one job
    assert [j["id"] for j in out["list"][1]["jobs"]] == [real["job_id"]]  # alice's only, not bob's
    assert out["list"][1]["user"] == "alice"
    assert out["status"][1]["config"]["dataset"] == "alice/private-chat"
    assert "loading the model" in out["logs"][1]["lines"]
    assert out["cancel"][1]["stage"] == "CANCELED"
    assert out["bobs"][0] is True and "bob" not in out["bobs"][1].replace("Bearer", "")
    assert all(job.namespace in ("alice", "bob") for job in hub.jobs.values()) and len(hub.jobs) == 2


def test_without_a_token_the_caller_is_told_to_send_one_and_a_bad_token_is_named(hub, app_url):
    cfg = {"method": "sft", "model": "Qwen/Qwen2.5-0.5B", "dataset": "trl-lib/Capybara", "backend": "hf-jobs"}

    async def steps(mcp: Mcp) -> tuple[Any, ...]:
        return (
            await mcp.call("submit_training", config=cfg, dry_run=False),
            await mcp.call("list_jobs", orgs="alice-org"),
        )

    for answer in run_mcp(app_url, None, steps):
        assert answer[0] is True
        assert "A token is needed to" in answer[1] and "Authorization: Bearer hf_..." in answer[1]
        assert "Sign in" not in answer[1]
    refused = run_mcp(app_url, "hf_not_a_real_token_0000", lambda mcp: mcp.call("list_jobs"))
    assert refused[0] is True and "refused the token you sent (401)" in refused[1]
    assert "sign out" not in refused[1].lower() and "settings/tokens" in refused[1]
    assert not hub.jobs


@pytest.mark.parametrize("header", ["Basic aGk6aGk=", "Bearer", "Bearer a b"])
def test_a_malformed_authorization_header_is_no_token(hub, app_url, header):
    error, text = run_mcp(app_url, None, lambda mcp: mcp.call("list_jobs", orgs="alice-org"), authorization=header)
    assert error and "A token is needed to" in text
