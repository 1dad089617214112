"""Polling hints and error messages for the agent."""

from __future__ import annotations

import datetime as dt

import pytest

from parallel_mcp.errors import (
    APIConnectionError,
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    ParallelMCPError,
    PaymentRequiredError,
    RateLimitError,
    RunMayExistError,
    UnprocessableEntityError,
)
from parallel_mcp.guidance import describe_error, retry_after_hint, still_running_step
from parallel_mcp.models import seconds_since
from parallel_mcp.processors import ProcessorTable

REAL = ProcessorTable()


def test_seconds_since_reads_rfc3339_with_z_and_offsets() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 30, tzinfo=dt.UTC)
    assert seconds_since("2026-01-01T12:00:00Z", now) == 30
    assert seconds_since("2026-01-01T13:00:00+01:00", now) == 30
    assert seconds_since(None, now) is None
    assert seconds_since("yesterday", now) is None


def test_retry_hint_waits_until_the_band_starts_then_polls_six_times_across_it() -> None:
    assert retry_after_hint(REAL, "pro", 0) == 120
    assert retry_after_hint(REAL, "pro", 60) == 60
    assert retry_after_hint(REAL, "pro", 200) == (600 - 120) // 6
    assert retry_after_hint(REAL, "ultra8x", 400) == 600  # capped
    assert retry_after_hint(REAL, "lite", 59) == 8


def test_retry_hint_shrinks_with_the_emulator_speed_and_never_goes_below_one_second() -> None:
    assert retry_after_hint(ProcessorTable(pace=20), "lite", 0) == 1
    assert retry_after_hint(ProcessorTable(pace=20), "pro", 0) == 6


def test_an_unknown_processor_gets_a_moderate_hint() -> None:
    assert retry_after_hint(REAL, "mystery", 0) == 30


def test_the_still_running_step_suggests_a_long_safe_wait_and_names_the_run() -> None:
    step = still_running_step("trun_1", 40)
    assert "get_task_run(run_id='trun_1', wait_seconds=45)" in step and "40 s" in step and "no cancel" in step


@pytest.mark.parametrize(
    ("error", "needles"),
    [
        (AuthenticationError("bad key", status_code=401, ref_id="r1"), ["401", "PARALLEL_API_KEY", "r1"]),
        (PaymentRequiredError("no credit", status_code=402, ref_id="r2"), ["402", "cheaper", "r2"]),
        (NotFoundError("nope", status_code=404), ["trun_x", "trun_..."]),
        (UnprocessableEntityError("metadata: too long", status_code=422, ref_id="r3"), ["422", "metadata", "r3"]),
        (RateLimitError("slow down", status_code=429, retry_after=7), ["429", "7 s"]),
        (InternalServerError("boom", status_code=502, ref_id="r4"), ["502", "r4"]),
        (RunMayExistError("POST /v1/tasks/runs timed out"), ["may", "Do not call create_task_run again"]),
        (APIConnectionError("refused", request_sent=False), ["Could not reach"]),
    ],
)
def test_errors_are_explained_with_status_ref_id_and_what_to_do(error: Exception, needles: list[str]) -> None:
    assert isinstance(error, ParallelMCPError)
    message = describe_error(error, run_id="trun_x")
    for needle in needles:
        assert needle in message
