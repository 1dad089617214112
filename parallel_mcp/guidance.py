"""Everything the agent is told in words: next steps, polling hints, warnings and error explanations.

Pure functions. The services decide what happened; the sentences that tell the agent what it
means and what to do next are all written here.
"""

from __future__ import annotations

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


def still_running_step(run_id: str, retry_after: int) -> str:
    """The next step for a run that is still active after the wait."""
    return (
        f"Still running; this is normal. To keep waiting, call get_task_run(run_id={run_id!r}, "
        f"wait_seconds={SUGGESTED_WAIT_SECONDS}): it returns as soon as the run ends. Expect about "
        f"{retry_after} s before the next change, or do other work and come back. The Task API has no cancel."
    )


def completed_step(run_id: str, next_offset: int | None) -> str:
    """The next step for a completed run, mentioning the next page when there is one."""
    if next_offset is not None:
        return (
            f"Completed. This is one page of the output: call get_task_run(run_id={run_id!r}, "
            f"offset={next_offset}) for the next page, or pass fields=[...] for chosen fields only."
        )
    return "Completed. The whole output is below; cite sources by their [n] numbers."


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


_CREATE_TOOL = {"run": "create_task_run", "group": "create_task_group"}
_NOUN = {"run": "run", "group": "task group"}


def repeated_create_warning(kind: IntentKind, target_id: str, age: float, claim: Claim) -> str:
    """Said when a create repeats an earlier one and gets its run (or group) back."""
    if claim.idempotency_key is not None:
        earlier = f"idempotency_key {claim.idempotency_key!r} already created {_NOUN[kind]} {target_id}"
    else:
        earlier = f"The same request created {_NOUN[kind]} {target_id} {format_duration(age)} ago"
    return (
        f"{earlier}: returned it; nothing new was billed. To start another on purpose, call "
        f"{_CREATE_TOOL[kind]} again with force_new=true."
    )


def unconfirmed_create_message(kind: IntentKind, age: float, claim: Claim) -> str:
    """A repeat of a create whose answer never came: refuse to send it blindly again."""
    target = f" (task group {claim.target_id})" if claim.target_id else ""
    same = f"idempotency_key {claim.idempotency_key!r}" if claim.idempotency_key else "the same request"
    return (
        f"A create with {same}, sent {format_duration(age)} ago{target}, may have created a {_NOUN[kind]}, but its "
        "answer was lost, so it cannot be confirmed; nothing new was sent. Tell the user, and look for it with "
        "list_task_runs or on platform.parallel.ai. Only if the user accepts a possible second billed "
        f"{_NOUN[kind]}, call {_CREATE_TOOL[kind]} again with force_new=true."
    )


def pending_create_message(kind: IntentKind, claim: Claim) -> str:
    """A repeat of a create that another call is still sending: nothing new is sent, ask again soon."""
    same = f"idempotency_key {claim.idempotency_key!r}" if claim.idempotency_key else "the same request"
    return (
        f"A create with {same} was sent moments ago (by another call, or by a server that stopped before it "
        f"answered) and its answer has not come yet; nothing new was sent. Call {_CREATE_TOOL[kind]} again in a "
        f"minute: it then returns that {_NOUN[kind]}, or says if its outcome is unknown."
    )


def repeat_lapsed_message(kind: IntentKind) -> str:
    """A repeat that was not asked for confirmation found its earlier create just out of the dedupe window."""
    return (
        f"Nothing was created: this call repeated an earlier identical create, which stopped counting as the same "
        f"request just now. Call {_CREATE_TOOL[kind]} again to start a new {_NOUN[kind]} (the user is asked first "
        "if its price needs it)."
    )


def unjournaled_warning(target_id: str) -> str:
    """The run (or group) exists upstream but the store did not take it: say so, with its id."""
    return (
        f"{target_id} was created, but this server could not record it (its database failed), so "
        "list_task_runs will not show it: keep this id."
    )


def unread_status_warning(error: ParallelMCPError) -> str:
    """Said when a run exists but its status could not be read after creating it."""
    return f"The run was created, but reading its status failed: {error}"


def run_list_step(found: bool) -> str:
    """The next step after listing runs."""
    if found:
        return "Call get_task_run(run_id=...) for a run's current status or its result."
    return "No runs yet: create one with create_task_run."


# -- groups --------------------------------------------------------------------------------------


def group_running_step(group_id: str, ended: int, total: int, retry_after: int) -> str:
    """The next step for a group whose runs are not all done."""
    return (
        f"{ended} of {total} runs have ended. Call get_task_group(task_group_id={group_id!r}, "
        f"wait_seconds={SUGGESTED_WAIT_SECONDS}) to keep waiting; expect about {retry_after} s before the next change."
    )


def unread_group_warning(error: ParallelMCPError) -> str:
    """Said when a group exists but its status could not be read after creating it."""
    return f"The task group was created and its runs added, but reading its status failed: {error}"


def group_rows_step(group_id: str, next_offset: int | None) -> str:
    """The next step for a finished group: the next page of rows, or where a row's sources are."""
    if next_offset is not None:
        return (
            f"All runs ended. This is one page of rows: call get_task_group(task_group_id={group_id!r}, "
            f"offset={next_offset}) for the next. Basis and citations of a row: get_task_run(run_id)."
        )
    return "All runs ended; every row is below. Basis and citations of a row: get_task_run(run_id)."


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
            f"get_task_group(task_group_id={error.group_id!r}) before adding them again."
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
        if group_id is not None:
            return (
                f"No task group {group_id!r} exists for this API key{ref}. Use a task_group_id exactly as "
                "create_task_group returned it (it looks like tgrp_...)."
            )
        target = f"run {run_id!r}" if run_id else "such run"
        return (
            f"No {target} exists for this API key{ref}. Use a run_id exactly as create_task_run returned it "
            "(it looks like trun_...); list_task_runs shows the runs created here."
        )
    if isinstance(error, UnprocessableEntityError):
        return f"The Task API rejected the request (HTTP 422){ref}: {error.message}"
    if isinstance(error, RateLimitError):
        wait = f" Retry after about {error.retry_after:.0f} s." if error.retry_after else " Retry shortly."
        return f"The Task API is rate limiting this key (HTTP 429){ref}.{wait}"
    return f"The Task API failed (HTTP {error.status_code}){ref}: {error.message}. Try again in a minute."


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


def _runs(count: int, processor: str) -> str:
    return f"{count} billed {processor} run{'s' if count != 1 else ''}"


def budget_refusal(count: int, processor: str, price: float, spent: float, budget: float) -> str:
    """A create that would take its owner's spending today above the daily budget: refused, nothing created."""
    return (
        f"Refused by this server's daily budget, {_setting('daily_budget_usd')} = ${budget:g}: this call's "
        f"{_runs(count, processor)} cost ${price:.4g}, and ${spent:.4g} was already spent today (UTC) by this "
        "key or user. Nothing was created. Use a cheaper processor or fewer inputs, wait for the budget to "
        "reset at 00:00 UTC, or ask the user to raise the budget."
    )


def confirmation_question(count: int, processor: str, price: float, limit: float, summary: str) -> str:
    """What the human is asked before a create above `confirm_above_usd`."""
    return (
        f"Start {_runs(count, processor)} for ${price:.4g}? This server asks above ${limit:g} "
        f"(confirm_above_usd). Input: {summary}"
    )


def confirmation_needed_step(tool: str, count: int, processor: str, price: float, limit: float, minutes: int) -> str:
    """The next step of a create that waits for the user's yes (clients that cannot ask the user themselves)."""
    return (
        f"Confirmation needed; nothing was created. This call would start {_runs(count, processor)} for "
        f"${price:.4g}, above this server's {_setting('confirm_above_usd')} = ${limit:g}. Ask the user whether "
        f"to spend it. Only if they agree, call {tool} again with exactly the same arguments plus "
        f"confirm_token (below; valid {minutes} min, once)."
    )


def declined_message(count: int, processor: str, price: float, limit: float) -> str:
    """The user said no (or dismissed the question) to a create above `confirm_above_usd`."""
    return (
        f"The user declined to start {_runs(count, processor)} for ${price:.4g} (asked because it is above "
        f"{_setting('confirm_above_usd')} = ${limit:g}). Nothing was created; do not repeat the call unless the "
        "user asks for it."
    )


_TOKEN_PROBLEMS = {
    "unknown": "it is not one this server issued to this key or user",
    "other_request": "it was issued for a different request (the arguments changed since)",
    "used": "it was already used, and works once only (list_task_runs shows the run that call created)",
    "expired": "it has expired",
}


def bad_token_message(problem: str, tool: str, limit: float) -> str:
    """A confirm_token that cannot confirm this create."""
    return (
        f"confirm_token refused: {_TOKEN_PROBLEMS.get(problem, problem)}. Nothing was created. Calls above "
        f"{_setting('confirm_above_usd')} = ${limit:g} need the user's yes: call {tool} without confirm_token for "
        "a new one, and ask the user before passing it back."
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
    noun: str,
    target_id: str,
    status: str,
    processor: str | None,
    band: str | None,
    *,
    elapsed: float | None,
    progress: str | None,
) -> str:
    """A working task's status message: the run's own progress when known, else how long its processor takes."""
    parts = [f"{noun} {target_id} is {status}"]
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


def task_ended_message(noun: str, target_id: str, status: str) -> str:
    """The status message of a task whose run (or group) ended."""
    return f"{noun} {target_id} is {status}; the result is inlined."


def task_detached_message(noun: str, target_id: str, tool: str, argument: str) -> str:
    """What a cancelled task says: the Task API has no cancel, so only the task was let go."""
    return (
        f"Detached at the client's request; the Task API has no cancel, so {noun.lower()} {target_id} goes on and "
        f"is billed. {tool}({argument}={target_id!r}) still reads it."
    )


def task_unread_message(error: ParallelMCPError) -> str:
    """A working task whose run could not be read this time."""
    return f"Could not read its status this time ({error}); poll again."


_TRANSIENT_WARNINGS = (
    "The run was created, but reading its status failed",
    "The task group was created and its runs added, but reading its status failed",
)


def lasting_warnings(warnings: list[str]) -> list[str]:
    """The warnings of a create that still hold once its run is read again (not 'reading its status failed')."""
    return [warning for warning in warnings if not warning.startswith(_TRANSIENT_WARNINGS)]


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
