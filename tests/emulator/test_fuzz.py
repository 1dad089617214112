"""Fuzz the task endpoints: whatever the body, the answer is a documented status in the documented shape.

The emulator runs in a background thread (a blocking portal) so hypothesis can drive it synchronously.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, cast
from urllib.parse import quote

import httpx2
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from parallel.types import TaskGroup, TaskGroupRunResponse, TaskRun
from parallel.types.shared import ErrorResponse

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from parallel_mcp.models.betas import BETA_EVENTS, BETA_FIELD_BASIS, BETA_MCP, BETA_WEBHOOK
from parallel_mcp.processors import PROCESSORS

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
RUN_CREATE_STATUSES = {202, 402, 403, 422}
GROUP_ADD_STATUSES = {200, 402, 403, 422}

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
schemas: st.SearchStrategy[Any] = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(cast(list[object], ["object", "string", "null", ["object", "null"]])),
            "properties": st.dictionaries(
                st.text(min_size=1, max_size=8),
                st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "null", "object"])}),
                max_size=4,
            ),
        },
        optional={"required": st.lists(st.text(max_size=8), max_size=3), "additionalProperties": st.booleans()},
    ),
)
near_valid_bodies: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {
        "input": st.one_of(st.text(max_size=40), st.dictionaries(st.text(max_size=8), scalars, max_size=3)),
        "processor": st.one_of(st.sampled_from(sorted(PROCESSORS)), st.text(max_size=12)),
    },
    optional={
        "task_spec": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {
                    "output_schema": st.one_of(
                        st.text(max_size=20),
                        st.fixed_dictionaries({"type": st.just("json"), "json_schema": schemas}),
                        st.fixed_dictionaries({"type": st.sampled_from(["text", "auto", "bogus"])}),
                    )
                }
            ),
        ),
        "metadata": st.one_of(json_values, st.dictionaries(st.text(max_size=20), scalars, max_size=3)),
        "source_policy": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "include_domains": st.lists(st.text(max_size=12), max_size=5),
                    "exclude_domains": st.lists(st.text(max_size=12), max_size=5),
                    "after_date": st.one_of(st.dates().map(str), st.text(max_size=10)),
                },
            ),
        ),
        "advanced_settings": st.one_of(json_values, st.fixed_dictionaries({"location": st.text(max_size=3)})),
        "previous_interaction_id": st.one_of(st.none(), st.text(max_size=10)),
        "mcp_servers": st.one_of(
            json_values,
            st.lists(st.fixed_dictionaries({"name": st.text(max_size=6), "url": st.text(max_size=20)}), max_size=3),
        ),
        "enable_events": json_values,
        "webhook": st.one_of(json_values, st.fixed_dictionaries({"url": st.text(max_size=20)})),
        "memory_scope_key": json_values,
    },
)
raw_bodies: st.SearchStrategy[Any] = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b'{"input": NaN, "processor": "lite"}', b'{"input": {"x": Infinity}, "processor": "lite"}']),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture(scope="module")
def emu() -> Generator[RunningEmulator]:
    # Frozen, with a tiny MCP timeout: fuzzed runs must not start background work that outlives the module.
    config = EmulatorConfig(api_key="fuzz", frozen=True, mcp_timeout=0.5)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(serve_emulator(config)) as running:
        yield running
    # Whichever of this module's tests ran here (test workers share them out), none of their requests got a 5xx.
    failed = {record.status for record in running.state.request_log if record.status is None or record.status >= 500}
    assert not failed, f"fuzzed requests answered {failed}"


@pytest.fixture(scope="module")
def client(emu: RunningEmulator) -> Generator[httpx2.Client]:
    # Every beta on, so that bodies using beta-only fields are judged on their content.
    headers = {"x-api-key": "fuzz", "parallel-beta": ",".join([BETA_MCP, BETA_EVENTS, BETA_WEBHOOK, BETA_FIELD_BASIS])}
    with httpx2.Client(base_url=emu.base_url, headers=headers, timeout=10.0) as http:
        yield http


def _check_error(response: httpx2.Response) -> None:
    ErrorResponse.model_validate(response.json())


def _check_fastapi_422(response: httpx2.Response) -> None:
    detail = cast(dict[str, Any], response.json())["detail"]
    assert isinstance(detail, list) and detail
    for item in cast(list[dict[str, Any]], detail):
        assert set(item) >= {"loc", "msg", "type"} and isinstance(item["loc"], list)


def _check_create(response: httpx2.Response) -> None:
    assert response.status_code in RUN_CREATE_STATUSES, response.text
    if response.status_code == 202:
        TaskRun.model_validate(response.json())
    else:
        _check_error(response)


@FUZZ
@given(payload=near_valid_bodies)
def test_near_valid_create_bodies_get_202_or_a_documented_error(client: httpx2.Client, payload: dict[str, Any]) -> None:
    _check_create(client.post("/v1/tasks/runs", json=payload))


@FUZZ
@given(raw=raw_bodies)
def test_random_create_bodies_never_get_an_undocumented_answer(client: httpx2.Client, raw: bytes) -> None:
    response = client.post("/v1/tasks/runs", content=raw, headers={"content-type": "application/json"})
    _check_create(response)


@FUZZ
# "." and ".." are dot segments: every HTTP client removes them from the path before sending, so they
# never reach a server as ids.
@given(
    run_id=st.text(min_size=1, max_size=30).filter(lambda text: text not in (".", "..")),
    suffix=st.sampled_from(["", "/input", "/result?timeout=0"]),
)
@example(run_id="/", suffix="")  # the path then ends in a slash: once answered with a 307 redirect
def test_random_run_ids_are_404_in_the_error_shape(client: httpx2.Client, run_id: str, suffix: str) -> None:
    response = client.get(f"/v1/tasks/runs/{quote(run_id, safe='')}{suffix}")
    assert response.status_code in {404, 422}, response.text
    _check_error(response)


@FUZZ
@given(payload=st.one_of(json_values, st.fixed_dictionaries({"inputs": st.lists(near_valid_bodies, max_size=3)})))
def test_group_add_runs_answers_documented_statuses_in_their_shapes(client: httpx2.Client, payload: Any) -> None:
    created = client.post("/v1/tasks/groups", json={})
    group = TaskGroup.model_validate(created.json())
    response = client.post(f"/v1/tasks/groups/{group.task_group_id}/runs", json=payload)
    assert response.status_code in GROUP_ADD_STATUSES, response.text
    if response.status_code == 200:
        TaskGroupRunResponse.model_validate(response.json())
    elif response.status_code == 422:
        _check_fastapi_422(response)
    else:
        _check_error(response)


@FUZZ
@given(raw=raw_bodies)
def test_group_create_accepts_metadata_or_answers_422_in_the_fastapi_shape(client: httpx2.Client, raw: bytes) -> None:
    response = client.post("/v1/tasks/groups", content=raw)
    assert response.status_code in {200, 422}, response.text
    if response.status_code == 200:
        TaskGroup.model_validate(response.json())
    else:
        _check_fastapi_422(response)
