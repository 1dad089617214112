"""The MCP server factory: `create_server(settings)` builds a fully wired `MCPServer`."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from parallel_mcp import __version__
from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.runtime import make_lifespan
from parallel_mcp.tools import (
    CREATE_ANNOTATIONS,
    GET_ANNOTATIONS,
    GROUP_CREATE_ANNOTATIONS,
    GROUP_GET_ANNOTATIONS,
    LIST_ANNOTATIONS,
    create_task_group,
    create_task_run,
    get_task_group,
    get_task_run,
    list_task_runs,
    tool_description,
)

SERVER_NAME = "parallel-task"
INSTRUCTIONS = """\
Parallel Task API: cited web research and structured enrichment.
1. create_task_run(input, processor, task_spec) starts a billed run and waits up to wait_seconds.
2. If it is still running, call get_task_run(run_id, wait_seconds) again after retry_after_seconds;
   a running run is normal. Runs take 10 s (lite) to 2 h (ultra8x). There is no cancel.
3. Completed outputs come one page at a time with numbered citations; follow next_step for more.
Pass a run's interaction_id as previous_interaction_id to follow up on it; pass an idempotency_key to
create_task_run so a retry never bills twice; list_task_runs finds earlier run ids.
For many inputs with one task spec (enriching a list), use create_task_group / get_task_group."""


def create_server(
    settings: Settings, *, client: AsyncTaskClient | None = None, emulated: bool | None = None
) -> MCPServer[Any]:
    """Build the server.

    Args:
        settings: the server's settings.
        client: a ready Task API client (tests pass one for their emulator); by default the
            lifespan opens one, or starts the embedded emulator when no API key is set.
        emulated: mark every result as emulated (default: when the embedded emulator is used).
    """
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        title="Parallel Task API",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=make_lifespan(settings, client=client, emulated=emulated),
        log_level=settings.log_level,
    )
    server.add_tool(create_task_run, description=tool_description(create_task_run), annotations=CREATE_ANNOTATIONS)
    server.add_tool(get_task_run, description=tool_description(get_task_run), annotations=GET_ANNOTATIONS)
    server.add_tool(list_task_runs, description=tool_description(list_task_runs), annotations=LIST_ANNOTATIONS)
    server.add_tool(
        create_task_group, description=tool_description(create_task_group), annotations=GROUP_CREATE_ANNOTATIONS
    )
    server.add_tool(get_task_group, description=tool_description(get_task_group), annotations=GROUP_GET_ANNOTATIONS)
    return server
