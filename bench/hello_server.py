"""A hello-world `MCPServer` with one tool: the baseline of the start-up and call-overhead benchmarks."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("hello", log_level="WARNING")


@server.tool()
def hello(name: str = "world") -> str:
    """Say hello."""
    return f"Hello, {name}!"


if __name__ == "__main__":
    server.run()
