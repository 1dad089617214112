"""parallel-mcp: Parallel's Task API as MCP tools, with an offline emulator."""

# The single source of the version (pyproject reads it): importlib.metadata would cost start-up time.
__version__ = "0.1.0"

__all__ = ["__version__"]
