"""One deadline per tool call, which every request and retry beneath it respects.

A tool call may wait `wait_seconds`; whatever upstream does (stalls, slow answers, retries), the
call must end shortly after, or the client will have cut it and the answer is lost. The tool sets
the deadline once; the client reads it for each request's timeout and before each retry, without
the layers in between passing it along.
"""

from __future__ import annotations

import contextvars
from collections.abc import Generator
from contextlib import contextmanager

import anyio

CALL_MARGIN_SECONDS = 5.0
"""What a call may take beyond its wait: the create itself, and one last read. The longest wait (50 s)
plus this stays under the ~60 s at which Claude Desktop cuts a call."""

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("parallel_mcp_deadline", default=None)


@contextmanager
def call_deadline(seconds: float) -> Generator[None]:
    """Within the block, work should end `seconds` from now (or earlier, if an outer deadline says so)."""
    limit = anyio.current_time() + seconds
    outer = _deadline.get()
    token = _deadline.set(limit if outer is None else min(limit, outer))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the current call's deadline (never negative); None when no call set one."""
    limit = _deadline.get()
    return None if limit is None else max(0.0, limit - anyio.current_time())
