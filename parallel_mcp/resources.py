"""MCP resources: the caller's runs, a run, its whole report, a group, and the processor table.

`parallel://runs` lists the caller's runs from the journal; `parallel://runs/{run_id}` is a run's
status and a short summary; `parallel://runs/{run_id}/report` its whole output as one markdown
document with every citation (no pages); `parallel://groups/{group_id}` a group's status and rows;
`parallel://processors` the price, latency band and use of every processor. Reads are scoped like
the tools: another owner's run or group reads exactly like one that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, cast

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from parallel_mcp.arguments import object_id
from parallel_mcp.errors import ArgumentError, NotFoundError, ParallelMCPError
from parallel_mcp.guidance import describe_error, processor_use, report_pending_text
from parallel_mcp.models import TaskRunJsonOutput, TaskRunResult
from parallel_mcp.processors import PROCESSORS
from parallel_mcp.render import render_report
from parallel_mcp.runs import Caller, PageRequest
from parallel_mcp.runtime import AppContext, caller
from parallel_mcp.text import shorten
from parallel_mcp.views import RunSummary

RUNS_URI = "parallel://runs"
PROCESSORS_URI = "parallel://processors"
REPORT_TITLE = "Whole report with every citation"
SUMMARY_CHARS = 1_500
JOURNAL_LIMIT = 100

_REQUEST: ContextVar[ServerRequestContext[Any, Any] | None] = ContextVar("parallel_mcp_request", default=None)


def run_uri(run_id: str) -> str:
    return f"{RUNS_URI}/{run_id}"


def report_uri(run_id: str) -> str:
    return f"{RUNS_URI}/{run_id}/report"


def group_uri(group_id: str) -> str:
    return f"parallel://groups/{group_id}"


async def remember_request(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Middleware: keep the request's context where a static resource (which gets no `Context`) finds its caller."""
    token = _REQUEST.set(ctx)
    try:
        return await call_next(ctx)
    finally:
        _REQUEST.reset(token)


def headers_of(ctx: ServerRequestContext[Any, Any]) -> Mapping[str, str] | None:
    """The HTTP headers of a request (None on stdio)."""
    return cast("Mapping[str, str] | None", getattr(ctx.request, "headers", None))


async def _who(request: ServerRequestContext[Any, Any]) -> tuple[AppContext, Caller]:
    app = cast(AppContext, request.lifespan_context)
    try:
        return app, await caller(app, headers_of(request))
    except ParallelMCPError as exc:
        raise ResourceError(describe_error(exc)) from None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


def _not_found(kind: str, wanted: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"no {kind} {wanted!r} here")


async def read_runs() -> str:
    """`parallel://runs`: the caller's runs, newest first, from the journal (no API request)."""
    request = _REQUEST.get()
    if request is None:
        raise ResourceError("parallel://runs is read within a request")
    app, who = await _who(request)
    entries = await app.runs.recent_runs(who.owner, limit=JOURNAL_LIMIT, active_only=False)
    runs = [
        RunSummary(**vars(entry)).model_dump(mode="json", exclude_none=True) | {"uri": run_uri(entry.run_id)}
        for entry in entries
    ]
    return _json({"runs": runs, "emulated": app.emulated})


async def read_processors() -> str:
    """`parallel://processors`: every processor's price, latency band and use.

    Async although it awaits nothing: the SDK runs a plain function in a worker thread on every read.
    """
    rows = [
        {
            "name": proc.name,
            "usd_per_run": proc.usd_per_run,
            "latency_band": proc.band,
            "min_seconds": proc.min_seconds,
            "max_seconds": proc.max_seconds,
            "max_output_fields": proc.max_fields,
            "guidance": processor_use(proc.name),
        }
        for proc in PROCESSORS.values()
    ]
    return _json({"processors": rows})


def _summary(result: TaskRunResult | None) -> str | None:
    if result is None:
        return None
    output = result.output
    if isinstance(output, TaskRunJsonOutput):
        text = "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in output.content.items())
    else:
        text = output.content
    return shorten(text, SUMMARY_CHARS)


async def _run(run_id: str, ctx: Context[Any, Any]) -> tuple[AppContext, Caller, str, Any]:
    app, who = await _who(ctx.request_context)
    try:
        wanted = object_id(run_id, "run_id", looks_like="trun_...")
        view = await app.runs.get(who, wanted, wait=0, sink=None, page=PageRequest(include_basis=False))
    except (ArgumentError, NotFoundError):
        raise _not_found("run", run_id) from None
    except ParallelMCPError as exc:
        raise ResourceError(describe_error(exc, run_id=run_id)) from None
    view.emulated = app.emulated
    return app, who, wanted, view


async def _kept(app: AppContext, who: Caller, run_id: str) -> TaskRunResult | None:
    kept = app.runs.cache.get(who.owner, run_id)
    if kept is None:
        body = await app.store.get_result(who.owner, run_id)
        kept = None if body is None else TaskRunResult.model_validate_json(body)
    return kept


async def read_run(run_id: str, ctx: Context[Any, Any]) -> str:
    """`parallel://runs/{run_id}`: a run's status and a summary of its output."""
    app, who, wanted, view = await _run(run_id, ctx)
    found = view.model_dump(mode="json", exclude={"output", "next_step"}, exclude_none=True)
    if view.status == "completed":
        found["summary"] = _summary(await _kept(app, who, wanted))
        found["report"] = report_uri(wanted)
    return _json(found)


async def read_report(run_id: str, ctx: Context[Any, Any]) -> str:
    """`parallel://runs/{run_id}/report`: a completed run's whole output as markdown, with every citation."""
    app, who, wanted, view = await _run(run_id, ctx)
    if view.status != "completed":
        message = view.error.message if view.error is not None else None
        return report_pending_text(wanted, view.status, message)
    result = await _kept(app, who, wanted)
    if result is None:
        raise ResourceError(f"the result of run {wanted!r} could not be read; try again in a minute")
    return render_report(result, emulated=app.emulated)


async def read_group(group_id: str, ctx: Context[Any, Any]) -> str:
    """`parallel://groups/{group_id}`: a group's status and, once every run ended, the first page of its rows."""
    app, who = await _who(ctx.request_context)
    try:
        wanted = object_id(group_id, "task_group_id", looks_like="tgrp_...")
        view = await app.groups.get(who, wanted, wait=0, sink=None, offset=0)
    except (ArgumentError, NotFoundError):
        raise _not_found("task group", group_id) from None
    except ParallelMCPError as exc:
        raise ResourceError(describe_error(exc, group_id=group_id)) from None
    view.emulated = app.emulated
    found = view.model_dump(mode="json", exclude_none=True)
    found["runs"] = {row.run_id: run_uri(row.run_id) for row in view.rows or []}
    return _json(found)


def add_resources(server: MCPServer[Any]) -> None:
    """Register the resources and resource templates when the first `resources/*` request arrives.

    Building a template costs a few milliseconds (the SDK derives a model from its function): a
    server that is never asked for resources, or not yet, does not pay for them at start-up.
    """
    registered = False

    async def register_on_first_use(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        nonlocal registered
        if not registered and ctx.method.startswith("resources/"):
            registered = True
            _register(server)
        return await call_next(ctx)

    server.middleware.insert(0, register_on_first_use)


_JSON = "application/json"
# (uri, name, title, description, mime type, reader)
_RESOURCES: list[tuple[str, str, str, str, str, Callable[..., Any]]] = [
    (RUNS_URI, "runs", "Your task runs",
     "The runs created here for you, newest first, with their last seen status (the journal).", _JSON, read_runs),
    (PROCESSORS_URI, "processors", "Processors", "Price, latency band and use of every processor.", _JSON,
     read_processors),
    (f"{RUNS_URI}/{{run_id}}", "run", "A task run",
     "A run's status and a summary of its output; subscribe to learn when it ends.", _JSON, read_run),
    (f"{RUNS_URI}/{{run_id}}/report", "report", REPORT_TITLE,
     "A completed run's whole output as markdown, unpaged, with every citation.", "text/markdown", read_report),
    ("parallel://groups/{group_id}", "group", "A task group",
     "A group's status and, once every run ended, its rows; subscribe to learn when it ends.", _JSON, read_group),
]  # fmt: skip


def _register(server: MCPServer[Any]) -> None:
    for uri, name, title, description, mime_type, reader in _RESOURCES:
        server.resource(uri, name=name, title=title, description=description, mime_type=mime_type)(reader)
