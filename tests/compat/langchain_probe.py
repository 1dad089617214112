"""The README's LangChain snippet (langchain-mcp-adapters and a LangChain agent), in an environment of its own.

langchain-mcp-adapters needs mcp<2, which cannot sit beside this project's mcp 2, so
`tests/compat/test_langchain.py` runs this script in an ephemeral environment:

    uv run --isolated --no-project --with-requirements tests/compat/langchain-requirements.txt \\
        python tests/compat/langchain_probe.py SNIPPET.py

SNIPPET.py is the README's snippet with the server command pointed at the checkout. The script runs
its `ask()` with a scripted model in place of "openai:gpt-5" (create_task_run, then get_task_run
on the run it returned, then an answer), then loads the tools on a session of the snippet's client
and converts each with `convert_to_openai_tool(strict=True)` (what `bind_tools(..., strict=True)`
sends). It prints one JSON object on stdout for the test to check; it imports nothing from this project.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
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
calls: list[str] = []
results: list[str] = []


class ScriptedModel(BaseChatModel):  # pyright: ignore[reportUntypedBaseClass] - installed only where this runs
    """Plays the model: create_task_run, then get_task_run on the run it returned, then an answer."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any):
        returned = [str(message.content) for message in messages if isinstance(message, ToolMessage)]
        arguments: dict[str, Any]
        if not returned:
            name = "create_task_run"
            arguments = {"input": "Who founded Acme?", "processor": "lite", "output_schema": FIELDS, "wait_seconds": 0}
        elif len(returned) == 1:
            found = RUN_ID.search(returned[0])
            assert found, returned[0]
            name, arguments = "get_task_run", {"run_id": found.group(0), "wait_seconds": 20}
        else:
            results.extend(returned)
            answer = AIMessage(content=f"Done: {returned[-1][:2000]}")
            return ChatResult(generations=[ChatGeneration(message=answer)])
        calls.append(name)
        call = {"name": name, "args": arguments, "id": f"call_{len(returned)}", "type": "tool_call"}
        message = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=message)])


def scripted_agent(model: object, tools: Any, **kwargs: Any) -> Any:
    """`create_agent` with the scripted model in place of the snippet's."""
    return create_agent(ScriptedModel(), tools, **kwargs)


async def main(snippet: Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(snippet.read_text(encoding="utf-8"), "README.md (LangChain and LangGraph)", "exec"), namespace)
    namespace["create_agent"] = scripted_agent
    answer = await namespace["ask"]("Who founded Acme?")

    async with namespace["client"].session("parallel") as session:
        tools = await load_mcp_tools(session)
    strict: dict[str, str] = {}
    for tool in tools:
        try:
            converted = convert_to_openai_tool(tool, strict=True)
            strict[tool.name] = "strict" if converted["function"].get("strict") else "not strict"
        except Exception as exc:
            strict[tool.name] = f"{type(exc).__name__}: {exc}"
    return {
        "tools": [tool.name for tool in tools],
        "openai_strict": strict,
        "calls": calls,
        "tool_results": results,
        "answer": answer,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(asyncio.run(main(Path(sys.argv[1])))) + "\n")
