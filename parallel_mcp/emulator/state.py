"""The emulator's in-memory world: runs, groups, credit, rate limit, and the run state machine.

A run goes queued -> running -> completed | failed over a duration drawn deterministically (from the
request) out of its processor's latency band, divided by `EmulatorConfig.speed`. A background driver
per run moves it along on the emulator's clock (`clock.py`); in `frozen` mode nothing moves until a
test calls `advance`, `finish` or `fail`. Every change is broadcast through `Notifier`s, so
long-polls and streams wake at once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import httpx2

from parallel_mcp.emulator.admission import (
    Rejected,
    check_betas,
    check_processor,
    creation_warnings,
    run_duration,
)
from parallel_mcp.emulator.clock import EmulatorClock, RealClock
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.errors import error_object
from parallel_mcp.emulator.faults import FaultSet
from parallel_mcp.emulator.mcp_calls import call_mcp_servers, max_tool_calls
from parallel_mcp.emulator.notify import Notifier
from parallel_mcp.emulator.outputs import ProgressStep, build_output, progress_script
from parallel_mcp.emulator.records import GroupRecord, RequestRecord, RunRecord, utc_now
from parallel_mcp.emulator.webhooks import deliver_webhook
from parallel_mcp.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    TaskGroupRunRequest,
    TaskGroupStatus,
    TaskRunInput,
    TaskRunStatus,
)
from parallel_mcp.models.betas import BETA_FIELD_BASIS, required_betas

__all__ = ["EmulatorState", "GroupRecord", "Rejected", "RequestRecord", "RunRecord", "utc_now"]

logger = logging.getLogger(__name__)

QUEUED_FRACTION = 0.05
"""Share of a run's duration spent queued before it starts running."""
HANG_AT = 0.95
"""A run with a `hang_run` fault stalls here, forever running."""
RATE_WINDOW_SECONDS = 60.0
MESSAGE_KINDS_WITHOUT_EVENTS = frozenset({"exec_status"})
"""Message kinds still sent for runs without `enable_events` (they get fewer events, not none)."""


class EmulatorState:
    """All runs, groups and counters of one emulator, plus the knobs tests turn.

    Test-facing API: `run_count`, `request_log`, `faults`, `runs`, `groups`, `credit_remaining`, `clock`,
    `advance(run_id, to)`, `finish(run_id)`, `fail(run_id, message)`, `wait_for(run_id)`, `wait_for_requests(n)`.
    """

    def __init__(self, config: EmulatorConfig | None = None, *, clock: EmulatorClock | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock: EmulatorClock = clock or RealClock()
        """The emulated service's time; pass a `ManualClock` to move it by hand."""
        self.faults = FaultSet(self.config.faults)
        self.runs: dict[str, RunRecord] = {}
        self.groups: dict[str, GroupRecord] = {}
        self.request_log: list[RequestRecord] = []
        self._logged = Notifier()
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
        self._logged.notify()

    async def wait_for_requests(self, count: int) -> None:
        """Until `count` requests have been handled to the end (and logged), however long they were held."""
        while True:
            snapshot = self._logged.snapshot()
            if len(self.request_log) >= count:
                return
            await snapshot.wait()

    def take_rate_slot(self) -> float | None:
        """Count one create against the per-minute limit; seconds to wait when over it, else None."""
        limit = self.config.rate_limit_per_minute
        if limit is None:
            return None
        now = self.clock.now()
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

    def _check_input(self, run_input: TaskRunInput, betas: frozenset[str], loc: tuple[str | int, ...] = ()) -> float:
        price = check_processor(run_input, loc)
        check_betas(run_input, betas, loc)
        previous = run_input.previous_interaction_id
        if previous is not None and previous not in self._interactions:
            # POST /v1/tasks/runs documents no 404, so an unknown reference is a validation error.
            raise Rejected(
                422,
                f"previous_interaction_id: no interaction {previous[:60]!r}; pass the interaction_id of an earlier run",
                loc=(*loc, "previous_interaction_id"),
            )
        return price

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

    def create_run(self, run_input: TaskRunInput, *, owner: str = "", betas: frozenset[str] | None = None) -> RunRecord:
        """Create and start one run, or raise `Rejected` (403 processor, 422 beta or interaction, 402 credit).

        `betas` are the request's `parallel-beta` values; None stands for every beta a body needs.
        """
        betas = _betas_or_all(run_input, betas)
        price = self._check_input(run_input, betas)
        self._reserve(price)
        return self._new_run(run_input, price, group_id=None, owner=owner, betas=betas)

    def _new_run(
        self, run_input: TaskRunInput, price: float, group_id: str | None, owner: str, betas: frozenset[str]
    ) -> RunRecord:
        run = RunRecord(
            run_id=f"trun_{uuid.uuid4().hex}",
            interaction_id=f"tint_{uuid.uuid4().hex}",
            input=run_input,
            duration=run_duration(run_input, self.config),
            script=sorted(progress_script(run_input), key=lambda step: step.at),
            price=price,
            group_id=group_id,
            owner=owner,
            betas=betas,
            fault=self.faults.take_run(run_input),
            warnings=creation_warnings(run_input),
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
                servers,
                query=query,
                max_calls=max_tool_calls(run.input.processor),
                timeout=self.config.mcp_timeout,
                allow_private=self.config.allow_private_mcp_servers,
            )
        finally:
            run.mcp_done.set()
        run.mcp_calls = calls
        if warnings:
            run.warnings.extend(warnings)
            self._touch(run)

    async def _drive(self, run: RunRecord) -> None:
        clock = self.clock
        start = clock.now()
        marks = sorted({QUEUED_FRACTION, *(min(step.at, 1.0) for step in run.script), 1.0})
        try:
            for mark in marks:
                if mark <= run.progress:
                    continue
                await clock.sleep_until(start + run.duration * mark)
                if not run.is_active:
                    return
                # A clock that jumped (a manual one, or a stalled loop) may have passed several marks at once.
                elapsed = (clock.now() - start) / run.duration if run.duration > 0 else 1.0
                reached = max(mark, min(elapsed, 1.0))
                if reached >= 1.0:
                    break
                self._advance_to(run, reached)
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
            self._advance_to(run, HANG_AT)
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
        run.output = build_output(
            run.input, mcp_tool_calls=run.mcp_calls, per_element_basis=BETA_FIELD_BASIS in run.betas
        )
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
            group.add_event(run.state_event())
            group.add_event(self._status_event(group))
        # `task_run.status` is the only event type, so an empty `event_types` (the spec's default) gets it too.
        webhook = run.input.webhook
        if webhook is not None and self.config.webhook_secret is not None and self._http is not None:
            payload = {"timestamp": utc_now(), "type": "task_run.status", "data": run.run_json()}
            self._spawn(self._send_webhook, run.run_id, webhook.url, self.config.webhook_secret, payload)

    async def _send_webhook(self, run_id: str, url: str, secret: str, payload: dict[str, Any]) -> None:
        assert self._http is not None
        delivered = await deliver_webhook(self._http, url, secret, payload)
        self.webhook_results.append((run_id, delivered))

    async def wait_for(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait until the run has ended, or `timeout` real seconds; True if it has."""
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

    def _status_event(self, group: GroupRecord) -> dict[str, Any]:
        status = self.group_status(group).model_dump(mode="json", by_alias=True)
        return {"type": "task_group_status", "status": status}

    def add_group_runs(
        self,
        group: GroupRecord,
        request: TaskGroupRunRequest,
        *,
        refresh_status: bool = True,
        betas: frozenset[str] | None = None,
    ) -> tuple[list[RunRecord], TaskGroupStatus, str | None, str | None]:
        """Add runs to a group, all or none; returns (runs, status, run_cursor, event_cursor).

        Credit for every run is reserved up front, as the API does, so a batch can get 402. `betas`
        are the request's `parallel-beta` values (None: every beta the inputs need).
        """
        admitted: list[tuple[TaskRunInput, float, frozenset[str]]] = []
        for index, item in enumerate(request.inputs):
            if item.task_spec is None and request.default_task_spec is not None:
                item = item.model_copy(update={"task_spec": request.default_task_spec})
            item_betas = _betas_or_all(item, betas)
            admitted.append((item, self._check_input(item, item_betas, loc=("body", "inputs", index)), item_betas))
        self._reserve(sum(price for _, price, _ in admitted))
        run_cursor = group.last_cursor("runs")
        event_cursor = group.last_cursor("events")
        runs = [
            self._new_run(item, price, group.group_id, group.owner, item_betas) for item, price, item_betas in admitted
        ]
        group.add_runs([run.run_id for run in runs])
        previous = group.cached_status
        group.add_event(self._status_event(group))
        status = group.cached_status if refresh_status or previous is None else previous
        assert status is not None
        return runs, status, run_cursor, event_cursor


def _betas_or_all(run_input: TaskRunInput, betas: frozenset[str] | None) -> frozenset[str]:
    # Direct callers (tests driving the state) mean "as a well-behaved client would send".
    return betas if betas is not None else frozenset(required_betas(run_input))
