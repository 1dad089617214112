"""What the server holds for its lifetime: settings, the Task API client, the store and the services.

The lifespan opens one connection pool and one store; with no API key it first starts the
embedded emulator on loopback and says so on stderr. Each call then learns who is calling
(`caller`): the owner its runs belong to, and the client that speaks for it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

from parallel_mcp.client import AsyncTaskClient
from parallel_mcp.config import Settings
from parallel_mcp.errors import AccessError
from parallel_mcp.groups import GroupService
from parallel_mcp.guidance import missing_key_message
from parallel_mcp.intents import Intents
from parallel_mcp.processors import ProcessorTable
from parallel_mcp.runs import Caller, RunService, owner_of
from parallel_mcp.serving import base_url, listening_socket
from parallel_mcp.store import Store
from parallel_mcp.waiter import Waiter
from parallel_mcp.webhooks import WEBHOOK_PATH, WebhookReceiver

logger = logging.getLogger(__name__)

EMULATOR_OWNER_KEY = "emulator"
"""Whose runs a keyless server's are: the embedded emulator's key changes at every start."""


@dataclass
class AppContext:
    """The lifespan state every tool call reads."""

    settings: Settings
    client: AsyncTaskClient
    store: Store
    runs: RunService
    groups: GroupService
    emulated: bool
    """Results come from an emulator, not real research: every result says so."""
    _secret: bytes | None = field(default=None, repr=False)

    async def owner_for(self, api_key: str) -> str:
        """The owner id of an API key, keyed by this installation's secret (read once from the store)."""
        if self._secret is None:
            self._secret = await self.store.secret()
        return owner_of(api_key, self._secret)

    async def owner_for_user(self, issuer: str, subject: str) -> str:
        """The owner id of a signed-in user (`iss` + `sub` of their access token), keyed like `owner_for`."""
        if self._secret is None:
            self._secret = await self.store.secret()
        digest = hmac.new(self._secret, f"{issuer}\n{subject}".encode(), hashlib.sha256).hexdigest()
        return "user:" + digest[:32]


def make_client(
    settings: Settings,
    *,
    api_key: str,
    base_url: str,
    before_request: Callable[[], Awaitable[None]] | None = None,
) -> AsyncTaskClient:
    """A client configured from settings."""
    return AsyncTaskClient(
        api_key=api_key,
        base_url=base_url,
        before_request=before_request,
        max_retries=settings.max_retries,
        extra_betas=tuple(settings.extra_betas),
        connect_timeout=settings.connect_timeout,
        request_timeout=settings.request_timeout,
    )


def open_store(settings: Settings, *, emulated: bool) -> Store:
    """The store the settings ask for; it connects on first use.

    A database URL selects PostgreSQL. Otherwise the journal setting: "auto" keeps a file for real
    runs and memory for emulated ones, whose runs end with the process; "off" keeps memory only
    (claims then hold for the process's life).
    """
    if settings.database_url is not None:
        from parallel_mcp.store.postgres import PostgresStore  # only deployments with a database pay for it

        return PostgresStore(settings.database_url.get_secret_value())
    from parallel_mcp.store.sqlite import MEMORY, SQLiteStore, default_path

    choice = settings.journal.strip()
    if choice == "off" or (choice == "auto" and emulated):
        return SQLiteStore(MEMORY)
    return SQLiteStore(default_path() if choice == "auto" else Path(choice).expanduser())


def webhook_url(settings: Settings) -> str:
    """Where Parallel delivers this server's webhooks."""
    assert settings.public_url is not None
    return settings.public_url.rstrip("/") + WEBHOOK_PATH


def make_lifespan(
    settings: Settings,
    *,
    client: AsyncTaskClient | None = None,
    emulated: bool | None = None,
    webhooks: WebhookReceiver | None = None,
    routes: Sequence[NeedsStore] = (),
) -> Any:
    """Build the server's lifespan.

    Args:
        settings: the server's settings.
        client: use this client instead of opening one (tests point it at their own emulator).
        emulated: mark results as emulated; defaults to whether the embedded emulator is used.
        webhooks: the receiver of this server's webhooks (HTTP with a public URL and a webhook secret):
            runs then carry a webhook to it, and waits listen for what it hears.
        routes: other HTTP endpoints outside MCP (health) that need the store once it is open.
    """

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncGenerator[AppContext]:
        async with AsyncExitStack() as stack:
            task_client = client
            is_emulated = bool(emulated)
            if task_client is None and settings.uses_emulator:
                group = await stack.enter_async_context(anyio.create_task_group())
                emulator = EmbeddedEmulator(settings, group)
                stack.callback(emulator.close)
                logger.warning(
                    "No PARALLEL_API_KEY set: using the embedded Task API emulator at %s. "
                    "Results are emulated, not real research. Set PARALLEL_API_KEY to use api.parallel.ai.",
                    emulator.base_url,
                )
                task_client = make_client(
                    settings,
                    api_key=emulator.api_key,
                    base_url=emulator.base_url,
                    before_request=emulator.ensure_started,
                )
                stack.push_async_callback(task_client.aclose)
                is_emulated = emulated if emulated is not None else True
            elif task_client is None:
                api_key = settings.api_key.get_secret_value() if settings.api_key else ""
                task_client = make_client(settings, api_key=api_key, base_url=settings.base_url)
                stack.push_async_callback(task_client.aclose)
            store = open_store(settings, emulated=is_emulated)
            stack.push_async_callback(store.close)
            background = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(background.cancel_scope.cancel)
            await store.start(background)
            # An emulator's runs go `emulator_speed` times faster: hints and estimates follow its pace.
            processors = ProcessorTable(pace=settings.emulator_speed if is_emulated else 1.0)
            for route in (*routes, *([webhooks] if webhooks is not None else [])):
                route.store = store
            waiter = Waiter(
                processors, interval=settings.progress_interval, events=store if webhooks is not None else None
            )
            intents = Intents(store, window=settings.dedupe_window_seconds, daily_budget_usd=settings.daily_budget_usd)
            runs = RunService(
                waiter=waiter,
                store=store,
                intents=intents,
                budget_tokens=settings.result_budget_tokens,
                webhook_url=webhook_url(settings) if webhooks is not None else None,
                # Signed-in users share the server's key: the store, not the API, says whose a run is.
                owned_only=settings.uses_oauth,
            )
            groups = GroupService(
                waiter=waiter,
                store=store,
                intents=intents,
                page_budget_chars=runs.page_budget_chars,
                owned_only=settings.uses_oauth,
            )
            yield AppContext(
                settings=settings, client=task_client, store=store, runs=runs, groups=groups, emulated=is_emulated
            )

    return lifespan


class NeedsStore(Protocol):
    """An HTTP endpoint outside MCP that reads the store the lifespan opens."""

    store: Store | None


class EmbeddedEmulator:
    """The emulator a keyless server talks to: its port is bound at once, its server starts on first use.

    Binding first gives the client its URL; starting on the first request keeps the emulator's
    imports and start-up out of the time to a `tools/list` answer.
    """

    def __init__(self, settings: Settings, group: TaskGroup) -> None:
        self.api_key = "emu_" + secrets.token_hex(16)
        self._settings = settings
        self._group = group
        self._sock = listening_socket("127.0.0.1", 0)
        self.base_url = base_url(self._sock)
        self._lock = anyio.Lock()
        self._started = False
        self._stopping = anyio.Event()

    async def ensure_started(self) -> None:
        """Start serving (once); requests that arrive meanwhile wait in the socket's backlog."""
        if self._started:
            return
        async with self._lock:
            if not self._started:
                await self._group.start(self._serve)
                self._started = True

    async def _serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # Imported here: a server with a key never pays for the emulator's imports.
        from parallel_mcp.emulator.config import EmulatorConfig
        from parallel_mcp.emulator.runner import serve_emulator

        config = EmulatorConfig(
            api_key=self.api_key,
            speed=self._settings.emulator_speed,
            allow_private_mcp_servers=self._settings.emulator_allow_private_mcp,
        )
        async with serve_emulator(config, sock=self._sock):
            task_status.started()
            await self._stopping.wait()

    def close(self) -> None:
        """Stop serving and let in-flight requests finish (a cancelled uvicorn logs a traceback)."""
        self._stopping.set()
        if not self._started:
            self._sock.close()


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def caller(app: AppContext, headers: Mapping[str, str] | None) -> Caller:
    """Who this request speaks for.

    With OAuth, the signed-in user (their access token's `iss` + `sub`; the SDK verified it before the
    call got here), speaking through the server's own client. In multi-user mode each HTTP request
    brings its own Parallel key (`x-api-key`, or `Authorization: Bearer` when the server has no token
    of its own); keys never cross requests.

    Raises:
        AccessError: multi-user mode and the request carries no key, or OAuth and no signed-in user.
    """
    if app.settings.uses_oauth:
        # Imported here: only an OAuth server reads the SDK's per-request token.
        from mcp.server.auth.middleware.auth_context import get_access_token

        token = get_access_token()
        issuer = (token.claims or {}).get("iss") if token is not None else None
        if token is None or not token.subject or not isinstance(issuer, str):
            raise AccessError("This server needs a signed-in user: connect again and sign in when asked.")
        return Caller(app.client, await app.owner_for_user(issuer, token.subject))
    if not app.settings.multi_user:
        key = app.settings.api_key.get_secret_value() if app.settings.api_key else EMULATOR_OWNER_KEY
        return Caller(app.client, await app.owner_for(key))
    found = headers or {}
    key = found.get("x-api-key") or found.get("X-Api-Key")
    if not key and app.settings.auth_token is None:
        key = _bearer(found)
    if not key:
        raise AccessError(missing_key_message(bearer_allowed=app.settings.auth_token is None))
    return Caller(app.client.with_api_key(key), await app.owner_for(key))
