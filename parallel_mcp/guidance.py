"""Everything the agent is told in words: next steps, polling hints, warnings and error explanations.

Pure functions. The services decide what happened; the sentences that tell the agent what it
means and what to do next are all written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from parallel_mcp.errors import (
    AccessError,
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    ArgumentError,
    AuthenticationError,
    NotFoundError,
    ParallelMCPError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RunMayExistError,
    UnprocessableEntityError,
)
from parallel_mcp.processors import PROCESSORS, CostLimitError, ProcessorTable
from parallel_mcp.store import Claim, IntentKind, StoreError
from parallel_mcp.text import format_duration
from parallel_mcp.views import ConfirmationNeeded

MAX_HINT_SECONDS = 600
UNKNOWN_PROCESSOR_HINT = 30

SUGGESTED_WAIT_SECONDS = 45
"""What a follow-up call should wait: long enough to save turns, short of the ~60 s client cut-off."""


# -- polling -------------------------------------------------------------------------------------


def retry_after_hint(processors: ProcessorTable, processor: str, elapsed: float | None) -> int:
    """Seconds to wait before polling an active run again, from the processor's latency band.

    Before the band's lower edge: the time left to it. Inside the band: a sixth of the band's
    width, so a run is polled about six times across its likely span. The table's pace shrinks
    the band for the emulator, whose runs are faster than real ones.
    """
    proc = processors.get(processor)
    if proc is None:
        return UNKNOWN_PROCESSOR_HINT
    low, high = proc.min_seconds, proc.max_seconds
    done = elapsed or 0.0
    hint = low - done if done < low else (high - low) / 6
    return int(min(max(hint, processors.min_poll_seconds), MAX_HINT_SECONDS))


def processor_line(name: str) -> str:
    """One processor's price and band, for descriptions: ``lite $0.005 (10 s-1 min)``."""
    proc = PROCESSORS[name]
    return f"{name} ${proc.usd_per_run:g} ({proc.band})"


# -- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Words:
    """How the agent is told about one kind of create: what it is called, and the tools that make and read it."""

    noun: str
    creator: str
    reader: str
    argument: str
    """The reader's id argument."""
    prefix: str
    """How the ids look."""


_KINDS: dict[IntentKind, _Words] = {
    "run": _Words("run", "create_task_run", "get_task_run", "run_id", "trun_"),
    "group": _Words("task group", "create_task_group", "get_task_group", "task_group_id", "tgrp_"),
}


def _read_call(kind: IntentKind, target_id: str, **more: int) -> str:
    """The call that reads a run or group: ``get_task_run(run_id='trun_1', offset=5)``."""
    words = _KINDS[kind]
    extra = "".join(f", {name}={value}" for name, value in more.items())
    return f"{words.reader}({words.argument}={target_id!r}{extra})"


def _keep_waiting(kind: IntentKind, target_id: str, retry_after: int) -> str:
    return (
        f"Call {_read_call(kind, target_id, wait_seconds=SUGGESTED_WAIT_SECONDS)} to keep waiting: it returns as "
        f"soon as the {_KINDS[kind].noun} ends. Expect about {retry_after} s before the next change"
    )


def still_running_step(run_id: str, retry_after: int) -> str:
    """The next step for a run that is still active after the wait."""
    waiting = _keep_waiting("run", run_id, retry_after)
    return f"Still running; this is normal. {waiting}, or do other work and come back. The Task API has no cancel."


def completed_step(run_id: str, next_offset: int | None) -> str:
    """The next step for a completed run, mentioning the next page when there is one."""
    if next_offset is None:
        return "Completed. The whole output is below; cite sources by their [n] numbers."
    following = _read_call("run", run_id, offset=next_offset)
    chosen = "or pass fields=[...] for chosen fields only"
    return f"Completed. This is one page of the output: call {following} for the next page, {chosen}."


def failed_step(processor: str) -> str:
    """The next step for a failed run."""
    return (
        "The run failed; quote the ref_id if the user contacts Parallel support. You may create a new run "
        f"(same or another processor than {processor!r}) after fixing the cause named in the error."
    )


def action_required_step() -> str:
    """`action_required` is in the API's enum but undocumented: don't spin on it."""
    return "The run needs action outside this tool (status action_required); tell the user. Polling won't change it."


def no_output_step(status: str) -> str:
    """The next step for a run that ended without output (e.g. cancelled)."""
    return f"The run is {status}; there is no output to read."


def repeated_create_warning(kind: IntentKind, target_id: str, age: float, claim: Claim) -> str:
    """Said when a create repeats an earlier one and gets its run (or group) back."""
    words = _KINDS[kind]
    if claim.idempotency_key is not None:
        earlier = f"idempotency_key {claim.idempotency_key!r} already created {words.noun} {target_id}"
    else:
        earlier = f"The same request created {words.noun} {target_id} {format_duration(age)} ago"
    return (
        f"{earlier}: returned it; nothing new was billed. To start another on purpose, call {words.creator} again "
        "with force_new=true."
    )


def _same(claim: Claim) -> str:
    return f"idempotency_key {claim.idempotency_key!r}" if claim.idempotency_key else "the same request"


def unconfirmed_create_message(kind: IntentKind, age: float, claim: Claim) -> str:
    """A repeat of a create whose answer never came: refuse to send it blindly again."""
    words = _KINDS[kind]
    target = f" (task group {claim.target_id})" if claim.target_id else ""
    return (
        f"A create with {_same(claim)}, sent {format_duration(age)} ago{target}, may have created a {words.noun}, "
        "but its answer was lost, so it cannot be confirmed; nothing new was sent. Tell the user, and look for it "
        "with list_task_runs or on platform.parallel.ai. Only if the user accepts a possible second billed "
        f"{words.noun}, call {words.creator} again with force_new=true."
    )


def pending_create_message(kind: IntentKind, claim: Claim) -> str:
    """A repeat of a create that another call is still sending: nothing new is sent, ask again soon."""
    words = _KINDS[kind]
    return (
        f"A create with {_same(claim)} was sent moments ago (by another call, or by a server that stopped before it "
        f"answered) and its answer has not come yet; nothing new was sent. Call {words.creator} again in a "
        f"minute: it then returns that {words.noun}, or says if its outcome is unknown."
    )


def repeat_lapsed_message(kind: IntentKind) -> str:
    """A repeat that was not asked for confirmation found its earlier create just out of the dedupe window."""
    words = _KINDS[kind]
    return (
        "Nothing was created: this call repeated an earlier identical create, which stopped counting as the same "
        f"request just now. Call {words.creator} again to start a new {words.noun} (the user is asked first if its "
        "price needs it)."
    )


def unjournaled_warning(target_id: str) -> str:
    """The run (or group) exists upstream but the store did not take it: say so, with its id."""
    return (
        f"{target_id} was created, but this server could not record it (its database failed), so "
        "list_task_runs will not show it: keep this id."
    )


_CREATED = {"run": "The run was created", "group": "The task group was created and its runs added"}
_UNREAD = ", but reading its status failed: "
_PASSING = tuple(created + _UNREAD for created in _CREATED.values())
"""How `unread_warning`'s warnings begin: they pass once the run is read again."""


def unread_warning(kind: IntentKind, error: ParallelMCPError) -> str:
    """Said when a run (or group) exists but its status could not be read after creating it."""
    return f"{_CREATED[kind]}{_UNREAD}{error}"


def run_list_step(found: bool) -> str:
    """The next step after listing runs."""
    if found:
        return "Call get_task_run(run_id=...) for a run's current status or its result."
    return "No runs yet: create one with create_task_run."


# -- groups --------------------------------------------------------------------------------------


def group_running_step(group_id: str, ended: int, total: int, retry_after: int) -> str:
    """The next step for a group whose runs are not all done."""
    return f"{ended} of {total} runs have ended. {_keep_waiting('group', group_id, retry_after)}."


def group_rows_step(group_id: str, next_offset: int | None) -> str:
    """The next step for a finished group: the next page of rows, or where a row's sources are."""
    sources = "Basis and citations of a row: get_task_run(run_id)."
    if next_offset is None:
        return f"All runs ended; every row is below. {sources}"
    following = _read_call("group", group_id, offset=next_offset)
    return f"All runs ended. This is one page of rows: call {following} for the next. {sources}"


# -- errors --------------------------------------------------------------------------------------


def missing_key_message(*, bearer_allowed: bool) -> str:
    """Multi-user mode and the request brings no Parallel key."""
    where = "an x-api-key or Authorization: Bearer header" if bearer_allowed else "an x-api-key header"
    return f"This server is in multi-user mode: send your Parallel API key in {where}."


def describe_error(error: ParallelMCPError, *, run_id: str | None = None, group_id: str | None = None) -> str:
    """An actionable message for any error of ours; never contains request secrets."""
    if isinstance(error, ArgumentError | AccessError):
        return str(error)
    if isinstance(error, CostLimitError):
        return (
            f"processor {error.processor!r} costs ${error.price:g} per run, above this server's limit of "
            f"${error.limit:g} (PARALLEL_MCP_MAX_COST_USD). Use one of: {', '.join(error.fitting) or 'none'}; "
            "or ask the user to raise the limit."
        )
    if isinstance(error, RunMayExistError):
        return _may_exist(error)
    if isinstance(error, StoreError):
        return f"This server's database is unavailable ({error}); nothing was created. Try again in a minute."
    if isinstance(error, APIStatusError):
        return _status_error(error, run_id=run_id, group_id=group_id)
    if isinstance(error, APIConnectionError):
        return f"Could not reach the Task API: {error}. Try again in a minute."
    if isinstance(error, APIResponseError):
        return f"The Task API answered in an unexpected shape ({error}). Try again in a minute."
    return str(error)


def _may_exist(error: RunMayExistError) -> str:
    if error.group_id is not None:
        return (
            f"{error} Runs may have been added to task group {error.group_id}: check it with "
            f"{_read_call('group', error.group_id)} before adding them again."
        )
    return (
        f"{error} Do not call create_task_run again right away: a repeat of this call will not send it again. "
        "Tell the user a run may have started and can be seen on platform.parallel.ai; only if the user accepts a "
        "possible second billed run, call it again with force_new=true."
    )


def _status_error(error: APIStatusError, *, run_id: str | None, group_id: str | None) -> str:
    ref = f" (ref_id {error.ref_id})" if error.ref_id else ""
    if isinstance(error, AuthenticationError):
        return (
            f"The Parallel API rejected the API key (HTTP 401){ref}. The user must set a valid "
            "PARALLEL_API_KEY for this server; retrying will not help."
        )
    if isinstance(error, PaymentRequiredError):
        return (
            f"Not enough Parallel credit for this run (HTTP 402){ref}. Runs reserve their price up front: "
            "use a cheaper processor, or ask the user to add credit."
        )
    if isinstance(error, PermissionDeniedError):
        return f"The API refused the request (HTTP 403){ref}: {error.message}. Use one of: {', '.join(PROCESSORS)}."
    if isinstance(error, NotFoundError):
        return _not_found("group", group_id, ref) if group_id is not None else _not_found("run", run_id, ref)
    if isinstance(error, UnprocessableEntityError):
        return f"The Task API rejected the request (HTTP 422){ref}: {error.message}"
    if isinstance(error, RateLimitError):
        wait = f" Retry after about {error.retry_after:.0f} s." if error.retry_after else " Retry shortly."
        return f"The Task API is rate limiting this key (HTTP 429){ref}.{wait}"
    return f"The Task API failed (HTTP {error.status_code}){ref}: {error.message}. Try again in a minute."


def _not_found(kind: IntentKind, target_id: str | None, ref: str) -> str:
    words = _KINDS[kind]
    target = f"{words.noun} {target_id!r}" if target_id else f"such {words.noun}"
    listed = "; list_task_runs shows the runs created here" if kind == "run" else ""
    return (
        f"No {target} exists for this API key{ref}. Use a {words.argument} exactly as {words.creator} returned it "
        f"(it looks like {words.prefix}...){listed}."
    )


def unexpected_error_message(error: Exception) -> str:
    """A bug of ours reached the agent: say so without internals, and how to avoid a second billed run."""
    return (
        f"parallel-mcp failed unexpectedly ({type(error).__name__}); the details are in the server's log. "
        "If this call was creating a run, call list_task_runs before creating it again."
    )


# -- spending: budgets and confirmations ---------------------------------------------------------

_SETTING_ENV = {
    "confirm_above_usd": "PARALLEL_MCP_CONFIRM_ABOVE_USD",
    "daily_budget_usd": "PARALLEL_MCP_DAILY_BUDGET_USD",
}


def _setting(name: str) -> str:
    return f"{name} ({_SETTING_ENV[name]})"


class Billed(Protocol):
    """What a create bills: `runs` runs of one processor, `price_usd` together (an intent, an order, a
    confirmation)."""

    @property
    def processor(self) -> str: ...
    @property
    def runs(self) -> int: ...
    @property
    def price_usd(self) -> float: ...


def _billed(billed: Billed) -> str:
    plural = "s" if billed.runs != 1 else ""
    return f"{billed.runs} billed {billed.processor} run{plural} for ${billed.price_usd:.4g}"


def budget_refusal(billed: Billed, spent: float, budget: float) -> str:
    """A create that would take its owner's spending today above the daily budget: refused, nothing created."""
    return (
        f"Refused by this server's daily budget, {_setting('daily_budget_usd')} = ${budget:g}: this call would "
        f"start {_billed(billed)}, and ${spent:.4g} was already spent today (UTC) by this key or user. Nothing "
        "was created. Use a cheaper processor or fewer inputs, wait for the budget to reset at 00:00 UTC, or "
        "ask the user to raise the budget."
    )


def confirmation_question(billed: Billed, limit: float, summary: str) -> str:
    """What the human is asked before a create above `confirm_above_usd`."""
    return f"Start {_billed(billed)}? This server asks above ${limit:g} (confirm_above_usd). Input: {summary}"


def confirmation_needed_step(kind: IntentKind, confirmation: ConfirmationNeeded) -> str:
    """The next step of a create that waits for the user's yes (clients that cannot ask the user themselves)."""
    limit, minutes = confirmation.limit_usd, confirmation.expires_in_seconds // 60
    return (
        f"Confirmation needed; nothing was created. This call would start {_billed(confirmation)}, above this "
        f"server's {_setting('confirm_above_usd')} = ${limit:g}. Ask the user whether to spend it. Only if they "
        f"agree, call {_KINDS[kind].creator} again with exactly the same arguments plus confirm_token (below; "
        f"valid {minutes} min, once)."
    )


def declined_message(billed: Billed, limit: float) -> str:
    """The user said no (or dismissed the question) to a create above `confirm_above_usd`."""
    setting = _setting("confirm_above_usd")
    return (
        f"The user declined to start {_billed(billed)} (asked because it is above {setting} = ${limit:g}). "
        "Nothing was created; do not repeat the call unless the user asks for it."
    )


_TOKEN_PROBLEMS = {
    "unknown": "it is not one this server issued to this key or user",
    "other_request": "it was issued for a different request (the arguments changed since)",
    "used": "it was already used, and works once only (list_task_runs shows the run that call created)",
    "expired": "it has expired",
}


def bad_token_message(problem: str, kind: IntentKind, limit: float) -> str:
    """A confirm_token that cannot confirm this create."""
    return (
        f"confirm_token refused: {_TOKEN_PROBLEMS.get(problem, problem)}. Nothing was created. Calls above "
        f"{_setting('confirm_above_usd')} = ${limit:g} need the user's yes: call {_KINDS[kind].creator} without "
        "confirm_token for a new one, and ask the user before passing it back."
    )


# -- resources -----------------------------------------------------------------------------------

_PROCESSOR_USES = {
    "lite": "Quick lookups: one or two simple fields.",
    "base": "Simple enrichment: a few fields that one or two sources answer.",
    "core": "Cross-referenced enrichment of up to about 10 fields; the usual choice for task groups.",
    "core2x": "Like core, with twice the compute for harder fields.",
    "pro": "Exploratory research: a short cited report, or up to about 20 researched fields.",
    "ultra": "Deep research reports with many sources.",
    "ultra2x": "Deeper research than ultra, on harder questions.",
    "ultra4x": "Very deep research; expect up to 1.5 h.",
    "ultra8x": "The deepest research; expect up to 2 h and confirm the price first.",
}


def processor_use(name: str) -> str:
    """What a processor is for, in one sentence (the `-fast` variants trade freshness for speed)."""
    tier = name.removesuffix("-fast")
    use = _PROCESSOR_USES.get(tier, "")
    if name.endswith("-fast"):
        return f"{use} The -fast variant: 2-5x faster at the same price, from fresher-cache sources."
    return use


def report_pending_text(run_id: str, status: str, error: str | None) -> str:
    """What a report resource says before (or instead of) the report."""
    if error is not None:
        return f"# Task run {run_id}\n\nThe run is {status}; there is no report. Error: {error}\n"
    return (
        f"# Task run {run_id}\n\nThe run is {status}; its report appears here once it completes. "
        f"Subscribe to this resource (or to parallel://runs/{run_id}) to be told when it ends.\n"
    )


# -- tasks (the tasks extension) -----------------------------------------------------------------


def task_working_message(
    run_id: str,
    status: str,
    processor: str | None,
    band: str | None,
    *,
    elapsed: float | None,
    progress: str | None,
) -> str:
    """A working task's status message: the run's own progress when known, else how long its processor takes."""
    parts = [f"Run {run_id} is {status}"]
    if elapsed is not None:
        parts.append(f"{format_duration(elapsed)} so far")
    if progress:
        parts.append(progress)
    elif processor and band:
        parts.append(f"{processor} runs usually take {band}")
    return "; ".join(parts) + "."


def task_group_message(group_id: str, ended: int, total: int) -> str:
    """A group task's status message."""
    return f"Task group {group_id}: {ended} of {total} runs have ended."


def task_ended_message(kind: IntentKind, target_id: str, status: str) -> str:
    """The status message of a task whose run (or group) ended."""
    return f"{_KINDS[kind].noun.capitalize()} {target_id} is {status}; the result is inlined."


def task_detached_message(kind: IntentKind, target_id: str) -> str:
    """What a cancelled task says: the Task API has no cancel, so only the task was let go."""
    return (
        f"Detached at the client's request; the Task API has no cancel, so {_KINDS[kind].noun} {target_id} goes on "
        f"and is billed. {_read_call(kind, target_id)} still reads it."
    )


def task_unread_message(error: ParallelMCPError) -> str:
    """A working task whose run could not be read this time."""
    return f"Could not read its status this time ({error}); poll again."


def lasting_warnings(warnings: list[str]) -> list[str]:
    """The warnings of a create that still hold once its run is read again (not `unread_warning`'s)."""
    return [warning for warning in warnings if not warning.startswith(_PASSING)]


# -- prompts -------------------------------------------------------------------------------------


def deep_research_prompt(topic: str, depth: str, processor: str, arguments: str) -> str:
    """The `deep_research` prompt: one cited report on a topic, with the processor its depth calls for."""
    return (
        f"Research this topic with Parallel's Task API and write me a cited report: {topic}\n\n"
        f"1. Call create_task_run with these arguments (depth {depth!r}: {processor_line(processor)} per run):\n"
        f"{arguments}\n"
        "   Make `input` a full research brief first if the topic is terse: what to cover, for whom, the period.\n"
        "2. A run of this depth takes minutes: while it is running, call get_task_run(run_id, "
        f"wait_seconds={SUGGESTED_WAIT_SECONDS}) as its next_step says; that is normal, not an error.\n"
        "3. Once completed, read the whole report (every page, or the resource the result links), then answer "
        "with its findings, citing sources by their [n] numbers with their URLs. Say what the sources do not "
        "settle."
    )


def enrich_prompt(count: int, fields: list[str], processor: str, tool: str, arguments: str) -> str:
    """The `enrich` prompt: the same fields found for every row, as one task group (or one run)."""
    follow = "get_task_group(task_group_id" if tool == "create_task_group" else "get_task_run(run_id"
    return (
        f"Enrich {count} row{'s' if count != 1 else ''} with these fields: {', '.join(fields)}.\n\n"
        f"1. Call {tool} with these arguments ({processor_line(processor)} per row, the cheapest processor "
        f"that handles {len(fields)} field{'s' if len(fields) != 1 else ''}):\n{arguments}\n"
        f"2. Then call {follow}, wait_seconds={SUGGESTED_WAIT_SECONDS}) until every run has ended, and read "
        "every page of rows.\n"
        "3. Answer with one table: a row per input, a column per field; mark fields no source supported, and "
        "give the sources of any row I ask about (get_task_run on its run_id)."
    )
