"""Task groups through the MCP tools: many inputs, one spec, watched and read back together."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from parallel_mcp.arguments import CreateGroupArguments, group_request, parse
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.faults import Fault
from parallel_mcp.errors import RepeatLapsedError
from parallel_mcp.groups import GroupService, group_order
from parallel_mcp.intents import Intents
from parallel_mcp.processors import ProcessorTable
from parallel_mcp.runs import Caller
from parallel_mcp.store.sqlite import MEMORY, SQLiteStore
from parallel_mcp.waiter import Waiter
from tests.support import emulator_client, mcp_session, structured, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ceo": {"type": "string"}, "founded": {"type": "integer"}},
    "required": ["ceo", "founded"],
    "additionalProperties": False,
}
COMPANIES = [{"company": name} for name in ("Acme", "Globex", "Initech")]


async def test_a_group_that_ends_inside_the_wait_returns_every_row_with_its_output() -> None:
    # Rows and the schema as JSON text: the portable shape strict tool-calling models send.
    rows = [json.dumps(company) for company in COMPANIES]
    arguments = {"inputs": rows, "processor": "core", "output_schema": json.dumps(SCHEMA), "wait_seconds": 10}
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        with anyio.fail_after(20):
            result = await session.call("create_task_group", arguments)
        assert session.emulator.state.run_count == 3
    view = structured(result)
    assert view["is_active"] is False and view["num_task_runs"] == 3 and len(view["run_ids"]) == 3
    assert view["status_counts"] == {"completed": 3}
    assert view["estimated_cost_usd"] == pytest.approx(0.075)
    rows = view["rows"]
    assert [row["input"] for row in rows] == COMPANIES
    assert all(set(row["output"]) == {"ceo", "founded"} and isinstance(row["output"]["founded"], int) for row in rows)
    assert "next_offset" not in view["page"]
    text = text_of(result)
    assert view["task_group_id"] in text and "Acme" in text and "EMULATED" in text


async def test_an_active_group_reports_its_counts_and_get_task_group_returns_when_the_runs_end() -> None:
    updates: list[tuple[float, float | None]] = []
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        created = structured(
            await session.call("create_task_group", {"inputs": ["a", "b"], "processor": "lite", "wait_seconds": 0})
        )
        assert created["is_active"] is True and "rows" not in created
        assert created["retry_after_seconds"] is not None and "get_task_group" in created["next_step"]

        async def finish_all(progress: float, total: float | None, message: str | None) -> None:
            updates.append((progress, total))
            for run_id in created["run_ids"]:
                if session.emulator.state.runs[run_id].is_active:
                    session.emulator.state.finish(run_id)

        with anyio.fail_after(15):
            done = structured(
                await session.call(
                    "get_task_group",
                    {"task_group_id": created["task_group_id"], "wait_seconds": 45},
                    progress_callback=finish_all,
                )
            )
    assert done["is_active"] is False and len(done["rows"]) == 2
    assert updates and all(total == 2 for _, total in updates)
    values = [progress for progress, _ in updates]
    assert values == sorted(values) and len(set(values)) == len(values)


async def test_many_rows_are_paged_under_the_budget() -> None:
    inputs = [f"question number {i} about a fairly long topic to make rows larger" for i in range(40)]
    async with mcp_session(EmulatorConfig(instant=True), result_budget_tokens=1000) as session:
        with anyio.fail_after(30):
            view = structured(await session.call("create_task_group", {"inputs": inputs, "processor": "lite"}))
            seen = [row["run_id"] for row in view["rows"]]
            offset = view["page"].get("next_offset")
            while offset is not None:
                page = structured(
                    await session.call("get_task_group", {"task_group_id": view["task_group_id"], "offset": offset})
                )
                seen.extend(row["run_id"] for row in page["rows"])
                offset = page["page"].get("next_offset")
    assert len(seen) == 40 == len(set(seen)) and view["page"]["next_offset"] is not None


async def test_a_failed_row_carries_its_error() -> None:
    config = EmulatorConfig(instant=True, faults=[Fault(kind="fail_run", match_input="boom", message="exploded")])
    async with mcp_session(config) as session:
        with anyio.fail_after(20):
            view = structured(
                await session.call("create_task_group", {"inputs": ["fine", "boom"], "processor": "lite"})
            )
    failed = [row for row in view["rows"] if row["status"] == "failed"]
    assert len(failed) == 1 and "exploded" in failed[0]["error"]["message"] and failed[0]["error"]["ref_id"]


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"inputs": ["q"] * 1001}, "1000"),
        ({"inputs": []}, "inputs"),
        ({"inputs": ["q"], "output_schema": {"type": "array"}}, "output_schema"),
        ({"inputs": ["q"], "metadata": {"much_too_long_key_here": 1}}, "metadata"),
        ({"inputs": ["q", ""]}, "inputs.1"),
    ],
)
async def test_bad_group_arguments_are_tool_errors_naming_the_field(arguments: dict[str, Any], needle: str) -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        result = await session.call("create_task_group", arguments)
        assert session.emulator.state.run_count == 0
    assert result.is_error and needle in text_of(result)


async def test_an_unknown_group_is_a_tool_error() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        result = await session.call("get_task_group", {"task_group_id": "tgrp_nope", "wait_seconds": 0})
    assert result.is_error and "tgrp_nope" in text_of(result) and "create_task_group" in text_of(result)


async def test_the_cost_gate_applies_to_every_run_of_a_group() -> None:
    async with mcp_session(EmulatorConfig(instant=True), max_cost_usd=0.01) as session:
        result = await session.call("create_task_group", {"inputs": ["a", "b"], "processor": "pro"})
        assert session.emulator.state.run_count == 0
    assert result.is_error and "pro" in text_of(result)


async def test_adding_runs_that_may_have_been_created_names_the_group_to_check() -> None:
    fault = Fault(kind="status", method="POST", path="/v1/tasks/groups/*/runs", status=502)
    async with mcp_session(EmulatorConfig(instant=True, faults=[fault])) as session:
        result = await session.call("create_task_group", {"inputs": ["a"], "processor": "lite"})
        posts = [r for r in session.emulator.state.request_log if r.method == "POST" and r.path.endswith("/runs")]
    assert result.is_error and "tgrp_" in text_of(result) and "get_task_group" in text_of(result)
    assert len(posts) == 1  # not retried: a retry could add the runs twice
    assert "create_task_run" not in text_of(result)  # the group is what to check, not a single run


@pytest.mark.parametrize("stream", ["events", "runs"])
async def test_a_group_stream_cut_after_one_event_still_answers_with_the_group_and_lists_its_runs(
    stream: str,
) -> None:
    cut = Fault(kind="sse_cut", path=f"*/tasks/groups/*/{stream}", after_events=1)
    async with mcp_session(EmulatorConfig(speed=2000, faults=[cut])) as session:
        with anyio.fail_after(20):
            result = await session.call(
                "create_task_group", {"inputs": ["a", "b", "c"], "processor": "lite", "wait_seconds": 3}
            )
            listed = structured(await session.call("list_task_runs", {}))
        assert session.emulator.state.run_count == 3
    view = structured(result)
    assert view["task_group_id"].startswith("tgrp_") and len(view["run_ids"]) == 3
    assert sorted(run["run_id"] for run in listed["runs"]) == sorted(view["run_ids"])


async def test_a_lost_add_runs_answer_is_reconciled_from_the_group_on_the_next_try() -> None:
    lost = Fault(kind="drop_response", method="POST", path="/v1/tasks/groups/*/runs", times=1)
    arguments = {"inputs": ["a", "b"], "processor": "lite", "wait_seconds": 0}
    async with mcp_session(EmulatorConfig(frozen=True, faults=[lost])) as session:
        with anyio.fail_after(20):
            first = await session.call("create_task_group", arguments)
            again = await session.call("create_task_group", arguments)
        assert session.emulator.state.run_count == 2  # the lost add made its runs; the retry made none
    assert first.is_error and "tgrp_" in text_of(first)
    view = structured(again)
    assert view["task_group_id"] in text_of(first) and "nothing new was billed" in text_of(again)


async def test_a_group_let_through_as_a_repeat_sends_nothing_when_it_no_longer_repeats_one() -> None:
    store = SQLiteStore(MEMORY)
    groups = GroupService(
        waiter=Waiter(ProcessorTable(pace=20)), store=store, intents=Intents(store, window=600), page_budget_chars=8000
    )
    args = parse(CreateGroupArguments, {"inputs": ["a", "b"], "processor": "lite"})
    order = group_order(group_request(args, default_processor="lite"))
    async with emulator_client(EmulatorConfig(instant=True)) as (emulator, client):
        with pytest.raises(RepeatLapsedError, match="Nothing was created"):
            await groups.create(Caller(client, "alice"), order, wait=0, sink=None, repeat_only=True)
        groups_made = len(emulator.state.groups)
    assert groups_made == 0 and emulator.state.run_count == 0
    await store.close()
