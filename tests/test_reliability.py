"""Every tool call ends with the right result or a clear error after bounded retries; no run is ever duplicated.

Faults are injected into a live emulator on loopback; the tools are called through the MCP protocol
(in memory, or over streamable HTTP for the load test). `run_count` is the emulator's own tally.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from parallel_mcp.http_app import build_http_app
from parallel_mcp.processors import PROCESSORS
from parallel_mcp.server import create_server
from parallel_mcp.serving import serve_asgi
from tests.processes import StdioServer, server_env, stdio_clients
from tests.support import API_KEY, Session, Sleeps, mcp_session, structured, text_of, until

pytestmark = pytest.mark.anyio

RUNS = "/v1/tasks/runs"
CALL_BOUND = 15.0
"""No tool call in this file may take longer than this, whatever the fault."""


def posts(emulator: RunningEmulator) -> list[int | None]:
    """Statuses of the create requests the emulator handled (None: connection dropped)."""
    return [r.status for r in emulator.state.request_log if r.method == "POST" and r.path == RUNS]


def error_text(result: CallToolResult) -> str:
    """The message of an error result."""
    assert result.is_error, text_of(result)
    text = text_of(result)
    assert text.strip() and "Traceback" not in text
    return text


async def created_run(session: Session) -> str:
    """Create a run before any fault is switched on; returns its run_id."""
    view = structured(await session.call("create_task_run", {"input": "q", "wait_seconds": 0}))
    run_id: str = view["run_id"]
    return run_id


@asynccontextmanager
async def session_with_timeouts(
    config: EmulatorConfig, *, request_timeout: float, max_retries: int = 2, **settings: Any
) -> AsyncGenerator[Session]:
    """Like `mcp_session`, but the server's client gives up on a request after `request_timeout` seconds."""
    config = config.model_copy(update={"api_key": API_KEY})
    sleeps = Sleeps()
    async with (
        serve_emulator(config) as emulator,
        AsyncTaskClient(
            api_key=API_KEY,
            base_url=emulator.base_url,
            max_retries=max_retries,
            request_timeout=request_timeout,
            sleep=sleeps,
        ) as client,
    ):
        server = create_server(Settings(emulator_speed=config.speed, **settings), client=client, emulated=True)
        async with Client(server) as mcp:
            yield Session(mcp=mcp, emulator=emulator, client=client, sleeps=sleeps)


@asynccontextmanager
async def mcp_over_http(
    config: EmulatorConfig, *, max_retries: int, **settings: Any
) -> AsyncGenerator[tuple[str, RunningEmulator]]:
    """The MCP server served over streamable HTTP on a loopback port, backed by a live emulator."""
    config = config.model_copy(update={"api_key": API_KEY})
    async with (
        serve_emulator(config) as emulator,
        AsyncTaskClient(api_key=API_KEY, base_url=emulator.base_url, max_retries=max_retries, sleep=Sleeps()) as client,
    ):
        server_settings = Settings(transport="streamable-http", emulator_speed=config.speed, **settings)
        server = create_server(server_settings, client=client, emulated=True)
        async with serve_asgi(build_http_app(server, server_settings)) as base_url:
            yield f"{base_url}/mcp", emulator


# ----- rate limits -------------------------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_create_task_run_rides_out_a_429_with_retry_after_and_creates_one_run() -> None:
    fault = Fault(kind="status", method="POST", path=RUNS, status=429, retry_after=1, times=1)
    async with mcp_session(EmulatorConfig(instant=True, faults=[fault])) as session:
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("create_task_run", {"input": "q", "wait_seconds": 5})
        assert structured(result)["status"] == "completed"
        assert posts(session.emulator) == [429, 202] and session.emulator.state.run_count == 1
    assert session.sleeps == [1.0]  # the Retry-After was honoured


@pytest.mark.virtual_time
async def test_a_rate_limited_create_ends_quickly_with_a_clear_error_instead_of_sleeping_out_a_long_retry_after() -> (
    None
):
    # The emulator's per-minute limit answers 429 with Retry-After of about 60 s. A tool call must not sleep
    # that out (twice, with max_retries=2): MCP clients cut a call at about 60 s (config.MAX_WAIT_SECONDS).
    async with mcp_session(EmulatorConfig(instant=True, rate_limit_per_minute=1)) as session:
        await created_run(session)
        with anyio.fail_after(8):
            result = await session.call("create_task_run", {"input": "another question", "wait_seconds": 5})
        text = error_text(result)
        assert "429" in text and "Retry after" in text
        assert session.emulator.state.run_count == 1


# ----- server errors -------------------------------------------------------------------------------------


@pytest.mark.virtual_time
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_get_task_run_rides_out_a_burst_of_server_errors_within_its_retries(status: int) -> None:
    async with mcp_session(EmulatorConfig(instant=True), max_retries=2) as session:
        run_id = await created_run(session)
        session.emulator.state.faults.add(Fault(kind="status", method="GET", path=f"{RUNS}/*", status=status, times=2))
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("get_task_run", {"run_id": run_id, "wait_seconds": 5})
        assert structured(result)["status"] == "completed"
        assert session.emulator.state.run_count == 1


@pytest.mark.virtual_time
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_get_task_run_reports_the_http_status_when_server_errors_outlast_its_retries(status: int) -> None:
    async with mcp_session(EmulatorConfig(instant=True), max_retries=1) as session:
        run_id = await created_run(session)
        session.emulator.state.faults.add(Fault(kind="status", method="GET", path=f"{RUNS}/*", status=status))
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("get_task_run", {"run_id": run_id, "wait_seconds": 5})
        assert f"HTTP {status}" in error_text(result)
        assert session.emulator.state.run_count == 1


@pytest.mark.virtual_time
async def test_create_task_run_retries_503_and_reports_it_when_it_outlasts_the_retries_without_creating_a_run() -> None:
    async with mcp_session(EmulatorConfig(instant=True), max_retries=1) as session:
        session.emulator.state.faults.add(Fault(kind="status", method="POST", path=RUNS, status=503))
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("create_task_run", {"input": "q", "wait_seconds": 5})
        assert "HTTP 503" in error_text(result)
        assert posts(session.emulator) == [503, 503] and session.emulator.state.run_count == 0


@pytest.mark.virtual_time
@pytest.mark.parametrize("status", [500, 502])
async def test_create_task_run_answered_500_or_502_says_a_run_may_exist_and_must_not_be_recreated(status: int) -> None:
    async with mcp_session(EmulatorConfig(instant=True), max_retries=3) as session:
        session.emulator.state.faults.add(Fault(kind="status", method="POST", path=RUNS, status=status, times=1))
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("create_task_run", {"input": "q", "wait_seconds": 5})
        text = error_text(result)
        assert f"HTTP {status}" in text and "may have created a run" in text
        assert "Do not call create_task_run again" in text
        assert posts(session.emulator) == [status] and session.emulator.state.run_count == 0


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="status", method="GET", path=f"{RUNS}/*/result", status=500),
        Fault(kind="drop", method="GET", path=f"{RUNS}/*/result"),
    ],
    ids=["500", "drop"],
)
@pytest.mark.virtual_time
async def test_a_create_whose_wait_fails_after_the_run_was_created_still_hands_back_the_run_id(fault: Fault) -> None:
    # The run exists once the POST succeeded: an error that hides its run_id invites the agent to create it again.
    async with mcp_session(EmulatorConfig(frozen=True, faults=[fault]), max_retries=1) as session:
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("create_task_run", {"input": "q", "wait_seconds": 5})
        assert session.emulator.state.run_count == 1
        (run_id,) = session.emulator.state.runs
        assert run_id in text_of(result)
        assert "Traceback" not in text_of(result)


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (Fault(kind="status", method="GET", path=f"{RUNS}/*/result", status=500), "HTTP 500"),
        (Fault(kind="drop", method="GET", path=f"{RUNS}/*/result"), "Could not reach the Task API"),
    ],
    ids=["500", "drop"],
)
@pytest.mark.virtual_time
async def test_get_task_run_whose_long_poll_keeps_failing_reports_why_or_the_runs_status(
    fault: Fault, needle: str
) -> None:
    async with mcp_session(EmulatorConfig(frozen=True), max_retries=1) as session:
        run_id = await created_run(session)
        session.emulator.state.faults.add(fault)
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("get_task_run", {"run_id": run_id, "wait_seconds": 5})
    if result.is_error:
        assert needle in error_text(result)
    else:
        assert structured(result)["status"] == "queued"


# ----- connection resets and slow answers --------------------------------------------------------------


@pytest.mark.virtual_time
async def test_create_task_run_whose_connection_resets_says_a_run_may_exist_and_is_not_retried() -> None:
    async with mcp_session(EmulatorConfig(instant=True), max_retries=3) as session:
        session.emulator.state.faults.add(Fault(kind="drop", method="POST", path=RUNS, times=1))
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("create_task_run", {"input": "q", "wait_seconds": 5})
        text = error_text(result)
        assert "lost the connection" in text and "may have created a run" in text
        assert posts(session.emulator) == [None] and session.emulator.state.run_count == 0


@pytest.mark.virtual_time
async def test_connection_resets_on_reads_are_retried_and_the_call_completes() -> None:
    async with mcp_session(EmulatorConfig(speed=200), max_retries=2) as session:
        session.emulator.state.faults.add(Fault(kind="drop", method="GET", path=f"{RUNS}/*/result", times=1))
        with anyio.fail_after(CALL_BOUND):
            created = await session.call("create_task_run", {"input": "q", "processor": "lite", "wait_seconds": 10})
        assert structured(created)["status"] == "completed"
        run_id = structured(created)["run_id"]
        session.emulator.state.faults.add(Fault(kind="drop", method="GET", path=f"{RUNS}/*", times=2))
        with anyio.fail_after(CALL_BOUND):
            # A new session-level read of another run: the cache would answer the completed one.
            second = await session.call("create_task_run", {"input": "q2", "wait_seconds": 10})
            fetched = await session.call("get_task_run", {"run_id": structured(second)["run_id"], "wait_seconds": 5})
        assert structured(fetched)["status"] == "completed"
        assert session.emulator.state.run_count == 2 and run_id != structured(second)["run_id"]
        assert None in [r.status for r in session.emulator.state.request_log]


@pytest.mark.virtual_time
async def test_slow_answers_on_every_request_still_complete_the_call() -> None:
    faults = [Fault(kind="latency", path="/v1/*", delay=0.3)]
    async with mcp_session(EmulatorConfig(speed=200, faults=faults)) as session:
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("create_task_run", {"input": "q", "processor": "lite", "wait_seconds": 10})
        assert structured(result)["status"] == "completed"
        assert session.emulator.state.run_count == 1


@pytest.mark.virtual_time
async def test_a_create_slower_than_the_request_timeout_says_a_run_may_exist_and_is_not_retried() -> None:
    fault = Fault(kind="latency", method="POST", path=RUNS, delay=1.0, times=1)
    async with session_with_timeouts(EmulatorConfig(instant=True, faults=[fault]), request_timeout=0.3) as session:
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("create_task_run", {"input": "q", "wait_seconds": 5})
        text = error_text(result)
        assert "timed out" in text and "may have created a run" in text
        assert session.client.request_count == 1


# ----- event streams and long-polls ----------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_event_streams_cut_midway_do_not_stop_the_wait_from_returning_the_result() -> None:
    cut = Fault(kind="sse_cut", path="*/events", after_events=2)
    async with mcp_session(EmulatorConfig(speed=300, faults=[cut]), progress_interval=0.2) as session:
        arguments = {"input": "q", "processor": "core", "enable_events": True, "wait_seconds": 20}
        with anyio.fail_after(CALL_BOUND):
            result = await session.call("create_task_run", arguments)
        assert structured(result)["status"] == "completed"
        assert cut.fired >= 1 and session.emulator.state.run_count == 1


@pytest.mark.virtual_time
async def test_long_polls_that_keep_answering_408_end_in_a_running_status_not_an_error() -> None:
    hang = Fault(kind="hang_run", match_processor="lite")
    async with mcp_session(EmulatorConfig(speed=500, faults=[hang])) as session:
        with anyio.fail_after(CALL_BOUND):
            created = structured(
                await session.call("create_task_run", {"input": "q", "processor": "lite", "wait_seconds": 1})
            )
            again = structured(await session.call("get_task_run", {"run_id": created["run_id"], "wait_seconds": 1}))
        assert hang.fired == 1 and session.emulator.state.run_count == 1
        result_polls = [r.status for r in session.emulator.state.request_log if r.path.endswith("/result")]
    for view in (created, again):
        assert view["is_active"] is True and view["status"] in {"queued", "running"} and "error" not in view
        assert view["retry_after_seconds"] >= 1 and "get_task_run" in view["next_step"]
    assert again["status"] == "running"
    assert result_polls == [408, 408]  # one long-poll per call, each ended by the API's 408


# ----- load ----------------------------------------------------------------------------------------------

LOAD_CALLS = 50


async def test_fifty_concurrent_calls_over_streamable_http_with_faults_all_complete_and_create_each_run_once() -> None:
    faults = [
        Fault(kind="status", method="POST", path=RUNS, status=503, times=8),
        Fault(kind="status", method="POST", path=RUNS, status=429, retry_after=1, times=4),
        Fault(kind="drop", method="GET", path=f"{RUNS}/*/result", times=5),
        Fault(kind="status", method="GET", path=f"{RUNS}/*/result", status=502, times=5),
        Fault(kind="latency", method="GET", path=f"{RUNS}/*", delay=0.2, times=20),
        Fault(kind="sse_cut", path="*/events", after_events=1, times=10),
    ]
    inputs = [f"load question {i}" for i in range(LOAD_CALLS)]
    results: dict[str, CallToolResult] = {}
    async with mcp_over_http(EmulatorConfig(speed=100, faults=faults), max_retries=4, wait_seconds=20) as (
        url,
        emulator,
    ):
        async with Client(url) as mcp:

            async def call(question: str) -> None:
                arguments = {"input": question, "processor": "lite", "wait_seconds": 20}
                results[question] = await mcp.call_tool("create_task_run", arguments)

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for question in inputs:
                        tg.start_soon(call, question)
        state = emulator.state
        assert all(fault.fired for fault in faults)
        created_per_input = Counter(str(record.input.input) for record in state.runs.values())
    assert len(results) == LOAD_CALLS
    errors = [text_of(r) for r in results.values() if r.is_error]
    assert errors == []
    views = [structured(results[question]) for question in inputs]
    assert all(view["status"] == "completed" for view in views)
    assert state.run_count == LOAD_CALLS and created_per_input == Counter(inputs)  # each run created exactly once
    assert {view["run_id"] for view in views} == set(state.runs)


# ----- bad input -----------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
SHORT_TEXT = st.text(max_size=30)
WAITS = st.floats(min_value=-5, max_value=60, allow_nan=False) | st.sampled_from([0, 1, 50, 51])
NEAR_VALID_CREATE: dict[str, st.SearchStrategy[Any]] = {
    "input": SHORT_TEXT | st.dictionaries(st.text(max_size=8), SHORT_TEXT, max_size=3),
    "processor": st.sampled_from([*PROCESSORS, "mega", "", "LITE", "lite ", "ultra9x"]),
    "output_schema": st.sampled_from(["auto", "text", "json", "a report", "{", "[1]", '{"type": "array"}'])
    | st.fixed_dictionaries({"type": st.sampled_from(["json", "text", "auto", "xml", "object"])})
    | JSON_VALUES.map(json.dumps),
    "input_schema": JSON_VALUES | SHORT_TEXT,
    "metadata": st.dictionaries(st.text(max_size=20), SHORT_TEXT | st.integers() | st.booleans(), max_size=3)
    | SHORT_TEXT,
    "source_policy": st.fixed_dictionaries(
        {}, optional={"include_domains": st.lists(SHORT_TEXT, max_size=3), "after_date": SHORT_TEXT}
    ),
    "advanced_settings": st.fixed_dictionaries({"location": SHORT_TEXT}) | SHORT_TEXT,
    "previous_interaction_id": SHORT_TEXT,
    "mcp_servers": st.lists(
        st.fixed_dictionaries(
            {"name": SHORT_TEXT, "url": st.sampled_from(["http://127.0.0.1:9/mcp", "ftp://x", "", "https://"])},
            optional={"headers": st.dictionaries(SHORT_TEXT, JSON_VALUES, max_size=2) | SHORT_TEXT},
        ),
        max_size=2,
    ),
    "enable_events": st.booleans(),
    "webhook_url": st.sampled_from(["https://example.com/hook", "nope", ""]),
    "idempotency_key": SHORT_TEXT,
    "force_new": st.booleans(),
    "memory_scope_key": SHORT_TEXT,
    "wait_seconds": WAITS,
}
NEAR_VALID_GET: dict[str, st.SearchStrategy[Any]] = {
    "run_id": SHORT_TEXT | SHORT_TEXT.map(lambda tail: f"trun_{tail}") | st.sampled_from(["", " ", "../x", "%2F"]),
    "wait_seconds": WAITS,
    "offset": st.integers(min_value=-5, max_value=2**40),
    "fields": st.lists(SHORT_TEXT, max_size=3),
    "include_basis": st.booleans(),
}


def arguments_for(near_valid: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Any subset of the tool's arguments, each a random JSON value or a near-valid one, plus stray keys."""
    optional = {name: JSON_VALUES | strategy for name, strategy in near_valid.items()}
    optional["unexpected_argument"] = JSON_VALUES
    return st.fixed_dictionaries({}, optional=optional)


@pytest.mark.parametrize(
    ("tool", "near_valid"), [("create_task_run", NEAR_VALID_CREATE), ("get_task_run", NEAR_VALID_GET)]
)
def test_random_and_near_valid_arguments_get_a_result_or_a_clear_error_and_the_server_keeps_answering(
    tool: str, near_valid: dict[str, st.SearchStrategy[Any]]
) -> None:
    # One live session for every example: hypothesis drives a synchronous function, the session lives in a portal.
    config = EmulatorConfig(instant=True, mcp_timeout=0.5)
    with start_blocking_portal("asyncio") as portal, portal.wrap_async_context_manager(mcp_session(config)) as session:

        async def bounded_call(name: str, arguments: dict[str, Any]) -> CallToolResult:
            with anyio.fail_after(CALL_BOUND):
                return await session.call(name, arguments)

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(arguments=arguments_for(near_valid))
        def answers_cleanly(arguments: dict[str, Any]) -> None:
            result = portal.call(bounded_call, tool, arguments)
            text = text_of(result)
            assert "Traceback" not in text
            if result.is_error:
                assert text.strip()
            else:
                assert structured(result)["run_id"]

        answers_cleanly()
        created = portal.call(bounded_call, "create_task_run", {"input": "still there?", "wait_seconds": 5})
        fetched = portal.call(bounded_call, "get_task_run", {"run_id": structured(created)["run_id"]})
    assert structured(created)["status"] == structured(fetched)["status"] == "completed"


# ----- a stalled upstream ---------------------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_every_call_ends_within_its_wait_plus_the_margin_when_upstream_reads_stall() -> None:
    # Upstream GETs held for 100 s used to keep a call for three 60 s request timeouts (187 s).
    stall = Fault(kind="latency", method="GET", path="*", delay=100)
    wait, margin = 0.5, 0.5
    bound = wait + margin + 1.0
    async with mcp_session(EmulatorConfig(frozen=True), call_margin_seconds=margin) as session:
        run_id = await created_run(session)
        session.emulator.state.faults.add(stall)
        took: dict[str, float] = {}
        results: dict[str, CallToolResult] = {}

        async def timed(name: str, tool: str, arguments: dict[str, Any]) -> None:
            started = anyio.current_time()
            results[name] = await session.call(tool, arguments)
            took[name] = anyio.current_time() - started

        with anyio.fail_after(bound + 5):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(timed, "create", "create_task_run", {"input": "fresh", "wait_seconds": wait})
                tasks.start_soon(timed, "get", "get_task_run", {"run_id": run_id, "wait_seconds": wait})
        assert session.emulator.state.run_count == 2
    assert max(took.values()) <= bound, took
    created = structured(results["create"])  # the run exists: its id, and why its status is unknown
    assert created["run_id"] and any("reading its status failed" in w for w in created["warnings"])
    assert "within the call's time" in error_text(results["get"])


@pytest.mark.virtual_time
async def test_a_create_that_upstream_holds_past_the_calls_time_says_a_run_may_exist() -> None:
    stall = Fault(kind="latency", method="POST", path=RUNS, delay=100)
    async with mcp_session(EmulatorConfig(frozen=True, faults=[stall]), call_margin_seconds=0.5) as session:
        with anyio.fail_after(2 * (0.5 + 0.5) + 5):
            result = await session.call("create_task_run", {"input": "q", "wait_seconds": 0.5})
            again = await session.call("create_task_run", {"input": "q", "wait_seconds": 0.5})
    assert "may have created a run" in error_text(result) and "force_new" in error_text(result)
    assert "cannot be confirmed" in error_text(again)


# ----- a server killed mid-create -------------------------------------------------------------------------


async def test_a_server_killed_while_its_create_is_in_flight_does_not_bill_again_after_a_restart(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.sqlite3"
    create: dict[str, Any] = {"input": "q", "processor": "pro", "wait_seconds": 0}
    arguments: dict[str, Any] = {"name": "create_task_run", "arguments": create}
    async with serve_emulator(EmulatorConfig(frozen=True)) as emulator:
        held = emulator.state.faults.add(Fault(kind="latency", method="POST", path=RUNS, delay=1.0, times=1))
        env = server_env(
            PARALLEL_API_KEY="k-kill",
            PARALLEL_BASE_URL=emulator.base_url,
            PARALLEL_MCP_JOURNAL=str(journal),
            # the restarted server follows the dead one's create for the rest of its call, then reports it
            PARALLEL_MCP_CALL_MARGIN_SECONDS="1",
        )
        with anyio.fail_after(30):
            async with StdioServer.running(env) as first_life:
                await first_life.send_request("tools/call", arguments)
                await until(lambda: held.fired == 1 and intents_sending(journal) == 1)  # upstream holds the POST
                first_life.process.kill()  # kill -9 while the create is in flight
            await until(lambda: emulator.state.run_count == 1)  # the real service keeps the run
            async with StdioServer.running(env) as second_life:
                again = await second_life.request("tools/call", arguments)
                forced = await second_life.request(
                    "tools/call", {**arguments, "arguments": {**create, "force_new": True}}
                )
        assert emulator.state.run_count == 2  # the retry made none; only force_new did
    said = again["result"]["content"][0]["text"]
    assert again["result"]["isError"] and "nothing new was sent" in said
    assert not forced["result"]["isError"]


def intents_sending(journal: Path) -> int:
    if not journal.exists():
        return 0
    with sqlite3.connect(journal) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM intents WHERE state = 'sending'").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # not migrated yet


async def test_one_request_sent_at_once_by_two_servers_on_one_journal_makes_one_run(tmp_path: Path) -> None:
    # One user, two agent windows asking the same thing at the same moment: one billed run between them.
    async with serve_emulator(EmulatorConfig(api_key=API_KEY, frozen=True)) as emulator:
        env = server_env(
            PARALLEL_API_KEY=API_KEY,
            PARALLEL_BASE_URL=emulator.base_url,
            PARALLEL_MCP_JOURNAL=str(tmp_path / "journal.sqlite3"),
        )
        ids: list[str] = []
        async with stdio_clients(env, tmp_path / "servers.log") as windows:

            async def create(index: int) -> None:
                arguments = {"input": "Who founded Acme?", "processor": "lite", "wait_seconds": 0}
                ids.append(structured(await windows[index % 2].call_tool("create_task_run", arguments))["run_id"])

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tasks:
                    for index in range(6):
                        tasks.start_soon(create, index)
        runs = emulator.state.run_count
    assert runs == 1 and len(set(ids)) == 1 and len(ids) == 6
