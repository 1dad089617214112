"""The emulator's sense of time: real by default, or a manual clock that tests move forward.

Everything the emulated service does over time reads this clock: run progress, the `/result`
long-poll timeout, the rate-limit window and the event streams' maximum ages. What happens on the
network does not (latency faults, MCP and webhook timeouts): clients measure those in real time.

Example::

    clock = ManualClock()
    async with serve_emulator(EmulatorConfig(), clock=clock) as emu:
        ...                    # a run is created, queued
        clock.advance(5)       # its driver wakes and catches up with 5 s of emulated time
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import anyio
import anyio.lowlevel

__all__ = ["EmulatorClock", "ManualClock", "RealClock", "wait_until"]


@runtime_checkable
class EmulatorClock(Protocol):
    """A monotonic clock in seconds, with a way to sleep until one of its instants."""

    def now(self) -> float:
        """The current time on this clock (only differences between readings mean anything)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once `now() >= deadline` (at once, after a checkpoint, if it already is)."""
        ...


class RealClock:
    """The event loop's clock: emulated time passes as real time does."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)


class ManualClock:
    """A clock that stands still until `advance` moves it; sleepers whose instant has come wake then.

    Sleepers resume at the event loop's next turn, not inside `advance`: await anything (a request,
    `state.wait_for`, `anyio.lowlevel.checkpoint()`) before looking at what they did.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        # Events are made by sleepers, inside the loop: the clock itself may be built before any loop runs.
        self._sleepers: list[tuple[float, anyio.Event]] = []
        self._arrival: anyio.Event | None = None

    def now(self) -> float:
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks sleep on this clock right now (lets a test know a stream or poll is parked)."""
        return len(self._sleepers)

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        entry = (deadline, anyio.Event())
        self._sleepers.append(entry)
        if self._arrival is not None:
            self._arrival.set()
            self._arrival = None
        try:
            await entry[1].wait()
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    async def wait_for_sleepers(self, count: int = 1) -> None:
        """Until at least `count` tasks sleep on this clock, so that an `advance` reaches them."""
        while len(self._sleepers) < count:
            if self._arrival is None:
                self._arrival = anyio.Event()
            await self._arrival.wait()

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` forward and wake every sleeper whose instant has come."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._now += seconds
        due = [entry for entry in self._sleepers if entry[0] <= self._now]
        self._sleepers = [entry for entry in self._sleepers if entry[0] > self._now]
        for _, event in due:
            event.set()


async def wait_until(clock: EmulatorClock, event: anyio.Event, deadline: float) -> bool:
    """Wait for `event` until `clock` reaches `deadline`; True if it was set."""
    if event.is_set():
        return True
    async with anyio.create_task_group() as group:

        async def time_out() -> None:
            await clock.sleep_until(deadline)
            group.cancel_scope.cancel()

        group.start_soon(time_out)
        await event.wait()
        group.cancel_scope.cancel()
    return event.is_set()
