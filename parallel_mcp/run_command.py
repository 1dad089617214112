"""`parallel-mcp run "QUESTION"`: the main job from a terminal, through the MCP server like any client.

It starts `parallel-mcp serve` as a subprocess, speaks MCP to it over stdio, draws a progress bar
on stderr while the run works, and prints every page of the result with its citations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO, cast

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

POLL_WAIT_SECONDS = 45
MAX_PAGES = 50


class ProgressBar:
    """A one-line progress bar on a terminal; plain lines elsewhere (logs, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last_line = ""
        self._started = time.monotonic()

    async def update(self, progress: float, total: float | None, message: str | None) -> None:
        """Show one progress notification."""
        percent = progress / total * 100 if total else progress
        filled = int(max(0.0, min(100.0, percent)) / 5)
        line = f"[{'#' * filled}{'.' * (20 - filled)}] {percent:5.1f}%  {message or ''}"
        if self._tty:
            width = 100
            self._stream.write("\r" + line[:width].ljust(width))
        elif line != self._last_line:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._last_line = line

    def finish(self) -> None:
        """End the bar's line."""
        if self._tty and self._last_line:
            self._stream.write("\n")
            self._stream.flush()


def schema_arguments(path: Path | None, *, text: bool) -> dict[str, Any]:
    """`output_schema` (and `input_schema`) arguments from a schema file (a JSON schema, or a whole
    task_spec), or a request for a markdown report."""
    if path is None:
        return {"output_schema": "text"} if text else {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object (a JSON schema or a task_spec)")
    spec = cast(dict[str, Any], data)
    if "output_schema" in spec:
        return {key: spec[key] for key in ("output_schema", "input_schema") if key in spec}
    return {"output_schema": spec}


def _page_of(view: dict[str, Any]) -> dict[str, Any]:
    output = cast(dict[str, Any], view.get("output") or {})
    return cast(dict[str, Any], output.get("page") or {})


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def _run(args: argparse.Namespace, config_file: Path | None, out: TextIO, err: TextIO) -> int:
    command = [sys.executable, "-m", "parallel_mcp"]
    if config_file is not None:
        command += ["--config", str(config_file)]
    params = StdioServerParameters(command=command[0], args=[*command[1:], "serve"], env=dict(os.environ))
    bar = ProgressBar(err)
    arguments: dict[str, Any] = {"input": args.question, "wait_seconds": POLL_WAIT_SECONDS}
    if args.processor:
        arguments["processor"] = args.processor
    arguments.update(schema_arguments(args.schema, text=args.text))
    deadline = time.monotonic() + args.timeout
    async with Client(params) as client:
        result = await client.call_tool("create_task_run", arguments, progress_callback=bar.update)
        while True:
            if result.is_error:
                bar.finish()
                err.write(f"error: {_text(result)}\n")
                return 1
            view = cast(dict[str, Any], result.structured_content or {})
            run_id = str(view.get("run_id", ""))
            if not view.get("is_active"):
                break
            if time.monotonic() > deadline:
                bar.finish()
                err.write(f"gave up waiting; the run goes on: parallel-mcp can read it later as {run_id}\n")
                return 3
            result = await client.call_tool(
                "get_task_run", {"run_id": run_id, "wait_seconds": POLL_WAIT_SECONDS}, progress_callback=bar.update
            )
        bar.finish()
        out.write(_text(result) + "\n")
        pages = 1
        page = _page_of(view)
        while page.get("next_offset") is not None and pages < MAX_PAGES:
            result = await client.call_tool("get_task_run", {"run_id": run_id, "offset": page["next_offset"]})
            if result.is_error:
                break
            out.write("\n" + _text(result) + "\n")
            pages += 1
            view = cast(dict[str, Any], result.structured_content or {})
            page = _page_of(view)
        return 0 if view.get("status") == "completed" else 1


def run_task(args: argparse.Namespace, *, config_file: Path | None) -> int:
    """Run one task end to end; returns the process exit code."""
    try:
        return anyio.run(_run, args, config_file, sys.stdout, sys.stderr)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"parallel-mcp run: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted; the run goes on at Parallel (there is no cancel)\n")
        return 130
