"""What the server holds for its lifetime: settings, the Task API client, the run service.

The lifespan opens one connection pool; with no API key it first starts the embedded emulator on
loopback and says so on stderr.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.service import RunService, owner_of

logger = logging.getLogger(__name__)


@dataclass
class AppContext:
    """The lifespan state every tool call reads."""

    settings: Settings
    client: AsyncTaskClient
    owner: str
    service: RunService


def make_client(settings: Settings, *, api_key: str, base_url: str) -> AsyncTaskClient:
    """A client configured from settings."""
    return AsyncTaskClient(
        api_key=api_key,
        base_url=base_url,
        max_retries=settings.max_retries,
        extra_betas=tuple(settings.extra_betas),
        connect_timeout=settings.connect_timeout,
        request_timeout=settings.request_timeout,
    )


def make_lifespan(settings: Settings, *, client: AsyncTaskClient | None = None, emulated: bool | None = None) -> Any:
    """Build the server's lifespan.

    Args:
        settings: the server's settings.
        client: use this client instead of opening one (tests point it at their own emulator).
        emulated: mark results as emulated; defaults to whether the embedded emulator is used.
    """

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncGenerator[AppContext]:
        async with AsyncExitStack() as stack:
            task_client = client
            is_emulated = bool(emulated)
            time_scale = 1.0
            if task_client is None and settings.uses_emulator:
                task_client = await stack.enter_async_context(_embedded_emulator(settings))
                is_emulated = emulated if emulated is not None else True
                time_scale = settings.emulator_speed
            elif task_client is None:
                api_key = settings.api_key.get_secret_value() if settings.api_key else ""
                task_client = make_client(settings, api_key=api_key, base_url=settings.base_url)
                stack.push_async_callback(task_client.aclose)
            elif is_emulated:
                time_scale = settings.emulator_speed
            api_key_for_owner = settings.api_key.get_secret_value() if settings.api_key else "emulator"
            service = RunService(
                budget_tokens=settings.result_budget_tokens,
                progress_interval=settings.progress_interval,
                emulated=is_emulated,
                time_scale=time_scale,
            )
            yield AppContext(settings=settings, client=task_client, owner=owner_of(api_key_for_owner), service=service)

    return lifespan


def _embedded_emulator(settings: Settings) -> AbstractAsyncContextManager[AsyncTaskClient]:
    @asynccontextmanager
    async def run() -> AsyncGenerator[AsyncTaskClient]:
        # Imported here: a server with a key never pays for the emulator's imports at start-up.
        from parallel_mcp.emulator.config import EmulatorConfig
        from parallel_mcp.emulator.runner import serve_emulator

        key = "emu_" + secrets.token_hex(16)
        config = EmulatorConfig(api_key=key, speed=settings.emulator_speed)
        async with serve_emulator(config, host="127.0.0.1", port=0) as emulator:
            logger.warning(
                "No PARALLEL_API_KEY set: running on the embedded Task API emulator at %s. "
                "Results are emulated, not real research. Set PARALLEL_API_KEY to use api.parallel.ai.",
                emulator.base_url,
            )
            client = make_client(settings, api_key=key, base_url=emulator.base_url)
            try:
                yield client
            finally:
                await client.aclose()

    return run()


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def client_for(app: AppContext, headers: Mapping[str, str] | None) -> tuple[AsyncTaskClient, str]:
    """The client and cache owner for this request.

    In multi-user mode each HTTP request brings its own Parallel key (`x-api-key`, or
    `Authorization: Bearer` when the server has no token of its own); keys never cross requests.

    Raises:
        ToolError: multi-user mode and the request carries no key.
    """
    if not app.settings.multi_user:
        return app.client, app.owner
    found = headers or {}
    key = found.get("x-api-key") or found.get("X-Api-Key")
    if not key and app.settings.auth_token is None:
        key = _bearer(found)
    if not key:
        where = "an x-api-key header" if app.settings.auth_token else "an x-api-key or Authorization: Bearer header"
        raise ToolError(f"This server is in multi-user mode: send your Parallel API key in {where}.")
    return app.client.with_api_key(key), owner_of(key)
