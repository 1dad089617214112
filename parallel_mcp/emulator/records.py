"""What the emulator remembers: handled requests, runs and groups, and how they look on the wire."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from parallel_mcp.emulator.faults import Fault
from parallel_mcp.emulator.notify import Notifier
from parallel_mcp.emulator.outputs import ProgressStep
from parallel_mcp.models import (
    ACTIVE_STATUSES,
    ErrorObject,
    McpToolCall,
    TaskGroupStatus,
    TaskRun,
    TaskRunInput,
    TaskRunJsonOutput,
    TaskRunStatus,
    TaskRunTextOutput,
    Warning,
)
from parallel_mcp.processors import is_premium

Output = TaskRunJsonOutput | TaskRunTextOutput
GroupStream = Literal["events", "runs"]


def utc_now() -> str:
    """The current time as an RFC 3339 string in UTC."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One handled request; `status` is None when no response was sent (a dropped connection)."""

    method: str
    path: str
    status: int | None


@dataclass(eq=False)
class RunRecord:
    """One run and everything the emulator knows about it."""

    run_id: str
    interaction_id: str
    input: TaskRunInput
    duration: float
    script: list[ProgressStep]
    price: float
    group_id: str | None = None
    owner: str = ""
    """The API key that created the run; other keys get 404."""
    betas: frozenset[str] = frozenset()
    """The `parallel-beta` values the create request carried."""
    fault: Fault | None = None
    status: TaskRunStatus = "queued"
    created_at: str = field(default_factory=utc_now)
    modified_at: str = field(default_factory=utc_now)
    warnings: list[Warning] = field(default_factory=list[Warning])
    error: ErrorObject | None = None
    output: Output | None = None
    progress: float = 0.0
    step_index: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    """Progress-message events emitted so far, replayed on every stream (re)connect."""
    stats: dict[str, Any] | None = None
    """The latest progress-stats event; streams send only the current one."""
    stats_version: int = 0
    mcp_calls: list[McpToolCall] | None = None
    pollers: int = 0
    """`/result` long-polls waiting on this run right now (lets tests know a poll is parked)."""
    mcp_done: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    changed: Notifier = field(default_factory=Notifier)

    @property
    def is_active(self) -> bool:
        """True while queued or running (the API's definition of active)."""
        return self.status in ACTIVE_STATUSES

    @property
    def events_enabled(self) -> bool:
        """`enable_events`, which defaults to on for pro and above."""
        if self.input.enable_events is not None:
            return self.input.enable_events
        return is_premium(self.input.processor)

    def to_task_run(self) -> TaskRun:
        """The run as the API shows it (no output)."""
        return TaskRun(
            run_id=self.run_id,
            interaction_id=self.interaction_id,
            status=self.status,
            is_active=self.is_active,
            processor=self.input.processor,
            metadata=self.input.metadata,
            taskgroup_id=self.group_id,
            warnings=list(self.warnings) or None,
            error=self.error,
            created_at=self.created_at,
            modified_at=self.modified_at,
        )

    def run_json(self) -> dict[str, Any]:
        """`to_task_run()` as wire JSON."""
        return self.to_task_run().model_dump(mode="json", by_alias=True)

    def input_json(self) -> dict[str, Any]:
        """The create body as the API echoes it: `mcp_servers[].headers` are write-only, so null."""
        data = self.input.model_dump(mode="json", by_alias=True)
        if self.input.mcp_servers:
            data["mcp_servers"] = [
                {**server.model_dump(mode="json", by_alias=True), "headers": None} for server in self.input.mcp_servers
            ]
        return data

    def output_json(self) -> dict[str, Any] | None:
        """The output as wire JSON, once completed."""
        return None if self.output is None else self.output.model_dump(mode="json", by_alias=True)

    def state_event(
        self, *, event_id: str | None = None, with_input: bool = False, with_output: bool = False
    ) -> dict[str, Any]:
        """A `task_run.state` event; the output is attached only to a completed run, and only when asked."""
        return {
            "type": "task_run.state",
            "event_id": event_id,
            "run": self.run_json(),
            "input": self.input_json() if with_input else None,
            "output": self.output_json() if with_output and self.status == "completed" else None,
        }


@dataclass(eq=False)
class GroupRecord:
    """A task group: its runs in order, its event log, and the resume cursors both of its streams issued."""

    group_id: str
    metadata: dict[str, str | int | float | bool] | None
    owner: str = ""
    created_at: str = field(default_factory=utc_now)
    modified_at: str = field(default_factory=utc_now)
    run_ids: list[str] = field(default_factory=list[str])
    run_cursors: list[str] = field(default_factory=list[str])
    """The `event_id` of each run on the runs stream, in the order of `run_ids`."""
    events: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    """`task_group_status` and `task_run.state` events, each with its `event_id`."""
    cached_status: TaskGroupStatus | None = None
    changed: Notifier = field(default_factory=Notifier)
    _issued: dict[str, tuple[GroupStream, int]] = field(default_factory=dict[str, tuple[GroupStream, int]])

    def _issue(self, stream: GroupStream, position: int) -> str:
        # Opaque on purpose, as the API's cursors are: a client must hand back what it got, not count.
        cursor = uuid.uuid4().hex[:20]
        self._issued[cursor] = (stream, position)
        return cursor

    def add_event(self, event: dict[str, Any]) -> None:
        """Append an event to the log under a fresh cursor."""
        event["event_id"] = self._issue("events", len(self.events) + 1)
        self.events.append(event)
        self.modified_at = utc_now()
        self.changed.notify()

    def add_runs(self, run_ids: list[str]) -> None:
        """Append runs, each under a fresh cursor of the runs stream."""
        for run_id in run_ids:
            self.run_ids.append(run_id)
            self.run_cursors.append(self._issue("runs", len(self.run_ids)))

    def last_cursor(self, stream: GroupStream) -> str | None:
        """The cursor of the latest item of `stream`, or None while it has none."""
        if stream == "runs":
            return self.run_cursors[-1] if self.run_cursors else None
        return str(self.events[-1]["event_id"]) if self.events else None

    def resume_after(self, stream: GroupStream, cursor: str | None) -> int | None:
        """How many items of `stream` precede its resume point; None for a cursor that stream never issued."""
        if not cursor:
            return 0
        issued = self._issued.get(cursor)
        if issued is None or issued[0] != stream:
            return None
        return issued[1]
