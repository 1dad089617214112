"""Arguments as models send them, strict or not: parsed into the wire body, or refused in one format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parallel_mcp.arguments import (
    CreateGroupArguments,
    CreateRunArguments,
    GetRunArguments,
    group_request,
    object_id,
    parse,
    run_body,
    schema_argument,
)
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.errors import ArgumentError
from parallel_mcp.models import JsonSchema, TextSchema
from tests.support import mcp_session, text_of

pytestmark = pytest.mark.anyio

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "founded": {"type": "integer"}},
    "required": ["name", "founded"],
    "additionalProperties": False,
}


def body(**arguments: Any) -> Any:
    return run_body(parse(CreateRunArguments, {"input": "q", **arguments}), default_processor="base")


def refused(**arguments: Any) -> str:
    with pytest.raises(ArgumentError) as caught:
        body(**arguments)
    return str(caught.value)


def test_an_output_schema_sent_as_json_text_is_taken_as_a_json_schema_never_as_a_description() -> None:
    for sent in (json.dumps(PERSON), json.dumps(PERSON, indent=2), PERSON):
        spec = body(output_schema=sent).task_spec
        assert spec is not None and isinstance(spec.output_schema, JsonSchema)
        assert spec.output_schema.json_schema == PERSON


def test_an_output_schema_in_the_apis_own_shape_is_taken_as_it_is() -> None:
    spec = body(output_schema={"type": "json", "json_schema": PERSON}).task_spec
    assert spec is not None and isinstance(spec.output_schema, JsonSchema)
    text = body(output_schema={"type": "text", "description": "a memo"}).task_spec
    assert text is not None and isinstance(text.output_schema, TextSchema)


def test_plain_text_is_a_report_description_and_auto_and_text_are_kinds() -> None:
    report = body(output_schema="A one-page memo on the market").task_spec
    assert report is not None and report.model_dump(exclude_none=True)["output_schema"] == {
        "type": "text",
        "description": "A one-page memo on the market",
    }
    for kind in ("auto", "text"):
        spec = body(output_schema=kind).task_spec
        assert spec is not None and spec.model_dump(exclude_none=True)["output_schema"] == {"type": kind}


def test_json_text_that_does_not_parse_is_an_error_naming_the_field_not_a_silent_report() -> None:
    said = refused(output_schema='{"type": "object", "properties": {')
    assert said.startswith("Invalid arguments: output_schema: not valid JSON")


def test_metadata_headers_and_settings_arrive_as_json_text_or_objects() -> None:
    sent = body(
        metadata='{"ticket": "A-1", "n": 2}',
        advanced_settings={"location": "gb"},
        mcp_servers=[{"name": "crm", "url": "https://crm.example/mcp", "headers": '{"X-Token": "t"}'}],
        source_policy={"include_domains": ["example.com"], "exclude_domains": [], "after_date": ""},
        webhook_url="https://hooks.example/run",
    )
    assert sent.metadata == {"ticket": "A-1", "n": 2}
    assert sent.advanced_settings is not None and sent.advanced_settings.location == "gb"
    assert sent.mcp_servers is not None and sent.mcp_servers[0].headers == {"X-Token": "t"}
    assert sent.source_policy is not None and sent.source_policy.model_dump(exclude_none=True) == {
        "include_domains": ["example.com"]
    }
    assert sent.webhook is not None and sent.webhook.event_types == ["task_run.status"]


def test_strict_empty_values_mean_unset() -> None:
    sent = body(
        metadata="",
        source_policy={"include_domains": [], "exclude_domains": [], "after_date": ""},
        mcp_servers=[],
        output_schema="",
    )
    assert sent.metadata is None and sent.source_policy is None and sent.mcp_servers is None
    assert sent.task_spec is None


def test_an_object_input_arrives_as_json_text_or_as_an_object() -> None:
    assert body(input='{"company": "Acme"}').input == {"company": "Acme"}
    assert body(input={"company": "Acme"}).input == {"company": "Acme"}
    assert body(input=["decoded", "by", "the", "sdk"]).input == '["decoded", "by", "the", "sdk"]'


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"metadata": '{"a_very_long_metadata_key": 1}'}, "metadata: metadata key"),
        ({"metadata": "[1, 2]"}, "metadata: must be a JSON object"),
        ({"output_schema": {"type": "array"}}, "output_schema: output_schema.json_schema is not accepted"),
        ({"webhook_url": "ftp://x"}, "webhook_url: Value error"),
        ({"processor": "mega"}, "processor: 'mega' is not a processor"),
        ({"wait_seconds": 500}, "wait_seconds: Input should be less than or equal to 50"),
        ({"input_schema": '{"type":"object"}'}, "input_schema: needs an output_schema too"),
    ],
)
def test_every_argument_error_names_its_field_in_one_format_without_library_links(
    arguments: dict[str, Any], expected: str
) -> None:
    said = refused(**arguments)
    assert said.startswith("Invalid arguments: ") and expected.split(": Value error")[0] in said
    assert "pydantic" not in said and "https://" not in said and "Value error" not in said


def test_header_values_are_never_quoted_in_errors() -> None:
    secret = "Bearer sk-live-VERY-SECRET"
    said = refused(mcp_servers=[{"name": "a", "url": "https://x/mcp", "headers": {"Authorization": [secret]}}])
    also = refused(mcp_servers=[{"name": "a", "url": "https://x/mcp", "headers": secret + "{"}])
    assert "sk-live" not in said + also and "mcp_servers.0.headers" in said + also


def test_a_group_takes_rows_as_text_or_objects_and_one_shared_schema() -> None:
    args = parse(
        CreateGroupArguments,
        {"inputs": ['{"company": "Acme"}', {"company": "Globex"}, "Who runs Initech?"], "output_schema": PERSON},
    )
    request = group_request(args, default_processor="core")
    assert [item.input for item in request.inputs] == [{"company": "Acme"}, {"company": "Globex"}, "Who runs Initech?"]
    assert request.processor == "core" and request.default_task_spec is not None
    assert request.price == pytest.approx(0.075)


@pytest.mark.parametrize("value", ["", " ", "é" * 50_000, "x" * 201, "trun_1/../../admin", "trun 1", "a\nb"])
def test_an_id_that_cannot_be_ours_is_refused_before_it_reaches_a_url(value: str) -> None:
    with pytest.raises(ArgumentError, match="run_id: not an id"):
        object_id(value, "run_id", looks_like="trun_...")
    assert object_id(" trun_0123abc ", "run_id", looks_like="trun_...") == "trun_0123abc"


def test_an_unknown_fields_filter_and_a_negative_offset_are_argument_errors() -> None:
    with pytest.raises(ArgumentError, match="offset: Input should be greater than or equal to 0"):
        parse(GetRunArguments, {"run_id": "trun_1", "offset": -1})


def test_schema_argument_refuses_auto_as_an_input_schema() -> None:
    assert schema_argument("auto", "output_schema", auto=True) == {"type": "auto"}
    assert schema_argument("auto", "input_schema", auto=False) == {"type": "text", "description": "auto"}


async def test_huge_ids_get_a_clear_tool_error_not_a_bare_one() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        for tool, field in (("get_task_run", "run_id"), ("get_task_group", "task_group_id")):
            result = await session.call(tool, {field: "é" * 50_000 if field == "run_id" else "g" * 1_000_000})
            said = text_of(result)
            assert result.is_error and f"{field}: not an id" in said and "Error executing tool" not in said[40:]


def test_an_argument_the_tool_does_not_take_is_refused_by_name_with_the_closest_one_it_does() -> None:
    with pytest.raises(ArgumentError) as refused:
        parse(CreateRunArguments, {"input": "q", "procesor": "pro", "max_cost": 1, "timeout": None})
    said = str(refused.value)
    assert "procesor: not an argument of this tool (did you mean processor?" in said
    assert "max_cost: not an argument of this tool (it takes " in said and "wait_seconds" in said
    assert "timeout" not in said  # a null one is an absent one


async def test_a_misspelt_argument_bills_nothing_and_says_what_was_meant() -> None:
    async with mcp_session(EmulatorConfig(instant=True)) as session:
        result = await session.call("create_task_run", {"input": "q", "procesor": "ultra8x", "wait_seconds": 0})
        runs = session.emulator.state.run_count
        listed = await session.call("list_task_runs", {"limit": 5, "active": True})
    assert result.is_error and "did you mean processor?" in text_of(result) and runs == 0
    assert listed.is_error and "did you mean active_only?" in text_of(listed)


def test_a_misspelt_key_inside_an_argument_is_refused_by_its_path() -> None:
    arguments = {
        "input": "q",
        "source_policy": {"include_domain": ["example.com"]},
        "mcp_servers": [{"name": "a", "url": "https://mcp.example.com/mcp", "header": {"x": "y"}}],
    }
    with pytest.raises(ArgumentError) as refused:
        parse(CreateRunArguments, arguments)
    said = str(refused.value)
    assert "source_policy.include_domain: Extra inputs are not permitted" in said
    assert "mcp_servers.0.header: Extra inputs are not permitted" in said


def test_an_mcp_server_in_the_apis_own_shape_with_its_type_is_accepted() -> None:
    server = {"type": "url", "name": "a", "url": "https://mcp.example.com/mcp"}
    args = parse(CreateRunArguments, {"input": "q", "mcp_servers": [server]})
    assert args.mcp_servers is not None and args.mcp_servers[0].url == server["url"]
