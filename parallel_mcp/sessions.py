"""Bounded legacy HTTP sessions: a cap per client and in total, the oldest idle session making room.

The SDK caps sessions only in total and then answers every newcomer 503 until one expires (30 min by
default), so 10,000 bare `initialize` requests locked everyone out and held ~400 MiB. Here a new
session first takes the place of its client's oldest idle one once the client holds
`max_sessions_per_client`, then of the oldest idle session of anyone once `max_sessions` are open.
A client is the signed-in principal (OAuth), else the peer IP address. A session is idle when no
POST or DELETE of it is being served: an open GET stream does not count, because SDK clients keep one
open for as long as they live. Only if every candidate is busy is the newcomer refused (503).
Sessions of the 2026-07-28 era are per request and never reach this.

Why a subclass using private SDK methods, not an ASGI middleware: admission happens inside
`StreamableHTTPSessionManager._handle_stateful_request`, under its lock, in `_admit_session`, and
sessions end in `_discard_session` (client DELETE, idle timeout, crash, failed opening request). A
middleware sees neither: it would learn of sessions from response headers after admission (so
concurrent opens race past any count), could not see idle expiry, and would still need the private
session table to evict. Hooking the two methods is exact and small. `MCPServer.streamable_http_app`
builds the manager itself, so `bound_sessions` re-classes that instance in place rather than
re-assembling the SDK's app (routes, auth, metadata) by hand. tests/test_sessions.py pins the private
names and signatures this relies on, so an SDK upgrade that moves them fails loudly.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)


@dataclass
class _Opening:
    """The request being served, as `_admit_session` (which is not given it) needs to know it."""

    peer: str
    session_ids: list[str] = field(default_factory=list[str])


_request: ContextVar[_Opening | None] = ContextVar("parallel_mcp_session_request", default=None)
_SESSION_HEADER = MCP_SESSION_ID_HEADER.lower().encode("latin-1")
_BUSY_METHODS = frozenset({"POST", "DELETE"})


def client_key(requestor: AuthorizationContext | None, peer: str) -> str:
    """Whose a session is: the signed-in principal (issuer and subject, else client id), else the peer address."""
    if requestor is not None:
        who = requestor["subject"] or requestor["client_id"]
        return f"principal:{requestor['issuer'] or ''}\n{who}"
    return f"ip:{peer}"


class BoundedSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager with per-client and total caps that evict the oldest idle session."""

    _client_of: dict[str, str]
    _by_client: dict[str, OrderedDict[str, None]]
    _recency: OrderedDict[str, None]
    _busy: dict[str, int]
    max_per_client: int
    evicted: int

    def _setup_bounds(self, max_per_client: int) -> None:
        self.max_per_client = max_per_client
        self.evicted = 0
        self._client_of = {}
        # Least recently active first; both orders move a session to the end when a request of it ends.
        self._by_client = {}
        self._recency = OrderedDict()
        self._busy = {}

    @property
    def open_sessions(self) -> int:
        """Legacy sessions held right now."""
        return len(self._server_instances)

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        request = _Opening(peer=str(client[0]) if client else "unknown")
        token = _request.set(request)
        session_id = _session_id(scope)
        busy = [session_id] if session_id in self._client_of and scope.get("method") in _BUSY_METHODS else []
        for sid in busy:
            self._busy[sid] = self._busy.get(sid, 0) + 1
        try:
            await super()._handle_stateful_request(scope, receive, send)
        finally:
            _request.reset(token)
            # A session opened by this request was busy (see `_admit_session`) until its answer went out.
            for sid in (*busy, *request.session_ids):
                left = self._busy.get(sid, 1) - 1
                if left > 0:
                    self._busy[sid] = left
                else:
                    self._busy.pop(sid, None)
                self._touch(sid)
            if session_id is not None and not busy:
                self._touch(session_id)

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        request = _request.get()
        key = client_key(requestor, request.peer if request is not None else "unknown")
        own = self._by_client.get(key)
        if own is not None and len(own) >= self.max_per_client and not self._evict_oldest_idle(own):
            logger.warning("Refusing a new session: this client holds %d sessions, all busy", len(own))
            return None
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            self._evict_oldest_idle(self._recency)
        transport = super()._admit_session(requestor)
        if transport is not None and transport.mcp_session_id is not None:
            session_id = transport.mcp_session_id
            self._client_of[session_id] = key
            self._by_client.setdefault(key, OrderedDict())[session_id] = None
            self._recency[session_id] = None
            if request is not None:
                # Busy until its opening request is answered: evicting it then would hand out a dead session id.
                self._busy[session_id] = self._busy.get(session_id, 0) + 1
                request.session_ids.append(session_id)
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        self._forget(session_id)
        await super()._discard_session(session_id, transport)

    def _evict_oldest_idle(self, candidates: OrderedDict[str, None]) -> bool:
        """End the least recently active session among `candidates` that has no request in flight."""
        victim = next((sid for sid in candidates if sid not in self._busy), None)
        if victim is None:
            return False
        transport = self._server_instances.get(victim)
        # Forgotten at once, as `_discard_session` does, so the newcomer's admission sees the room.
        self._server_instances.pop(victim, None)
        self._session_owners.pop(victim, None)
        self._forget(victim)
        self.evicted += 1
        if transport is not None and transport.idle_scope is not None:
            # The same exit as an idle timeout: the session's task ends and discards (terminates) it.
            transport.idle_scope.cancel()
        logger.info("Evicted idle session %s to make room (%d open)", victim[:8], len(self._server_instances))
        return True

    def _touch(self, session_id: str) -> None:
        key = self._client_of.get(session_id)
        if key is None:
            return
        self._recency.move_to_end(session_id)
        self._by_client[key].move_to_end(session_id)

    def _forget(self, session_id: str) -> None:
        key = self._client_of.pop(session_id, None)
        self._recency.pop(session_id, None)
        self._busy.pop(session_id, None)
        if key is not None:
            own = self._by_client.get(key)
            if own is not None:
                own.pop(session_id, None)
                if not own:
                    del self._by_client[key]


def bound_sessions(manager: StreamableHTTPSessionManager, *, max_per_client: int) -> BoundedSessionManager:
    """Give the SDK-built `manager` per-client and total caps that evict the oldest idle session.

    The total cap and the idle timeout are the manager's own (`max_sessions`, `session_idle_timeout`).
    """
    bounded: Any = manager
    bounded.__class__ = BoundedSessionManager
    bounded._setup_bounds(max_per_client)
    return bounded


def _session_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == _SESSION_HEADER:
            return value.decode("latin-1")
    return None
