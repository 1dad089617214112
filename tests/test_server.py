"""The MCP tools through an in-memory client, against a live emulator on loopback, in both protocol eras."""

from __future__ import annotations

from typing import Any, Literal

import anyio
import pytest

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from tests.support import mcp_session, structured, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

ERAS: list[Literal["auto", "legacy"]] = ["auto", "legacy"]
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "founded": {"type": "integer", "description": "Year founded"},
        "ceo": {"type": "string", "description": "Current CEO"},
        "sector": {"type": "string", "enum": ["tech", "energy", "finance"]},
    },
    "required": ["founded", "ceo", "sector"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("mode", ERAS)
async def test_tools_are_listed_with_honest_annotations_and_output_schemas(mode: Literal["auto", "legacy"]) -> None:
    async with mcp_session(EmulatorConfig(instant=True), mode=mode) as session:
        tools = {tool.name: tool for tool in (await session.mcp.list_tools()).tools}
    assert set(tools) == {"create_task_run", "get_task_run", "list_task_runs", "create_task_group", "get_task_group"}
    create, get = tools["create_task_run"], tools["get_task_run"]
    assert create.annotations is not None and get.annotations is not None
    assert create.annotations.read_only_hint is False and create.annotations.idempotent_hint is False
    assert create.annotations.open_world_hint is True
    assert get.annotations.read_only_hint is True and get.annotations.idempotent_hint is True
    assert create.output_schema is not None and "run_id" in create.output_schema["properties"]
    properties = create.input_schema["properties"]
    for field in ("input", "processor", "output_schema", "input_schema", "metadata", "source_policy"):
        assert field in properties
    for field in ("advanced_settings", "previous_interaction_id", "mcp_servers", "enable_events", "webhook_url"):
        assert field in properties
    for field in ("memory_scope_key", "idempotency_key", "force_new", "wait_seconds"):
        assert field in properties
    assert "ultra8x" in str(properties["processor"]) and "-fast" in str(properties["processor"])
    assert create.description is not None and "No cancel" in create.description
    assert len(create.description) < 2000 and get.description is not None and len(get.description) < 2000


@pytest.mark.parametrize("mode", ERAS)
async def test_a_run_that_finishes_inside_the_wait_returns_its_json_output_and_citations(
    mode: Literal["auto", "legacy"],
) -> None:
    arguments = {
        "input": {"company": "Acme Corp"},
        "processor": "core",
        "output_schema": PERSON_SCHEMA,
        "wait_seconds": 10,
    }
    async with mcp_session(EmulatorConfig(instant=True), mode=mode) as session:
        with anyio.fail_after(10):
            result = await session.call("create_task_run", arguments)
    view = structured(result)
    assert view["status"] == "completed" and view["emulated"] is True
    output = view["output"]
    assert output["type"] == "json"
    assert set(output["content"]) == {"founded", "ceo", "sector"}
    assert output["content"]["sector"] in {"tech", "energy", "finance"}
    assert output["citations"] and output["citations"][0]["number"] == 1
    assert {entry["field"] for entry in output["basis"]} >= {"founded", "ceo", "sector"}
    text = text_of(result)
    assert view["run_id"] in text and "EMULATED" in text and "[1]" in text
    assert output["citations"][0]["url"] in text


async def test_a_run_still_going_after_the_wait_is_a_normal_handoff_with_a_retry_hint() -> None:
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        with anyio.fail_after(10):
            created = structured(await session.call("create_task_run", {"input": "q", "wait_seconds": 0}))
            got = await session.call("get_task_run", {"run_id": created["run_id"], "wait_seconds": 1})
    view = structured(got)
    assert view["is_active"] is True and view["status"] in {"queued", "running"}
    assert "output" not in view and "error" not in view
    assert isinstance(view["retry_after_seconds"], int) and view["retry_after_seconds"] >= 1
    assert "get_task_run" in view["next_step"] and created["run_id"] in view["next_step"]


async def test_get_task_run_returns_as_soon_as_a_frozen_run_is_finished_during_the_wait() -> None:
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        created = structured(await session.call("create_task_run", {"input": "q", "wait_seconds": 0}))
        run_id = created["run_id"]

        async def finish_on_first_progress(progress: float, total: float | None, message: str | None) -> None:
            session.emulator.state.finish(run_id)

        with anyio.fail_after(10):
            # wait_seconds is far beyond fail_after: only finishing the run can end the call in time.
            result = await session.call(
                "get_task_run", {"run_id": run_id, "wait_seconds": 45}, progress_callback=finish_on_first_progress
            )
    assert structured(result)["status"] == "completed"


async def test_progress_notifications_are_sent_while_waiting_and_strictly_increase() -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with mcp_session(EmulatorConfig(speed=40), progress_interval=0.2) as session:
        with anyio.fail_after(20):
            arguments = {"input": "q", "processor": "base", "wait_seconds": 20}
            result = await session.call("create_task_run", arguments, progress_callback=on_progress)
    assert structured(result)["status"] == "completed"
    assert len(updates) >= 2
    values = [u[0] for u in updates]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(u[1] == 100.0 and u[2] for u in updates)


async def test_a_failed_run_returns_its_error_and_ref_id() -> None:
    config = EmulatorConfig(instant=True, faults=[Fault(kind="fail_run", match_input="boom", message="exploded")])
    async with mcp_session(config) as session:
        with anyio.fail_after(10):
            result = await session.call("create_task_run", {"input": "boom", "wait_seconds": 5})
    view = structured(result)
    assert view["status"] == "failed"
    assert "exploded" in view["error"]["message"] and view["error"]["ref_id"]
    assert view["error"]["ref_id"] in text_of(result)


async def test_an_unknown_run_id_is_a_tool_error_that_says_what_a_run_id_looks_like() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        result = await session.call("get_task_run", {"run_id": "trun_doesnotexist", "wait_seconds": 0})
    assert result.is_error
    assert "trun_doesnotexist" in text_of(result) and "trun_" in text_of(result)


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"metadata": {"a_very_long_metadata_key": 1}}, "metadata"),
        ({"output_schema": {"type": "array"}}, "root"),
        ({"source_policy": {"include_domains": [f"d{i}.com" for i in range(201)]}}, "200"),
        ({"processor": "mega"}, "processor"),
        ({"mcp_servers": [{"name": f"s{i}", "url": "http://127.0.0.1:9/mcp"} for i in range(11)]}, "10"),
        ({"advanced_settings": {"location": "usa"}}, "location"),
        ({"wait_seconds": 500}, "wait_seconds"),
    ],
)
async def test_bad_arguments_are_tool_errors_that_name_the_field(arguments: dict[str, Any], needle: str) -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        result = await session.call("create_task_run", {"input": "q", **arguments})
        assert result.is_error
        assert needle in text_of(result)
        assert session.emulator.state.run_count == 0


async def test_mcp_server_header_values_are_never_echoed_even_when_invalid() -> None:
    secret = "Bearer sk-live-VERY-SECRET-123"
    servers = [{"name": "a", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": [secret]}}]
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        result = await session.call("create_task_run", {"input": "q", "mcp_servers": servers})
    assert result.is_error
    assert "sk-live" not in text_of(result) and "headers" in text_of(result)


async def test_a_large_output_is_paged_under_the_budget_and_pages_chain_to_the_end() -> None:
    budget_tokens = 2000
    async with mcp_session(EmulatorConfig(instant=True), result_budget_tokens=budget_tokens) as session:
        with anyio.fail_after(20):
            first = await session.call("create_task_run", {"input": "market map", "processor": "ultra8x"})
            view = structured(first)
            seen_fields: list[str] = list(view["output"]["content"])
            sizes = [len(text_of(first)) + len(str(view))]
            offset = view["output"]["page"].get("next_offset")
            while offset is not None:
                page = await session.call("get_task_run", {"run_id": view["run_id"], "offset": offset})
                page_view = structured(page)
                seen_fields.extend(page_view["output"]["content"])
                sizes.append(len(text_of(page)) + len(str(page_view)))
                offset = page_view["output"]["page"].get("next_offset")
    total = view["output"]["page"]["total"]
    assert len(sizes) > 1 and len(seen_fields) == total == len(set(seen_fields))
    assert max(sizes) <= budget_tokens * 4 * 1.1


async def test_fields_narrow_the_output_and_an_unknown_field_is_a_tool_error() -> None:
    arguments = {"input": "Acme", "output_schema": PERSON_SCHEMA}
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        view = structured(await session.call("create_task_run", {**arguments, "wait_seconds": 5}))
        narrowed = structured(await session.call("get_task_run", {"run_id": view["run_id"], "fields": ["ceo"]}))
        wrong = await session.call("get_task_run", {"run_id": view["run_id"], "fields": ["nope"]})
    assert list(narrowed["output"]["content"]) == ["ceo"]
    assert {entry["field"] for entry in narrowed["output"]["basis"]} == {"ceo"}
    assert wrong.is_error and "nope" in text_of(wrong)


async def test_reading_a_completed_run_again_costs_no_upstream_request() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        view = structured(await session.call("create_task_run", {"input": "q", "wait_seconds": 5}))
        before = len(session.emulator.state.request_log)
        again = structured(await session.call("get_task_run", {"run_id": view["run_id"]}))
        after = len(session.emulator.state.request_log)
    assert again["status"] == "completed" and after == before


async def test_a_waiting_call_makes_at_most_three_upstream_requests() -> None:
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        created = structured(await session.call("create_task_run", {"input": "q", "wait_seconds": 0}))
        before = len(session.emulator.state.request_log)
        with anyio.fail_after(10):
            await session.call("get_task_run", {"run_id": created["run_id"], "wait_seconds": 2})
        after = len(session.emulator.state.request_log)
    assert after - before <= 3


async def test_the_cost_gate_refuses_processors_above_the_limit_and_names_the_ones_that_fit() -> None:
    async with mcp_session(EmulatorConfig(instant=True), max_cost_usd=0.01) as session:
        refused = await session.call("create_task_run", {"input": "q", "processor": "ultra"})
        allowed = await session.call("create_task_run", {"input": "q", "processor": "lite", "wait_seconds": 5})
        assert session.emulator.state.run_count == 1
    assert refused.is_error and "0.3" in text_of(refused) and "lite" in text_of(refused)
    assert structured(allowed)["status"] == "completed"


async def test_no_credit_is_a_tool_error_that_suggests_a_cheaper_processor() -> None:
    async with mcp_session(EmulatorConfig(instant=True, credit_usd=0.01)) as session:
        result = await session.call("create_task_run", {"input": "q", "processor": "pro"})
    assert result.is_error and "402" in text_of(result) and "cheaper" in text_of(result)


async def test_interaction_id_can_be_passed_back_as_previous_interaction_id() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        first = structured(await session.call("create_task_run", {"input": "q", "wait_seconds": 5}))
        follow = await session.call(
            "create_task_run",
            {"input": "and then?", "previous_interaction_id": first["interaction_id"], "wait_seconds": 5},
        )
    assert structured(follow)["status"] == "completed"


async def test_cancelling_a_waiting_call_stops_the_wait_and_leaves_the_run_alone() -> None:
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        created = structured(await session.call("create_task_run", {"input": "q", "wait_seconds": 0}))
        run = session.emulator.state.runs[created["run_id"]]

        async def pollers_become(count: int) -> None:
            while True:
                changed = run.changed.snapshot()
                if run.pollers == count:
                    return
                await changed.wait()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:

                async def call() -> None:
                    await session.call("get_task_run", {"run_id": created["run_id"], "wait_seconds": 45})

                group.start_soon(call)
                await pollers_become(1)
                group.cancel_scope.cancel()
            await pollers_become(0)  # the server dropped its long-poll: it stopped waiting
        assert run.is_active and session.emulator.state.run_count == 1
        again = structured(await session.call("get_task_run", {"run_id": created["run_id"], "wait_seconds": 0}))
        assert again["is_active"] is True
