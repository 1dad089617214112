"""The MCP tools: thin wrappers that parse arguments, call the services and shape results.

Every tool ends in `_respond` (view -> text + structured result) and maps errors in `_tool_errors`
(what the agent can act on becomes a tool error worded by `guidance`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, WithJsonSchema

from parallel_mcp.arguments import (
    ADVANCED_SETTINGS_SCHEMA,
    MCP_SERVERS_SCHEMA,
    METADATA_SCHEMA,
    SOURCE_POLICY_SCHEMA,
    TASK_SPEC_SCHEMA,
    WEBHOOK_SCHEMA,
    build_group_inputs,
    build_run_input,
    parse_fields,
)
from parallel_mcp.config import MAX_WAIT_SECONDS
from parallel_mcp.errors import ParallelMCPError
from parallel_mcp.guidance import describe_error, processor_line, run_list_step, unexpected_error_message
from parallel_mcp.processors import TIER_NAMES, check_cost
from parallel_mcp.render import render
from parallel_mcp.runs import PageRequest
from parallel_mcp.runtime import AppContext, client_for
from parallel_mcp.views import RunListView, RunSummary, TaskGroupView, TaskRunView
from parallel_mcp.waiter import ProgressSink

logger = logging.getLogger(__name__)

ProcessorName = Literal[
    "lite",
    "lite-fast",
    "base",
    "base-fast",
    "core",
    "core-fast",
    "core2x",
    "core2x-fast",
    "pro",
    "pro-fast",
    "ultra",
    "ultra-fast",
    "ultra2x",
    "ultra2x-fast",
    "ultra4x",
    "ultra4x-fast",
    "ultra8x",
    "ultra8x-fast",
]
WaitSeconds = Annotated[
    float | None,
    Field(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the run to finish within this call (0-50; default from the server's "
        "config, about 25). Progress is reported while waiting. The call returns early when the run ends.",
    ),
]
ToolContext = Context[AppContext, Any]


def _hints(title: str, *, creates: bool, open_world: bool = True) -> ToolAnnotations:
    # Creating starts billed work (not read-only, not idempotent) but destroys nothing; reads are safe to repeat.
    return ToolAnnotations(
        title=title,
        read_only_hint=not creates,
        destructive_hint=False,
        idempotent_hint=not creates,
        open_world_hint=open_world,
    )


CREATE_ANNOTATIONS = _hints("Create a Parallel task run", creates=True)
GET_ANNOTATIONS = _hints("Get a Parallel task run", creates=False)
LIST_ANNOTATIONS = _hints("List Parallel task runs", creates=False, open_world=False)
GROUP_CREATE_ANNOTATIONS = _hints("Create a Parallel task group", creates=True)
GROUP_GET_ANNOTATIONS = _hints("Get a Parallel task group", creates=False)


def tool_description(tool: Callable[..., Any]) -> str:
    """A tool's docstring as its description, with the processor table filled in from `processors`."""
    text = inspect.cleandoc(tool.__doc__ or "")
    return text.replace("{processors}", ", ".join(processor_line(name) for name in TIER_NAMES))


def _respond(app: AppContext, view: TaskRunView | RunListView | TaskGroupView) -> CallToolResult:
    """The one way a view becomes a tool result: marked emulated where it is, rendered, and structured."""
    view.emulated = app.emulated
    return CallToolResult(
        content=[TextContent(type="text", text=render(view))], structured_content=view.model_dump(mode="json")
    )


def _sink(ctx: ToolContext) -> ProgressSink:
    async def send(progress: float, total: float | None, message: str) -> None:
        await ctx.report_progress(progress, total, message)

    return send


@contextmanager
def _tool_errors(*, run_id: str | None = None, group_id: str | None = None) -> Generator[None]:
    """Turn our errors into tool errors the agent can act on; anything else is logged and said plainly."""
    try:
        yield
    except ParallelMCPError as exc:
        raise ToolError(describe_error(exc, run_id=run_id, group_id=group_id)) from None
    except ToolError:
        raise
    except Exception as exc:  # the tool's top-level handler: a bug must still end in a sentence
        logger.exception("unexpected error in a tool call")
        raise ToolError(unexpected_error_message(exc)) from None


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


async def create_task_run(
    ctx: ToolContext,
    input: Annotated[
        str | dict[str, Any],
        Field(
            description="The question or research brief (string), or a JSON object of data to enrich "
            "(match task_spec.input_schema when given). Task spec + input: at most 25,000 characters."
        ),
    ],
    processor: Annotated[
        ProcessorName | None,
        Field(description="Processor tier; higher tiers research deeper, slower and dearer. Default: server config."),
    ] = None,
    task_spec: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(TASK_SPEC_SCHEMA),
        Field(
            description='What to produce. output_schema: {"type": "json", "json_schema": {...}} for structured '
            "fields (root object, every property required, additionalProperties false, depth <= 5, <= 100 "
            'properties), {"type": "text", "description": "..."} for a markdown report with citations, or '
            '{"type": "auto"} to let pro+ processors design the schema. Omit for auto.'
        ),
    ] = None,
    metadata: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(METADATA_SCHEMA),
        Field(description="Your labels, echoed on the run: keys <= 16 chars, scalar values <= 512 chars."),
    ] = None,
    source_policy: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(SOURCE_POLICY_SCHEMA),
        Field(
            description="Restrict sources: include_domains / exclude_domains (bare domains like example.com or "
            ".gov, <= 200 in total) and after_date (YYYY-MM-DD). Can lower quality; prefer steering in the input."
        ),
    ] = None,
    advanced_settings: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(ADVANCED_SETTINGS_SCHEMA),
        Field(description='Advanced: {"location": "us"} (ISO country code) for geo-targeted search.'),
    ] = None,
    previous_interaction_id: Annotated[
        str | None,
        Field(description="interaction_id of an earlier run, to follow up on it with its context."),
    ] = None,
    mcp_servers: Annotated[
        list[dict[str, Any]] | None,
        WithJsonSchema(MCP_SERVERS_SCHEMA),
        Field(
            description="Up to 10 remote MCP servers (streamable HTTP) whose tools the run may call: "
            "{name, url, headers?, allowed_tools?}. Header values are sent to that server only, never echoed."
        ),
    ] = None,
    enable_events: Annotated[
        bool | None,
        Field(description="Record detailed progress events (on by default for pro and above)."),
    ] = None,
    webhook: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(WEBHOOK_SCHEMA),
        Field(description="{url} to receive a signed task_run.status POST when the run ends."),
    ] = None,
    memory_scope_key: Annotated[
        str | None, Field(description="Memory scope to use for this run (optional; omit for personal memory).")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=200,
            description="Any unique string for this request. If a call with the same key already created a run, "
            "that run is returned and nothing new is billed: pass one so a retried call is safe.",
        ),
    ] = None,
    wait_seconds: WaitSeconds = None,
) -> Annotated[CallToolResult, TaskRunView]:
    """Start a Parallel Task API run: web research or structured enrichment with cited sources.

    Use it for questions that need current, cited web research, or to fill a JSON schema of fields
    about an entity. Runs take 10 s to 2 h by processor (latency band, price per run):
    {processors}; "-fast" variants are 2-5x faster at the same price.
    The call waits up to wait_seconds and returns the result if the run finished, otherwise its
    status and run_id: then call get_task_run(run_id, wait_seconds) until it completes. Each call
    starts a new billed run unless its idempotency_key was used before; the Task API has no cancel.
    Lost a run_id? list_task_runs shows the runs created here.
    """
    app = ctx.request_context.lifespan_context
    arguments = _present(
        {
            "input": input,
            "processor": processor or app.settings.default_processor,
            "task_spec": task_spec,
            "metadata": metadata,
            "source_policy": source_policy,
            "advanced_settings": advanced_settings,
            "previous_interaction_id": previous_interaction_id,
            "mcp_servers": mcp_servers,
            "enable_events": enable_events,
            "webhook": webhook,
            "memory_scope_key": memory_scope_key,
        }
    )
    wait = app.settings.wait_seconds if wait_seconds is None else wait_seconds
    with _tool_errors():
        client, owner = client_for(app, ctx.headers)
        body = build_run_input(arguments)
        check_cost(body.processor, app.settings.max_cost_usd)
        view = await app.runs.create(client, owner, body, wait=wait, sink=_sink(ctx), idempotency_key=idempotency_key)
    return _respond(app, view)


async def get_task_run(
    ctx: ToolContext,
    run_id: Annotated[str, Field(min_length=1, description="The run_id returned by create_task_run (trun_...).")],
    wait_seconds: WaitSeconds = None,
    offset: Annotated[
        int, Field(ge=0, description="Where the page starts (from page.next_offset of the previous call).")
    ] = 0,
    fields: Annotated[
        list[str] | None,
        Field(description="Only these top-level output fields (json output), with their basis and citations."),
    ] = None,
    include_basis: Annotated[
        bool, Field(description="Include per-field reasoning, confidence and citations (default true).")
    ] = True,
) -> Annotated[CallToolResult, TaskRunView]:
    """Get a task run's status, or its result once completed, waiting up to wait_seconds.

    While the run is active this waits (with progress) and then returns status, progress and
    retry_after_seconds: a still-running run is normal, not an error; call again later with the
    same run_id. When completed it returns the output with numbered citations and per-field
    confidence, one page at a time: follow next_step / page.next_offset for more, or narrow with
    fields. When failed it returns the error and its ref_id. Completed results are cached, so
    re-reading pages is cheap.
    """
    app = ctx.request_context.lifespan_context
    wait = app.settings.wait_seconds if wait_seconds is None else wait_seconds
    page = PageRequest(offset=offset, fields=parse_fields(fields), include_basis=include_basis)
    with _tool_errors(run_id=run_id):
        client, owner = client_for(app, ctx.headers)
        view = await app.runs.get(client, owner, run_id.strip(), wait=wait, sink=_sink(ctx), page=page)
    return _respond(app, view)


async def list_task_runs(
    ctx: ToolContext,
    limit: Annotated[int, Field(ge=1, le=100, description="How many runs, newest first.")] = 20,
    active_only: Annotated[bool, Field(description="Only runs still queued or running when last seen.")] = False,
) -> Annotated[CallToolResult, RunListView]:
    """List the task runs this server created for you, newest first, with their last seen status.

    Use it to find a run_id again (after a timeout, a restart or a long conversation); then call
    get_task_run(run_id) for the current status or the result. Reads a local journal only: it
    makes no request to the Task API and costs nothing.
    """
    app = ctx.request_context.lifespan_context
    with _tool_errors():
        _client, owner = client_for(app, ctx.headers)
    entries = app.runs.recent_runs(owner, limit=limit, active_only=active_only)
    runs = [RunSummary(**vars(entry)) for entry in entries]
    return _respond(app, RunListView(runs=runs, next_step=run_list_step(bool(runs))))


async def create_task_group(
    ctx: ToolContext,
    inputs: Annotated[
        list[str | dict[str, Any]],
        Field(
            min_length=1,
            max_length=1000,
            description="The rows to process, 1 to 1,000: each a question (string) or a JSON object "
            '(e.g. {"company": "Acme"}). Each becomes one billed run with the same task_spec.',
        ),
    ],
    processor: Annotated[
        ProcessorName | None, Field(description="Processor tier for every run. Default: server config.")
    ] = None,
    task_spec: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(TASK_SPEC_SCHEMA),
        Field(description="What each run produces; same shape as create_task_run's task_spec. Omit for auto."),
    ] = None,
    metadata: Annotated[
        dict[str, Any] | None,
        WithJsonSchema(METADATA_SCHEMA),
        Field(description="Labels for the group: keys <= 16 chars, scalar values <= 512 chars."),
    ] = None,
    wait_seconds: WaitSeconds = None,
) -> Annotated[CallToolResult, TaskGroupView]:
    """Run the same task over many inputs at once (structured enrichment of a list of entities).

    Creates a Parallel task group, adds one run per input (up to 1,000), and waits up to
    wait_seconds. Returns the group's status; when every run has ended, a page of rows (input and
    output per run). Each input is a billed run at the processor's price. Then call
    get_task_group(task_group_id) until it is done; get_task_run(run_id) gives one row's basis and
    citations.
    """
    app = ctx.request_context.lifespan_context
    chosen = processor or app.settings.default_processor
    wait = app.settings.wait_seconds if wait_seconds is None else wait_seconds
    with _tool_errors():
        client, _owner = client_for(app, ctx.headers)
        check_cost(chosen, app.settings.max_cost_usd)
        runs = build_group_inputs(inputs, processor=chosen, task_spec=task_spec, metadata=metadata)
        view = await app.groups.create(
            client,
            runs.inputs,
            default_task_spec=runs.default_task_spec,
            metadata=runs.metadata,
            wait=wait,
            sink=_sink(ctx),
        )
    return _respond(app, view)


async def get_task_group(
    ctx: ToolContext,
    task_group_id: Annotated[str, Field(min_length=1, description="The task_group_id from create_task_group.")],
    wait_seconds: WaitSeconds = None,
    offset: Annotated[int, Field(ge=0, description="First row of the page (from page.next_offset).")] = 0,
) -> Annotated[CallToolResult, TaskGroupView]:
    """Get a task group's progress, waiting up to wait_seconds; once all its runs ended, a page of rows.

    While runs are active it returns the status counts and retry_after_seconds (normal, not an
    error: call again). When done, each row holds a run's input and output; follow next_step for
    more rows, and get_task_run(run_id) for one row's basis and citations.
    """
    app = ctx.request_context.lifespan_context
    wait = app.settings.wait_seconds if wait_seconds is None else wait_seconds
    with _tool_errors(group_id=task_group_id):
        client, _owner = client_for(app, ctx.headers)
        view = await app.groups.get(client, task_group_id.strip(), wait=wait, sink=_sink(ctx), offset=offset)
    return _respond(app, view)
