"""The README's client snippets, run against a real server: pydantic-ai, OpenAI Agents, fastmcp, Anthropic, Gemini.

Each snippet is taken from the README's Clients section as it is, with only the documented server
command (`uvx --from /ABSOLUTE/PATH/TO/parallel-mcp parallel-mcp`) swapped for this checkout's. The
server gets the snippet's `PARALLEL_API_KEY` and talks to an emulator on loopback, as it would to
api.parallel.ai; models are scripted (pydantic-ai's `FunctionModel`, loopback Gemini and Anthropic
APIs). The LangChain snippet needs mcp<2 and runs in `test_langchain`.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parallel_mcp.serving import serve_asgi
from tests.compat.support import FASTMCP_ALIASES, MAX_WAIT_SECONDS, keyed_server, run_snippet

pytestmark = pytest.mark.anyio

RUN_ID = re.compile(r"trun_[A-Za-z0-9]+")
FIELDS = json.dumps(
    {
        "type": "object",
        "properties": {"founder": {"type": "string", "description": "Who founded the company"}},
        "required": ["founder"],
        "additionalProperties": False,
    }
)


def as_text(content: object) -> str:
    return content if isinstance(content, str) else json.dumps(content, default=str)


def founder_in(result: object) -> str:
    """The `founder` field of a completed run, from its structured content or its text (`- founder: ... [1]`)."""
    if isinstance(result, dict):
        content = cast(dict[str, Any], result)["output"]["content"]
        assert isinstance(content, dict), f"output_schema as JSON text gave a report, not fields: {content}"
        return str(cast(dict[str, Any], content)["founder"])
    found = re.search(r"- founder: (.+?) \[", as_text(result))
    assert found, f"output_schema as JSON text gave a report, not fields: {as_text(result)[:1000]}"
    return found.group(1)


async def test_the_readme_pydantic_ai_agent_runs_create_get_answer_with_fields_from_a_json_text_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The agent loop: a scripted model sends every argument (null where unused, as strict models do), with
    `output_schema` as JSON text; it gets fields back, not a report (problem 3 end to end)."""
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    calls: list[str] = []
    results: list[str] = []

    def every_argument(info: AgentInfo, tool: str, **given: Any) -> dict[str, Any]:
        (definition,) = [found for found in info.function_tools if found.name == tool]
        return {name: given.get(name) for name in definition.parameters_json_schema["properties"]}

    def scripted(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
        if returns:
            results.append(as_text(returns[-1].content))
        if not returns:
            arguments = every_argument(
                info,
                "create_task_run",
                input="Who founded Acme?",
                processor="lite",
                output_schema=FIELDS,
                wait_seconds=0,
            )
            call = ToolCallPart("create_task_run", arguments)
        elif len(returns) == 1:
            found = RUN_ID.search(results[0])
            assert found, results[0]
            call = ToolCallPart(
                "get_task_run", every_argument(info, "get_task_run", run_id=found.group(0), wait_seconds=20)
            )
        else:
            return ModelResponse(parts=[TextPart(f"Acme was founded by {founder_in(returns[-1].content)}.")])
        calls.append(call.tool_name)
        return ModelResponse(parts=[call])

    monkeypatch.setenv("OPENAI_API_KEY", "unused: the model is scripted")
    async with keyed_server(monkeypatch, tmp_path, speed=1000) as environment:
        agent = run_snippet("pydantic-ai", environment)["agent"]
        with agent.override(model=FunctionModel(scripted)):
            async with agent:
                result = await agent.run("Who founded Acme? Cite sources.")

    assert calls == ["create_task_run", "get_task_run"]
    assert "completed" in results[1], results[1]
    assert result.output.startswith("Acme was founded by ") and "emulated" in result.output


async def test_the_readme_openai_agents_server_keeps_tools_strict_and_a_create_outlasts_the_default_5_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agents.mcp import MCPUtil

    async with keyed_server(monkeypatch, tmp_path, speed=1) as environment:
        snippet = run_snippet("OpenAI Agents", environment)
        server = snippet["parallel"]
        assert server.client_session_timeout_seconds >= MAX_WAIT_SECONDS + 5
        assert snippet["agent"].mcp_config["convert_schemas_to_strict"] is True
        async with server:
            for tool in await server.list_tools():
                assert MCPUtil.to_function_tool(tool, server, convert_schemas_to_strict=True).strict_json_schema
            started = time.monotonic()
            created = await server.call_tool(
                "create_task_run", {"input": "Who founded Acme?", "processor": "pro", "wait_seconds": 7}
            )
            assert time.monotonic() - started >= 7
    assert not created.is_error
    assert cast(dict[str, Any], created.structured_content)["status"] in ("queued", "running")


class ScriptedGemini:
    """A loopback Gemini API whose model calls create_task_run, then get_task_run, then answers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def generate(self, request: Request) -> JSONResponse:
        body = cast(dict[str, Any], await request.json())
        self.requests.append(body)
        answers = [
            json.dumps(part["functionResponse"]["response"], default=str)
            for content in body["contents"]
            for part in content.get("parts", [])
            if "functionResponse" in part
        ]
        if not answers:
            arguments = {"input": "Who founded Acme?", "processor": "lite", "output_schema": FIELDS, "wait_seconds": 0}
            part: dict[str, Any] = {"functionCall": {"name": "create_task_run", "args": arguments}}
        elif len(answers) == 1:
            found = RUN_ID.search(answers[0])
            assert found, answers[0]
            part = {"functionCall": {"name": "get_task_run", "args": {"run_id": found.group(0), "wait_seconds": 20}}}
        else:
            part = {"text": f"Answer from: {answers[-1][:3000]}"}
        candidate = {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
        return JSONResponse({"candidates": [candidate], "modelVersion": "scripted"})


@FASTMCP_ALIASES
async def test_the_readme_gemini_snippet_declares_every_tool_and_runs_create_get_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Problem 2 end to end: the old definitions made `generate_content` raise before any request."""
    gemini = ScriptedGemini()
    app = Starlette(routes=[Route("/{path:path}", gemini.generate, methods=["POST"])])
    monkeypatch.setenv("GEMINI_API_KEY", "unused: the model is scripted")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    async with serve_asgi(app) as gemini_url, keyed_server(monkeypatch, tmp_path, speed=1000) as environment:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini_url)
        answer = await run_snippet("Google Gen AI SDK (Gemini)", environment)["ask"]("Who founded Acme?")

    first = gemini.requests[0]
    declared = [declaration for tool in first["tools"] for declaration in tool["functionDeclarations"]]
    assert sorted(declaration["name"] for declaration in declared) == sorted(
        ["create_task_run", "get_task_run", "list_task_runs", "create_task_group", "get_task_group"]
    )
    for declaration in declared:
        assert declaration["parameters"]["type"] == "OBJECT" and declaration["parameters"]["properties"], declaration
    assert len(gemini.requests) == 3
    assert answer is not None and "completed" in answer and "founder" in answer, answer


async def test_the_readme_fastmcp_client_creates_a_run_and_gets_its_result(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with keyed_server(monkeypatch, tmp_path, speed=1000) as environment:
        result = await run_snippet("fastmcp client", environment)["research"]("Who founded Acme?")
    assert result is not None and result["status"] == "completed", result
    assert RUN_ID.fullmatch(result["run_id"])


class ScriptedClaude:
    """A loopback Anthropic Messages API whose model calls create_task_run, then get_task_run, then answers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.results: list[str] = []

    async def messages(self, request: Request) -> JSONResponse:
        body = cast(dict[str, Any], await request.json())
        self.requests.append(body)
        results = [
            json.dumps(block.get("content"), default=str)
            for message in body["messages"]
            if isinstance(message["content"], list)
            for block in cast(list[dict[str, Any]], message["content"])
            if block.get("type") == "tool_result"
        ]
        self.results.extend(results)  # the tool runner sends what is new since its last request
        if len(self.requests) == 1:
            arguments = {"input": "Who founded Acme?", "processor": "lite", "output_schema": FIELDS, "wait_seconds": 0}
            block: dict[str, Any] = {"type": "tool_use", "id": "toolu_1", "name": "create_task_run", "input": arguments}
        elif len(self.requests) == 2 and (found := RUN_ID.search(results[-1])):
            arguments = {"run_id": found.group(0), "wait_seconds": 20}
            block = {"type": "tool_use", "id": "toolu_2", "name": "get_task_run", "input": arguments}
        else:  # the answer, or what went wrong
            block = {"type": "text", "text": f"Answer from: {self.results[-1][:3000]}"}
        return JSONResponse(
            {
                "id": f"msg_{len(self.requests)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [block],
                "stop_reason": "tool_use" if block["type"] == "tool_use" else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        )


async def test_the_readme_anthropic_snippet_sends_every_tool_strict_and_runs_create_get_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    claude = ScriptedClaude()
    app = Starlette(routes=[Route("/{path:path}", claude.messages, methods=["POST"])])
    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused: the model is scripted")
    async with serve_asgi(app) as claude_url, keyed_server(monkeypatch, tmp_path, speed=1000) as environment:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", claude_url)
        answer = await run_snippet("Anthropic SDK", environment)["ask"]("Who founded Acme?")

    sent = claude.requests[0]["tools"]
    assert sorted(tool["name"] for tool in sent) == sorted(
        ["create_task_run", "get_task_run", "list_task_runs", "create_task_group", "get_task_group"]
    )
    assert all(tool["strict"] is True and tool["input_schema"]["type"] == "object" for tool in sent), sent
    assert "UnsupportedMCPValueError" not in answer, answer
    assert len(claude.requests) == 3
    assert "completed" in answer and "founder" in answer, answer
