"""One deadline per call: nested scopes only shorten it, and nothing outside a call has one."""

from __future__ import annotations

import anyio
import pytest

from parallel_mcp.deadline import call_deadline, remaining

pytestmark = pytest.mark.anyio


async def test_outside_a_call_there_is_no_deadline() -> None:
    assert remaining() is None


async def test_an_inner_scope_can_shorten_the_deadline_but_never_extend_it() -> None:
    with call_deadline(10):
        outer = remaining() or 0.0
        with call_deadline(100):
            assert (remaining() or 0.0) <= outer
        with call_deadline(1):
            assert (remaining() or 0.0) <= 1
        assert (remaining() or 0.0) > 1
    assert remaining() is None


async def test_a_passed_deadline_reads_as_zero_not_negative() -> None:
    with call_deadline(0):
        await anyio.lowlevel.checkpoint()
        assert remaining() == 0.0


async def test_tasks_started_within_a_call_inherit_its_deadline() -> None:
    seen: list[float | None] = []
    with call_deadline(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(lambda: _record(seen))
    assert seen and seen[0] is not None and 0 < seen[0] <= 5


async def _record(seen: list[float | None]) -> None:
    seen.append(remaining())
