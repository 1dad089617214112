"""Delivery latency: a waiting `get_task_run` vs a fixed-interval polling client.

The server (in memory, `mcp.Client(server)`) waits on an emulator whose runs never move by
themselves (`frozen=True`); the benchmark finishes a run with `state.finish(run_id)` at a known
instant while the call waits (a set time after its first progress notification) and measures
finish -> tool result, and the upstream requests the call made (the emulator's `request_log`).
A polling client (`GET /v1/tasks/runs/{id}` every interval, then `GET …/result`) runs side by side
on runs of the same length.
"""

from __future__ import annotations

import math
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
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
EMULATOR_KEY = "bench-emulator-key"
WAIT_SECONDS = 50
POLLERS = 4
SETTLE_SECONDS = 0.3
"""The emulator logs a request when its handler ends; cancelled streams end a moment after the call."""


@dataclass(frozen=True)
class Delivery:
    latency: float
    """Seconds from the run finishing to the result being in the caller's hands."""
    requests: int
    """Upstream requests (GET) for this run made while waiting."""


@dataclass
class Rig:
    client: Client
    http: httpx2.AsyncClient
    base_url: str
    state: Any  # parallel_mcp.emulator.state.EmulatorState, imported lazily


def _requests_for(rig: Rig, run_id: str, since: int) -> int:
    return sum(1 for record in rig.state.request_log[since:] if run_id in record.path and record.method == "GET")


async def waiting_call(rig: Rig, hold: float) -> Delivery:
    """Create a run (no wait), then `get_task_run` it; finish it `hold` s after the first progress."""
    created = check(
        await rig.client.call_tool("create_task_run", {"input": "Who wrote Middlemarch?", "wait_seconds": 0})
    )
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
    await anyio.sleep(SETTLE_SECONDS)
    return Delivery(latency=returned - finished_at[0], requests=_requests_for(rig, run_id, before))


async def polling_client(rig: Rig, duration: float, interval: float, phase: float) -> Delivery:
    """Create a run over HTTP, finish it after `duration` s; poll it every `interval` s, then read the result.

    The first poll comes `phase + interval` s after the create, so that pollers with phases spread over
    one interval see the run finish at every point of their cycle, as real pollers do.
    """
    response = await rig.http.post(
        f"{rig.base_url}/v1/tasks/runs", json={"input": "Who wrote Middlemarch?", "processor": "lite"}
    )
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
    await anyio.sleep(SETTLE_SECONDS)
    return Delivery(latency=returned - finished_at[0], requests=_requests_for(rig, run_id, before))


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
        table.add(f"model: {label}", f"≤ {calls * TARGET_REQUESTS} ({calls} calls × ≤ 3)", polls, polls / (calls * 3))


async def run(mode: Mode) -> Outcome:
    from parallel_mcp.client import AsyncTaskClient
    from parallel_mcp.config import Settings
    from parallel_mcp.emulator.config import EmulatorConfig
    from parallel_mcp.emulator.runner import serve_emulator
    from parallel_mcp.server import create_server

    samples = mode.pick(5, 30)
    durations = [0.5, 1.5] if mode.quick else [0.5, 3.0, 10.0, 30.0]
    interval = 0.25 if mode.quick else 1.0
    settings = Settings()
    async with AsyncExitStack() as stack:
        emulator = await stack.enter_async_context(serve_emulator(EmulatorConfig(api_key=EMULATOR_KEY, frozen=True)))
        task_client = await stack.enter_async_context(AsyncTaskClient(api_key=EMULATOR_KEY, base_url=emulator.base_url))
        client = await stack.enter_async_context(
            Client(create_server(settings, client=task_client, emulated=True), cache=None)
        )
        http = await stack.enter_async_context(httpx2.AsyncClient(headers={"x-api-key": EMULATOR_KEY}))
        rig = Rig(client=client, http=http, base_url=emulator.base_url, state=emulator.state)

        await waiting_call(rig, 0.05)  # warm-up
        latency_series = [await waiting_call(rig, 0.2) for _ in range(samples)]

        side_by_side: list[tuple[float, Delivery, list[Delivery]]] = []
        for duration in durations:
            mcp_found: list[Delivery] = []
            polls: list[Delivery] = []

            async def mcp_side(duration: float = duration, found: list[Delivery] = mcp_found) -> None:
                found.append(await waiting_call(rig, duration))

            async def poll_side(phase: float, duration: float = duration, found: list[Delivery] = polls) -> None:
                found.append(await polling_client(rig, duration, interval, phase))

            async with anyio.create_task_group() as group:
                group.start_soon(mcp_side)
                for index in range(POLLERS):
                    group.start_soon(poll_side, interval * index / POLLERS)
            side_by_side.append((duration, mcp_found[0], polls))

    latencies_ms = [d.latency * 1000 for d in latency_series]
    all_mcp = latency_series + [mcp for _, mcp, _ in side_by_side]
    worst_requests = max(d.requests for d in all_mcp)
    worst_ms = max(d.latency for d in all_mcp) * 1000
    latency_table = Table(
        f"Delivery: run finished -> waiting get_task_run returns (in-memory, {samples} runs, "
        "finished 0.2 s into the wait)",
        ["variant", "p50 ms", "p99 ms", "max ms", "upstream GETs per call (max)", "target", "met"],
    )
    latency_table.add(
        "waiting get_task_run",
        median(latencies_ms),
        percentile(latencies_ms, 99),
        max(latencies_ms),
        max(d.requests for d in latency_series),
        f"≤ {TARGET_LATENCY_MS:g} ms, ≤ {TARGET_REQUESTS} requests",
        max(latencies_ms) <= TARGET_LATENCY_MS and worst_requests <= TARGET_REQUESTS,
    )
    comparison = Table(
        f"Delivery side by side: waiting get_task_run vs polling every {interval:g} s (same run lengths, measured; "
        f"{POLLERS} pollers with phases spread over the interval)",
        [
            "run length s",
            "MCP latency ms",
            "MCP upstream GETs",
            "polling latency ms (mean / max)",
            "polling GETs (mean)",
            "GETs ratio",
        ],
    )
    for duration, mcp, polls in side_by_side:
        poll_ms = [poll.latency * 1000 for poll in polls]
        poll_gets = sum(poll.requests for poll in polls) / len(polls)
        comparison.add(
            duration,
            mcp.latency * 1000,
            mcp.requests,
            f"{sum(poll_ms) / len(poll_ms):.0f} / {max(poll_ms):.0f}",
            poll_gets,
            poll_gets / mcp.requests,
        )
    comparison.notes.append(
        f"Polling: every {interval:g} s GET /v1/tasks/runs/{{id}} until completed, then GET …/result: about "
        f"ceil(D/{interval:g})+1 GETs, and the result arrives {interval / 2:g} s after the run ends on average."
    )
    comparison.notes.append(
        "MCP: GET the run, then one /result long-poll plus one event stream (progress) while waiting."
    )
    model = Table(
        "Upstream requests per run by formula: an agent re-calling get_task_run with the default "
        f"{settings.wait_seconds:g} s wait vs polling every 1 s",
        ["run", "MCP waiting calls (requests)", "polling 1 s (GETs)", "polling / MCP"],
    )
    _model_rows(model, settings.wait_seconds, 1.0)
    model.notes.append("Upper bounds for MCP: retry_after_seconds hints make agents call less often than back-to-back.")
    targets = [
        Target(
            "delivery latency",
            f"returns ≤ {TARGET_LATENCY_MS:g} ms after the run finishes",
            f"p50 {median(latencies_ms):.1f} ms, max {worst_ms:.1f} ms over {len(all_mcp)} waiting calls",
            worst_ms <= TARGET_LATENCY_MS,
        ),
        Target(
            "upstream requests",
            f"≤ {TARGET_REQUESTS} per waiting call, however long the run",
            f"max {worst_requests} (runs of 0.2–{max(durations):g} s)",
            worst_requests <= TARGET_REQUESTS,
        ),
    ]
    return Outcome(tables=[latency_table, comparison, model], targets=targets)
