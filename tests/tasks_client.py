"""The client side of the tasks extension for tests: declare it, take a task from `tools/call`, poll `tasks/get`.

The `mcp` SDK's client has no tasks helper: a `ClientExtension` declares the extension and claims
`resultType: "task"` results; `tasks/get` and `tasks/cancel` go out as custom requests.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from mcp import Client
from mcp.client import ClaimContext, ClientExtension, ResultClaim
from mcp.types import CallToolResult
from mcp_types import Request, RequestParams, Result
from pydantic import ConfigDict

TASKS = "io.modelcontextprotocol/tasks"


class TaskIdParams(RequestParams):
    task_id: str


class GetTaskRequest(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams


class CancelTaskRequest(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams


class AnyResult(Result):
    """Whatever a custom method answers, every field kept (wire names in `model_extra`)."""

    model_config = ConfigDict(extra="allow")


class TaskCreated(Result):
    """A `CreateTaskResult` (flat: `Result & Task`)."""

    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"]
    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None


async def get_task(client: Client, task_id: str) -> dict[str, Any]:
    """`tasks/get`, as the wire has it."""
    found = await client.session.send_request(GetTaskRequest(params=TaskIdParams(task_id=task_id)), AnyResult)
    return found.model_dump(by_alias=True, exclude_none=True) | dict(found.model_extra or {})


async def cancel_task(client: Client, task_id: str) -> dict[str, Any]:
    """`tasks/cancel`, as the wire has it."""
    found = await client.session.send_request(CancelTaskRequest(params=TaskIdParams(task_id=task_id)), AnyResult)
    return found.model_dump(by_alias=True, exclude_none=True) | dict(found.model_extra or {})


async def create_task(client: Client, tool: str, arguments: dict[str, Any]) -> TaskCreated:
    """Call a create tool and expect a task."""
    created = await client.session.call_tool(tool, arguments, allow_claimed=True)
    assert isinstance(created, TaskCreated), created
    return created


async def until_done(client: Client, task_id: str, *, timeout: float = 20) -> dict[str, Any]:
    """Poll `tasks/get` (bounded) until the task is no longer working."""
    with anyio.fail_after(timeout):
        while True:
            task = await get_task(client, task_id)
            if task["status"] != "working":
                return task
            await anyio.sleep(0.05)


async def _resolve(created: TaskCreated, context: ClaimContext) -> CallToolResult:
    session: Any = context.session
    with anyio.fail_after(30):
        while True:
            got = await session.send_request(GetTaskRequest(params=TaskIdParams(task_id=created.task_id)), AnyResult)
            extra = dict(got.model_extra or {})
            if extra.get("status") != "working":
                return CallToolResult.model_validate(extra["result"])
            await anyio.sleep(0.05)


class TasksClient(ClientExtension):
    """Declares the tasks extension; `Client.call_tool` then polls a task to its inlined result."""

    identifier = TASKS

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskCreated, resolve=_resolve)]
