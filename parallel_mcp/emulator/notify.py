"""A broadcast "something changed" signal built on anyio Events: waiters wake at once, nobody polls."""

from __future__ import annotations

import anyio


class Notifier:
    """Wakes every waiter when `notify()` is called.

    Take `snapshot()` *before* checking the condition you wait for, then `await snapshot.wait()`:
    a change that happens in between has already set that snapshot, so it is never missed.
    """

    def __init__(self) -> None:
        self._event = anyio.Event()

    def snapshot(self) -> anyio.Event:
        """The event the next `notify()` will set."""
        return self._event

    def notify(self) -> None:
        """Wake everyone waiting on the current snapshot and start a new one."""
        event, self._event = self._event, anyio.Event()
        event.set()
