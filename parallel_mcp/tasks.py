"""The tasks extension (`io.modelcontextprotocol/tasks`, 2026-07-28): a create answers at once with a task.

When a 2026-07-28 request declares the extension, `create_task_run` and `create_task_group` run as
usual (arguments, limits, budget, confirmation, one billed create per intent) but without waiting;
the run (or group) they made is recorded as a task in the store before the answer, and the client
polls `tasks/get`, which inlines exactly the result the tool would have returned once the run ended
(a failed run as a tool error). `tasks/cancel` detaches: the Task API has no cancel, and the status
message says so. Task ids belong to their owner (another owner's reads as unknown) and live in the
store, so they survive restarts and work on every replica sharing it. Any other request is
untouched: it gets today's result byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from typing import Any, cast

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolRequestParams, CallToolResult, TextContent
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from parallel_mcp.errors import AccessError, APIConnectionError, ParallelMCPError, RateLimitError
from parallel_mcp.guidance import (
    describe_error,
    lasting_warnings,
    task_detached_message,
    task_ended_message,
    task_group_message,
    task_unread_message,
    task_working_message,
)
from parallel_mcp.live import watchers_of
from parallel_mcp.resources import headers_of
from parallel_mcp.runs import Caller, PageRequest
from parallel_mcp.runtime import AppContext, caller
from parallel_mcp.store import IntentKind, StoreError, TaskRecord
from parallel_mcp.store.sqlite import MEMORY
from parallel_mcp.tools import tool_result
from parallel_mcp.views import TaskGroupView, TaskRunView

logger = logging.getLogger(__name__)

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_TOOLS: dict[str, IntentKind] = {"create_task_run": "run", "create_task_group": "group"}
MEMORY_TTL_MS = 3_600_000
"""A store in memory (the emulator, journal off) ends with the process: a task there is short-lived."""
_MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)
_TRANSIENT = (APIConnectionError, RateLimitError, StoreError)
"""Read failures that say nothing about the run: the task stays working."""


class TaskIdParams(RequestParams):
    """The params of `tasks/get` and `tasks/cancel`."""

    task_id: str


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """True when this request is of the 2026-07-28 era and its client declared the tasks extension."""
    if ctx.protocol_version not in _MODERN:
        return False
    capabilities = ctx.session.client_capabilities
    return capabilities is not None and bool(capabilities.extensions) and TASKS_EXTENSION in capabilities.extensions


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ttl_ms(app: AppContext) -> int | None:
    """How long a task stays readable: as long as the journal or database keeps it (no expiry), or the process."""
    return MEMORY_TTL_MS if app.store.location == MEMORY else None


def _poll_ms(app: AppContext, view: TaskRunView | TaskGroupView) -> int:
    """The processor's polling hint (its latency band), in milliseconds."""
    seconds = view.retry_after_seconds or app.runs.processors.min_poll_seconds
    return int(seconds * 1000)


def _task(
    app: AppContext, task: TaskRecord, status: str, message: str, poll_ms: int | None, **extra: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "taskId": task.task_id,
        "status": status,
        "statusMessage": message,
        "createdAt": _iso(task.created_at),
        "lastUpdatedAt": _iso(task.cancelled_at or time.time()),
        "ttlMs": _ttl_ms(app),
    }
    if poll_ms is not None:
        found["pollIntervalMs"] = poll_ms
    return found | extra


async def _who(ctx: ServerRequestContext[Any, Any]) -> tuple[AppContext, Caller]:
    app = cast(AppContext, ctx.lifespan_context)
    try:
        return app, await caller(app, headers_of(ctx))
    except AccessError as exc:
        raise MCPError(code=INVALID_REQUEST, message=str(exc)) from None


class TasksExtension(Extension):
    """Serves the tasks extension: task-augmented creates, `tasks/get` and `tasks/cancel`."""

    identifier = TASKS_EXTENSION

    def methods(self) -> list[MethodBinding]:
        return [
            MethodBinding("tasks/get", TaskIdParams, self.get, protocol_versions=_MODERN),
            MethodBinding("tasks/cancel", TaskIdParams, self.cancel, protocol_versions=_MODERN),
        ]

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        kind = TASK_TOOLS.get(params.name)
        if kind is None or not declares_tasks(ctx):
            return await call_next(ctx)
        if params.arguments is not None:
            # The handler is invoked with these very params: the create answers without waiting.
            params.arguments["wait_seconds"] = 0
        result = await call_next(ctx)
        if not isinstance(result, CallToolResult) or result.is_error:
            return result  # a refusal, an error, a question for the user: answered as the tool answers
        found = cast(dict[str, Any], result.structured_content or {})
        if found.get("confirmation") is not None or not found:
            return result  # the call waits for the user's yes: nothing was created yet
        app, who = await _who(ctx)
        view = TaskRunView.model_validate(found) if kind == "run" else TaskGroupView.model_validate(found)
        target = view.run_id if isinstance(view, TaskRunView) else view.task_group_id
        shaping: dict[str, Any] = {"warnings": lasting_warnings(view.warnings)}
        if isinstance(view, TaskRunView):
            shaping["processor"] = view.processor
        else:
            processor = (params.arguments or {}).get("processor")
            shaping |= {
                "processor": processor if isinstance(processor, str) else app.settings.default_processor,
                "run_ids": view.run_ids,
                "estimated_cost_usd": view.estimated_cost_usd,
            }
        task = TaskRecord("task_" + secrets.token_hex(16), who.owner, kind, target, json.dumps(shaping), time.time())
        try:
            await app.store.create_task(task)
        except StoreError as exc:
            logger.error("no task for %s (the store failed: %s); answering with the plain result", target, exc)
            return result
        logger.info("task %s follows %s %s", task.task_id, kind, target)
        message = _working(app, task, view) if view.is_active else task_ended_message(kind, target, "ended")
        return {"resultType": "task", **_task(app, task, "working", message, _poll_ms(app, view))}

    async def get(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
        """`tasks/get`: the task's status; once its run ended, the tool's result inlined."""
        app, who = await _who(ctx)
        task = await self._find(app, who, params.task_id)
        if task.cancelled_at is not None:
            return _task(app, task, "cancelled", task_detached_message(task.kind, task.target_id), None)
        shaping: dict[str, Any] = json.loads(task.shaping)
        try:
            view = await self._read(app, who, task, shaping)
        except _TRANSIENT as exc:
            return _task(app, task, "working", task_unread_message(exc), app.runs.processors.min_poll_seconds * 1000)
        except ParallelMCPError as exc:
            # What the tool would have said of a run it cannot read (no such run, say): a tool error.
            if task.kind == "run":
                text = describe_error(exc, run_id=task.target_id)
            else:
                text = describe_error(exc, group_id=task.target_id)
            failed = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
            return _task(app, task, "completed", text, None, result=_dump(failed))
        view.warnings.extend(w for w in shaping.get("warnings", []) if w not in view.warnings)
        if view.is_active:
            return _task(app, task, "working", _working(app, task, view), _poll_ms(app, view))
        result = tool_result(app, view)
        if isinstance(view, TaskRunView) and view.status == "cancelled":
            return _task(app, task, "cancelled", task_ended_message(task.kind, task.target_id, "cancelled"), None)
        if isinstance(view, TaskRunView) and view.status == "failed":
            result.is_error = True
        status = view.status if isinstance(view, TaskRunView) else "done"
        return _task(
            app, task, "completed", task_ended_message(task.kind, task.target_id, status), None, result=_dump(result)
        )

    async def cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> dict[str, Any]:
        """`tasks/cancel`: detach the task (the Task API has no cancel; the run goes on, and tasks/get says so)."""
        app, who = await _who(ctx)
        task = await self._find(app, who, params.task_id)
        await app.store.cancel_task(who.owner, task.task_id, time.time())
        logger.info(
            "task %s detached; %s %s goes on (the Task API has no cancel)", task.task_id, task.kind, task.target_id
        )
        return {}

    async def _find(self, app: AppContext, who: Caller, task_id: str) -> TaskRecord:
        try:
            task = await app.store.task(who.owner, task_id)
        except StoreError as exc:
            raise MCPError(code=INVALID_REQUEST, message=describe_error(exc)) from None
        if task is None:  # another owner's task reads exactly like one that never existed
            raise MCPError(code=INVALID_PARAMS, message="Unknown task", data={"taskId": task_id})
        return task

    async def _read(
        self, app: AppContext, who: Caller, task: TaskRecord, shaping: dict[str, Any]
    ) -> TaskRunView | TaskGroupView:
        if task.kind == "run":
            return await app.runs.get(who, task.target_id, wait=0, sink=None, page=PageRequest())
        processor = shaping.get("processor")
        view = await app.groups.get(who, task.target_id, wait=0, sink=None, offset=0, processor=processor)
        view.run_ids = list(shaping.get("run_ids") or [])
        view.estimated_cost_usd = shaping.get("estimated_cost_usd")
        return view


def _working(app: AppContext, task: TaskRecord, view: TaskRunView | TaskGroupView) -> str:
    if isinstance(view, TaskGroupView):
        ended = sum(n for name, n in view.status_counts.items() if name not in ("queued", "running", "cancelling"))
        return task_group_message(task.target_id, ended, view.num_task_runs)
    proc = app.runs.processors.get(view.processor)
    watchers = watchers_of(app)
    live = watchers.progress(view.run_id) if watchers is not None else None
    return task_working_message(
        view.run_id,
        view.status,
        view.processor,
        proc.band if proc else None,
        elapsed=view.elapsed_seconds,
        progress=live,
    )


def _dump(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


__all__ = ["TASKS_EXTENSION", "TaskIdParams", "TasksExtension", "declares_tasks"]
