"""The MCP server factory: `create_server(settings)` builds a fully wired `MCPServer`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer

from parallel_mcp import __version__
from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.health import HEALTH_PATH, Health
from parallel_mcp.live import Live
from parallel_mcp.prompts import add_prompts
from parallel_mcp.request_state import StoreKeyedCodec
from parallel_mcp.resources import add_resources, remember_request
from parallel_mcp.runtime import make_lifespan
from parallel_mcp.tasks import TasksExtension
from parallel_mcp.tools import build_tools
from parallel_mcp.webhooks import WEBHOOK_PATH, WebhookReceiver

if TYPE_CHECKING:
    from mcp.server.auth.provider import TokenVerifier
    from mcp.server.auth.settings import AuthSettings

SERVER_NAME = "parallel-task"
INSTRUCTIONS = """\
Parallel Task API: cited web research and structured enrichment.
1. create_task_run(input, processor, output_schema) starts a billed run and waits up to wait_seconds.
2. If it is still running, call get_task_run(run_id, wait_seconds) again after retry_after_seconds;
   a running run is normal. Runs take 10 s (lite) to 2 h (ultra8x). There is no cancel.
3. Completed outputs come one page at a time with numbered citations; follow next_step for more.
Pass a run's interaction_id as previous_interaction_id to follow up on it. Repeating a create (a retry
after a cut call) returns its first run instead of billing a second; force_new=true starts another on
purpose. list_task_runs finds earlier run ids.
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
    verifier: TokenVerifier | None = None
    auth: AuthSettings | None = None
    if settings.uses_oauth:
        # Imported here: a server without OAuth never loads the verifier (nor, later, PyJWT).
        from parallel_mcp.auth import auth_settings, token_verifier

        verifier, auth = token_verifier(settings), auth_settings(settings)
    health = Health()
    live, sealing = Live(), StoreKeyedCodec()
    webhooks = None
    if settings.transport != "stdio" and settings.public_url and settings.webhook_secret:
        webhooks = WebhookReceiver(settings.webhook_secret.get_secret_value())
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        title="Parallel Task API",
        instructions=INSTRUCTIONS,
        version=__version__,
        token_verifier=verifier,
        auth=auth,
        lifespan=live.lifespan(
            sealing.lifespan(
                make_lifespan(settings, client=client, emulated=emulated, webhooks=webhooks, routes=[health])
            )
        ),
        log_level=settings.log_level,
        tools=build_tools(),
        extensions=[TasksExtension()],
        subscriptions=live.bus,
        middleware=[remember_request, live.track_listens],
        request_state_security=sealing.security(),
    )
    add_resources(server)
    add_prompts(server)
    live.serve_legacy_subscriptions(server)
    if webhooks is not None:
        # Public, like every custom route: Parallel signs its deliveries instead of sending a token.
        server.custom_route(WEBHOOK_PATH, methods=["POST"])(webhooks.handle)
    server.custom_route(HEALTH_PATH, methods=["GET"])(health.handle)
    return server
