"""`/healthz` for load balancers: is this replica serving, and can it reach its store?"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from parallel_mcp.store import Store, StoreError

HEALTH_PATH = "/healthz"


class Health:
    """The health endpoint; the lifespan hands it the store once the store is open."""

    def __init__(self) -> None:
        self.store: Store | None = None

    async def handle(self, request: Request) -> JSONResponse:  # noqa: ARG002 - the route's signature
        """200 while serving. The store's state is reported, not failed on: every replica shares the
        database, so taking one out of rotation for its outage would take them all out."""
        if self.store is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await self.store.recent("healthz", limit=1, active_only=False)
        except StoreError:
            return JSONResponse({"status": "ok", "store": "unavailable"})
        return JSONResponse({"status": "ok", "store": "ok"})
