"""`parallel-mcp serve ARGS`, counting the server's upstream requests: one stderr line per request sent.

The concurrency benchmark runs the server through this wrapper so that it can count requests to the
embedded emulator, which lives in the server's process. Each `httpx2.AsyncClient.send` (every Task API
request, streams included) writes `bench-upstream METHOD PATH` to stderr when it starts.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx2

from parallel_mcp.cli import main

MARK = "bench-upstream"

_send = httpx2.AsyncClient.send


async def _counting_send(self: httpx2.AsyncClient, request: httpx2.Request, *args: Any, **kwargs: Any) -> Any:
    sys.stderr.write(f"{MARK} {request.method} {request.url.path}\n")
    return await _send(self, request, *args, **kwargs)


if __name__ == "__main__":
    httpx2.AsyncClient.send = _counting_send  # type: ignore[method-assign]
    sys.exit(main(["serve", *sys.argv[1:]]))
