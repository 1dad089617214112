"""End to end through real subprocesses: stdio, streamable HTTP and SSE, on the embedded emulator."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

from tests.processes import command, http_server, server_env
from tests.support import structured

pytestmark = pytest.mark.anyio


async def _run_one_task(client: Client) -> dict[str, Any]:
    tools = await client.list_tools()
    assert {tool.name for tool in tools.tools} == {
        "create_task_run",
        "get_task_run",
        "list_task_runs",
        "create_task_group",
        "get_task_group",
    }
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    arguments = {"input": "Who wrote Middlemarch?", "processor": "lite", "wait_seconds": 20}
    result = await client.call_tool("create_task_run", arguments, progress_callback=on_progress)
    view = structured(result)
    assert view["status"] == "completed" and view["emulated"] is True
    again = structured(await client.call_tool("get_task_run", {"run_id": view["run_id"]}))
    assert again["output"] == view["output"]
    return view


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_server_without_a_key_runs_a_task_on_the_embedded_emulator(mode: str) -> None:
    cmd = command("serve")
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=server_env())
    with anyio.fail_after(60):
        async with Client(params, mode=mode) as client:  # pyright: ignore[reportArgumentType]
            view = await _run_one_task(client)
    assert view["output"]["type"] == "text"


async def test_streamable_http_server_runs_a_task_and_says_it_is_emulated() -> None:
    with anyio.fail_after(60):
        async with (
            http_server("serve", "--transport", "streamable-http") as server,
            Client(server.url) as client,
        ):
            await _run_one_task(client)
    assert any("emulator" in line for line in server.stderr)


async def test_sse_server_runs_a_task() -> None:
    with anyio.fail_after(60):
        async with (
            http_server("serve", "--transport", "sse") as server,
            Client(sse_client(server.url), mode="legacy") as client,
        ):
            await _run_one_task(client)


async def test_run_command_prints_the_answer_with_citations_and_exits_zero() -> None:
    with anyio.fail_after(90):
        done = await anyio.run_process(
            command("run", "What is the boiling point of water?", "--processor", "lite"), env=server_env(), check=False
        )
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, err
    assert "completed" in out and "Sources:" in out and "https://" in out and "EMULATED" in out
    assert "emulator" in err and "Traceback" not in err and "ERROR" not in err


async def test_run_command_reports_a_bad_schema_file_clearly(tmp_path: Any) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "array"}')
    with anyio.fail_after(90):
        done = await anyio.run_process(
            command("run", "q", "--processor", "lite", "--schema", str(schema)), env=server_env(), check=False
        )
    assert done.returncode == 1
    assert "root" in done.stderr.decode() and "Traceback" not in done.stderr.decode()


def test_the_module_entry_point_prints_its_version() -> None:
    import subprocess

    done = subprocess.run(command("--version"), capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.startswith("parallel-mcp ")
    assert sys.executable
