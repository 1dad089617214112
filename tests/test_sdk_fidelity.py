"""The official `parallel-web` SDK, with strict response validation, drives the emulator over loopback.

If the emulator answers anything the SDK's models reject, these tests fail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio
import parallel
import pytest
from parallel.types import JsonSchemaParam, TaskRunJsonOutput, TaskSpecParam

from parallel_mcp.emulator import ManualClock
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator

pytestmark = pytest.mark.anyio

API_KEY = "sdk-key"
OUTPUT_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "capital": {"type": "string", "description": "Capital city"},
        "population": {"type": ["integer", "null"], "description": "Population of the capital"},
    },
    "required": ["capital", "population"],
    "additionalProperties": False,
}
INPUT_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"country": {"type": "string"}},
    "required": ["country"],
    "additionalProperties": False,
}


@asynccontextmanager
async def sdk(
    clock: ManualClock | None = None, **config: object
) -> AsyncGenerator[tuple[RunningEmulator, parallel.AsyncParallel]]:
    config_model = EmulatorConfig.model_validate({"api_key": API_KEY, **config})
    async with serve_emulator(config_model, clock=clock) as emu:
        client = parallel.AsyncParallel(
            api_key=API_KEY, base_url=emu.base_url, max_retries=0, _strict_response_validation=True
        )
        async with client:
            yield emu, client


async def test_the_sdk_creates_with_every_field_and_reads_the_run_back() -> None:
    async with sdk(frozen=True, webhook_secret="whsec") as (emu, client):
        first = await client.task_run.create(input="warm-up", processor="lite")
        run = await client.task_run.create(
            input={"country": "France"},
            processor="core-fast",
            task_spec=TaskSpecParam(
                output_schema=JsonSchemaParam(type="json", json_schema=OUTPUT_SCHEMA),
                input_schema=JsonSchemaParam(type="json", json_schema=INPUT_SCHEMA),
            ),
            metadata={"team": "geo", "attempt": 1, "urgent": True},
            source_policy={
                "include_domains": ["wikipedia.org", ".gov"],
                "exclude_domains": ["reddit.com"],
                "after_date": dt.date(2024, 1, 1),
            },
            advanced_settings={"location": "fr"},
            previous_interaction_id=first.interaction_id,
            mcp_servers=[
                {"name": "offline", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer t0ken"}}
            ],
            enable_events=True,
            webhook={"url": "http://127.0.0.1:9/hook", "event_types": ["task_run.status"]},
            memory_scope_key="geo-team",
            betas=["mcp-server-2025-07-17", "events-sse-2025-07-24", "webhook-2025-08-12"],
        )
        assert (
            run.status == "queued" and run.is_active and run.metadata == {"team": "geo", "attempt": 1, "urgent": True}
        )

        again = await client.task_run.retrieve(run.run_id)
        assert again.run_id == run.run_id and again.processor == "core-fast"

        echoed = await client.task_run.retrieve_input(run.run_id)
        assert echoed.input == {"country": "France"} and echoed.memory_scope_key == "geo-team"
        assert echoed.mcp_servers is not None and echoed.mcp_servers[0].headers is None
        assert echoed.source_policy is not None and echoed.source_policy.after_date == dt.date(2024, 1, 1)
        assert echoed.previous_interaction_id == first.interaction_id

        record = emu.state.runs[run.run_id]
        with anyio.fail_after(10):
            await record.mcp_done.wait()
        emu.state.finish(run.run_id)
        result = await client.task_run.result(run.run_id, api_timeout=5)
        assert result.run.status == "completed"
        assert isinstance(result.output, TaskRunJsonOutput) and "capital" in result.output.content
        assert result.run.warnings and any("offline" in w.message for w in result.run.warnings)


async def test_the_sdk_sees_408_as_an_api_status_error_while_a_run_is_active() -> None:
    clock = ManualClock()
    async with sdk(clock=clock, frozen=True) as (_, client):
        run = await client.task_run.create(input="slow question", processor="pro")
        caught: list[parallel.APIStatusError] = []

        async def wait_for_result() -> None:
            with pytest.raises(parallel.APIStatusError) as error:
                await client.task_run.result(run.run_id, api_timeout=30)
            caught.append(error.value)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_for_result)
                await clock.wait_for_sleepers()
                clock.advance(30)
        assert caught[0].status_code == 408


async def test_the_sdk_maps_errors_to_its_exceptions() -> None:
    async with sdk(frozen=True) as (emu, client):
        with pytest.raises(parallel.PermissionDeniedError):
            await client.task_run.create(input="q", processor="warp-speed")
        with pytest.raises(parallel.UnprocessableEntityError):
            await client.task_run.create(input="q", processor="lite", metadata={"k" * 17: "v"})
        with pytest.raises(parallel.NotFoundError):
            await client.task_run.retrieve("trun_0123456789abcdef0123456789abcdef")
        run = await client.task_run.create(input="q", processor="lite")
        emu.state.fail(run.run_id, "it broke")
        with pytest.raises(parallel.NotFoundError):
            await client.task_run.result(run.run_id, api_timeout=1)
        bad = parallel.AsyncParallel(api_key="wrong", base_url=client.base_url, max_retries=0)
        async with bad:
            with pytest.raises(parallel.AuthenticationError):
                await bad.task_run.retrieve(run.run_id)


async def test_the_sdk_reads_a_run_event_stream_to_its_final_output() -> None:
    async with sdk(frozen=True) as (emu, client):
        run = await client.task_run.create(
            input="Write a short note on tides", processor="pro", task_spec={"output_schema": "A short note"}
        )
        emu.state.finish(run.run_id)
        with anyio.fail_after(10):
            stream = await client.task_run.events(run.run_id)
            async with stream:
                events = [event async for event in stream]
        kinds = [event.type for event in events]
        assert kinds[0] == "task_run.state" and "task_run.progress_stats" in kinds
        final = events[-1]
        assert final.type == "task_run.state" and final.run.status == "completed"
        assert final.output is not None and final.output.type == "text"


async def test_the_sdk_drives_a_task_group_end_to_end() -> None:
    async with sdk(frozen=True) as (emu, client):
        group = await client.task_group.create(metadata={"batch": "7"})
        assert group.task_group_id.startswith("tgrp_") and group.status.num_task_runs == 0
        added = await client.task_group.add_runs(
            group.task_group_id,
            inputs=[{"input": f"Company {i}", "processor": "lite"} for i in range(3)],
            default_task_spec=TaskSpecParam(output_schema=JsonSchemaParam(type="json", json_schema=OUTPUT_SCHEMA)),
            refresh_status=True,
            betas=["events-sse-2025-07-24"],
        )
        assert len(added.run_ids) == 3 and added.status.num_task_runs == 3
        for run_id in added.run_ids:
            emu.state.finish(run_id)
        status = await client.task_group.retrieve(group.task_group_id)
        assert status.status.is_active is False and status.status.task_run_status_counts == {"completed": 3}

        with anyio.fail_after(10):
            events = await client.task_group.events(group.task_group_id, api_timeout=5)
            async with events:
                seen = [event.type async for event in events]
        assert seen.count("task_run.state") == 3 and seen[-1] == "task_group_status"

        with anyio.fail_after(10):
            runs = await client.task_group.get_runs(group.task_group_id, include_input=True, include_output=True)
            async with runs:
                dumped = [event async for event in runs]
        assert len(dumped) == 3
        for event in dumped:
            assert event.type == "task_run.state" and event.input is not None and event.output is not None

        one = await client.task_group.retrieve_run(added.run_ids[0], task_group_id=group.task_group_id)
        assert one.task_group_id == group.task_group_id and one.status == "completed"


async def test_the_sdk_gets_422_for_beta_only_fields_sent_without_their_betas() -> None:
    async with sdk(frozen=True) as (emu, client):
        with pytest.raises(parallel.UnprocessableEntityError) as on_create:
            await client.task_run.create(
                input="q", processor="lite", mcp_servers=[{"name": "crm", "url": "https://crm.example/mcp"}]
            )
        assert "mcp-server-2025-07-17" in str(on_create.value) and "mcp_servers" in str(on_create.value)
        group = await client.task_group.create()
        with pytest.raises(parallel.UnprocessableEntityError) as on_add:
            await client.task_group.add_runs(
                group.task_group_id,
                inputs=[{"input": "q", "processor": "lite", "webhook": {"url": "https://hooks.example/run"}}],
            )
        assert "webhook-2025-08-12" in str(on_add.value)
        added = await client.task_group.add_runs(
            group.task_group_id,
            inputs=[{"input": "q", "processor": "lite", "webhook": {"url": "https://hooks.example/run"}}],
            betas=["webhook-2025-08-12"],
        )
        assert len(added.run_ids) == 1 and emu.state.run_count == 1
