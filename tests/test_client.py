"""AsyncTaskClient against a live emulator on loopback, with injected faults: retries, errors, streams, headers."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from starlette.types import Receive, Scope, Send

from parallel_mcp import __version__
from parallel_mcp.client import AsyncTaskClient, backoff_delay
from parallel_mcp.emulator.app import create_emulator_app
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from parallel_mcp.emulator.state import EmulatorState
from parallel_mcp.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RunMayExistError,
    TaskRunFailedError,
    UnprocessableEntityError,
    error_from_response,
    parse_retry_after,
)
from parallel_mcp.models import (
    RunEvent,
    TaskRunEvent,
    TaskRunInput,
    TaskRunProgressMessageEvent,
    TaskRunProgressStatsEvent,
    TaskRunResult,
)
from parallel_mcp.models.betas import BETA_EVENTS, BETA_FIELD_BASIS, BETA_MCP, BETA_WEBHOOK, betas_for
from parallel_mcp.serving import serve_asgi
from tests.support import API_KEY, Sleeps, closed_port, emulator_client, until

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

RUNS = "/v1/tasks/runs"
QUESTION = TaskRunInput(input="What is the capital of France?", processor="lite")
LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"founders": {"type": "array", "items": {"type": "string"}, "description": "Founders"}},
    "required": ["founders"],
    "additionalProperties": False,
}
FLAT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ceo": {"type": "string", "description": "Current CEO"}},
    "required": ["ceo"],
    "additionalProperties": False,
}


def posts(emulator: RunningEmulator) -> list[int | None]:
    """Statuses of the create requests the emulator handled (None: connection dropped)."""
    return [r.status for r in emulator.state.request_log if r.method == "POST" and r.path == RUNS]


def gets(emulator: RunningEmulator, path: str) -> list[int | None]:
    """Statuses of the GET requests on `path` the emulator handled."""
    return [r.status for r in emulator.state.request_log if r.method == "GET" and r.path == path]


@dataclass(frozen=True)
class Seen:
    """One request as it reached the emulator's socket."""

    method: str
    path: str
    headers: dict[str, str]
    peer_port: int


@asynccontextmanager
async def recording_emulator(
    config: EmulatorConfig | None = None,
) -> AsyncGenerator[tuple[RunningEmulator, list[Seen]]]:
    """The emulator served on loopback behind a recorder of every request's headers and peer port."""
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    inner = create_emulator_app(state)
    seen: list[Seen] = []

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw: list[tuple[bytes, bytes]] = scope["headers"]
            headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
            seen.append(Seen(scope["method"], scope["path"], headers, int(scope["client"][1])))
        await inner(scope, receive, send)

    async with serve_asgi(recorder) as base_url:
        with anyio.fail_after(10):
            await state.started.wait()
        yield RunningEmulator(base_url=base_url, state=state, config=config), seen


# ----- retries on reads ----------------------------------------------------------------------------


async def test_a_read_answered_429_with_retry_after_is_retried_after_the_advertised_delay() -> None:
    sleeps = Sleeps()
    async with emulator_client(EmulatorConfig(frozen=True), sleeps=sleeps) as (emulator, client):
        run = await client.create_run(QUESTION)
        emulator.state.faults.add(
            Fault(kind="status", method="GET", path=f"{RUNS}/*", status=429, retry_after=1, times=1)
        )
        with anyio.fail_after(10):
            await client.get_run(run.run_id)
    assert gets(emulator, f"{RUNS}/{run.run_id}") == [429, 200]
    assert sleeps == [1.0]  # Retry-After: 1, not the 0.5 s default backoff


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_burst_on_a_read_is_retried_max_retries_times_then_raises_internal_server_error(
    status: int,
) -> None:
    async with emulator_client(EmulatorConfig(frozen=True), max_retries=1) as (emulator, client):
        run = await client.create_run(QUESTION)
        emulator.state.faults.add(Fault(kind="status", method="GET", path=f"{RUNS}/*", status=status))
        with anyio.fail_after(10), pytest.raises(InternalServerError) as caught:
            await client.get_run(run.run_id)
    assert caught.value.status_code == status and caught.value.ref_id
    assert gets(emulator, f"{RUNS}/{run.run_id}") == [status, status]


async def test_a_short_5xx_burst_on_a_read_is_ridden_out_within_max_retries() -> None:
    async with emulator_client(EmulatorConfig(frozen=True), max_retries=2) as (emulator, client):
        run = await client.create_run(QUESTION)
        emulator.state.faults.add(Fault(kind="status", method="GET", path=f"{RUNS}/*", status=502, times=1))
        emulator.state.faults.add(Fault(kind="status", method="GET", path=f"{RUNS}/*", status=503, times=1))
        with anyio.fail_after(10):
            got = await client.get_run(run.run_id)
    assert got.run_id == run.run_id
    assert gets(emulator, f"{RUNS}/{run.run_id}") == [502, 503, 200]


async def test_a_read_whose_connection_drops_is_retried() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(QUESTION)
        emulator.state.faults.add(Fault(kind="drop", method="GET", path=f"{RUNS}/*", times=1))
        with anyio.fail_after(10):
            got = await client.get_run(run.run_id)
    assert got.status == "queued"
    assert gets(emulator, f"{RUNS}/{run.run_id}") == [None, 200]


# ----- creates: retried only when provably nothing was created ----------------------------------------


@pytest.mark.parametrize("status", [503, 429])
async def test_a_create_refused_with_503_or_429_is_retried_and_creates_exactly_one_run(status: int) -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        emulator.state.faults.add(Fault(kind="status", method="POST", path=RUNS, status=status, times=2))
        with anyio.fail_after(10):
            run = await client.create_run(QUESTION)
    assert emulator.state.run_count == 1 and run.run_id in emulator.state.runs
    assert posts(emulator) == [status, status, 202]


async def test_a_create_still_rate_limited_after_its_retries_raises_rate_limit_error_with_retry_after() -> None:
    async with emulator_client(EmulatorConfig(rate_limit_per_minute=1, frozen=True), max_retries=0) as (
        emulator,
        client,
    ):
        await client.create_run(QUESTION)
        with anyio.fail_after(10), pytest.raises(RateLimitError) as caught:
            await client.create_run(QUESTION)
    assert caught.value.status_code == 429 and caught.value.ref_id
    assert caught.value.retry_after is not None and 1 <= caught.value.retry_after <= 60
    assert emulator.state.run_count == 1 and posts(emulator) == [202, 429]


@pytest.mark.parametrize("status", [500, 502])
async def test_a_create_answered_500_or_502_raises_run_may_exist_and_is_not_retried(status: int) -> None:
    async with emulator_client(EmulatorConfig(frozen=True), max_retries=3) as (emulator, client):
        emulator.state.faults.add(Fault(kind="status", method="POST", path=RUNS, status=status, times=1))
        with anyio.fail_after(10), pytest.raises(RunMayExistError) as caught:
            await client.create_run(QUESTION)
    assert f"HTTP {status}" in str(caught.value) and "may have created a run" in str(caught.value)
    assert posts(emulator) == [status]
    assert emulator.state.run_count == 0


async def test_a_create_whose_connection_drops_after_sending_raises_run_may_exist_and_is_not_retried() -> None:
    async with emulator_client(EmulatorConfig(frozen=True), max_retries=3) as (emulator, client):
        fault = emulator.state.faults.add(Fault(kind="drop", method="POST", path=RUNS, times=1))
        with anyio.fail_after(10), pytest.raises(RunMayExistError) as caught:
            await client.create_run(QUESTION)
        assert fault.fired == 1
        # The pool recovers: the next create goes through on a fresh connection.
        await client.create_run(QUESTION)
    assert "lost the connection" in str(caught.value)
    assert posts(emulator) == [None, 202]
    assert emulator.state.run_count == 1


async def test_a_create_that_times_out_after_sending_raises_run_may_exist_and_is_not_retried() -> None:
    config = EmulatorConfig(api_key=API_KEY, frozen=True)
    async with (
        serve_emulator(config) as emulator,
        AsyncTaskClient(
            api_key=API_KEY, base_url=emulator.base_url, max_retries=3, request_timeout=0.3, sleep=Sleeps()
        ) as client,
    ):
        emulator.state.faults.add(Fault(kind="latency", method="POST", path=RUNS, delay=0.8, times=1))
        with anyio.fail_after(10), pytest.raises(RunMayExistError) as caught:
            await client.create_run(QUESTION)
        assert client.request_count == 1  # given up on, not retried: the API may be creating the run
        await until(lambda: len(posts(emulator)) == 1)  # the held request is logged once it ends
    assert "timed out" in str(caught.value)


async def test_a_refused_connection_on_create_is_retried_then_raises_api_connection_error_not_sent() -> None:
    async with AsyncTaskClient(
        api_key=API_KEY, base_url=f"http://127.0.0.1:{closed_port()}", max_retries=1, sleep=Sleeps()
    ) as client:
        with anyio.fail_after(10), pytest.raises(APIConnectionError) as caught:
            await client.create_run(QUESTION)
    assert not isinstance(caught.value, RunMayExistError)
    assert caught.value.request_sent is False and "could not connect" in str(caught.value)
    assert client.request_count == 2  # the first try and one retry


# ----- error mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class", "body", "needle"),
    [
        (402, PaymentRequiredError, {"input": "q", "processor": "ultra"}, "credit"),
        (403, PermissionDeniedError, {"input": "q", "processor": "mega"}, "processor"),
        (
            422,
            UnprocessableEntityError,
            {"input": "q", "processor": "lite", "previous_interaction_id": "tint_nope"},
            "previous_interaction_id",
        ),
    ],
)
async def test_api_refusals_of_a_create_map_to_their_exception_classes_and_keep_the_ref_id(
    status: int, error_class: type[APIStatusError], body: dict[str, Any], needle: str
) -> None:
    async with emulator_client(EmulatorConfig(frozen=True, credit_usd=0.1), max_retries=3) as (emulator, client):
        with anyio.fail_after(10), pytest.raises(APIStatusError) as caught:
            await client.create_run(TaskRunInput.model_validate(body))
    error = caught.value
    assert type(error) is error_class and error.status_code == status
    assert error.ref_id and error.ref_id in str(error)
    assert needle in error.message
    assert posts(emulator) == [status]  # a refusal is final: never retried
    assert emulator.state.run_count == 0


async def test_a_wrong_api_key_is_an_authentication_error_with_a_ref_id_and_is_not_retried() -> None:
    async with emulator_client(EmulatorConfig(frozen=True), max_retries=3) as (emulator, client):
        with anyio.fail_after(10), pytest.raises(AuthenticationError) as caught:
            await client.with_api_key("not-the-key").get_run("trun_x")
    assert caught.value.status_code == 401 and caught.value.ref_id
    assert gets(emulator, f"{RUNS}/trun_x") == [401]


def test_retry_after_is_read_from_retry_after_ms_seconds_or_an_http_date() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 00:00:10 GMT"}, now=1767225600.0) == 10.0
    assert parse_retry_after({}) is None


def test_an_unreadable_retry_after_header_is_ignored_rather_than_crashing_the_error_mapping() -> None:
    assert parse_retry_after({"retry-after": "soon"}) is None
    error = error_from_response(503, {"retry-after": "soon"}, b'{"error": {"ref_id": "r1", "message": "busy"}}')
    assert isinstance(error, InternalServerError) and error.retry_after is None and error.ref_id == "r1"


# ----- /result -------------------------------------------------------------------------------------------


async def test_get_result_returns_none_when_the_long_poll_answers_408_for_a_run_still_active() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(QUESTION)
        with anyio.fail_after(10):
            result = await client.get_result(run.run_id, timeout=1)
    assert result is None
    assert gets(emulator, f"{RUNS}/{run.run_id}/result") == [408]  # a 408 ends the poll: no retry


async def test_get_result_returns_the_output_once_the_run_completes_during_the_poll() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(QUESTION)

        async def finish_when_parked() -> None:
            await until(lambda: emulator.state.runs[run.run_id].pollers == 1)
            emulator.state.finish(run.run_id)

        result: TaskRunResult | None = None
        started = anyio.current_time()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(finish_when_parked)
                result = await client.get_result(run.run_id, timeout=30)
    assert anyio.current_time() - started < 5  # the poll answered when the run ended, not at its timeout
    assert result is not None and result.run.status == "completed" and result.output.content


async def test_get_result_raises_task_run_failed_with_the_runs_error_and_ref_id_for_a_failed_run() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(QUESTION)
        emulator.state.fail(run.run_id, "upstream exploded")
        with anyio.fail_after(10), pytest.raises(TaskRunFailedError) as caught:
            await client.get_result(run.run_id, timeout=5)
    record = emulator.state.runs[run.run_id]
    assert record.error is not None
    assert caught.value.run.run_id == run.run_id and caught.value.run.status == "failed"
    assert caught.value.error.message == "upstream exploded" and caught.value.error.ref_id == record.error.ref_id
    assert record.error.ref_id in str(caught.value)


async def test_get_result_raises_not_found_for_an_unknown_run_id() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (_, client):
        with anyio.fail_after(10), pytest.raises(NotFoundError) as caught:
            await client.get_result("trun_doesnotexist", timeout=5)
    assert caught.value.status_code == 404 and caught.value.ref_id


async def test_run_ids_stay_inside_one_path_segment() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        with anyio.fail_after(10), pytest.raises(NotFoundError):
            await client.get_run("../groups/x?y=1")
    assert [r.path for r in emulator.state.request_log] == [f"{RUNS}/../groups/x?y=1"]


# ----- events ------------------------------------------------------------------------------------------


async def test_events_deduplicate_the_replay_after_a_cut_stream_reconnects_and_end_after_the_final_state() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(TaskRunInput(input="market map", processor="pro"))
        emulator.state.advance(run.run_id, 0.6)
        record = emulator.state.runs[run.run_id]
        assert len(record.messages) >= 3
        cut = emulator.state.faults.add(Fault(kind="sse_cut", path="*/events", after_events=3, times=1))
        events: list[RunEvent] = []
        with anyio.fail_after(10):
            async for event in client.events(run.run_id, reconnects=2):
                events.append(event)
                if sum(isinstance(e, TaskRunEvent) for e in events) == 2:
                    emulator.state.finish(run.run_id)  # once the reconnect has begun, let the run end live
    assert cut.fired == 1
    assert len(gets(emulator, f"{RUNS}/{run.run_id}/events")) == 2  # cut once, reconnected once
    messages = [(e.type, e.message) for e in events if isinstance(e, TaskRunProgressMessageEvent)]
    assert len(messages) > 3
    assert messages == [(m["type"], m["message"]) for m in record.messages]  # each once, in order
    final = events[-1]
    assert isinstance(final, TaskRunEvent) and final.run.status == "completed" and final.output is not None
    assert any(isinstance(e, TaskRunProgressStatsEvent) for e in events)


async def test_events_of_a_run_that_already_ended_replay_its_messages_and_end_with_the_output() -> None:
    # The stream of an ended run opens with a task_run.state that is already inactive, then replays every
    # message and ends with the task_run.state carrying the output (reference section 5.4).
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(TaskRunInput(input="market map", processor="pro"))
        emulator.state.finish(run.run_id)
        record = emulator.state.runs[run.run_id]
        with anyio.fail_after(10):
            events = [event async for event in client.events(run.run_id, reconnects=0)]
    messages = [e.message for e in events if isinstance(e, TaskRunProgressMessageEvent)]
    assert messages == [m["message"] for m in record.messages]
    final = events[-1]
    assert isinstance(final, TaskRunEvent) and final.output is not None


async def test_events_follow_a_live_run_to_its_end() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(TaskRunInput(input="market map", processor="pro"))
        seen: list[str] = []
        with anyio.fail_after(10):
            async for event in client.events(run.run_id):
                seen.append(event.type)
                if len(seen) == 1:
                    emulator.state.advance(run.run_id, 0.5)
                elif len(seen) == 3:
                    emulator.state.finish(run.run_id)
    assert seen[0] == seen[-1] == "task_run.state"
    assert any(kind.startswith("task_run.progress_msg.") for kind in seen)


async def test_events_give_up_quietly_when_every_reconnect_is_cut() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (emulator, client):
        run = await client.create_run(TaskRunInput(input="market map", processor="pro"))
        emulator.state.advance(run.run_id, 0.6)
        emulator.state.faults.add(Fault(kind="sse_cut", path="*/events", after_events=1))
        with anyio.fail_after(10):
            events = [event async for event in client.events(run.run_id, reconnects=1)]
    assert [e.type for e in events] == ["task_run.state", "task_run.state"]  # the opening state, once per attempt
    assert len(gets(emulator, f"{RUNS}/{run.run_id}/events")) == 2


async def test_events_of_an_unknown_run_raise_not_found() -> None:
    async with emulator_client(EmulatorConfig(frozen=True)) as (_, client):
        with anyio.fail_after(10), pytest.raises(NotFoundError):
            async for _ in client.events("trun_missing"):
                pass


# ----- headers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, []),
        ({"enable_events": False}, []),
        ({"mcp_servers": [{"name": "a", "url": "https://example.com/mcp"}]}, [BETA_MCP]),
        ({"enable_events": True}, [BETA_EVENTS]),
        ({"webhook": {"url": "https://example.com/hook"}}, [BETA_WEBHOOK]),
        ({"task_spec": {"output_schema": {"type": "json", "json_schema": LIST_SCHEMA}}}, [BETA_FIELD_BASIS]),
        ({"task_spec": {"output_schema": {"type": "json", "json_schema": FLAT_SCHEMA}}}, []),
        ({"task_spec": {"output_schema": {"type": "text", "description": "a list of founders"}}}, []),
        (
            {
                "mcp_servers": [{"name": "a", "url": "https://example.com/mcp"}],
                "enable_events": True,
                "webhook": {"url": "https://example.com/hook"},
                "task_spec": {"output_schema": {"type": "json", "json_schema": LIST_SCHEMA}},
            },
            [BETA_MCP, BETA_EVENTS, BETA_WEBHOOK, BETA_FIELD_BASIS],
        ),
    ],
)
def test_betas_for_derives_each_beta_from_what_the_request_uses(body: dict[str, Any], expected: list[str]) -> None:
    run_input = TaskRunInput.model_validate({"input": "q", "processor": "core", **body})
    assert betas_for(run_input) == expected


def test_betas_for_lists_each_value_once_with_extras_last() -> None:
    run_input = TaskRunInput(input="q", processor="core", enable_events=True)
    assert betas_for(run_input, events=True, extra=("custom-1", BETA_EVENTS, "")) == [BETA_EVENTS, "custom-1"]
    assert betas_for(events=True) == [BETA_EVENTS]
    assert betas_for() == []


async def test_requests_carry_the_derived_parallel_beta_header_and_a_parallel_mcp_user_agent() -> None:
    async with (
        recording_emulator(EmulatorConfig(frozen=True)) as (emulator, seen),
        AsyncTaskClient(api_key=API_KEY, base_url=emulator.base_url) as client,
    ):
        rich = TaskRunInput.model_validate(
            {
                "input": "q",
                "processor": "core",
                "enable_events": True,
                "webhook": {"url": "https://example.com/hook"},
                "task_spec": {"output_schema": {"type": "json", "json_schema": LIST_SCHEMA}},
            }
        )
        run = await client.create_run(rich)
        await client.create_run(QUESTION)
        await client.get_run(run.run_id)
        emulator.state.finish(run.run_id)
        with anyio.fail_after(10):
            async for _ in client.events(run.run_id):
                pass
    rich_post, plain_post, read, stream = seen
    assert rich_post.headers["parallel-beta"] == f"{BETA_EVENTS},{BETA_WEBHOOK},{BETA_FIELD_BASIS}"
    assert "parallel-beta" not in plain_post.headers and "parallel-beta" not in read.headers
    assert stream.path.endswith("/events") and stream.headers["parallel-beta"] == BETA_EVENTS
    assert stream.headers["accept"] == "text/event-stream"
    for request in seen:
        assert request.headers["user-agent"] == f"parallel-mcp/{__version__}"
        assert request.headers["x-api-key"] == API_KEY


async def test_extra_betas_are_added_to_every_request_that_sends_the_header() -> None:
    async with (
        recording_emulator(EmulatorConfig(frozen=True)) as (emulator, seen),
        AsyncTaskClient(api_key=API_KEY, base_url=emulator.base_url, extra_betas=("x-beta",)) as client,
    ):
        run = await client.create_run(TaskRunInput(input="q", processor="lite", enable_events=True))
        emulator.state.fail(run.run_id)
        with anyio.fail_after(10), pytest.raises(TaskRunFailedError):
            await client.get_result(run.run_id, timeout=1)
    create, result, _read = seen
    assert create.headers["parallel-beta"] == f"{BETA_EVENTS},x-beta"
    assert result.headers["parallel-beta"] == "x-beta"


# ----- backoff ----------------------------------------------------------------------------------------


def test_backoff_delay_doubles_from_half_a_second_with_up_to_25_percent_less_jitter_and_caps_at_8_seconds() -> None:
    for attempt, base in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (30, 8.0)]:
        delays = [backoff_delay(attempt) for _ in range(200)]
        assert all(0.75 * base <= d <= base for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1  # jittered, so clients spread out


def test_backoff_delay_obeys_a_sane_retry_after_and_ignores_an_absurd_one() -> None:
    assert backoff_delay(0, retry_after=1.0) == 1.0
    assert backoff_delay(3, retry_after=60.0) == 60.0
    for absurd in (0.0, -1.0, 61.0, 3600.0):
        assert 0.375 <= backoff_delay(0, retry_after=absurd) <= 0.5


# ----- pool sharing ---------------------------------------------------------------------------------------


async def test_with_api_key_shares_the_connection_pool_but_sends_the_other_key() -> None:
    async with (
        recording_emulator(EmulatorConfig(frozen=True)) as (emulator, seen),
        AsyncTaskClient(api_key="key-of-alice", base_url=emulator.base_url) as alice,
    ):
        run = await alice.create_run(QUESTION)
        bob = alice.with_api_key("key-of-bob")
        await bob.create_run(QUESTION)
        await bob.aclose()  # bob does not own the pool: closing him leaves alice's open
        await alice.get_run(run.run_id)
    assert [r.headers["x-api-key"] for r in seen] == ["key-of-alice", "key-of-bob", "key-of-alice"]
    assert len({r.peer_port for r in seen}) == 1  # one keep-alive connection served both keys
    assert bob.base_url == alice.base_url and bob.max_retries == alice.max_retries


async def test_request_count_includes_requests_of_clients_sharing_the_pool() -> None:
    # AsyncTaskClient.request_count documents: "Requests sent by this client (and clients sharing its pool
    # via `with_api_key`)".
    async with emulator_client(EmulatorConfig(frozen=True)) as (_, client):
        run = await client.create_run(QUESTION)
        await client.with_api_key(API_KEY).get_run(run.run_id)
    assert client.request_count == 2
