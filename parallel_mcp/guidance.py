"""What to tell the agent: next steps, polling hints and error explanations. Pure functions."""

from __future__ import annotations

import datetime as dt

from parallel_mcp.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    NotFoundError,
    ParallelMCPError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RunMayExistError,
    UnprocessableEntityError,
)
from parallel_mcp.processors import PROCESSORS, get_processor

MIN_HINT_SECONDS = 5
MAX_HINT_SECONDS = 600


def elapsed_seconds(created_at: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds since an RFC 3339 timestamp, or None when it is missing or unreadable."""
    if not created_at:
        return None
    try:
        start = dt.datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    current = now or dt.datetime.now(dt.UTC)
    return max(0.0, (current - start).total_seconds())


def retry_after_hint(processor: str, elapsed: float | None, *, time_scale: float = 1.0) -> int:
    """Seconds to wait before polling an active run again, from the processor's latency band.

    Before the band's lower edge: the time left to it. Inside the band: a sixth of the band's
    width, so a run is polled about six times across its likely span. `time_scale` shrinks the
    band for the emulator, whose runs are faster than real ones.
    """
    proc = get_processor(processor)
    if proc is None:
        return 30
    low, high = proc.min_seconds / time_scale, proc.max_seconds / time_scale
    done = elapsed or 0.0
    hint = low - done if done < low else (high - low) / 6
    floor = 1 if time_scale > 1 else MIN_HINT_SECONDS
    return int(min(max(hint, floor), MAX_HINT_SECONDS))


SUGGESTED_WAIT_SECONDS = 45
"""What a follow-up call should wait: long enough to save turns, short of the ~60 s client cut-off."""


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


def processor_line(name: str) -> str:
    """One processor's band and price, for descriptions: ``lite 10 s-1 min $0.005``."""
    proc = PROCESSORS[name]
    return f"{name} {proc.band} ${proc.usd_per_run:g}"


def describe_error(error: ParallelMCPError, *, run_id: str | None = None, group_id: str | None = None) -> str:
    """An actionable message for an API error; never contains request secrets."""
    ref = f" (ref_id {error.ref_id})" if isinstance(error, APIStatusError) and error.ref_id else ""
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
    if isinstance(error, RunMayExistError):
        return (
            f"{error} Do not call create_task_run again right away; tell the user a run may have started "
            "and can be seen on platform.parallel.ai."
        )
    if isinstance(error, APIStatusError):
        return f"The Task API failed (HTTP {error.status_code}){ref}: {error.message}. Try again in a minute."
    if isinstance(error, APIConnectionError):
        return f"Could not reach the Task API: {error}. Try again in a minute."
    return str(error)
