"""What the compatibility tests share: the real server over stdio, the old tool definitions, sample arguments.

The tools under test are listed from a real `parallel-mcp serve` subprocess (keyless, so it runs its
embedded emulator). `old_tools.json` is the tools/list of the design before issue 8 (commit 38f1421,
whose tools were those of 17fd864~1), so each converter test shows the old definitions failing and
the current ones passing.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
from jsonschema.exceptions import best_match
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import serve_emulator
from tests.processes import server_env

Schema = dict[str, Any]
ToolDict = dict[str, Any]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OLD_TOOLS = HERE / "old_tools.json"
OLD_SIZE_CHARS = 16_535
"""Model-visible characters of `old_tools.json` (the issue quotes 16,540 from a slightly different count)."""
MINIMAL_SIZE_CHARS = 1_167
"""The issue's minimal two-tool design: the floor any full mirror of the create body is compared with."""
BUDGET_CHARS = 8_000
SAMPLE_TOOLS = {"create_task_run", "get_task_run", "list_task_runs", "create_task_group", "get_task_group"}
MAX_WAIT_SECONDS = 50
API_KEY = "test-key-0123456789"
DOCUMENTED_COMMAND = '"uvx"'
DOCUMENTED_ARGS = '["--from", "/ABSOLUTE/PATH/TO/parallel-mcp", "parallel-mcp"]'
"""How the README's Python snippets start the server; the tests swap in this checkout's interpreter."""


FASTMCP_ALIASES = pytest.mark.filterwarnings("ignore:Accessing `.+` is deprecated; MCP SDK v2 renamed")
"""Once fastmcp (pydantic-ai's MCP client) is imported, mcp 2's types get their v1 names back as aliases that
warn (`Tool.inputSchema`, `CallToolResult.isError`), and google-genai reads those first: a warning in an
application, an error under our `-W error`."""


def server_command() -> list[str]:
    """`parallel-mcp serve` from this checkout, on this interpreter."""
    return [sys.executable, "-m", "parallel_mcp", "serve"]


def compat_env(speed: int = 1000) -> dict[str, str]:
    """A keyless server environment (embedded emulator) at `speed` times real time."""
    return server_env(PARALLEL_MCP_EMULATOR_SPEED=str(speed), PARALLEL_MCP_LOG_LEVEL="WARNING")


@asynccontextmanager
async def stdio_session(speed: int = 1000) -> AsyncGenerator[ClientSession]:
    """A plain MCP client session with a real server subprocess."""
    command, *args = server_command()
    params = StdioServerParameters(command=command, args=args, env=compat_env(speed))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def list_current_tools() -> list[ToolDict]:
    """The real server's tools/list, as JSON."""
    async with stdio_session() as session:
        listed = await session.list_tools()
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed.tools]


def old_tools() -> list[ToolDict]:
    return cast(list[ToolDict], json.loads(OLD_TOOLS.read_text(encoding="utf-8")))


def by_name(tools: list[ToolDict]) -> dict[str, ToolDict]:
    return {tool["name"]: tool for tool in tools}


def model_visible(tool: ToolDict) -> int:
    """Characters of what a client puts in the model's context for one tool (name, description, input schema)."""
    shown = {"name": tool["name"], "description": tool.get("description"), "inputSchema": tool["inputSchema"]}
    return len(json.dumps(shown, separators=(",", ":"), ensure_ascii=False))


def schema_of(tool: ToolDict) -> Schema:
    """A copy of a tool's input schema (converters mutate theirs)."""
    return copy.deepcopy(cast(Schema, tool["inputSchema"]))


def first_error(instance: Any, schema: Schema) -> str | None:
    """The best JSON-schema error of `instance` against `schema` (its `$defs` resolved), or None."""
    error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "<root>"
    return f"{where}: {error.message[:200]}"


def _accepts_null(schema: Any) -> bool:
    return isinstance(schema, dict) and jsonschema.Draft202012Validator(schema).is_valid(None)


def as_strict_model_sends(sample: Any, schema: Any) -> Any:
    """The arguments a strict-mode model emits for `sample`: every property present, null where unset.

    Strict modes make every property required, so a model fills the ones it does not use with their
    default, null, or [] for an array; unions are followed into the branch the value matches.
    """
    if not isinstance(schema, dict):
        return sample
    node = cast(Schema, schema)
    branches = node.get("anyOf")
    if isinstance(branches, list):
        for branch in cast(list[Any], branches):
            candidate = as_strict_model_sends(sample, branch)
            if isinstance(branch, dict) and jsonschema.Draft202012Validator(branch).is_valid(candidate):
                return candidate
        return sample
    properties = node.get("properties")
    if isinstance(sample, dict) and isinstance(properties, dict):
        given = cast(dict[str, Any], sample)
        declared = cast(dict[str, Any], properties)
        out = {key: as_strict_model_sends(value, declared.get(key, {})) for key, value in given.items()}
        for key in node.get("required", []):
            if key in out:
                continue
            sub = declared.get(key, {})
            if isinstance(sub, dict) and "default" in sub:
                out[key] = cast(Schema, sub)["default"]
            elif _accepts_null(sub):
                out[key] = None
            elif isinstance(sub, dict) and cast(Schema, sub).get("type") == "array":
                out[key] = []
        return out
    items = node.get("items")
    if isinstance(sample, list) and isinstance(items, dict):
        return [as_strict_model_sends(value, items) for value in cast(list[Any], sample)]
    return sample


def unexpressible(samples: list[dict[str, Any]], converted: Schema, *, strict: bool) -> list[str]:
    """Which samples a converted schema (what a model is held to) can no longer express."""
    problems: list[str] = []
    for index, sample in enumerate(samples):
        instance = as_strict_model_sends(sample, converted) if strict else sample
        error = first_error(instance, converted)
        if error:
            problems.append(f"sample {index}: {error}")
    return problems


_FIELDS_SCHEMA = {
    "type": "object",
    "properties": {"ceo": {"type": "string", "description": "CEO name"}},
    "required": ["ceo"],
    "additionalProperties": False,
}
_INPUT_SCHEMA = {"type": "object", "properties": {"company": {"type": "string"}, "website": {"type": "string"}}}

OLD_SAMPLES: dict[str, list[dict[str, Any]]] = {
    "create_task_run": [
        {"input": "Who is the CEO of Acme Corp? Cite sources."},
        {
            "input": {"company": "Acme", "website": "acme.com"},
            "processor": "core",
            "task_spec": {
                "output_schema": {"type": "json", "json_schema": _FIELDS_SCHEMA},
                "input_schema": {"type": "json", "json_schema": _INPUT_SCHEMA},
            },
            "metadata": {"team": "growth", "n": 3},
            "source_policy": {"include_domains": ["example.com"], "after_date": "2024-01-01"},
            "mcp_servers": [
                {
                    "name": "crm",
                    "url": "https://crm.example/mcp",
                    "headers": {"Authorization": "Bearer t"},
                    "allowed_tools": ["lookup"],
                }
            ],
            "webhook": {"url": "https://hook.example/x"},
            "idempotency_key": "abc-1",
            "wait_seconds": 0,
        },
        {
            "input": "Write a market overview",
            "task_spec": {"output_schema": {"type": "text", "description": "A short report"}},
            "advanced_settings": {"location": "us"},
        },
    ],
    "create_task_group": [
        {
            "inputs": ["Acme", {"company": "Globex", "country": "US"}],
            "task_spec": {"output_schema": {"type": "json", "json_schema": _FIELDS_SCHEMA}},
            "metadata": {"batch": "b1"},
            "processor": "lite",
            "wait_seconds": 5,
        }
    ],
    "get_task_run": [
        {"run_id": "trun_123", "fields": ["ceo"], "include_basis": False, "offset": 0, "wait_seconds": 10}
    ],
    "list_task_runs": [{"limit": 5, "active_only": True}, {}],
    "get_task_group": [{"task_group_id": "tgrp_1", "offset": 0}],
}
"""Full create bodies as the old schemas took them: free-form JSON as objects."""

CURRENT_SAMPLES: dict[str, list[dict[str, Any]]] = {
    "create_task_run": [
        {"input": "Who is the CEO of Acme Corp? Cite sources."},
        {
            "input": json.dumps({"company": "Acme", "website": "acme.com"}),
            "processor": "core",
            "output_schema": json.dumps(_FIELDS_SCHEMA),
            "input_schema": json.dumps(_INPUT_SCHEMA),
            "metadata": json.dumps({"team": "growth", "n": 3}),
            "source_policy": {"include_domains": ["example.com"], "exclude_domains": [], "after_date": "2024-01-01"},
            "mcp_servers": [
                {
                    "name": "crm",
                    "url": "https://crm.example/mcp",
                    "headers": json.dumps({"Authorization": "Bearer t"}),
                    "allowed_tools": ["lookup"],
                }
            ],
            "webhook_url": "https://hook.example/x",
            "idempotency_key": "abc-1",
            "force_new": False,
            "wait_seconds": 0,
        },
        {
            "input": "Write a market overview",
            "output_schema": "A short report",
            "advanced_settings": '{"location":"us"}',
        },
    ],
    "create_task_group": [
        {
            "inputs": ["Acme", json.dumps({"company": "Globex", "country": "US"})],
            "output_schema": json.dumps(_FIELDS_SCHEMA),
            "metadata": json.dumps({"batch": "b1"}),
            "processor": "lite",
            "wait_seconds": 5,
        }
    ],
    "get_task_run": [
        {"run_id": "trun_123", "fields": ["ceo"], "include_basis": False, "offset": 0, "wait_seconds": 10}
    ],
    "list_task_runs": [{"limit": 5, "active_only": True}, {}],
    "get_task_group": [{"task_group_id": "tgrp_1", "offset": 0}],
}
"""The same bodies in today's portable shapes: free-form JSON as JSON text."""


def samples_for(tools: list[ToolDict]) -> dict[str, list[dict[str, Any]]]:
    """The samples written for this generation of tools (told apart by the old nested `task_spec`)."""
    old = "task_spec" in by_name(tools)["create_task_run"]["inputSchema"]["properties"]
    return OLD_SAMPLES if old else CURRENT_SAMPLES


def readme_block(heading: str) -> str:
    """The first ```python block under a `### heading` of the README's Clients section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("\n## Clients\n") :]
    section = section[: section.index("\n## ", 1)]
    start = section.index(f"\n### {heading}\n")
    block = section[section.index("```python\n", start) + len("```python\n") :]
    return block[: block.index("```")]


def runnable_snippet(heading: str, environment: dict[str, str]) -> str:
    """A README snippet with the documented server command swapped for this checkout's, run under `environment`."""
    code = readme_block(heading)
    for documented in (DOCUMENTED_COMMAND, DOCUMENTED_ARGS):
        assert code.count(documented) == 1, f"the README's {heading} snippet no longer starts the server as documented"
    command, *args = ["env", *(f"{name}={value}" for name, value in environment.items()), *server_command()]
    return code.replace(DOCUMENTED_COMMAND, repr(command)).replace(DOCUMENTED_ARGS, repr(args))


@asynccontextmanager
async def keyed_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, speed: float) -> AsyncGenerator[dict[str, str]]:
    """An emulator on loopback standing in for api.parallel.ai, and the environment that points a server at it."""
    for name in ("PARALLEL_BASE_URL", "PARALLEL_MCP_CONFIG", "PARALLEL_MCP_EMULATOR_SPEED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARALLEL_API_KEY", API_KEY)
    async with serve_emulator(EmulatorConfig(api_key=API_KEY, speed=speed)) as emulator:
        yield {"PARALLEL_BASE_URL": emulator.base_url, "XDG_STATE_HOME": str(tmp_path)}


def run_snippet(heading: str, environment: dict[str, str]) -> dict[str, Any]:
    """Execute a README snippet; its globals."""
    namespace: dict[str, Any] = {}
    exec(compile(runnable_snippet(heading, environment), f"README.md ({heading})", "exec"), namespace)
    return namespace
