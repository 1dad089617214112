"""Resources through a real MCP client: runs, a run, its whole report, a group, processors; owners kept apart."""

from __future__ import annotations

import json
from typing import Any, Literal

import anyio
import pytest
from mcp import MCPError
from mcp.types import ResourceLink, TextResourceContents

from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.models import TaskRun, TaskRunJsonOutput, TaskRunResult
from parallel_mcp.processors import PROCESSORS
from parallel_mcp.render import render_report
from tests.sample_outputs import all_urls, big_json_output, citation, report
from tests.support import Session, mcp_session, structured
from tests.test_multi_user import KEY_A, KEY_B, multi_user_server, user

pytestmark = pytest.mark.anyio

FIELDS = json.dumps(
    {"type": "object", "properties": {"founder": {"type": "string"}, "year": {"type": "string"}}, "required": []}
)


async def read(session: Session, uri: str) -> str:
    result = await session.mcp.read_resource(uri)
    (content,) = result.contents
    assert isinstance(content, TextResourceContents)
    return content.text


async def test_the_resources_and_templates_are_listed() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        listed = {str(r.uri): r.mime_type for r in (await session.mcp.list_resources()).resources}
        templates = {
            t.uri_template: t.mime_type for t in (await session.mcp.list_resource_templates()).resource_templates
        }
    assert listed == {"parallel://runs": "application/json", "parallel://processors": "application/json"}
    assert templates == {
        "parallel://runs/{run_id}": "application/json",
        "parallel://runs/{run_id}/report": "text/markdown",
        "parallel://groups/{group_id}": "application/json",
    }


async def test_a_completed_run_links_its_report_which_holds_the_whole_output_with_every_citation() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        result = await session.call("create_task_run", {"input": "Who founded Acme?", "output_schema": FIELDS})
        run_id = structured(result)["run_id"]
        (link,) = [block for block in result.content if isinstance(block, ResourceLink)]
        text = await read(session, str(link.uri))
        raw = await session.client.get_result(run_id, timeout=1)
    assert str(link.uri) == f"parallel://runs/{run_id}/report" and link.mime_type == "text/markdown"
    assert raw is not None
    assert text.startswith(f"# Task run {run_id}") and "[EMULATED]" in text
    assert isinstance(raw.output, TaskRunJsonOutput)
    for key, value in raw.output.content.items():
        assert f"## {key}" in text and str(value) in text
    for entry in raw.output.basis:
        for cited in entry.citations:
            assert cited.url in text


async def test_the_report_renders_a_huge_output_whole() -> None:
    output = big_json_output()
    run = TaskRun(run_id="trun_big", interaction_id="tint_1", status="completed", is_active=False, processor="ultra")
    text = render_report(TaskRunResult(run=run, output=output))
    assert all(url in text for url in all_urls(output))
    assert all(f"## {key}" in text for key in output.content)
    sources = text[text.index("## Sources") :]
    assert sources.count("\n[") == len(all_urls(output))  # every source numbered once
    assert "truncated" not in text


async def test_a_text_report_keeps_its_markdown_and_lists_its_sources_with_their_excerpts() -> None:
    output = report(12, linked=3)
    output.basis[0].citations.append(citation(99, excerpts=3))
    run = TaskRun(run_id="trun_text", interaction_id="tint_1", status="completed", is_active=False, processor="pro")
    text = render_report(TaskRunResult(run=run, output=output))
    assert output.content.strip() in text and "Excerpt 2 of source 99" in text
    assert all(url in text for url in all_urls(output))


async def test_a_run_reads_as_its_status_and_summary_and_the_runs_list_names_it() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        first = structured(await session.call("create_task_run", {"input": "First question?"}))["run_id"]
        second = structured(await session.call("create_task_run", {"input": "Second question?"}))["run_id"]
        found = json.loads(await read(session, f"parallel://runs/{first}"))
        listed = json.loads(await read(session, "parallel://runs"))
    assert found["run_id"] == first and found["status"] == "completed" and found["emulated"] is True
    assert found["report"] == f"parallel://runs/{first}/report" and "First question?" in found["summary"]
    assert [run["run_id"] for run in listed["runs"]] == [second, first]
    assert listed["runs"][0]["uri"] == f"parallel://runs/{second}"


async def test_an_active_runs_report_says_it_is_not_ready() -> None:
    async with mcp_session(EmulatorConfig(frozen=True)) as session:
        run_id = structured(await session.call("create_task_run", {"input": "q", "wait_seconds": 0}))["run_id"]
        text = await read(session, f"parallel://runs/{run_id}/report")
        status = json.loads(await read(session, f"parallel://runs/{run_id}"))
    assert "appears here once it completes" in text and status["is_active"] is True and "report" not in status


async def test_an_unknown_run_or_group_is_not_found() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        for uri in ("parallel://runs/trun_nope", "parallel://runs/trun_nope/report", "parallel://groups/tgrp_nope"):
            with pytest.raises(MCPError) as caught:
                await session.mcp.read_resource(uri)
            assert caught.value.error.code == -32602, uri


async def test_a_group_reads_as_its_status_and_rows() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        created = structured(await session.call("create_task_group", {"inputs": ["a", "b"], "processor": "lite"}))
        group = json.loads(await read(session, f"parallel://groups/{created['task_group_id']}"))
    assert group["task_group_id"] == created["task_group_id"] and group["num_task_runs"] == 2
    assert sorted(group["runs"]) == sorted(created["run_ids"])


async def test_processors_list_price_band_and_use() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        rows = json.loads(await read(session, "parallel://processors"))["processors"]
    assert [row["name"] for row in rows] == list(PROCESSORS)
    ultra8x = next(row for row in rows if row["name"] == "ultra8x")
    assert ultra8x["usd_per_run"] == 2.4 and ultra8x["latency_band"] == "5 min-2 h" and ultra8x["guidance"]


async def test_another_users_run_and_group_read_like_unknown_ones_over_http() -> None:
    with anyio.fail_after(30):
        async with (
            multi_user_server() as url,
            user(url, {"x-api-key": KEY_A}) as alice,
            user(url, {"x-api-key": KEY_B}) as bob,
        ):
            run = structured(await alice.call_tool("create_task_run", {"input": "q", "wait_seconds": 5}))["run_id"]
            group = structured(await alice.call_tool("create_task_group", {"inputs": ["a"], "wait_seconds": 5}))
            own = await alice.read_resource(f"parallel://runs/{run}/report")
            refused: list[int] = []
            for uri in (
                f"parallel://runs/{run}",
                f"parallel://runs/{run}/report",
                f"parallel://groups/{group['task_group_id']}",
            ):
                with pytest.raises(MCPError) as caught:
                    await bob.read_resource(uri)
                refused.append(caught.value.error.code)
            bobs: Any = json.loads(_text(await bob.read_resource("parallel://runs")))
    assert run in _text(own) and refused == [-32602, -32602, -32602] and bobs["runs"] == []


def _text(result: Any) -> str:
    (content,) = result.contents
    assert isinstance(content, TextResourceContents)
    return content.text


@pytest.mark.parametrize(("mode", "linked"), [("auto", True), ("legacy", False)])
async def test_only_2026_requests_get_the_report_link(mode: Literal["auto", "legacy"], linked: bool) -> None:
    # Some 2025-era client libraries (the Anthropic SDK's MCP helper) refuse a resource_link block outright.
    async with mcp_session(EmulatorConfig(instant=True), mode=mode) as session:
        created = await session.call("create_task_run", {"input": "Who founded Acme?"})
        read = await session.call("get_task_run", {"run_id": structured(created)["run_id"]})
    for result in (created, read):
        assert [block.type for block in result.content] == (["text", "resource_link"] if linked else ["text"])
