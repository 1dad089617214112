"""A uvicorn server that says where it listens, so a `--port 0` (free port) server can be found."""

from __future__ import annotations

import logging
import socket

import uvicorn


class AnnouncingServer(uvicorn.Server):
    """Logs `template` (with `{url}`) at WARNING level once its socket is bound."""

    def __init__(self, config: uvicorn.Config, template: str, logger: logging.Logger) -> None:
        super().__init__(config)
        self._template = template
        self._logger = logger

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.servers and self.servers[0].sockets:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._logger.warning(self._template.format(url=f"http://{host}:{port}"))
