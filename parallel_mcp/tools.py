"""The MCP tools: thin wrappers that parse arguments, call the services and shape results.

Each tool publishes a hand-written portable schema (`tool_schemas`) and takes its arguments loosely
typed, so that every problem with them is found and worded by `arguments`, in one format, rather
than by the SDK's validator. Every tool ends in `_respond` (view -> text + structured result) and
maps errors in `_tool_errors` (what the agent can act on becomes a tool error worded by `guidance`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar, cast, get_args, get_type_hints

from mcp.server.mcpserver import Context, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import CallToolResult, ContentBlock, ResourceLink, TextContent, ToolAnnotations
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ConfigDict, create_model

from parallel_mcp import tool_schemas
from parallel_mcp.arguments import (
    GetGroupArguments,
    GetRunArguments,
    ListRunsArguments,
    object_id,
    page_fields,
    parse,
)
from parallel_mcp.deadline import call_deadline
from parallel_mcp.errors import ParallelMCPError, SpendRefused
from parallel_mcp.guidance import (
    confirmation_needed_step,
    describe_error,
    processor_line,
    run_list_step,
    unexpected_error_message,
)
from parallel_mcp.intents import Order
from parallel_mcp.processors import TIER_NAMES, check_cost
from parallel_mcp.render import render, render_confirmation
from parallel_mcp.resources import REPORT_TITLE, report_uri
from parallel_mcp.runs import Caller, PageRequest
from parallel_mcp.runtime import AppContext, caller
from parallel_mcp.spending import (
    Confirm,
    CreateCall,
    Passage,
    ask_to_spend_on_group,
    ask_to_spend_on_run,
    group_call,
    guard,
    guarded,
    repeats,
    run_call,
)
from parallel_mcp.store import IntentKind, quietly
from parallel_mcp.views import (
    ConfirmationNeeded,
    CreatedGroupView,
    CreatedRunView,
    RunListView,
    RunSummary,
    TaskGroupView,
    TaskRunView,
)
from parallel_mcp.waiter import ProgressSink

logger = logging.getLogger(__name__)

ToolContext = Context[AppContext, Any]
V = TypeVar("V")
Req = TypeVar("Req")
Made = TypeVar("Made", bound=TaskRunView | TaskGroupView, covariant=True)


def _hints(title: str, *, creates: bool, open_world: bool = True) -> ToolAnnotations:
    # Creating starts billed work (not read-only, not idempotent) but destroys nothing; reads are safe to repeat.
    return ToolAnnotations(
        title=title,
        read_only_hint=not creates,
        destructive_hint=False,
        idempotent_hint=not creates,
        open_world_hint=open_world,
    )


def _respond(app: AppContext, view: TaskRunView | RunListView | TaskGroupView, *, link: bool = False) -> CallToolResult:
    """The one way a view becomes a tool result: marked emulated where it is, rendered, and structured.

    With `link`, a completed run's result links its whole report (every page, every citation) as a
    resource: for 2026-07-28 requests only, since some clients of the older revisions (the Anthropic
    SDK's MCP helper) refuse a `resource_link` block and show the model that error instead.
    """
    view.emulated = app.emulated
    content: list[ContentBlock] = [TextContent(type="text", text=render(view))]
    if link and isinstance(view, TaskRunView) and view.status == "completed":
        content.append(
            ResourceLink(
                type="resource_link",
                uri=report_uri(view.run_id),
                name=f"report {view.run_id}",
                title=REPORT_TITLE,
                mime_type="text/markdown",
            )
        )
    return CallToolResult(content=content, structured_content=view.model_dump(mode="json", exclude_none=True))


def tool_result(app: AppContext, view: TaskRunView | TaskGroupView) -> CallToolResult:
    """A run or group as the tools return it to a 2026-07-28 request (the tasks extension inlines it)."""
    return _respond(app, view, link=True)


def _confirm(app: AppContext, confirmation: ConfirmationNeeded, kind: IntentKind) -> CallToolResult:
    """A create that waits for the user's yes: not an error; nothing was created."""
    step = confirmation_needed_step(kind, confirmation)
    structured: dict[str, Any] = {
        "next_step": step,
        "confirmation": confirmation.model_dump(mode="json", exclude_none=True),
        "emulated": app.emulated,
    }
    return CallToolResult(
        content=[TextContent(type="text", text=render_confirmation(step, confirmation, emulated=app.emulated))],
        structured_content=structured,
    )


def _modern(ctx: ToolContext) -> bool:
    """True for a request of the 2026-07-28 revision."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


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


async def _waited(app: AppContext, wait_seconds: float | None, call: Callable[[float], Awaitable[V]]) -> V:
    """Run `call` with the call's wait, under the call's deadline: its wait and a small margin, passed
    down to every request and retry."""
    wait = app.settings.wait_seconds if wait_seconds is None else wait_seconds
    with call_deadline(wait + app.settings.call_margin_seconds):
        return await call(wait)


class Creates(Protocol[Req, Made]):
    """A service that creates once per intent: `RunService` (runs) or `GroupService` (task groups)."""

    async def create(
        self, who: Caller, order: Order[Req], /, *, wait: float, sink: ProgressSink | None, repeat_only: bool = ...
    ) -> Made: ...


async def _create(
    ctx: ToolContext, approval: ElicitationResult[Confirm], call: CreateCall[Req], service: Creates[Req, Made]
) -> CallToolResult:
    """A create past the spending guards: refused, waiting for the user's yes, or sent and waited on.

    A repeat of a create that made its run or group bills nothing: it passes the guards unasked, and
    the service, told so, sends nothing if it turns out not to be one after all.
    """
    app = ctx.request_context.lifespan_context
    args, order = call.args, call.order
    check_cost(order.processor, app.settings.max_cost_usd)
    who = await caller(app, ctx.headers)
    # Only a create some guard looks at is worth a store read to find out whether it repeats one.
    repeat = guarded(app.settings, order) and await repeats(app, who.owner, order)
    passage = Passage()
    if not repeat:
        passage = await guard(app, ctx, who.owner, order, token=args.confirm_token, approval=approval)
        if passage.pending is not None:
            return _confirm(app, passage.pending, order.kind)

    def create(wait: float) -> Awaitable[Made]:
        return service.create(who, order, wait=wait, sink=_sink(ctx), repeat_only=repeat)

    try:
        view = await _waited(app, args.wait_seconds, create)
    except SpendRefused:
        # The claim's budget check refused it (a racing create took the budget first) after this call spent the
        # user's yes above: nothing was created, so that yes holds for this request again.
        if passage.redeemed is not None:
            await quietly(app.store.restore_confirmation(who.owner, passage.redeemed))
        raise
    return _respond(app, view, link=order.kind == "run" and _modern(ctx))


async def create_task_run(
    ctx: ToolContext,
    approval: Annotated[ElicitationResult[Confirm], Resolve(ask_to_spend_on_run)],
    **arguments: Any,
) -> Annotated[CallToolResult, CreatedRunView]:
    """Start a Parallel Task API run: cited web research, or structured enrichment of an entity.

    Waits up to wait_seconds; returns the result, or the run_id and status (then call
    get_task_run). Each new run is billed: {processors} per run. Repeating a request returns its
    first run. No cancel.
    """
    with _tool_errors():
        app = ctx.request_context.lifespan_context
        return await _create(ctx, approval, run_call(arguments, app.settings), app.runs)


async def get_task_run(ctx: ToolContext, **arguments: Any) -> Annotated[CallToolResult, TaskRunView]:
    """Get a run's status, or its result once completed, waiting up to wait_seconds while it runs.

    A running run is normal: call again. Results come a page at a time with numbered citations;
    follow next_step. A failed run gives its error and ref_id.
    """
    app = ctx.request_context.lifespan_context
    run_id = arguments.get("run_id")
    with _tool_errors(run_id=run_id if isinstance(run_id, str) else None):
        args = parse(GetRunArguments, arguments)
        wanted = object_id(args.run_id, "run_id", looks_like="trun_...")
        page = PageRequest(offset=args.offset, fields=page_fields(args.fields), include_basis=args.include_basis)
        who = await caller(app, ctx.headers)
        view = await _waited(
            app,
            args.wait_seconds,
            lambda wait: app.runs.get(who, wanted, wait=wait, sink=_sink(ctx), page=page),
        )
    return _respond(app, view, link=_modern(ctx))


async def list_task_runs(ctx: ToolContext, **arguments: Any) -> Annotated[CallToolResult, RunListView]:
    """List the runs created here for you, newest first, with their last seen status.

    Finds a lost run_id (after a timeout or a restart). Reads a local journal: no API request.
    """
    app = ctx.request_context.lifespan_context
    with _tool_errors():
        args = parse(ListRunsArguments, arguments)
        who = await caller(app, ctx.headers)
        entries = await app.runs.recent_runs(who.owner, limit=args.limit, active_only=args.active_only)
    runs = [RunSummary(**vars(entry)) for entry in entries]
    return _respond(app, RunListView(runs=runs, next_step=run_list_step(bool(runs))))


async def create_task_group(
    ctx: ToolContext,
    approval: Annotated[ElicitationResult[Confirm], Resolve(ask_to_spend_on_group)],
    **arguments: Any,
) -> Annotated[CallToolResult, CreatedGroupView]:
    """Run one task over many inputs at once (enriching a list): one billed run per input.

    Arguments as in create_task_run. Waits up to wait_seconds; then call get_task_group.
    """
    with _tool_errors():
        app = ctx.request_context.lifespan_context
        return await _create(ctx, approval, group_call(arguments, app.settings), app.groups)


async def get_task_group(ctx: ToolContext, **arguments: Any) -> Annotated[CallToolResult, TaskGroupView]:
    """Get a task group's progress, waiting up to wait_seconds; once all runs ended, a page of rows.

    get_task_run(run_id) gives one row's basis and citations.
    """
    app = ctx.request_context.lifespan_context
    group_id = arguments.get("task_group_id")
    with _tool_errors(group_id=group_id if isinstance(group_id, str) else None):
        args = parse(GetGroupArguments, arguments)
        wanted = object_id(args.task_group_id, "task_group_id", looks_like="tgrp_...")
        who = await caller(app, ctx.headers)
        view = await _waited(
            app,
            args.wait_seconds,
            lambda wait: app.groups.get(who, wanted, wait=wait, sink=_sink(ctx), offset=args.offset),
        )
    return _respond(app, view)


def _description(tool: Callable[..., Any]) -> str:
    """A tool's docstring in one paragraph, with the processor prices filled in from `processors`."""
    text = " ".join((tool.__doc__ or "").split())
    return text.replace("{processors}", ", ".join(processor_line(name) for name in TIER_NAMES))


_TOOLS: list[tuple[Callable[..., Any], tool_schemas.Schema, ToolAnnotations]] = [
    (create_task_run, tool_schemas.CREATE_TASK_RUN, _hints("Create a Parallel task run", creates=True)),
    (get_task_run, tool_schemas.GET_TASK_RUN, _hints("Get a Parallel task run", creates=False)),
    (list_task_runs, tool_schemas.LIST_TASK_RUNS, _hints("List Parallel task runs", creates=False, open_world=False)),
    (create_task_group, tool_schemas.CREATE_TASK_GROUP, _hints("Create a Parallel task group", creates=True)),
    (get_task_group, tool_schemas.GET_TASK_GROUP, _hints("Get a Parallel task group", creates=False)),
]


OUTPUT_SCHEMAS = Path(__file__).with_name("output_schemas.json")
"""Each tool's published output schema, derived from its view by `derive_output_schemas` (see `build_tools`)."""


def build_tools() -> list[Tool]:
    """The server's tools, each with its portable input schema in place of the one derived from its signature,
    and its compacted output schema.

    The SDK would derive every output schema from its view at each start (about 10 ms for the five); they are
    derived once into `output_schemas.json` instead, and a test checks that the file is what the views give.
    """
    outputs = cast(dict[str, tool_schemas.Schema], json.loads(OUTPUT_SCHEMAS.read_text(encoding="utf-8")))
    tools: list[Tool] = []
    for function, schema, hints in _TOOLS:
        tool = Tool.from_function(
            function, description=_description(function), annotations=hints, structured_output=False
        )
        tool.parameters = schema
        tool.fn_metadata.arg_model = _arguments_model(tool.name, schema)
        tool.fn_metadata.output_model = _output_model(function)
        tool.fn_metadata.output_schema = outputs[tool.name]
        tools.append(tool)
    return tools


class _Passed(ArgModelBase):
    """A tool's arguments as the SDK hands them on: its published ones, and any other the client sent, which
    `arguments.parse` then refuses by name (the SDK would drop them silently)."""

    model_config = ConfigDict(extra="allow")

    def model_dump_one_level(self) -> dict[str, Any]:
        return {**super().model_dump_one_level(), **(self.model_extra or {})}


def _arguments_model(name: str, schema: tool_schemas.Schema) -> type[ArgModelBase]:
    """What the SDK hands a tool (as `**arguments`): each argument its schema publishes, as sent.

    The tool parses them itself (`arguments`), naming whatever is wrong; the SDK only passes them on.
    """
    fields: dict[str, Any] = dict.fromkeys(schema["properties"], (Any, None))
    return create_model(f"{name}Arguments", __base__=_Passed, **fields)


def _output_model(function: Callable[..., Any]) -> type[BaseModel]:
    """The view a tool's result is checked against: `X` of its `Annotated[CallToolResult, X]` return type."""
    returned = get_type_hints(function, include_extras=True)["return"]
    return cast(type[BaseModel], get_args(returned)[1])


def derive_output_schemas() -> dict[str, tool_schemas.Schema]:
    """Each tool's output schema as the SDK derives it from the tool's view, compacted."""
    derived: dict[str, tool_schemas.Schema] = {}
    for function, _schema, _hints in _TOOLS:
        output = Tool.from_function(function).fn_metadata.output_schema
        assert output is not None, function.__name__
        derived[function.__name__] = tool_schemas.compact_output(output)
    return derived


if __name__ == "__main__":  # `python -m parallel_mcp.tools`: rewrite output_schemas.json after changing a view
    OUTPUT_SCHEMAS.write_text(
        json.dumps(derive_output_schemas(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
