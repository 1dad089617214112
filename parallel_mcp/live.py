"""Resource notifications: when a run or a group ends, every listener of its URI hears `ResourceUpdated`.

Ends are store events (`run_ended <id>`, `group_ended <id>`), published by whoever saw the end
first: a waiting call, a webhook, or the watcher of a subscription. With the PostgreSQL store they
reach every replica, each of which tells its own listeners: 2026-07-28 clients listening with
`subscriptions/listen` (the SDK's bus) and older ones subscribed with `resources/subscribe`.

A subscribed run or group is watched by at most one watcher per process, however many listen: it
starts with the first listener, stops with the last, follows the run with the waiter (one event
stream and one long-poll at a time) and publishes the end. What it learns of the run's progress is
kept for the tasks extension's status messages.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ResourceUpdated, ServerEvent
from mcp.types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from parallel_mcp.errors import AccessError, ArgumentError, NotFoundError, ParallelMCPError
from parallel_mcp.resources import group_uri, headers_of, report_uri, run_uri
from parallel_mcp.runs import Caller, PageRequest
from parallel_mcp.runtime import AppContext, caller
from parallel_mcp.store import group_ended, quietly, run_ended

logger = logging.getLogger(__name__)

WATCH_SECONDS = 240.0
"""One wait of a watcher: a long-poll (and an event stream) this long, then a fresh one."""
RETRY_SECONDS = (1.0, 60.0)
"""A watcher's first and longest pause after a failed read."""
REPEAT_SECONDS = 2.0
"""The same end heard twice within this long (a waiting call and a watcher both saw it) is said once."""
_RUN = re.compile(r"parallel://runs/([A-Za-z0-9_.:-]+)(?:/report)?")
_GROUP = re.compile(r"parallel://groups/([A-Za-z0-9_.:-]+)")

Release = Callable[[], None]
WatchKey = tuple[str, str]


def watched(uri: str) -> WatchKey | None:
    """What a URI's listeners wait for: ("run", id), ("group", id), or nothing to watch."""
    if found := _RUN.fullmatch(uri):
        return "run", found.group(1)
    if found := _GROUP.fullmatch(uri):
        return "group", found.group(1)
    return None


def _noop() -> None:
    return None


class Bus:
    """The 2026-07-28 listeners' `SubscriptionBus`, which store events feed synchronously."""

    def __init__(self) -> None:
        self._listeners: dict[object, Callable[[ServerEvent], None]] = {}

    async def publish(self, event: ServerEvent) -> None:
        self.deliver(event)
        await anyio.lowlevel.checkpoint()

    def deliver(self, event: ServerEvent) -> None:
        """Hand `event` to every listen stream (each filters and buffers it)."""
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:  # one listen stream's failure must not starve the others
                logger.exception("a listen stream failed to take an event")

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Release:
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe


@dataclass
class _Watch:
    listeners: int = 0
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class Watchers:
    """The watchers and live progress of one lifespan (one store, one client)."""

    def __init__(self, app: AppContext, live: Live, tasks: TaskGroup) -> None:
        self.app = app
        self.live = live
        self.tasks = tasks
        self._watches: dict[WatchKey, _Watch] = {}
        self._progress: dict[str, str] = {}

    def progress(self, run_id: str) -> str | None:
        """The latest progress a watcher heard for a run, if one follows it here."""
        return self._progress.get(run_id)

    def watching(self) -> dict[WatchKey, int]:
        """What is watched, with how many listeners each."""
        return {key: watch.listeners for key, watch in self._watches.items()}

    def acquire(self, uri: str, who: Caller) -> Release:
        """One more listener of `uri`: the first starts its watcher; the release returned lets go of it."""
        key = watched(uri)
        if key is None:
            return _noop
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch()
            self.tasks.start_soon(self._watch, key, who, watch)
        watch.listeners += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            watch.listeners -= 1
            if watch.listeners == 0:
                watch.scope.cancel()
                if self._watches.get(key) is watch:
                    del self._watches[key]

        return release

    def on_event(self, event: str) -> None:
        """A store event (from any replica): tell the listeners of the URIs it concerns."""
        kind, _, target = event.partition(" ")
        if kind == "run_ended":
            self.live.notify([run_uri(target), report_uri(target)], self.tasks)
        elif kind == "group_ended":
            self.live.notify([group_uri(target)], self.tasks)

    async def _watch(self, key: WatchKey, who: Caller, watch: _Watch) -> None:
        kind, target = key
        with watch.scope:
            try:
                ended = await (self._watch_run(target, who) if kind == "run" else self._watch_group(target, who))
                if ended:
                    event = run_ended(target) if kind == "run" else group_ended(target)
                    await quietly(self.app.store.publish(event))
            finally:
                self._progress.pop(target, None)
                if self._watches.get(key) is watch:
                    del self._watches[key]

    async def _watch_run(self, run_id: str, who: Caller) -> bool:
        async def heard(_progress: float, _total: float | None, message: str) -> None:
            self._progress[run_id] = message

        page = PageRequest(include_basis=False)
        return await self._until_ended(
            lambda: self.app.runs.get(who, run_id, wait=WATCH_SECONDS, sink=heard, page=page),
            run_id,
        )

    async def _watch_group(self, group_id: str, who: Caller) -> bool:
        groups = self.app.groups
        if groups.owned_only and not await groups.store.owns(who.owner, group_id):
            return False

        async def wait() -> Any:
            return (await groups.waiter.group(who.client, group_id, wait=WATCH_SECONDS)).group.status

        return await self._until_ended(wait, group_id)

    async def _until_ended(self, read: Callable[[], Any], target: str) -> bool:
        """Read again and again until what is read is no longer active; False when it is not the caller's."""
        pause = RETRY_SECONDS[0]
        while True:
            try:
                found = await read()
            except (NotFoundError, AccessError, ArgumentError):
                return False
            except ParallelMCPError as exc:
                logger.debug("watcher of %s: read failed (%s); again in %.0f s", target, type(exc).__name__, pause)
                await anyio.sleep(pause)
                pause = min(pause * 2, RETRY_SECONDS[1])
                continue
            pause = RETRY_SECONDS[0]
            if not found.is_active:
                return True


_SCOPES: dict[int, Watchers] = {}


def watchers_of(app: AppContext) -> Watchers | None:
    """The watchers of the lifespan that made `app`."""
    return _SCOPES.get(id(app))


class Live:
    """The server's listeners: the 2026-07-28 bus and the older `resources/subscribe` sessions."""

    def __init__(self) -> None:
        self.bus = Bus()
        self._connections: dict[str, dict[int, Connection]] = {}
        self._releases: dict[tuple[int, str], Release] = {}
        self._said: dict[str, float] = {}

    def lifespan(self, base: Callable[[Any], AbstractAsyncContextManager[AppContext]]) -> Any:
        """Wrap the server's lifespan: watchers for its store and client, fed by its store's events."""

        @asynccontextmanager
        async def lifespan(server: Any) -> AsyncGenerator[AppContext]:
            async with base(server) as app, anyio.create_task_group() as tasks:
                scope = _SCOPES[id(app)] = Watchers(app, self, tasks)
                unsubscribe = app.store.subscribe(scope.on_event)
                try:
                    yield app
                finally:
                    unsubscribe()
                    _SCOPES.pop(id(app), None)
                    tasks.cancel_scope.cancel()

        return lifespan

    def notify(self, uris: list[str], tasks: TaskGroup) -> None:
        """Tell every listener of these URIs that they changed (once, however many saw the end)."""
        now = time.monotonic()
        if len(self._said) > 10_000:
            self._said = {uri: at for uri, at in self._said.items() if now - at < REPEAT_SECONDS}
        for uri in uris:
            if now - self._said.get(uri, -math.inf) < REPEAT_SECONDS:
                continue
            self._said[uri] = now
            self.bus.deliver(ResourceUpdated(uri=uri))
            for connection in list(self._connections.get(uri, {}).values()):
                tasks.start_soon(_send_updated, connection, uri)

    async def track_listens(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Middleware: a `subscriptions/listen` stream holds a watcher for each URI it listens to."""
        if ctx.method != "subscriptions/listen":
            return await call_next(ctx)
        releases = await self._acquire(ctx, _listened(ctx.params))
        try:
            return await call_next(ctx)
        finally:
            for release in releases:
                release()

    async def _acquire(self, ctx: ServerRequestContext[Any, Any], uris: list[str]) -> list[Release]:
        app = cast(AppContext, ctx.lifespan_context)
        scope = watchers_of(app)
        if scope is None or not any(watched(uri) for uri in uris):
            return []
        try:
            who = await caller(app, headers_of(ctx))
        except ParallelMCPError:
            return []  # nobody to read the runs as: the listener hears only what others see end
        return [scope.acquire(uri, who) for uri in uris]

    def serve_legacy_subscriptions(self, server: MCPServer[Any]) -> None:
        """Serve `resources/subscribe` and `resources/unsubscribe` to 2025-era clients.

        MCPServer has no handler of its own for them: they go on its lowlevel server (a private
        attribute), and a session's subscriptions end with its connection (another one).
        """
        lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
        lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, self._subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, self._unsubscribe)

    async def _subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        uri, connection = str(params.uri), _connection(ctx)
        if connection is None:
            logger.warning("cannot keep a subscription to %s: this mcp SDK hides the connection", uri)
            return EmptyResult()
        key = (id(connection), uri)
        if key not in self._releases:
            self._connections.setdefault(uri, {})[key[0]] = connection
            self._releases[key] = next(iter(await self._acquire(ctx, [uri])), _noop)
            connection.exit_stack.callback(self._drop, key)  # the subscription ends with its connection
        return EmptyResult()

    async def _unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        connection = _connection(ctx)
        if connection is not None:
            self._drop((id(connection), str(params.uri)))
        return EmptyResult()

    def _drop(self, key: tuple[int, str]) -> None:
        release = self._releases.pop(key, None)
        if release is not None:
            release()
        connections = self._connections.get(key[1], {})
        connections.pop(key[0], None)
        if not connections:
            self._connections.pop(key[1], None)


def _connection(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
    """The connection a request came on (the SDK keeps it private to the session: pinned by a test)."""
    found = getattr(ctx.session, "_connection", None)
    return found if isinstance(found, Connection) else None


def _listened(params: Mapping[str, Any] | None) -> list[str]:
    notifications = (params or {}).get("notifications")
    if not isinstance(notifications, Mapping):
        return []
    uris = cast(Mapping[str, Any], notifications).get("resourceSubscriptions")
    return [uri for uri in cast(list[Any], uris) if isinstance(uri, str)] if isinstance(uris, list) else []


async def _send_updated(connection: Connection, uri: str) -> None:
    try:
        await connection.send_resource_updated(uri)
    except Exception as exc:  # a gone client: its subscriptions end with its connection
        logger.debug("could not tell a subscriber that %s changed: %s", uri, exc)
