"""Delivery latency: a waiting `get_task_run`, with and without webhooks, vs a fixed-interval polling client.

The server waits on an emulator whose runs never move by themselves (`frozen=True`); the benchmark
finishes a run with `state.finish(run_id)` at a known instant while the call waits (a set time after
its first progress notification) and measures finish -> tool result, and the upstream requests the
call made (the emulator's `request_log`). Three servers are sampled in turn: in memory
(`mcp.Client(server)`), over loopback streamable HTTP, and over loopback HTTP with a public URL and a
webhook secret, where the emulator pushes each run's end as a signed webhook to the server's
`/webhooks/parallel` and the waiting call wakes on it. A polling client (`GET /v1/tasks/runs/{id}`
every interval, then `GET …/result`) runs side by side on runs of the same length.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client

from bench.common import Mode, Outcome, median, percentile
from bench.overhead import check
from bench.report import Table, Target

NAME = "delivery"
TARGET_LATENCY_MS = 100.0
TARGET_REQUESTS = 3
TARGET_PUSHED_REQUESTS = 1
EMULATOR_KEY = "bench-emulator-key"
WEBHOOK_SECRET = "bench-webhook-secret"
WAIT_SECONDS = 50
POLLERS = 4
SETTLE_SECONDS = 0.5
"""The emulator logs a request when its handler ends; cancelled streams end a moment after the call, so
requests are counted once every call is done and this long has passed."""
QUIET_SECONDS = 0.1
"""A pause after each waiting call, so that the teardown of its streams does not land in the next one's time."""

MEMORY = "waiting get_task_run, in memory, no webhooks"
HTTP = "waiting get_task_run, loopback HTTP, no webhooks"
PUSHED = "waiting get_task_run, loopback HTTP, with webhooks"

_questions = itertools.count()


def question() -> str:
    """A new question each time: an identical create within the dedupe window would return the earlier run."""
    return f"Who wrote Middlemarch? (question {next(_questions)})"


@dataclass(frozen=True)
class Delivery:
    latency: float
    """Seconds from the run finishing to the result being in the caller's hands."""
    run_id: str
    since: int
    """Where the emulator's request log stood when the waiting began."""
    log: list[Any]
    """The emulator's request log (records of method, path, status)."""

    @property
    def requests(self) -> int:
        """Upstream requests (GET) for this run made while waiting; read once every request has ended."""
        return sum(1 for record in self.log[self.since :] if self.run_id in record.path and record.method == "GET")


@dataclass
class Rig:
    client: Client
    http: httpx2.AsyncClient
    base_url: str
    state: Any  # parallel_mcp.emulator.state.EmulatorState, imported lazily


async def waiting_call(rig: Rig, hold: float) -> Delivery:
    """Create a run (no wait), then `get_task_run` it; finish it `hold` s after the first progress."""
    created = check(await rig.client.call_tool("create_task_run", {"input": question(), "wait_seconds": 0}))
    run_id = str(created["run_id"])
    if not created["is_active"]:
        raise RuntimeError(f"run {run_id} is not active on a frozen emulator")
    first_progress = anyio.Event()
    finished_at: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:  # noqa: ARG001
        first_progress.set()

    async def finisher() -> None:
        await first_progress.wait()
        await anyio.sleep(hold)
        rig.state.finish(run_id)
        finished_at.append(time.perf_counter())

    before = len(rig.state.request_log)
    result = None
    returned = 0.0
    async with anyio.create_task_group() as group:
        group.start_soon(finisher)
        result = await rig.client.call_tool(
            "get_task_run", {"run_id": run_id, "wait_seconds": WAIT_SECONDS}, progress_callback=on_progress
        )
        returned = time.perf_counter()
        group.cancel_scope.cancel()
    if result is None:
        raise RuntimeError(f"the waiting call on run {run_id} was cancelled")
    view = check(result)
    if view["status"] != "completed" or not finished_at:
        raise RuntimeError(f"the waiting call returned {view['status']} for run {run_id}")
    await anyio.sleep(QUIET_SECONDS)
    return Delivery(latency=returned - finished_at[0], run_id=run_id, since=before, log=rig.state.request_log)


async def polling_client(rig: Rig, duration: float, interval: float, phase: float) -> Delivery:
    """Create a run over HTTP, finish it after `duration` s; poll it every `interval` s, then read the result.

    The first poll comes `phase + interval` s after the create, so that pollers with phases spread over
    one interval see the run finish at every point of their cycle, as real pollers do.
    """
    response = await rig.http.post(f"{rig.base_url}/v1/tasks/runs", json={"input": question(), "processor": "lite"})
    response.raise_for_status()
    run_id = str(response.json()["run_id"])
    before = len(rig.state.request_log)
    finished_at: list[float] = []

    async def finisher() -> None:
        await anyio.sleep(duration)
        rig.state.finish(run_id)
        finished_at.append(time.perf_counter())

    returned = 0.0
    async with anyio.create_task_group() as group:
        group.start_soon(finisher)
        await anyio.sleep(phase)
        while True:
            await anyio.sleep(interval)
            polled = await rig.http.get(f"{rig.base_url}/v1/tasks/runs/{run_id}")
            polled.raise_for_status()
            if polled.json()["status"] == "completed":
                break
        result = await rig.http.get(f"{rig.base_url}/v1/tasks/runs/{run_id}/result")
        result.raise_for_status()
        returned = time.perf_counter()
    return Delivery(latency=returned - finished_at[0], run_id=run_id, since=before, log=rig.state.request_log)


@asynccontextmanager
async def memory_rig() -> AsyncGenerator[Rig]:
    """The server in memory (`mcp.Client(server)`), its client aimed at a frozen in-process emulator."""
    from parallel_mcp.client import AsyncTaskClient
    from parallel_mcp.config import Settings
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.runner import serve_emulator
    from parallel_mcp.server import create_server

    async with AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(serve_emulator(EmulatorConfig(api_key=EMULATOR_KEY, frozen=True)))
        task_client = await stack.enter_async_context(AsyncTaskClient(api_key=EMULATOR_KEY, base_url=emulator.base_url))
        client = await stack.enter_async_context(
            Client(create_server(Settings(), client=task_client, emulated=True), cache=None)
        )
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"x-api-key": EMULATOR_KEY}))
        yield Rig(client=client, http=http, base_url=emulator.base_url, state=emulator.state)


@asynccontextmanager
async def http_rig(journal: Path, *, pushed: bool) -> AsyncGenerator[Rig]:
    """The server over real loopback streamable HTTP (`build_http_app`, uvicorn) with its journal in a file.

    `pushed`: the server has a public URL (its own address) and a webhook secret, so the runs it creates
    carry a webhook to its `/webhooks/parallel`, which the emulator (same secret) signs and delivers.
    """
    from pydantic import SecretStr

    from parallel_mcp.client import AsyncTaskClient
    from parallel_mcp.config import Settings
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.runner import serve_emulator
    from parallel_mcp.http_app import build_http_app
    from parallel_mcp.server import create_server
    from parallel_mcp.serving import base_url, listening_socket, serve_asgi

    sock = listening_socket()
    url = base_url(sock)
    pushing: dict[str, Any] = {"public_url": url, "webhook_secret": SecretStr(WEBHOOK_SECRET)} if pushed else {}
    settings = Settings(transport="streamable-http", api_key=SecretStr(EMULATOR_KEY), journal=str(journal), **pushing)
    config = EmulatorConfig(api_key=EMULATOR_KEY, frozen=True, webhook_secret=WEBHOOK_SECRET if pushed else None)
    async with AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(serve_emulator(config))
        task_client = await stack.enter_async_context(AsyncTaskClient(api_key=EMULATOR_KEY, base_url=emulator.base_url))
        server = create_server(settings, client=task_client, emulated=True)
        await stack.enter_async_context(serve_asgi(build_http_app(server, settings), sock=sock))
        client = await stack.enter_async_context(Client(f"{url}/mcp", cache=None))
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"x-api-key": EMULATOR_KEY}))
        yield Rig(client=client, http=http, base_url=emulator.base_url, state=emulator.state)


def _model_rows(table: Table, wait: float, interval: float) -> None:
    """Requests per run for long runs, by formula: an agent re-calling after each `wait` vs polling."""
    for label, seconds in (
        ("lite, 30 s", 30.0),
        ("pro, 5 min", 300.0),
        ("ultra, 30 min", 1800.0),
        ("ultra8x, 2 h", 7200.0),
    ):
        calls = math.ceil(seconds / wait)
        polls = math.ceil(seconds / interval) + 1
        table.add(
            f"model: {label}",
            f"≤ {calls * TARGET_REQUESTS} ({calls} calls × ≤ 3)",
            f"{calls * TARGET_PUSHED_REQUESTS} ({calls} calls × 1)",
            polls,
            polls / (calls * 3),
        )


async def run(mode: Mode) -> Outcome:
    from parallel_mcp.config import Settings

    samples = mode.pick(5, 30)
    durations = [0.5, 1.5] if mode.quick else [0.5, 3.0, 10.0, 30.0]
    interval = 0.25 if mode.quick else 1.0
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as directory:
        async with (
            memory_rig() as memory,
            http_rig(Path(directory) / "http.sqlite3", pushed=False) as http,
            http_rig(Path(directory) / "pushed.sqlite3", pushed=True) as pushed,
        ):
            rigs = {MEMORY: memory, HTTP: http, PUSHED: pushed}
            for rig in rigs.values():
                await waiting_call(rig, 0.05)  # warm-up
            series: dict[str, list[Delivery]] = {label: [] for label in rigs}
            labels = list(rigs)
            for index in range(samples):  # the three servers in turn, their order rotating
                shift = index % len(labels)
                for label in labels[shift:] + labels[:shift]:
                    series[label].append(await waiting_call(rigs[label], 0.2))

            side_by_side: list[tuple[float, Delivery, Delivery, list[Delivery]]] = []
            for duration in durations:
                found: dict[str, Delivery] = {}
                polls: list[Delivery] = []

                async def mcp_side(label: str, duration: float = duration, found: dict[str, Delivery] = found) -> None:
                    found[label] = await waiting_call(rigs[label], duration)

                async def poll_side(phase: float, duration: float = duration, found: list[Delivery] = polls) -> None:
                    found.append(await polling_client(memory, duration, interval, phase))

                async with anyio.create_task_group() as group:
                    group.start_soon(mcp_side, MEMORY)
                    group.start_soon(mcp_side, PUSHED)
                    for index in range(POLLERS):
                        group.start_soon(poll_side, interval * index / POLLERS)
                side_by_side.append((duration, found[MEMORY], found[PUSHED], polls))
            await anyio.sleep(SETTLE_SECONDS)

    unpushed = series[MEMORY] + series[HTTP] + [mcp for _, mcp, _, _ in side_by_side]
    pushed_all = series[PUSHED] + [hook for _, _, hook, _ in side_by_side]
    memory_all = series[MEMORY] + [mcp for _, mcp, _, _ in side_by_side]
    latency_table = Table(
        f"Delivery: run finished -> waiting get_task_run returns ({samples} runs per server, servers in turn, "
        "finished 0.2 s into the wait)",
        ["variant", "p50 ms", "p99 ms", "max ms", "upstream GETs per call (mean / max)", "target", "met"],
    )
    for label, deliveries in series.items():
        latencies = [d.latency * 1000 for d in deliveries]
        requests = [d.requests for d in deliveries]
        bound = TARGET_PUSHED_REQUESTS if label == PUSHED else TARGET_REQUESTS
        latency_table.add(
            label,
            median(latencies),
            percentile(latencies, 99),
            max(latencies),
            f"{sum(requests) / len(requests):.2f} / {max(requests)}",
            f"≤ {TARGET_LATENCY_MS:g} ms, {'=' if label == PUSHED else '≤'} {bound} request{'s' * (bound > 1)}",
            max(latencies) <= TARGET_LATENCY_MS and max(requests) <= bound,
        )
    latency_table.notes.append(
        "In memory: mcp.Client(server), no transport. Loopback HTTP: the same server behind build_http_app and "
        "uvicorn on 127.0.0.1, an MCP client over streamable HTTP; its journal is a SQLite file."
    )
    latency_table.notes.append(
        "With webhooks: PARALLEL_MCP_PUBLIC_URL (the server's own address) and PARALLEL_WEBHOOK_SECRET; the "
        "emulator POSTs a signed task_run.status event when the run ends, the receiver notes it in the store and "
        "wakes the waiting call, which reads /result once. The latency includes that delivery."
    )
    comparison = Table(
        f"Delivery side by side: waiting get_task_run without and with webhooks vs polling every {interval:g} s "
        f"(same run lengths, measured; {POLLERS} pollers with phases spread over the interval)",
        [
            "run length s",
            "MCP latency ms",
            "MCP upstream GETs",
            "MCP + webhooks latency ms",
            "MCP + webhooks upstream GETs",
            "polling latency ms (mean / max)",
            "polling GETs (mean)",
            "GETs ratio (polling / MCP)",
        ],
    )
    for duration, mcp, hook, polls in side_by_side:
        poll_ms = [poll.latency * 1000 for poll in polls]
        poll_gets = sum(poll.requests for poll in polls) / len(polls)
        comparison.add(
            duration,
            mcp.latency * 1000,
            mcp.requests,
            hook.latency * 1000,
            hook.requests,
            f"{sum(poll_ms) / len(poll_ms):.0f} / {max(poll_ms):.0f}",
            poll_gets,
            poll_gets / mcp.requests,
        )
    comparison.notes.append(
        f"Polling: every {interval:g} s GET /v1/tasks/runs/{{id}} until completed, then GET …/result: about "
        f"ceil(D/{interval:g})+1 GETs, and the result arrives {interval / 2:g} s after the run ends on average."
    )
    comparison.notes.append(
        "MCP: GET the run, then one /result long-poll plus one event stream (progress) while waiting. "
        "MCP + webhooks: no upstream request while waiting; one GET /result once the webhook says the run ended."
    )
    model = Table(
        "Upstream requests per run by formula: an agent re-calling get_task_run with the default "
        f"{settings.wait_seconds:g} s wait vs polling every 1 s",
        ["run", "MCP waiting calls (requests)", "MCP + webhooks (requests)", "polling 1 s (GETs)", "polling / MCP"],
    )
    _model_rows(model, settings.wait_seconds, 1.0)
    model.notes.append(
        "Upper bounds for MCP: retry_after_seconds hints make agents call less often than back-to-back. "
        "With webhooks a call that times out before the run ends reads the run's status once instead."
    )
    memory_ms = [d.latency * 1000 for d in memory_all]
    worst_requests = max(d.requests for d in unpushed)
    pushed_ms = [d.latency * 1000 for d in pushed_all]
    pushed_requests = [d.requests for d in pushed_all]
    targets = [
        Target(
            "delivery latency",
            f"returns ≤ {TARGET_LATENCY_MS:g} ms after the run finishes",
            f"p50 {median(memory_ms):.1f} ms, max {max(memory_ms):.1f} ms over {len(memory_ms)} waiting calls "
            "(in memory)",
            max(memory_ms) <= TARGET_LATENCY_MS,
        ),
        Target(
            "upstream requests",
            f"≤ {TARGET_REQUESTS} per waiting call, however long the run",
            f"max {worst_requests} over {len(unpushed)} calls without webhooks (runs of 0.2–{max(durations):g} s)",
            worst_requests <= TARGET_REQUESTS,
        ),
        Target(
            "delivery latency, webhooks",
            f"returns ≤ {TARGET_LATENCY_MS:g} ms after the run finishes (webhook delivery included)",
            f"p50 {median(pushed_ms):.1f} ms, max {max(pushed_ms):.1f} ms over {len(pushed_ms)} waiting calls",
            max(pushed_ms) <= TARGET_LATENCY_MS,
        ),
        Target(
            "upstream requests, webhooks",
            f"{TARGET_PUSHED_REQUESTS} per waiting call, however long the run",
            f"min {min(pushed_requests)}, max {max(pushed_requests)} over {len(pushed_requests)} calls",
            set(pushed_requests) == {TARGET_PUSHED_REQUESTS},
        ),
    ]
    return Outcome(tables=[latency_table, comparison, model], targets=targets)
