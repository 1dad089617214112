"""The key that seals 2026-07-28 `requestState` (a confirmation asked in one request, answered in the next).

The SDK seals the state it hands the client with a per-process key by default, so an answer that
reaches another replica could not be opened there. With a shared store (PostgreSQL), the key is
derived from the store's installation secret instead, which every replica reads at start: the
question may be asked by one replica and answered on any other. A store in one process keeps the
per-process key (its secret is read lazily, off the start-up path, and nothing else needs it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.request_state import AESGCMRequestStateCodec, RequestStateSecurity

from parallel_mcp.runtime import AppContext
from parallel_mcp.store import StoreError

logger = logging.getLogger(__name__)

_PURPOSE = b"parallel-mcp request state v1"


class StoreKeyedCodec:
    """A `RequestStateCodec` (AES-256-GCM) whose key comes from the store's secret once it is known."""

    def __init__(self) -> None:
        self._codec = AESGCMRequestStateCodec([secrets.token_bytes(32)])
        self.shared = False
        """True once the key is the store's: every replica of the store seals and opens alike."""

    def use_secret(self, secret: bytes) -> None:
        """Seal and open with a key derived from the installation secret."""
        self._codec = AESGCMRequestStateCodec([hmac.new(secret, _PURPOSE, hashlib.sha256).digest()])
        self.shared = True

    def seal(self, payload: bytes) -> str:
        return self._codec.seal(payload)

    def unseal(self, token: str) -> bytes:
        return self._codec.unseal(token)

    def security(self) -> RequestStateSecurity:
        """The server's request-state policy with this codec (the SDK's TTL, audience and principal binding)."""
        return RequestStateSecurity(codec=self)

    def lifespan(self, base: Callable[[Any], AbstractAsyncContextManager[AppContext]]) -> Any:
        """Wrap the server's lifespan: with a shared store, take the key from its secret before serving."""

        @asynccontextmanager
        async def lifespan(server: Any) -> AsyncGenerator[AppContext]:
            async with base(server) as app:
                if app.settings.database_url is not None and not self.shared:
                    try:
                        self.use_secret(await app.store.secret())
                    except StoreError as exc:
                        logger.warning(
                            "request state sealed with a per-process key (the store is unavailable: %s): "
                            "a confirmation asked here cannot be answered on another replica",
                            exc,
                        )
                yield app

        return lifespan
