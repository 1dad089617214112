"""Fault injection: make the emulator misbehave on purpose, the way the real service sometimes does.

A `Fault` is matched either against a request (`status`, `latency`, `drop`, `drop_response`,
`sse_cut`) by method and a glob on the path, or against a new run (`fail_run`, `hang_run`) by a
substring of its input and/or its processor. Faults fire `times` times (None = always) and count how often they fired.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from parallel_mcp.models.requests import TaskRunInput

FaultKind = Literal["status", "latency", "drop", "drop_response", "sse_cut", "fail_run", "hang_run"]
REQUEST_KINDS: frozenset[str] = frozenset({"status", "latency", "drop", "drop_response", "sse_cut"})
RUN_KINDS: frozenset[str] = frozenset({"fail_run", "hang_run"})


class Fault(BaseModel):
    """One scripted misbehaviour.

    Examples:
        `Fault(kind="status", method="POST", path="/v1/tasks/runs", status=503, times=2)`
        `Fault(kind="status", path="/v1/tasks/runs", status=429, retry_after=1)`
        `Fault(kind="latency", path="/v1/tasks/runs/*", delay=0.2)`
        `Fault(kind="drop", method="GET", path="/v1/tasks/runs/*/result", times=1)`
        `Fault(kind="drop_response", method="POST", path="/v1/tasks/runs", times=1)`
        `Fault(kind="sse_cut", path="*/events", after_events=2)`
        `Fault(kind="fail_run", match_input="boom", message="upstream exploded")`
        `Fault(kind="hang_run", match_processor="ultra")`
    """

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    method: str = "*"
    """HTTP method (case-insensitive) or `*` for any; request faults only."""
    path: str = "*"
    """A glob on the URL path, e.g. `/v1/tasks/runs/*/result`; request faults only.

    `drop` closes the connection before the request is handled (nothing happens); `drop_response`
    handles it fully (a create creates its run) and then closes the connection instead of answering,
    as a proxy that loses the answer does. Use `drop_response` on requests that answer at once, not
    on event streams.
    """
    status: int | None = Field(default=None, ge=100, le=599)
    """The status code a `status` fault answers with."""
    retry_after: float | None = Field(default=None, ge=0)
    """Sent as the `Retry-After` header (whole seconds, rounded up) of a `status` fault."""
    message: str | None = None
    """The error message of a `status` or `fail_run` fault."""
    delay: float = Field(default=0.0, ge=0)
    """Seconds a `latency` fault holds the request before handling it."""
    after_events: int = Field(default=0, ge=0)
    """How many events an `sse_cut` fault lets through before closing the connection abruptly."""
    match_input: str | None = None
    """A substring of the run's input (a JSON object input is matched on its JSON text)."""
    match_processor: str | None = None
    """The run's processor; a trailing `*` matches by prefix (e.g. `ultra*`)."""
    times: int | None = Field(default=None, ge=1)
    """How many times the fault fires; None fires forever."""

    _fired: int = PrivateAttr(default=0)

    @model_validator(mode="after")
    def _check_kind(self) -> Fault:
        if self.kind == "status" and self.status is None:
            raise ValueError("a status fault needs a status code")
        return self

    @property
    def fired(self) -> int:
        """How many times this fault has fired so far."""
        return self._fired

    @property
    def exhausted(self) -> bool:
        """True once the fault has fired `times` times."""
        return self.times is not None and self._fired >= self.times

    def matches_request(self, method: str, path: str) -> bool:
        """True if this request fault applies to `method` and `path` (ignoring `times`)."""
        if self.kind not in REQUEST_KINDS:
            return False
        if self.method != "*" and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path)

    def matches_run(self, run_input: TaskRunInput) -> bool:
        """True if this run fault applies to a new run (ignoring `times`)."""
        if self.kind not in RUN_KINDS:
            return False
        if self.match_processor is not None:
            wanted = self.match_processor
            if wanted.endswith("*"):
                if not run_input.processor.startswith(wanted[:-1]):
                    return False
            elif run_input.processor != wanted:
                return False
        if self.match_input is not None:
            text = run_input.input if isinstance(run_input.input, str) else json.dumps(run_input.input)
            if self.match_input not in text:
                return False
        return True

    def fire(self) -> None:
        """Count one firing."""
        self._fired += 1


class FaultSet:
    """The faults in force, in the order they were added; the first live match wins."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self._faults: list[Fault] = list(faults or [])

    def add(self, fault: Fault) -> Fault:
        """Add a fault and return it (keep it to read `fault.fired`)."""
        self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """Stop a fault from firing again."""
        self._faults = [f for f in self._faults if f is not fault]

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def __iter__(self) -> Iterator[Fault]:
        return iter(list(self._faults))

    def __len__(self) -> int:
        return len(self._faults)

    def take_request(self, kind: FaultKind, method: str, path: str) -> Fault | None:
        """The first live request fault of `kind` matching the request, counted as fired."""
        for fault in self._faults:
            if fault.kind == kind and not fault.exhausted and fault.matches_request(method, path):
                fault.fire()
                return fault
        return None

    def take_run(self, run_input: TaskRunInput) -> Fault | None:
        """The first live run fault matching a new run, counted as fired."""
        for fault in self._faults:
            if not fault.exhausted and fault.matches_run(run_input):
                fault.fire()
                return fault
        return None
