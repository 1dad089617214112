"""Call overhead: `get_task_run` on a finished (cached) run vs a hello-world tool call vs a direct HTTP GET.

Two transports separate the transport's cost from the server's: stdio subprocesses (the parallel-mcp
server in emulator mode, the hello-world script) and in-memory `mcp.Client(server)` (both servers in
this process, parallel-mcp's client aimed at an in-process emulator). Calls to the variants of one
transport alternate, after a warm-up.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from bench.common import BENCH_DIR, HELLO_SERVER, OUT_DIR, Mode, Outcome, log_file, percentile, python
from bench.report import Table, Target
from tests.processes import server_env

NAME = "overhead"
TARGET_DELTA_MS = 1.0
WARMUP_CALLS = 20
EMULATOR_KEY = "bench-emulator-key"
ECHO_SERVER = BENCH_DIR / "echo_server.py"
ECHO = "hello-world answering with get_task_run's answer"
ECHO_CHECKED = "the same, with get_task_run's output schema"

Call = Callable[[], Awaitable[object]]


def check(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result; raises on a tool error."""
    if result.is_error:
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        raise RuntimeError(f"tool error: {text}")
    return cast(dict[str, Any], result.structured_content or {})


def tool_call(client: Client, name: str, arguments: dict[str, Any]) -> Call:
    async def call() -> object:
        return check(await client.call_tool(name, arguments))

    return call


async def completed_run(client: Client, arguments: dict[str, Any]) -> str:
    """Create a run through `create_task_run` and wait for it; its run id."""
    view = check(await client.call_tool("create_task_run", {**arguments, "wait_seconds": 30}))
    run_id = str(view["run_id"])
    while view["status"] != "completed":
        if not view["is_active"]:
            raise RuntimeError(f"run {run_id} ended {view['status']}")
        view = check(await client.call_tool("get_task_run", {"run_id": run_id, "wait_seconds": 30}))
    return run_id


async def measure(variants: dict[str, Call], calls: int) -> dict[str, list[float]]:
    """Seconds per call of each variant; calls alternate between variants (rotating order)."""
    names = list(variants)
    for name in names:
        for _ in range(WARMUP_CALLS):
            await variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(calls):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            await variants[name]()
            samples[name].append(time.perf_counter() - started)
    return samples


@asynccontextmanager
async def stdio_mcp(command: list[str], env: dict[str, str], log: Path) -> AsyncGenerator[Client]:
    """An MCP client over stdio to a server subprocess whose stderr goes to `log`."""
    with log.open("a", encoding="utf-8") as errlog:
        params = StdioServerParameters(command=command[0], args=command[1:], env=env)
        async with Client(stdio_client(params, errlog=errlog), cache=None) as client:
            yield client


async def stdio_samples(calls: int) -> tuple[dict[str, list[float]], int]:
    """Samples of each stdio variant, and the size in bytes of get_task_run's answer."""
    log = log_file(f"{NAME}-stdio")
    env = server_env(PARALLEL_MCP_EMULATOR_SPEED="400")
    answer, schema = OUT_DIR / f"{NAME}-answer.json", OUT_DIR / f"{NAME}-output-schema.json"
    async with AsyncExitStack() as stack:
        parallel = await stack.enter_async_context(stdio_mcp([python(), "-m", "parallel_mcp", "serve"], env, log))
        hello = await stack.enter_async_context(stdio_mcp([python(), str(HELLO_SERVER)], server_env(), log))
        run_id = await completed_run(parallel, {"input": "Who wrote Middlemarch?", "processor": "lite"})
        result = await parallel.call_tool("get_task_run", {"run_id": run_id})
        answer.write_text(result.model_dump_json(by_alias=True, exclude_none=True), encoding="utf-8")
        listed = {tool.name: tool for tool in (await parallel.list_tools()).tools}
        schema.write_text(json.dumps(listed["get_task_run"].output_schema), encoding="utf-8")
        echo_command = [python(), str(ECHO_SERVER), str(answer)]
        echo = await stack.enter_async_context(stdio_mcp(echo_command, server_env(), log))
        checked = await stack.enter_async_context(stdio_mcp([*echo_command, str(schema)], server_env(), log))
        samples = await measure(
            {
                "hello-world tool call": tool_call(hello, "hello", {"name": "bench"}),
                "get_task_run, finished lite run (cached)": tool_call(parallel, "get_task_run", {"run_id": run_id}),
                ECHO: tool_call(echo, "echo", {}),
                ECHO_CHECKED: tool_call(checked, "echo", {}),
            },
            calls,
        )
        return samples, answer.stat().st_size


async def memory_samples(calls: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    # Imported here: the start-up benchmark must not pay for them, and neither must `--only startup`.
    from bench.hello_server import server as hello_server
    from parallel_mcp.client import AsyncTaskClient
    from parallel_mcp.config import Settings
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.runner import serve_emulator
    from parallel_mcp.server import create_server

    async with AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(serve_emulator(EmulatorConfig(api_key=EMULATOR_KEY, instant=True)))
        task_client = await stack.enter_async_context(AsyncTaskClient(api_key=EMULATOR_KEY, base_url=emulator.base_url))
        parallel = await stack.enter_async_context(
            Client(create_server(Settings(), client=task_client, emulated=True), cache=None)
        )
        hello = await stack.enter_async_context(Client(hello_server, cache=None))
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"x-api-key": EMULATOR_KEY}))
        lite = await completed_run(parallel, {"input": "Who wrote Middlemarch?", "processor": "lite"})
        big = await completed_run(parallel, {"input": "The European heat-pump market", "processor": "ultra8x"})

        async def direct_get() -> object:
            response = await http.get(f"{emulator.base_url}/v1/tasks/runs/{lite}/result", params={"timeout": 1})
            response.raise_for_status()
            return response.content

        sizes: dict[str, int] = {}
        for label, run_id in (("lite", lite), ("ultra8x", big)):
            result = await parallel.call_tool("get_task_run", {"run_id": run_id})
            text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
            sizes[label] = len(text)
        samples = await measure(
            {
                "hello-world tool call": tool_call(hello, "hello", {"name": "bench"}),
                "get_task_run, finished lite run (cached)": tool_call(parallel, "get_task_run", {"run_id": lite}),
                "get_task_run, finished ultra8x auto run (cached, page 1)": tool_call(
                    parallel, "get_task_run", {"run_id": big}
                ),
                "direct HTTP GET /result of the lite run (emulator)": direct_get,
            },
            calls,
        )
        return samples, sizes


def _table(title: str, samples: dict[str, list[float]], targets: list[Target], transport: str) -> Table:
    table = Table(
        title,
        ["variant", "calls", "p50 ms", "p99 ms", "mean ms", "p50 − hello p50 (ms)", "p50 ratio", "target", "met"],
    )
    baseline = percentile(samples["hello-world tool call"], 50)
    for name, values in samples.items():
        p50 = percentile(values, 50)
        delta_ms = (p50 - baseline) * 1000
        is_target = name.startswith("get_task_run, finished lite")
        met = delta_ms <= TARGET_DELTA_MS if is_target else None
        table.add(
            name,
            len(values),
            p50 * 1000,
            percentile(values, 99) * 1000,
            sum(values) / len(values) * 1000,
            delta_ms if name != "hello-world tool call" else "baseline",
            p50 / baseline,
            f"≤ +{TARGET_DELTA_MS:g} ms" if is_target else "",
            met,
        )
        if is_target:
            targets.append(
                Target(
                    f"call overhead, {transport}",
                    f"get_task_run p50 ≤ hello-world p50 + {TARGET_DELTA_MS:g} ms",
                    f"+{delta_ms:.2f} ms ({p50 * 1000:.2f} vs {baseline * 1000:.2f} ms)",
                    met is True,
                )
            )
    return table


async def run(mode: Mode) -> Outcome:
    calls = mode.pick(100, 2000)
    targets: list[Target] = []
    memory, sizes = await memory_samples(calls)
    stdio, answer_bytes = await stdio_samples(calls)
    memory_table = _table(
        f"Call overhead, in-memory mcp.Client(server) ({calls} calls each, alternating)", memory, targets, "in-memory"
    )
    memory_table.notes.append(
        f"Text renderings: lite {sizes['lite']:,} chars, ultra8x page 1 {sizes['ultra8x']:,} chars; "
        "the direct GET returns the whole raw result of the lite run."
    )
    stdio_table = _table(
        f"Call overhead over stdio subprocesses ({calls} calls each, alternating)", stdio, targets, "stdio"
    )
    stdio_table.notes.append(
        "parallel-mcp serve with no key (embedded emulator); hello-world script on the same interpreter."
    )
    hello_p50 = percentile(stdio["hello-world tool call"], 50)
    echo_ms, checked_ms = ((percentile(stdio[name], 50) - hello_p50) * 1000 for name in (ECHO, ECHO_CHECKED))
    stdio_table.notes.append(
        f"get_task_run's answer is {answer_bytes:,} bytes of JSON. A hello-world tool answering with those same "
        f"bytes costs +{echo_ms:.2f} ms over the hello-world's one-line answer (their size on the wire), and "
        f"+{checked_ms:.2f} ms when it also publishes get_task_run's output schema, which the Python SDK's "
        "client checks every result against (jsonschema). The rest of the gap is parallel-mcp's own work."
    )
    return Outcome(tables=[memory_table, stdio_table], targets=targets)
