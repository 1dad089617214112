"""Reading the API's answers: a body of another shape is the API's fault, said plainly; SSE frames are joined."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from parallel_mcp.errors import APIResponseError
from parallel_mcp.models import TaskRun, TaskRunEvent, UnknownEvent
from parallel_mcp.wire import parse_body, parse_sse_event, sse_data

pytestmark = pytest.mark.anyio

RUN = {"run_id": "trun_1", "interaction_id": "tint_1", "status": "queued", "is_active": True, "processor": "lite"}


def answer(content: bytes) -> httpx2.Response:
    return httpx2.Response(200, content=content, request=httpx2.Request("GET", "https://api.test/v1/tasks/runs/trun_1"))


def test_a_documented_body_parses_into_its_model() -> None:
    assert (
        parse_body(
            TaskRun,
            answer(
                b'{"run_id": "trun_1", "interaction_id": "i", "status": "queued", '
                b'"is_active": true, "processor": "lite"}'
            ),
        ).run_id
        == "trun_1"
    )


@pytest.mark.parametrize("content", [b"<html>oops</html>", b'{"run_id": 1}', b"[]"])
def test_a_body_of_another_shape_is_an_api_response_error_naming_the_request(content: bytes) -> None:
    with pytest.raises(APIResponseError, match="GET /v1/tasks/runs/trun_1"):
        parse_body(TaskRun, answer(content))


async def test_sse_data_joins_multi_line_frames_and_skips_comments() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [": keep-alive", "event: x", 'data: {"a":', "data: 1}", "", "data: last"]:
            yield line

    assert [frame async for frame in sse_data(lines())] == ['{"a":\n1}', "last"]


def test_a_malformed_frame_is_skipped_and_a_malformed_event_kept_as_unknown_never_raised() -> None:
    import json

    assert parse_sse_event("not json") is None
    assert isinstance(parse_sse_event('{"type": "task_run.state", "run": {"run_id": 3}}'), UnknownEvent)
    event = parse_sse_event(json.dumps({"type": "task_run.state", "run": RUN}))
    assert isinstance(event, TaskRunEvent) and event.run.run_id == "trun_1"
