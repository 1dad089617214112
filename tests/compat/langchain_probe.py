"""LangChain's MCP adapters and a LangChain agent against the real server, in an environment of their own.

langchain-mcp-adapters needs mcp<2, which cannot sit beside this project's mcp 2, so
`tests/compat/test_langchain.py` runs this script in an ephemeral environment:

    uv run --isolated --no-project --with-requirements tests/compat/langchain-requirements.txt \\
        python tests/compat/langchain_probe.py -- <server command...>

It loads the tools with `load_mcp_tools` on one session (as the README shows), converts each with
`convert_to_openai_tool(strict=True)` (what `bind_tools(..., strict=True)` sends), and runs a
`create_agent` loop whose scripted model calls create_task_run, then get_task_run, then answers.
It prints one JSON object on stdout for the test to check; it imports nothing from this project.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools

RUN_ID = re.compile(r"trun_[A-Za-z0-9]+")
FIELDS = json.dumps(
    {
        "type": "object",
        "properties": {"founder": {"type": "string", "description": "Who founded it"}},
        "required": ["founder"],
        "additionalProperties": False,
    }
)


class ScriptedModel(BaseChatModel):  # pyright: ignore[reportUntypedBaseClass] - installed only where this runs
    """Plays the model: create_task_run, then get_task_run on the run it returned, then an answer."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any):
        results = [message for message in messages if isinstance(message, ToolMessage)]
        if not results:
            arguments = {"input": "Who founded Acme?", "processor": "lite", "output_schema": FIELDS, "wait_seconds": 0}
            call = {"name": "create_task_run", "args": arguments}
        elif len(results) == 1:
            found = RUN_ID.search(str(results[0].content))
            assert found, results[0].content
            call = {"name": "get_task_run", "args": {"run_id": found.group(0), "wait_seconds": 20}}
        else:
            answer = AIMessage(content=f"Done: {str(results[-1].content)[:2000]}")
            return ChatResult(generations=[ChatGeneration(message=answer)])
        message = AIMessage(content="", tool_calls=[{**call, "id": f"call_{len(results)}", "type": "tool_call"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


async def main(command: list[str]) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PARALLEL_")}
    env["PARALLEL_MCP_EMULATOR_SPEED"] = os.environ.get("PARALLEL_MCP_EMULATOR_SPEED", "1000")
    client = MultiServerMCPClient(
        {"parallel": {"transport": "stdio", "command": command[0], "args": command[1:], "env": env}}
    )
    report: dict[str, Any] = {}
    async with client.session("parallel") as session:
        tools = await load_mcp_tools(session)
        report["tools"] = [tool.name for tool in tools]
        strict: dict[str, str] = {}
        for tool in tools:
            try:
                converted = convert_to_openai_tool(tool, strict=True)
                strict[tool.name] = "strict" if converted["function"].get("strict") else "not strict"
            except Exception as exc:
                strict[tool.name] = f"{type(exc).__name__}: {exc}"
        report["openai_strict"] = strict
        agent = create_agent(ScriptedModel(), tools)
        state = await agent.ainvoke({"messages": [{"role": "user", "content": "Who founded Acme?"}]})
    messages: list[BaseMessage] = state["messages"]
    report["calls"] = [
        call["name"] for message in messages if isinstance(message, AIMessage) for call in message.tool_calls
    ]
    report["tool_results"] = [str(message.content) for message in messages if isinstance(message, ToolMessage)]
    report["answer"] = str(messages[-1].content)
    return report


if __name__ == "__main__":
    server = sys.argv[sys.argv.index("--") + 1 :]
    sys.stdout.write(json.dumps(asyncio.run(main(server))) + "\n")
