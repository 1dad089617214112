#!/usr/bin/env sh
# Register parallel-mcp with Claude Code (stdio). Run from anywhere; adjust the path.
# Options go before the server name; `--` separates the name from the command.
claude mcp add --transport stdio --env PARALLEL_API_KEY="$PARALLEL_API_KEY" parallel-task -- \
  uvx --from /ABSOLUTE/PATH/TO/parallel-mcp parallel-mcp

# Remote (streamable HTTP) instead, with a bearer token for the server:
#   parallel-mcp serve --transport streamable-http --port 8000   (with PARALLEL_MCP_AUTH_TOKEN set)
#   claude mcp add --transport http parallel-task http://127.0.0.1:8000/mcp --header "Authorization: Bearer $TOKEN"
