"""What the tools return: the structured result models (their JSON schema is each tool's `outputSchema`).

A field that is None is left out of a result, so every field that may be None has a default.

These are views for an agent, not wire objects: compact, paged, with citations numbered once and
referenced from the basis, and with an explicit next step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from parallel_mcp.models import ErrorObject, McpToolCall, TaskRunStatus


class View(BaseModel):
    """Base for tool results."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class CitationRef(View):
    """A source, numbered once per page; basis entries refer to it by `number`."""

    number: int = Field(description="1-based number, as cited in the text rendering: [n].")
    url: str
    title: str | None = None
    excerpts: list[str] = Field(default_factory=list[str], description="Supporting excerpts (shortened).")


class BasisEntry(View):
    """Why a field holds its value: reasoning, confidence and the numbers of its citations."""

    field: str = Field(description="Output field (dot path for nested/auto fields; `output` for text).")
    confidence: str | None = None
    reasoning: str
    citations: list[int] = Field(default_factory=list[int], description="Numbers into `citations`.")


class PageInfo(View):
    """Where this page sits in the whole output, and how to get the next one."""

    unit: Literal["fields", "chars"] = Field(
        description="What `offset` counts: top-level fields (json output) or characters (text output)."
    )
    offset: int
    next_offset: int | None = Field(
        default=None, description="Pass as `offset` to get_task_run for the next page; absent on the last page."
    )
    total: int = Field(description="Total top-level fields or characters in the whole output.")
    selected_fields: list[str] | None = Field(default=None, description="The `fields` filter that was applied.")


class OutputPage(View):
    """One page of a completed run's output."""

    type: Literal["json", "text"]
    content: dict[str, Any] | str = Field(
        description="json: the top-level fields of this page; text: this slice of the markdown report."
    )
    basis: list[BasisEntry] = Field(default_factory=list[BasisEntry])
    citations: list[CitationRef] = Field(default_factory=list[CitationRef])
    output_schema: dict[str, Any] | None = Field(
        default=None, description="The schema the processor designed (auto mode; first page only)."
    )
    mcp_tool_calls: list[McpToolCall] | None = None
    page: PageInfo


class Progress(View):
    """How far a running run has got, from its event stream."""

    progress_meter: float | None = Field(default=None, description="0-100 as reported by the API.")
    message: str | None = Field(default=None, description="The latest progress message (plan, search, ...).")
    sources_considered: int | None = None
    sources_read: int | None = None
    recent_messages: list[str] = Field(default_factory=list[str])


class RunError(View):
    """Why a run (or a call) failed; quote `ref_id` to Parallel support."""

    message: str
    ref_id: str | None = None

    @classmethod
    def of(cls, error: ErrorObject | None) -> RunError | None:
        """A run's API error as the agent sees it (None stays None)."""
        return cls(message=error.message, ref_id=error.ref_id or None) if error else None


class TaskRunView(View):
    """A task run as the agent sees it: status, progress, and when completed the (paged) output."""

    run_id: str
    interaction_id: str | None = Field(
        default=None, description="Pass as previous_interaction_id to a new run to follow up on this one."
    )
    status: TaskRunStatus
    is_active: bool
    processor: str
    elapsed_seconds: float | None = None
    progress: Progress | None = None
    retry_after_seconds: int | None = Field(
        default=None, description="When still active: wait about this long before calling get_task_run again."
    )
    next_step: str = Field(description="What to do next, in one sentence.")
    output: OutputPage | None = None
    error: RunError | None = None
    warnings: list[str] = Field(default_factory=list[str])
    metadata: dict[str, str | int | float | bool] | None = None
    task_group_id: str | None = None
    estimated_cost_usd: float | None = Field(default=None, description="List price of this run (per run, USD).")
    emulated: bool = Field(default=False, description="True when served by the local emulator: not real research.")


class RunSummary(View):
    """One run from the journal, as last seen by this server."""

    run_id: str
    status: str = Field(description="Status when last seen; call get_task_run for the current one.")
    processor: str
    input_excerpt: str
    created_at: str | None = None
    updated_at: str
    interaction_id: str | None = None
    idempotency_key: str | None = None


class RunListView(View):
    """The runs this server created for you, newest first."""

    runs: list[RunSummary]
    next_step: str
    emulated: bool = False


class GroupRunRow(View):
    """One run of a task group: its input and, once completed, its output (content only)."""

    run_id: str
    status: str
    input: str | dict[str, Any] | None = None
    output: str | dict[str, Any] | None = Field(
        default=None, description="The run's content; its basis and citations: get_task_run(run_id)."
    )
    error: RunError | None = None


class TaskGroupView(View):
    """A task group: aggregate status and, once every run has ended, one page of their outputs."""

    task_group_id: str
    is_active: bool
    num_task_runs: int
    status_counts: dict[str, int]
    status_message: str | None = None
    run_ids: list[str] = Field(default_factory=list[str], description="Run ids added by this call, if any.")
    retry_after_seconds: int | None = None
    next_step: str
    rows: list[GroupRunRow] | None = None
    page: PageInfo | None = None
    estimated_cost_usd: float | None = Field(default=None, description="List price of the runs added by this call.")
    warnings: list[str] = Field(default_factory=list[str])
    emulated: bool = False


class ConfirmationNeeded(View):
    """A create above `confirm_above_usd` waits for the user's yes; nothing was created yet."""

    confirm_token: str = Field(description="Pass back, with the same arguments, once the user agrees (once only).")
    expires_in_seconds: int
    processor: str
    runs: int
    price_usd: float = Field(description="List price of every run of this call together.")
    limit_usd: float = Field(description="The server's confirm_above_usd.")
    input_summary: str


def _or_confirmation(view: type[View], name: str) -> type[View]:
    """A create tool's output model: `view`, or (its other fields absent) a confirmation the call waits for."""
    fields: dict[str, Any] = {}
    for field, info in view.model_fields.items():
        if info.is_required() and field != "next_step":
            annotation: Any = info.annotation
            fields[field] = (annotation | None, Field(default=None, description=info.description))
        else:
            fields[field] = (info.annotation, info)
    fields["confirmation"] = (
        ConfirmationNeeded | None,
        Field(default=None, description="Set instead of a run: ask the user, then repeat the call with its token."),
    )
    return create_model(name, __base__=View, __doc__=view.__doc__, **fields)


CreatedRunView = _or_confirmation(TaskRunView, "CreatedRunView")
"""What create_task_run returns: the run, or the confirmation it waits for."""
CreatedGroupView = _or_confirmation(TaskGroupView, "CreatedGroupView")
"""What create_task_group returns: the group, or the confirmation it waits for."""
