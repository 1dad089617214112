"""The compatibility suite: the real server against the agent stacks people build with (`uv run --group compat`)."""
