"""Beta-only fields need their `parallel-beta` value, on run creates and on group add-runs alike."""

from __future__ import annotations

from typing import Any

import pytest

from parallel_mcp.models.betas import BETA_EVENTS, BETA_FIELD_BASIS, BETA_MCP, BETA_WEBHOOK
from tests.emulator.conftest import assert_api_error, body, running

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

MCP = {"mcp_servers": [{"name": "crm", "url": "https://crm.example/mcp"}]}
EVENTS = {"enable_events": True}
WEBHOOK = {"webhook": {"url": "https://hooks.example/parallel"}}
LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"founders": {"type": "array", "items": {"type": "string"}, "description": "Founders"}},
    "required": ["founders"],
    "additionalProperties": False,
}
BETA_ONLY = [(MCP, BETA_MCP, "mcp_servers"), (EVENTS, BETA_EVENTS, "enable_events"), (WEBHOOK, BETA_WEBHOOK, "webhook")]


def question(**fields: Any) -> dict[str, Any]:
    return {"input": "Who founded Example Corp?", "processor": "lite", **fields}


@pytest.mark.parametrize(("fields", "beta", "field"), BETA_ONLY)
async def test_a_create_with_a_beta_only_field_but_without_its_beta_is_422_naming_both(
    fields: dict[str, Any], beta: str, field: str
) -> None:
    async with running(frozen=True) as (emu, client):
        missing = await client.post("/v1/tasks/runs", json=question(**fields))
        other_beta = await client.post(
            "/v1/tasks/runs", json=question(**fields), headers={"parallel-beta": "search-extract-2025-10-10"}
        )
        error = assert_api_error(missing, 422, beta, field)
        assert_api_error(other_beta, 422, beta, "search-extract-2025-10-10")
        assert emu.state.run_count == 0
        sent = await client.post("/v1/tasks/runs", json=question(**fields), headers={"parallel-beta": beta})
        assert sent.status_code == 202, sent.text
    assert error["detail"]["errors"][0]["loc"] == [field]


async def test_the_header_is_a_comma_separated_list_and_may_come_more_than_once() -> None:
    everything = question(**MCP, **EVENTS, **WEBHOOK)
    async with running(frozen=True) as (emu, client):
        one = await client.post(
            "/v1/tasks/runs", json=everything, headers={"parallel-beta": f"{BETA_MCP} , {BETA_EVENTS},{BETA_WEBHOOK}"}
        )
        several = await client.post(
            "/v1/tasks/runs",
            json=everything,
            headers=[("parallel-beta", f"{BETA_MCP},{BETA_EVENTS}"), ("parallel-beta", BETA_WEBHOOK)],
        )
        assert (one.status_code, several.status_code) == (202, 202)
        assert emu.state.run_count == 2


async def test_enable_events_false_needs_no_beta() -> None:
    async with running(frozen=True) as (_, client):
        response = await client.post("/v1/tasks/runs", json=question(enable_events=False))
        assert response.status_code == 202, response.text


async def test_group_add_runs_checks_the_betas_of_every_input_and_answers_in_the_fastapi_shape() -> None:
    async with running(frozen=True) as (emu, client):
        group_id = body(await client.post("/v1/tasks/groups", json={}))["taskgroup_id"]
        inputs = [question(), question(**WEBHOOK)]
        refused = await client.post(f"/v1/tasks/groups/{group_id}/runs", json={"inputs": inputs})
        assert refused.status_code == 422
        detail = body(refused)["detail"]
        assert detail[0]["loc"] == ["body", "inputs", 1, "webhook"] and BETA_WEBHOOK in detail[0]["msg"]
        assert emu.state.run_count == 0
        accepted = await client.post(
            f"/v1/tasks/groups/{group_id}/runs", json={"inputs": inputs}, headers={"parallel-beta": BETA_WEBHOOK}
        )
        assert accepted.status_code == 200, accepted.text
        assert emu.state.run_count == 2


async def test_an_array_schema_without_the_field_basis_beta_is_accepted_with_top_level_basis_only() -> None:
    spec = {"output_schema": {"type": "json", "json_schema": LIST_SCHEMA}}
    async with running(instant=True) as (_, client):
        plain = body(await client.post("/v1/tasks/runs", json=question(task_spec=spec)))
        beta = body(
            await client.post(
                "/v1/tasks/runs", json=question(task_spec=spec), headers={"parallel-beta": BETA_FIELD_BASIS}
            )
        )
        plain_result = body(await client.get(f"/v1/tasks/runs/{plain['run_id']}/result", params={"timeout": 5}))
        beta_result = body(await client.get(f"/v1/tasks/runs/{beta['run_id']}/result", params={"timeout": 5}))
    assert [entry["field"] for entry in plain_result["output"]["basis"]] == ["founders"]
    per_element = [entry["field"] for entry in beta_result["output"]["basis"]]
    assert per_element[0] == "founders" and per_element[1:] and all(f.startswith("founders.") for f in per_element[1:])
