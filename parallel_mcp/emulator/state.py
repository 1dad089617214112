"""The emulator's in-memory world: runs, groups, credit, rate limit, and the run state machine.

A run goes queued -> running -> completed | failed over a duration drawn deterministically (from the
request) out of its processor's latency band, divided by `EmulatorConfig.speed`. A background driver
per run moves it along; in `frozen` mode nothing moves until a test calls `advance`, `finish` or `fail`.
Every change is broadcast through `Notifier`s, so long-polls and streams wake at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import anyio.abc
import httpx2

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.errors import error_object
from parallel_mcp.emulator.faults import Fault, FaultSet
from parallel_mcp.emulator.mcp_calls import call_mcp_servers
from parallel_mcp.emulator.notify import Notifier
from parallel_mcp.emulator.outputs import ProgressStep, build_output, progress_script
from parallel_mcp.emulator.webhooks import deliver_webhook
from parallel_mcp.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ErrorObject,
    JsonSchema,
    McpToolCall,
    TaskGroupRunRequest,
    TaskGroupStatus,
    TaskRun,
    TaskRunInput,
    TaskRunJsonOutput,
    TaskRunStatus,
    TaskRunTextOutput,
    Warning,
)
from parallel_mcp.processors import FAST_SUFFIX, get_processor, is_premium
from parallel_mcp.schema_rules import check_output_schema

logger = logging.getLogger(__name__)

QUEUED_FRACTION = 0.05
"""Share of a run's duration spent queued before it starts running."""
HANG_AT = 0.95
"""A run with a `hang_run` fault stalls here, forever running."""
SINGLE_CALL_TIERS = frozenset({"lite", "base", "core"})
"""Tiers that make at most one MCP tool call (the docs name lite and core; base sits between them)."""
MULTI_CALL_LIMIT = 3
RATE_WINDOW_SECONDS = 60.0
MESSAGE_KINDS_WITHOUT_EVENTS = frozenset({"exec_status"})
"""Message kinds still sent for runs without `enable_events` (they get fewer events, not none)."""

Output = TaskRunJsonOutput | TaskRunTextOutput


def utc_now() -> str:
    """The current time as an RFC 3339 string in UTC."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Rejected(Exception):
    """A create that the API refuses: carries the status code and a message naming the problem."""

    def __init__(self, status: int, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.loc = loc


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One handled request; `status` is None when the connection was dropped on purpose."""

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


@dataclass(eq=False)
class GroupRecord:
    """A task group: its runs in order and its resumable event log."""

    group_id: str
    metadata: dict[str, str | int | float | bool] | None
    owner: str = ""
    created_at: str = field(default_factory=utc_now)
    modified_at: str = field(default_factory=utc_now)
    run_ids: list[str] = field(default_factory=list[str])
    events: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    """`task_group_status` and `task_run.state` events; `event_id` is the 1-based position."""
    cached_status: TaskGroupStatus | None = None
    changed: Notifier = field(default_factory=Notifier)


def _duration(run_input: TaskRunInput, config: EmulatorConfig) -> float:
    """Seconds this run takes: a deterministic point of the processor's band, over `speed`."""
    processor = get_processor(run_input.processor)
    if config.instant or processor is None:
        return 0.0
    digest = hashlib.sha256(run_input.model_dump_json().encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    seconds = processor.min_seconds + fraction * (processor.max_seconds - processor.min_seconds)
    return seconds / config.speed


def _max_mcp_calls(processor: str) -> int:
    return 1 if processor.removesuffix(FAST_SUFFIX) in SINGLE_CALL_TIERS else MULTI_CALL_LIMIT


def _creation_warnings(run_input: TaskRunInput) -> list[Warning]:
    warnings: list[Warning] = []
    spec = run_input.task_spec
    if spec is None:
        return warnings
    if isinstance(spec.output_schema, JsonSchema):
        for message in check_output_schema(spec.output_schema.json_schema).warnings:
            warnings.append(Warning(type="spec_validation_warning", message=message))
    if isinstance(spec.input_schema, JsonSchema):
        schema = spec.input_schema.json_schema
        if isinstance(run_input.input, str):
            warnings.append(
                Warning(type="input_validation_warning", message="input is text but input_schema is a JSON schema")
            )
        else:
            required = schema.get("required")
            names = [str(n) for n in cast(list[object], required)] if isinstance(required, list) else []
            missing = [n for n in names if n not in run_input.input]
            if missing:
                warnings.append(
                    Warning(
                        type="input_validation_warning",
                        message=f"input lacks the required field(s) {', '.join(missing)} of input_schema",
                    )
                )
    return warnings


class EmulatorState:
    """All runs, groups and counters of one emulator, plus the knobs tests turn.

    Test-facing API: `run_count`, `request_log`, `faults`, `runs`, `groups`, `credit_remaining`,
    `advance(run_id, to)`, `finish(run_id)`, `fail(run_id, message)`, `wait_for(run_id)`.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.faults = FaultSet(self.config.faults)
        self.runs: dict[str, RunRecord] = {}
        self.groups: dict[str, GroupRecord] = {}
        self.request_log: list[RequestRecord] = []
        self.webhook_results: list[tuple[str, bool]] = []
        """(run_id, delivered) per webhook the emulator tried to deliver."""
        self.credit_remaining: float | None = self.config.credit_usd
        self.drop_connection: Callable[[dict[str, Any]], bool] | None = None
        """Set by the server runner: closes the socket of a request's connection; True if it did."""
        self._interactions: dict[str, str] = {}
        self._creates: deque[float] = deque()
        self._tg: anyio.abc.TaskGroup | None = None
        self._http: httpx2.AsyncClient | None = None
        self.started = anyio.Event()
        """Set once the background work runs (the server is up)."""
        self.closing = anyio.Event()
        """Set when the server shuts down, so open streams end."""

    # ----- lifecycle -----------------------------------------------------------------------------

    @asynccontextmanager
    async def activate(self) -> AsyncGenerator[EmulatorState]:
        """Run the background work (run drivers, MCP calls, webhooks) for as long as the block lasts."""
        async with httpx2.AsyncClient(timeout=10.0) as http, anyio.create_task_group() as tg:
            self._tg, self._http = tg, http
            self.started.set()
            try:
                yield self
            finally:
                self.closing.set()
                for record in [*self.runs.values(), *self.groups.values()]:
                    record.changed.notify()
                self._tg = self._http = None
                tg.cancel_scope.cancel()

    def _spawn(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self._tg is None:
            raise RuntimeError("the emulator state is not active: serve it with serve_emulator() or the app lifespan")
        self._tg.start_soon(func, *args)

    # ----- counters ------------------------------------------------------------------------------

    @property
    def run_count(self) -> int:
        """How many runs were ever created (alone or in groups)."""
        return len(self.runs)

    def log_request(self, method: str, path: str, status: int | None) -> None:
        """Record one handled request."""
        self.request_log.append(RequestRecord(method, path, status))

    def take_rate_slot(self) -> float | None:
        """Count one create against the per-minute limit; seconds to wait when over it, else None."""
        limit = self.config.rate_limit_per_minute
        if limit is None:
            return None
        now = time.monotonic()
        while self._creates and now - self._creates[0] >= RATE_WINDOW_SECONDS:
            self._creates.popleft()
        if len(self._creates) >= limit:
            return RATE_WINDOW_SECONDS - (now - self._creates[0])
        self._creates.append(now)
        return None

    # ----- runs ----------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run with this id, if any."""
        return self.runs.get(run_id)

    def _check_input(self, run_input: TaskRunInput, loc: tuple[str | int, ...] = ()) -> float:
        processor = get_processor(run_input.processor)
        if processor is None:
            raise Rejected(
                403,
                f"Forbidden: invalid processor in request: {run_input.processor[:60]!r} is not a processor "
                "(use lite, base, core, core2x, pro, ultra, ultra2x, ultra4x, ultra8x or a -fast variant)",
                loc=(*loc, "processor"),
            )
        previous = run_input.previous_interaction_id
        if previous is not None and previous not in self._interactions:
            # POST /v1/tasks/runs documents no 404, so an unknown reference is a validation error.
            raise Rejected(
                422,
                f"previous_interaction_id: no interaction {previous[:60]!r}; pass the interaction_id of an earlier run",
                loc=(*loc, "previous_interaction_id"),
            )
        return processor.usd_per_run

    def _reserve(self, amount: float) -> None:
        if self.credit_remaining is None:
            return
        if amount > self.credit_remaining + 1e-12:
            raise Rejected(
                402,
                f"Payment required: insufficient credit in account (needs ${amount:.3f}, "
                f"${self.credit_remaining:.3f} available)",
            )
        self.credit_remaining -= amount

    def create_run(self, run_input: TaskRunInput, *, owner: str = "") -> RunRecord:
        """Create and start one run, or raise `Rejected` (403 processor, 422 interaction, 402 credit)."""
        price = self._check_input(run_input)
        self._reserve(price)
        return self._new_run(run_input, price, group_id=None, owner=owner)

    def _new_run(self, run_input: TaskRunInput, price: float, group_id: str | None, owner: str = "") -> RunRecord:
        run = RunRecord(
            run_id=f"trun_{uuid.uuid4().hex}",
            interaction_id=f"tint_{uuid.uuid4().hex}",
            input=run_input,
            duration=_duration(run_input, self.config),
            script=sorted(progress_script(run_input), key=lambda step: step.at),
            price=price,
            group_id=group_id,
            owner=owner,
            fault=self.faults.take_run(run_input),
            warnings=_creation_warnings(run_input),
        )
        self.runs[run.run_id] = run
        self._interactions[run.interaction_id] = run.run_id
        if run_input.mcp_servers:
            self._spawn(self._call_mcp, run)
        else:
            run.mcp_done.set()
        if not self.config.frozen:
            self._spawn(self._drive, run)
        logger.info("created %s (%s, %.2f s)", run.run_id, run_input.processor, run.duration)
        return run

    async def _call_mcp(self, run: RunRecord) -> None:
        servers = run.input.mcp_servers or []
        query = run.input.input if isinstance(run.input.input, str) else json.dumps(run.input.input)
        try:
            calls, warnings = await call_mcp_servers(
                servers, query=query, max_calls=_max_mcp_calls(run.input.processor), timeout=self.config.mcp_timeout
            )
        finally:
            run.mcp_done.set()
        run.mcp_calls = calls
        if warnings:
            run.warnings.extend(warnings)
            self._touch(run)

    async def _drive(self, run: RunRecord) -> None:
        start = anyio.current_time()
        try:
            await anyio.sleep_until(start + run.duration * QUEUED_FRACTION)
            self._advance_to(run, QUEUED_FRACTION)
            for step in run.script:
                if not run.is_active:
                    return
                await anyio.sleep_until(start + run.duration * min(step.at, 1.0))
                self._advance_to(run, step.at)
            await anyio.sleep_until(start + run.duration)
            # A run cannot end before its MCP tool calls have come back.
            await run.mcp_done.wait()
            self._end_naturally(run)
        except Exception:  # top-level guard of a background task: a bug fails the run, not the emulator
            logger.exception("run %s crashed in the emulator", run.run_id)
            if run.is_active:
                self.fail(run.run_id, "Internal error in the emulator")

    def _touch(self, run: RunRecord) -> None:
        run.modified_at = utc_now()
        run.changed.notify()

    def _emit(self, run: RunRecord, step: ProgressStep) -> None:
        if step.kind == "stats":
            meter = step.progress_meter if step.progress_meter is not None else run.progress * 100
            run.stats = {
                "type": "task_run.progress_stats",
                "progress_meter": max(0.0, min(100.0, meter)),
                "source_stats": {
                    "num_sources_considered": step.num_sources_considered,
                    "num_sources_read": step.num_sources_read,
                    "sources_read_sample": step.sources_read_sample,
                },
            }
            run.stats_version += 1
        elif step.message is not None and (run.events_enabled or step.kind in MESSAGE_KINDS_WITHOUT_EVENTS):
            run.messages.append(
                {"type": f"task_run.progress_msg.{step.kind}", "message": step.message, "timestamp": utc_now()}
            )

    def _advance_to(self, run: RunRecord, fraction: float) -> None:
        if not run.is_active:
            return
        if run.fault is not None and run.fault.kind == "hang_run":
            fraction = min(fraction, HANG_AT)
        if fraction > 0 and run.status == "queued":
            run.status = "running"
        run.progress = max(run.progress, fraction)
        while run.step_index < len(run.script) and run.script[run.step_index].at <= run.progress:
            self._emit(run, run.script[run.step_index])
            run.step_index += 1
        self._touch(run)

    def _end_naturally(self, run: RunRecord) -> None:
        """What happens when a run's time is up: complete, or what its fault says."""
        if run.fault is not None and run.fault.kind == "hang_run":
            return
        if run.fault is not None and run.fault.kind == "fail_run":
            self.fail(run.run_id, run.fault.message or "The task run failed")
            return
        self.finish(run.run_id)

    def _require(self, run_id: str) -> RunRecord:
        run = self.runs.get(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r}")
        return run

    def advance(self, run_id: str | None = None, to: float = 1.0) -> None:
        """Move one run (or every active run) to `to` (0..1) of its duration; at 1 it ends naturally.

        This is how frozen-mode tests move time; faults still apply (a hanging run stalls).
        """
        targets = [self._require(run_id)] if run_id is not None else [r for r in self.runs.values() if r.is_active]
        for run in targets:
            self._advance_to(run, to)
            if to >= 1.0:
                self._end_naturally(run)

    def finish(self, run_id: str) -> None:
        """Complete a run now (whatever its faults), with its full output; no-op if it already ended."""
        run = self._require(run_id)
        if not run.is_active:
            return
        run.status = "running"
        run.progress = 1.0
        while run.step_index < len(run.script):
            self._emit(run, run.script[run.step_index])
            run.step_index += 1
        run.output = build_output(run.input, mcp_tool_calls=run.mcp_calls)
        self._end(run, "completed")

    def fail(self, run_id: str, message: str = "The task run failed") -> None:
        """Fail a run now with `message`; its reserved credit is returned. No-op if it already ended."""
        run = self._require(run_id)
        if not run.is_active:
            return
        run.error = error_object(message)
        if self.credit_remaining is not None:
            self.credit_remaining += run.price
        self._end(run, "failed")

    def _end(self, run: RunRecord, status: TaskRunStatus) -> None:
        assert status in TERMINAL_STATUSES
        run.status = status
        self._touch(run)
        run.done.set()
        logger.info("%s %s", run.run_id, status)
        if run.group_id is not None:
            group = self.groups[run.group_id]
            self._group_event(group, {"type": "task_run.state", "run": run.run_json(), "input": None, "output": None})
            self._group_event(group, {"type": "task_group_status", "status": self._status_json(group)})
        webhook = run.input.webhook
        if webhook is not None and self.config.webhook_secret is not None and self._http is not None:
            payload = {"timestamp": utc_now(), "type": "task_run.status", "data": run.run_json()}
            self._spawn(self._send_webhook, run.run_id, webhook.url, self.config.webhook_secret, payload)

    async def _send_webhook(self, run_id: str, url: str, secret: str, payload: dict[str, Any]) -> None:
        assert self._http is not None
        delivered = await deliver_webhook(self._http, url, secret, payload)
        self.webhook_results.append((run_id, delivered))

    async def wait_for(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait until the run has ended (or `timeout` seconds); True if it has."""
        run = self._require(run_id)
        with anyio.move_on_after(timeout):
            await run.done.wait()
        return run.done.is_set()

    # ----- groups --------------------------------------------------------------------------------

    def create_group(self, metadata: dict[str, str | int | float | bool] | None, *, owner: str = "") -> GroupRecord:
        """A new, empty task group."""
        group = GroupRecord(group_id=f"tgrp_{uuid.uuid4().hex}", metadata=metadata, owner=owner)
        self.groups[group.group_id] = group
        return group

    def group_status(self, group: GroupRecord) -> TaskGroupStatus:
        """The group's aggregate status, computed now (and cached for `refresh_status=false`)."""
        counts: dict[str, int] = {}
        modified = group.modified_at
        for run_id in group.run_ids:
            run = self.runs[run_id]
            counts[run.status] = counts.get(run.status, 0) + 1
            modified = max(modified, run.modified_at)
        active = sum(n for status, n in counts.items() if status in ACTIVE_STATUSES)
        total = len(group.run_ids)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        message = f"{active} of {total} runs active" + (f" ({summary})" if summary else "")
        status = TaskGroupStatus(
            num_task_runs=total,
            task_run_status_counts=counts,
            is_active=active > 0,
            status_message=message,
            modified_at=modified,
        )
        group.cached_status = status
        return status

    def _status_json(self, group: GroupRecord) -> dict[str, Any]:
        return self.group_status(group).model_dump(mode="json", by_alias=True)

    def _group_event(self, group: GroupRecord, event: dict[str, Any]) -> None:
        event["event_id"] = str(len(group.events) + 1)
        group.events.append(event)
        group.modified_at = utc_now()
        group.changed.notify()

    def add_group_runs(
        self, group: GroupRecord, request: TaskGroupRunRequest, *, refresh_status: bool = True
    ) -> tuple[list[RunRecord], TaskGroupStatus, str | None, str | None]:
        """Add runs to a group, all or none; returns (runs, status, run_cursor, event_cursor).

        Credit for every run is reserved up front, as the API does, so a batch can get 402.
        """
        inputs: list[TaskRunInput] = []
        total = 0.0
        for index, item in enumerate(request.inputs):
            if item.task_spec is None and request.default_task_spec is not None:
                item = item.model_copy(update={"task_spec": request.default_task_spec})
            total += self._check_input(item, loc=("body", "inputs", index))
            inputs.append(item)
        self._reserve(total)
        run_cursor = str(len(group.run_ids)) if group.run_ids else None
        event_cursor = group.events[-1]["event_id"] if group.events else None
        runs = [self._new_run(item, self._check_input(item), group.group_id, group.owner) for item in inputs]
        group.run_ids.extend(run.run_id for run in runs)
        previous = group.cached_status
        self._group_event(group, {"type": "task_group_status", "status": self._status_json(group)})
        status = group.cached_status if refresh_status or previous is None else previous
        assert status is not None
        return runs, status, run_cursor, event_cursor
