"""Time the start-up work parallel-mcp does beyond a hello-world server, phase by phase; prints JSON.

Run in a fresh interpreter by the start-up benchmark: first what the hello-world imports too (the
MCP server SDK), then parallel-mcp's own imports, settings, `create_server` and entering the lifespan
(which opens the Task API client, or starts the embedded emulator without a key).
"""

from __future__ import annotations

import importlib
import json
import time

import anyio

started = time.perf_counter()
importlib.import_module("mcp.server.mcpserver")  # the hello-world's imports, timed as the baseline
phases: dict[str, float] = {"SDK import (hello-world's too)": time.perf_counter() - started}


def _lap(name: str, since: float) -> float:
    now = time.perf_counter()
    phases[name] = now - since
    return now


async def main() -> None:
    mark = time.perf_counter()
    importlib.import_module("parallel_mcp.cli")
    from parallel_mcp.config import load_settings
    from parallel_mcp.runtime import make_lifespan
    from parallel_mcp.server import create_server

    mark = _lap("parallel_mcp imports", mark)
    settings = load_settings(None)
    mark = _lap("load_settings", mark)
    server = create_server(settings)
    mark = _lap("create_server", mark)
    async with make_lifespan(settings)(server):
        mark = _lap("enter lifespan", mark)


if __name__ == "__main__":
    anyio.run(main)
    print(json.dumps(phases))
