"""A hello-world `MCPServer` whose one tool answers with a fixed `CallToolResult` read from a JSON file.

The call-overhead benchmark hands it `get_task_run`'s own answer, so the two calls move the same bytes
over stdio and the difference between them is the server's work, not the size of what it says.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

ANSWER = CallToolResult.model_validate_json(Path(sys.argv[1]).read_text(encoding="utf-8"))

server = MCPServer("echo", log_level="WARNING")


@server.tool()
def echo() -> CallToolResult:
    """Answer with the fixed result."""
    return ANSWER


if __name__ == "__main__":
    server.run()
