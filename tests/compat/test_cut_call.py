"""Issue 8, problem 1: a create cut by a client's timeout and sent again bills one run, not two.

OpenAI Agents' `MCPServerStdio` cuts every request at `client_session_timeout_seconds`, 5 s by
default, while a create waits longer. Its model then sees only "An error occurred while running the
tool. Please try again." (never the run id) and sends the same create again. Before deduplication
that made a second billed run (checked against the old server: `list_task_runs` showed two).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import pytest
from agents.mcp import MCPServerStdio, MCPUtil
from agents.tool_context import ToolContext

from tests.compat.support import compat_env, server_command

pytestmark = pytest.mark.anyio

DEFAULT_TIMEOUT_SECONDS = 5
WAIT_SECONDS = 8
CREATE = {"input": "Who founded Acme? Cite sources.", "processor": "pro", "wait_seconds": WAIT_SECONDS}
"""A pro run lasts minutes at the emulator's real pace (speed 1), so it is still going when the call is cut."""


async def test_a_create_cut_by_openai_agents_default_timeout_and_sent_again_returns_its_first_run() -> None:
    command, *args = server_command()
    server = MCPServerStdio(params={"command": command, "args": args, "env": compat_env(speed=1)}, name="parallel")
    assert server.client_session_timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    async with server:
        tools = {tool.name: tool for tool in await server.list_tools()}
        create = MCPUtil.to_function_tool(tools["create_task_run"], server, convert_schemas_to_strict=True)

        # The model's call, as the framework runs it: cut at 5 s, and all the model learns is this sentence.
        arguments = json.dumps(CREATE)
        context = ToolContext(context=None, tool_name=create.name, tool_call_id="call_1", tool_arguments=arguments)
        started = time.monotonic()
        seen = await create.on_invoke_tool(context, arguments)
        assert seen == "An error occurred while running the tool. Please try again."
        assert DEFAULT_TIMEOUT_SECONDS <= time.monotonic() - started < WAIT_SECONDS

        # The same call again, now with a timeout longer than the wait.
        assert server.session is not None
        again = await server.session.call_tool("create_task_run", dict(CREATE), read_timeout_seconds=60)
        assert not again.is_error
        repeated = cast(dict[str, Any], again.structured_content)
        listed = await server.call_tool("list_task_runs", {})
        runs = cast(dict[str, Any], listed.structured_content)["runs"]
        assert [run["run_id"] for run in runs] == [repeated["run_id"]], "one run, and the repeat returned it"
        text = "\n".join(block.text for block in again.content if block.type == "text")
        assert "nothing new was billed" in text, text
        assert "force_new=true" in text
        assert create.strict_json_schema, "and the model's call was a strict one"
