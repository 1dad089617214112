"""The emulator's HTTP surface: every Task Run and Task Group endpoint, as a Starlette app.

Request handling mirrors the real service: `x-api-key` auth (401), processor check (403), body
validation (422 naming the field; the group endpoints answer 422 in FastAPI's shape), credit (402)
and rate limit (429 + `Retry-After`); beta-only fields need their `parallel-beta` value (422). The
middleware (`middleware.py`) logs, injects faults and checks the key before all of that.
"""

from __future__ import annotations

import http
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, get_args

import anyio
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parallel_mcp.emulator.admission import Rejected, parse_betas
from parallel_mcp.emulator.clock import wait_until
from parallel_mcp.emulator.errors import (
    api_error,
    group_validation_error,
    json_body_errors,
    run_validation_error,
    validation_errors,
)
from parallel_mcp.emulator.middleware import ACCOUNT_SCOPE_KEY, EmulatorMiddleware
from parallel_mcp.emulator.records import GroupStream
from parallel_mcp.emulator.sse import SseEvent, cut_after, group_events, group_runs, run_events
from parallel_mcp.emulator.state import EmulatorState, GroupRecord, RunRecord
from parallel_mcp.models import TaskGroupCreateRequest, TaskGroupRunRequest, TaskRunInput, TaskRunStatus

logger = logging.getLogger(__name__)

DEFAULT_RESULT_TIMEOUT = 600
RUN_STATUSES: tuple[str, ...] = get_args(TaskRunStatus)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _item(loc: list[str | int], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


class _QueryError(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__(item["msg"])
        self.item = item


def _query_bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _QueryError(_item(["query", name], "Input should be a valid boolean", "bool_parsing"))


def _resume_position(request: Request, group: GroupRecord, stream: GroupStream) -> int:
    """Where a group stream resumes: after the event whose `event_id` came back as `last_event_id`."""
    raw = request.query_params.get("last_event_id") or request.headers.get("last-event-id")
    position = group.resume_after(stream, raw)
    if position is None:
        cursor = "run_cursor" if stream == "runs" else "event_cursor"
        raise _QueryError(
            _item(
                ["query", "last_event_id"],
                f"{str(raw)[:80]!r} is not an event_id of this stream: pass the event_id of the last event "
                f"received, or the {cursor} of an add-runs answer",
                "value_error",
            )
        )
    return position


def _query_float(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise _QueryError(_item(["query", name], "Input should be a finite number >= 0", "float_parsing"))
    return value


# ----- runs --------------------------------------------------------------------------------------


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def _account(request: Request) -> str:
    return str(request.scope.get(ACCOUNT_SCOPE_KEY, ""))


def _run(request: Request, run_id: str) -> RunRecord | None:
    # Another account's run is as unknown as a run that never existed, as on the real service.
    run = _state(request).get_run(run_id)
    return run if run is not None and run.owner == _account(request) else None


def _run_not_found(run_id: str) -> JSONResponse:
    return api_error(404, f"Run id not found: {run_id[:80]!r}")


def _betas(request: Request) -> frozenset[str]:
    return parse_betas(request.headers.getlist("parallel-beta"))


def _run_rejection(rejected: Rejected) -> JSONResponse:
    detail = {"errors": [_item(list(rejected.loc), rejected.message, "value_error")]} if rejected.loc else None
    return api_error(rejected.status, rejected.message, detail=detail)


async def create_run(request: Request) -> Response:
    """POST /v1/tasks/runs: 202 with a queued TaskRun."""
    state = _state(request)
    wait = state.take_rate_slot()
    if wait is not None:
        return api_error(429, "Too many requests: quota temporarily exceeded", retry_after=wait)
    body = await request.body()
    problems = json_body_errors(body)
    if problems:
        return run_validation_error(problems)
    try:
        run_input = TaskRunInput.model_validate_json(body)
    except ValidationError as exc:
        return run_validation_error(validation_errors(exc))
    try:
        run = state.create_run(run_input, owner=_account(request), betas=_betas(request))
    except Rejected as rejected:
        return _run_rejection(rejected)
    return JSONResponse(run.run_json(), status_code=202)


async def get_run(request: Request) -> Response:
    """GET /v1/tasks/runs/{run_id}."""
    run_id = request.path_params["run_id"]
    run = _run(request, run_id)
    return _run_not_found(run_id) if run is None else JSONResponse(run.run_json())


async def get_run_input(request: Request) -> Response:
    """GET /v1/tasks/runs/{run_id}/input: the create body, without MCP server headers."""
    run_id = request.path_params["run_id"]
    run = _run(request, run_id)
    return _run_not_found(run_id) if run is None else JSONResponse(run.input_json())


async def _wait_unless_disconnected(request: Request, done: anyio.Event, timeout: float) -> None:
    """Wait for `done` up to `timeout` emulated seconds, giving up early when the client goes away, as a real
    server does."""
    clock = _state(request).clock
    deadline = clock.now() + timeout
    async with anyio.create_task_group() as group:

        async def watch_disconnect() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(watch_disconnect)
        await wait_until(clock, done, deadline)
        group.cancel_scope.cancel()


async def get_run_result(request: Request) -> Response:
    """GET /v1/tasks/runs/{run_id}/result?timeout=: long-polls until the run ends or `timeout` passes."""
    run_id = request.path_params["run_id"]
    raw = request.query_params.get("timeout")
    timeout = DEFAULT_RESULT_TIMEOUT
    if raw is not None:
        try:
            timeout = int(raw)
        except ValueError:
            return run_validation_error([_item(["query", "timeout"], "Input should be a valid integer", "int_parsing")])
        if timeout < 0:
            return run_validation_error([_item(["query", "timeout"], "Input should be >= 0", "greater_than_equal")])
    run = _run(request, run_id)
    if run is None:
        return api_error(404, f"Run failed or run id not found: no run {run_id[:80]!r}")
    if run.is_active:
        run.pollers += 1
        run.changed.notify()
        try:
            await _wait_unless_disconnected(request, run.done, timeout)
        finally:
            run.pollers -= 1
            run.changed.notify()
    if run.status == "completed":
        return JSONResponse({"run": run.run_json(), "output": run.output_json()})
    if run.is_active:
        return api_error(408, f"Request timed out; run still active after {timeout} s: poll again")
    message = run.error.message if run.error is not None else run.status
    return api_error(404, f"Run failed or run id not found: run {run_id} {run.status}: {message}")


def _sse(request: Request, events: AsyncIterator[SseEvent]) -> Response:
    state = _state(request)
    cut = state.faults.take_request("sse_cut", request.method, request.url.path)
    if cut is not None:
        scope = request.scope
        dropper = state.drop_connection

        def close_socket() -> bool:
            return dropper is not None and dropper(dict(scope))

        events = cut_after(events, cut.after_events, close_socket)
    return EventSourceResponse(events, ping=15)


async def run_events_endpoint(request: Request) -> Response:
    """GET /v1/tasks/runs/{run_id}/events (and the /v1beta path): the run's SSE stream."""
    run_id = request.path_params["run_id"]
    state = _state(request)
    run = _run(request, run_id)
    if run is None:
        return _run_not_found(run_id)
    return _sse(request, run_events(state, run))


# ----- groups ------------------------------------------------------------------------------------


GroupBodyT = TypeVar("GroupBodyT", TaskGroupCreateRequest, TaskGroupRunRequest)


def _group_or_404(request: Request) -> GroupRecord | Response:
    group_id = request.path_params["group_id"]
    group = _state(request).groups.get(group_id)
    if group is None or group.owner != _account(request):
        return api_error(404, f"TaskGroup not found: {group_id[:80]!r}")
    return group


def _group_json(state: EmulatorState, group: GroupRecord) -> dict[str, Any]:
    return {
        "taskgroup_id": group.group_id,
        "status": state.group_status(group).model_dump(mode="json"),
        "metadata": group.metadata,
        "created_at": group.created_at,
    }


def _group_body(body: bytes, model: type[GroupBodyT]) -> GroupBodyT | Response:
    """Parse a group endpoint's body, or the 422 in FastAPI's shape that those endpoints use."""
    problems = json_body_errors(body, prefix=("body",))
    if problems:
        return group_validation_error(problems)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        return group_validation_error(validation_errors(exc, prefix=("body",)))


async def create_group(request: Request) -> Response:
    """POST /v1/tasks/groups: a new empty group."""
    parsed = _group_body((await request.body()) or b"{}", TaskGroupCreateRequest)
    if isinstance(parsed, Response):
        return parsed
    state = _state(request)
    return JSONResponse(_group_json(state, state.create_group(parsed.metadata, owner=_account(request))))


async def get_group(request: Request) -> Response:
    """GET /v1/tasks/groups/{id}: the group with its aggregated status."""
    group = _group_or_404(request)
    if isinstance(group, Response):
        return group
    return JSONResponse(_group_json(_state(request), group))


async def add_group_runs(request: Request) -> Response:
    """POST /v1/tasks/groups/{id}/runs: up to 1,000 runs; returns their ids and the stream cursors."""
    group = _group_or_404(request)
    if isinstance(group, Response):
        return group
    state = _state(request)
    try:
        refresh = _query_bool(request, "refresh_status", True)
    except _QueryError as exc:
        return group_validation_error([exc.item])
    wait = state.take_rate_slot()
    if wait is not None:
        return api_error(429, "Too many requests: quota temporarily exceeded", retry_after=wait)
    parsed = _group_body(await request.body(), TaskGroupRunRequest)
    if isinstance(parsed, Response):
        return parsed
    try:
        runs, status, run_cursor, event_cursor = state.add_group_runs(
            group, parsed, refresh_status=refresh, betas=_betas(request)
        )
    except Rejected as rejected:
        if rejected.status == 422:
            return group_validation_error([_item(list(rejected.loc), rejected.message, "value_error")])
        return api_error(rejected.status, rejected.message)
    return JSONResponse(
        {
            "status": status.model_dump(mode="json"),
            "run_ids": [run.run_id for run in runs],
            "run_cursor": run_cursor,
            "event_cursor": event_cursor,
        }
    )


async def group_events_endpoint(request: Request) -> Response:
    """GET /v1/tasks/groups/{id}/events?last_event_id=&timeout=: resumable status and run-end events."""
    group = _group_or_404(request)
    if isinstance(group, Response):
        return group
    try:
        after = _resume_position(request, group, "events")
        timeout = _query_float(request, "timeout")
    except _QueryError as exc:
        return group_validation_error([exc.item])
    return _sse(request, group_events(_state(request), group, after=after, timeout=timeout))


async def group_runs_endpoint(request: Request) -> Response:
    """GET /v1/tasks/groups/{id}/runs: every run as SSE, optionally with inputs and outputs."""
    group = _group_or_404(request)
    if isinstance(group, Response):
        return group
    status: Any = request.query_params.get("status") or None
    try:
        after = _resume_position(request, group, "runs")
        include_input = _query_bool(request, "include_input", False)
        include_output = _query_bool(request, "include_output", False)
        if status is not None and status not in RUN_STATUSES:
            raise _QueryError(_item(["query", "status"], f"Input should be one of {', '.join(RUN_STATUSES)}", "enum"))
    except _QueryError as exc:
        return group_validation_error([exc.item])
    events = group_runs(
        _state(request), group, after=after, status=status, include_input=include_input, include_output=include_output
    )
    return _sse(request, events)


async def get_group_run(request: Request) -> Response:
    """GET /v1/tasks/groups/{id}/runs/{run_id}: a run of that group."""
    group = _group_or_404(request)
    if isinstance(group, Response):
        return group
    run_id = request.path_params["run_id"]
    run = _run(request, run_id)
    if run is None or run.group_id != group.group_id:
        return _run_not_found(run_id)
    return JSONResponse(run.run_json())


# ----- app ---------------------------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 404
    text = "Not found" if code == 404 else http.HTTPStatus(code).phrase
    return api_error(code, f"{text}: {request.method} {request.url.path}")


def _routes() -> list[Route]:
    routes = [
        Route("/v1/tasks/runs", create_run, methods=["POST"]),
        Route("/v1/tasks/runs/{run_id}", get_run, methods=["GET"]),
        Route("/v1/tasks/runs/{run_id}/input", get_run_input, methods=["GET"]),
        Route("/v1/tasks/runs/{run_id}/result", get_run_result, methods=["GET"]),
    ]
    for prefix in ("/v1", "/v1beta"):
        routes += [
            Route(f"{prefix}/tasks/runs/{{run_id}}/events", run_events_endpoint, methods=["GET"]),
            Route(f"{prefix}/tasks/groups", create_group, methods=["POST"]),
            Route(f"{prefix}/tasks/groups/{{group_id}}", get_group, methods=["GET"]),
            Route(f"{prefix}/tasks/groups/{{group_id}}/runs", add_group_runs, methods=["POST"]),
            Route(f"{prefix}/tasks/groups/{{group_id}}/runs", group_runs_endpoint, methods=["GET"]),
            Route(f"{prefix}/tasks/groups/{{group_id}}/events", group_events_endpoint, methods=["GET"]),
            Route(f"{prefix}/tasks/groups/{{group_id}}/runs/{{run_id}}", get_group_run, methods=["GET"]),
        ]
    return routes


def create_emulator_app(state: EmulatorState) -> Starlette:
    """The Task API emulator as an ASGI app; its lifespan runs `state`'s background work."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        del app
        async with state.activate():
            yield

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        404: _not_found,
        405: _not_found,
    }
    app = Starlette(routes=_routes(), lifespan=lifespan, exception_handlers=handlers)
    # A run id of "/" (sent as %2F) ends the path in a slash: the API answers 404, not a redirect.
    app.router.redirect_slashes = False
    app.state.emulator = state
    app.add_middleware(EmulatorMiddleware, state=state)
    return app
