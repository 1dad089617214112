"""The emulator's HTTP surface: every Task Run and Task Group endpoint, as a Starlette app.

Request handling mirrors the real service: `x-api-key` auth (401), processor check (403), body
validation (422 naming the field; the group endpoints answer 422 in FastAPI's shape), credit (402)
and rate limit (429 + `Retry-After`). Scripted faults act before all of that. Nothing a client sends
can produce a 500: an unexpected bug is logged and answered as a 500 in the API's error shape.
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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parallel_mcp.emulator.errors import (
    api_error,
    group_validation_error,
    json_body_errors,
    run_validation_error,
    validation_errors,
)
from parallel_mcp.emulator.sse import SseEvent, cut_after, group_events, group_runs, run_events
from parallel_mcp.emulator.state import EmulatorState, GroupRecord, Rejected, RunRecord
from parallel_mcp.models import TaskGroupCreateRequest, TaskGroupRunRequest, TaskRunInput, TaskRunStatus

logger = logging.getLogger(__name__)

DEFAULT_RESULT_TIMEOUT = 600
RUN_STATUSES: tuple[str, ...] = get_args(TaskRunStatus)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class DroppedConnection(Exception):
    """Raised when a `drop` fault fires and no server can close the socket (e.g. an in-memory transport)."""


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


def _query_cursor(request: Request) -> int:
    raw = request.query_params.get("last_event_id") or request.headers.get("last-event-id")
    if raw is None or raw == "":
        return 0
    if not raw.isdigit():
        raise _QueryError(
            _item(["query", "last_event_id"], "Input should be an event_id from this stream", "value_error")
        )
    return int(raw)


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


ACCOUNT_SCOPE_KEY = "parallel_mcp.account"
"""Where the middleware leaves the request's API key: runs and groups belong to the key that made them."""


def _account(request: Request) -> str:
    return str(request.scope.get(ACCOUNT_SCOPE_KEY, ""))


def _run(request: Request, run_id: str) -> RunRecord | None:
    # Another account's run is as unknown as a run that never existed, as on the real service.
    run = _state(request).get_run(run_id)
    return run if run is not None and run.owner == _account(request) else None


def _run_not_found(run_id: str) -> JSONResponse:
    return api_error(404, f"Run id not found: {run_id[:80]!r}")


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
        run = state.create_run(run_input, owner=_account(request))
    except Rejected as rejected:
        return api_error(rejected.status, rejected.message)
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
    """Wait for `done` up to `timeout`, giving up early when the client goes away, as a real server does."""
    with anyio.move_on_after(timeout):
        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                while (await request.receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            await done.wait()
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

        def on_cut() -> None:
            if dropper is not None:
                dropper(dict(scope))

        events = cut_after(events, cut.after_events, on_cut)
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
        runs, status, run_cursor, event_cursor = state.add_group_runs(group, parsed, refresh_status=refresh)
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
        after = _query_cursor(request)
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
        after = _query_cursor(request)
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


# ----- middleware --------------------------------------------------------------------------------


class EmulatorMiddleware:
    """Logs every request, applies scripted faults, checks `x-api-key`, and turns bugs into clean 500s."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        status: list[int | None] = [None]

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_recording, method, path, status)
        finally:
            self.state.log_request(method, path, status[0])

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, method: str, path: str, status: list[int | None]
    ) -> None:
        faults = self.state.faults
        if faults.take_request("drop", method, path) is not None:
            dropper = self.state.drop_connection
            if dropper is not None and dropper(dict(scope)):
                # Let the event loop run the transport's connection_lost before uvicorn looks at it.
                await anyio.sleep(0)
                return
            raise DroppedConnection(f"{method} {path}: connection dropped by a fault")
        latency = faults.take_request("latency", method, path)
        if latency is not None:
            await anyio.sleep(latency.delay)
        injected = faults.take_request("status", method, path)
        if injected is not None and injected.status is not None:
            message = injected.message or f"{http.HTTPStatus(injected.status).phrase} (injected fault)"
            await api_error(injected.status, message, retry_after=injected.retry_after)(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"x-api-key", b"").decode("latin-1")
        expected = self.state.config.api_key
        if not key or (expected is not None and key != expected):
            await api_error(401, "Unauthorized: invalid or missing credentials (x-api-key)")(scope, receive, send)
            return
        scope[ACCOUNT_SCOPE_KEY] = key
        try:
            await self.app(scope, receive, send)
        except Exception:  # the "never a bare 500" guard at the top of the stack
            logger.exception("%s %s crashed in the emulator", method, path)
            if status[0] is None:
                await api_error(500, "Internal server error in the emulator")(scope, receive, send)


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
    app.state.emulator = state
    app.add_middleware(EmulatorMiddleware, state=state)
    return app
