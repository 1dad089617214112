"""A hello-world `MCPServer` whose one tool answers with a fixed `CallToolResult` read from a JSON file.

The call-overhead benchmark hands it `get_task_run`'s own answer (and, as a second argument, its output
schema), so the calls move the same bytes over stdio and clients check them against the same schema:
what is left of the difference is parallel-mcp's own work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult

ANSWER = CallToolResult.model_validate_json(Path(sys.argv[1]).read_text(encoding="utf-8"))


def echo() -> CallToolResult:
    """Answer with the fixed result."""
    return ANSWER


tool = Tool.from_function(echo)
if len(sys.argv) > 2:
    tool.fn_metadata.output_schema = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
server = MCPServer("echo", log_level="WARNING", tools=[tool])


if __name__ == "__main__":
    server.run()
