"""Secrets never leak: not in tool results, not in stderr (even at debug level), not in files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from parallel_mcp.emulator.runner import serve_emulator
from tests.processes import command, server_env

pytestmark = pytest.mark.anyio

API_KEY = "sk-live-APIKEY-7f3a9c1e5b"
HEADER_SECRET = "Bearer MCPHEADER-9d8c7b6a5f"
WEBHOOK_SECRET = "whsec-WEBHOOK-1a2b3c4d5e"
SECRETS = (API_KEY, HEADER_SECRET, "MCPHEADER-9d8c7b6a5f", WEBHOOK_SECRET, "APIKEY-7f3a9c1e5b")


def _dump(result: CallToolResult) -> str:
    return result.model_dump_json()


async def _exercise_every_path(client: Client) -> list[str]:
    outputs: list[str] = []
    servers = [{"name": "crm", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": HEADER_SECRET}}]
    webhook = "http://127.0.0.1:9/hook"
    text_headers = [{**servers[0], "headers": json.dumps({"Authorization": HEADER_SECRET})}]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("create_task_run", {"input": "q", "processor": "lite", "mcp_servers": servers, "webhook_url": webhook}),
        ("create_task_run", {"input": "q", "processor": "base", "mcp_servers": text_headers}),
        ("create_task_run", {"input": "q", "mcp_servers": [{**servers[0], "headers": HEADER_SECRET + "{"}]}),
        ("create_task_run", {"input": "boom", "processor": "lite", "wait_seconds": 10}),
        ("create_task_run", {"input": "q", "mcp_servers": [{**servers[0], "headers": {"Authorization": [1]}}]}),
        ("create_task_run", {"input": "q", "mcp_servers": servers * 11}),
        ("create_task_run", {"input": "q", "metadata": {"k" * 20: HEADER_SECRET}}),
        ("create_task_run", {"input": "q", "processor": "nope"}),
        ("get_task_run", {"run_id": "trun_missing", "wait_seconds": 0}),
        ("get_task_run", {"run_id": "", "wait_seconds": 0}),
    ]
    first: dict[str, Any] | None = None
    for tool, arguments in calls:
        result = await client.call_tool(tool, arguments)
        outputs.append(_dump(result))
        content: object = result.structured_content
        if first is None and isinstance(content, dict):
            first = cast(dict[str, Any], content)
    assert first is not None
    run_id = str(first["run_id"])
    for arguments in ({"run_id": run_id, "wait_seconds": 10}, {"run_id": run_id, "fields": ["nope"]}):
        outputs.append(_dump(await client.call_tool("get_task_run", arguments)))
    outputs.append(_dump(await client.call_tool("list_task_runs", {})))
    group = await client.call_tool(
        "create_task_group", {"inputs": ["a", "boom"], "processor": "lite", "wait_seconds": 10}
    )
    outputs.append(_dump(group))
    outputs.append(_dump(await client.call_tool("get_task_group", {"task_group_id": "tgrp_missing"})))
    return outputs


async def test_no_secret_appears_in_tool_output_stderr_or_files(tmp_path: Path) -> None:
    faults = [Fault(kind="fail_run", match_input="boom", message="it broke")]
    config = EmulatorConfig(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, speed=200, faults=faults)
    errlog = (tmp_path / "stderr.log").open("w+")
    home = tmp_path / "home"
    home.mkdir()
    with anyio.fail_after(90):
        async with serve_emulator(config) as emulator:
            env = server_env(
                PARALLEL_API_KEY=API_KEY,
                PARALLEL_BASE_URL=emulator.base_url,
                PARALLEL_MCP_LOG_LEVEL="DEBUG",
                HOME=str(home),
                XDG_STATE_HOME=str(home / "state"),
            )
            cmd = command("-vv", "serve")
            params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=env, cwd=str(home))
            async with Client(stdio_client(params, errlog=errlog)) as client:
                outputs = await _exercise_every_path(client)
            assert emulator.state.run_count >= 2
    errlog.close()
    assert (home / "state" / "parallel-mcp" / "journal.sqlite3").exists()  # the journal was written and is scanned
    stderr = (tmp_path / "stderr.log").read_text()
    written = "\n".join(p.read_text(errors="replace") for p in home.rglob("*") if p.is_file())
    haystacks = {"tool output": "\n".join(outputs), "stderr": stderr, "files": written}
    for where, text in haystacks.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into {where}"
    assert json.loads(outputs[0])["structured_content"]["run_id"].startswith("trun_")
    assert "DEBUG" in stderr and emulator.base_url in stderr  # debug logging really was on
