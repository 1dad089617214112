"""parallel-mcp: Parallel's Task API as MCP tools, with an offline emulator."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parallel-mcp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
