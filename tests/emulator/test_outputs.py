"""The emulator's outputs: deterministic, schema-conforming, obviously invented, and parseable by the SDK."""

import itertools
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, cast
from urllib.parse import urlsplit

import parallel.types as sdk
import pytest
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator

from parallel_mcp.emulator.outputs import ProgressStep, build_output, progress_script
from parallel_mcp.models import McpToolCall, TaskRunInput, TaskRunJsonOutput, TaskRunResult, TaskRunTextOutput
from parallel_mcp.processors import PROCESSORS
from parallel_mcp.schema_rules import check_output_schema

QUESTION = "What is the state of grid-scale battery storage in Europe?"
MESSAGE_KINDS = {"plan", "search", "result", "exec_status", "tool_call"}
INLINE_LINK = re.compile(r"\[([^\]]+)\]\((https://[^)\s]+)\)")

COMPANY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "company_name": {"type": "string", "description": "Legal name"},
        "website": {"type": "string"},
        "founded_year": {"type": "integer"},
        "employee_count": {"type": ["integer", "null"]},
        "annual_revenue_usd": {"type": "number"},
        "is_public": {"type": "boolean"},
        "status": {"type": "string", "enum": ["active", "acquired", "defunct"]},
        "ceo": {"type": ["string", "null"], "description": "Current CEO"},
        "ticker": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "products": {"type": "array", "items": {"type": "string"}},
        "executives": {"type": "array", "items": {"$ref": "#/$defs/Person"}},
        "headquarters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
            "required": ["city", "country"],
            "additionalProperties": False,
        },
        "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
    },
    "required": [
        "company_name",
        "website",
        "founded_year",
        "employee_count",
        "annual_revenue_usd",
        "is_public",
        "status",
        "ceo",
        "ticker",
        "products",
        "executives",
        "headquarters",
        "risk_level",
    ],
    "additionalProperties": False,
    "$defs": {
        "Person": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "title": {"type": "string"}},
            "required": ["name", "title"],
            "additionalProperties": False,
        }
    },
}


def make(
    input: str | dict[str, Any] = QUESTION,
    processor: str = "core",
    output_schema: object = None,
    **extra: Any,
) -> TaskRunInput:
    body: dict[str, Any] = {"input": input, "processor": processor, **extra}
    if output_schema is not None:
        body["task_spec"] = {"output_schema": output_schema}
    return TaskRunInput.model_validate(body)


def json_request(input: str | dict[str, Any] = "Acme Robotics", **extra: Any) -> TaskRunInput:
    return make(input, "core", {"type": "json", "json_schema": COMPANY_SCHEMA}, **extra)


def all_citation_urls(output: TaskRunJsonOutput | TaskRunTextOutput) -> list[str]:
    return [c.url for basis in output.basis for c in basis.citations]


def json_output(run_input: TaskRunInput) -> TaskRunJsonOutput:
    output = build_output(run_input)
    assert isinstance(output, TaskRunJsonOutput)
    return output


def text_output(run_input: TaskRunInput) -> TaskRunTextOutput:
    output = build_output(run_input)
    assert isinstance(output, TaskRunTextOutput)
    return output


def assert_conforms(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` unless `instance` conforms to `schema` (draft 2020-12)."""
    validator(schema).validate(instance)


def validator(schema: dict[str, Any]) -> Validator:
    # Typed as the Validator protocol: the concrete jsonschema class has no annotations.
    return Draft202012Validator(schema)


def lookup(content: dict[str, Any], path: str) -> object:
    """The value at a basis dot path such as `key_players.0.name`."""
    node: object = content
    for part in path.split("."):
        if isinstance(node, list):
            node = cast(list[object], node)[int(part)]
        else:
            assert isinstance(node, dict), path
            node = cast(dict[str, object], node)[part]
    return node


REQUESTS: dict[str, TaskRunInput] = {
    "lite-auto": make(processor="lite"),
    "core-text": make(output_schema={"type": "text"}),
    "core-bare-string": make(output_schema="A one-page memo for a CFO"),
    "core-json": json_request(),
    "core-json-object-input": json_request({"company": "Acme Robotics", "country": "Norway"}),
    "pro-auto": make(processor="pro"),
    "pro-fast-text": make(processor="pro-fast", output_schema={"type": "text", "description": "Bullet points"}),
    "ultra-explicit-auto": make(processor="ultra", output_schema={"type": "auto"}),
    "ultra8x-auto": make(processor="ultra8x"),
    "base-json-with-domains": json_request(source_policy={"include_domains": ["sec.gov", ".edu"]}),
}


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_the_same_request_gives_an_identical_output(request_name: str) -> None:
    run_input = REQUESTS[request_name]
    again = TaskRunInput.model_validate(run_input.model_dump(mode="json"))
    assert build_output(run_input).model_dump() == build_output(again).model_dump()
    assert progress_script(run_input) == progress_script(again)


def test_the_output_does_not_depend_on_the_process_hash_seed() -> None:
    code = (
        "from parallel_mcp.emulator.outputs import build_output, progress_script;"
        "from parallel_mcp.models import TaskRunInput;"
        f"r = TaskRunInput(input={QUESTION!r}, processor='pro');"
        "print(build_output(r).model_dump_json() + repr(progress_script(r)))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    run_input = make(processor="pro")
    assert outputs == {build_output(run_input).model_dump_json() + repr(progress_script(run_input)) + "\n"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (make("Battery storage in Europe"), make("Battery storage in Asia")),
        (make(processor="pro"), make(processor="pro-fast")),
        (json_request("Acme Robotics"), json_request("Globex Corporation")),
        (json_request(), json_request(source_policy={"exclude_domains": ["acme-journal.example"]})),
    ],
    ids=["input", "processor", "json-input", "source-policy"],
)
def test_a_different_request_gives_a_different_output(first: TaskRunInput, second: TaskRunInput) -> None:
    assert build_output(first).model_dump() != build_output(second).model_dump()


def test_metadata_and_webhook_do_not_change_the_output() -> None:
    plain = make(processor="pro")
    decorated = make(processor="pro", metadata={"ticket": "T-1"}, webhook={"url": "https://hooks.example/x"})
    assert build_output(plain) == build_output(decorated)


# --- json schemas -----------------------------------------------------------------------------


@pytest.mark.parametrize("company", ["Acme Robotics", "Globex", "Initech", "Umbrella Corp", "Hooli", "Vandelay"])
def test_json_content_validates_against_the_schema_with_every_property_present(company: str) -> None:
    output = json_output(json_request(company))
    assert_conforms(output.content, COMPANY_SCHEMA)
    assert list(output.content) == list(COMPANY_SCHEMA["properties"])
    assert set(output.content["headquarters"]) == {"city", "country"}
    assert 1 <= len(output.content["products"]) <= 3
    for person in output.content["executives"]:
        assert set(person) == {"name", "title"}
    assert output.output_schema is None


def test_json_strings_mention_the_input() -> None:
    output = json_output(json_request("Zephyr Turbines"))
    strings = [v for v in output.content.values() if isinstance(v, str)]
    assert any("Zephyr" in s for s in strings)


def test_enum_values_are_honoured_and_vary_between_inputs() -> None:
    statuses = {json_output(json_request(f"Company number {i}")).content["status"] for i in range(30)}
    assert statuses <= {"active", "acquired", "defunct"}
    assert len(statuses) > 1


def test_optional_properties_are_present_too() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "nickname": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"],
    }
    output = json_output(make("Ada Lovelace", "base", {"type": "json", "json_schema": schema}))
    assert set(output.content) == {"name", "nickname", "age"}
    assert_conforms(output.content, schema)


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "properties": {
                "levels": {
                    "type": "object",
                    "properties": {
                        "deeper": {
                            "type": "object",
                            "properties": {"flags": {"type": "array", "items": {"type": "boolean"}}},
                        }
                    },
                },
                "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
                "fixed": {"const": "v1"},
                "ratio": {"type": "number"},
                "either": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
                "merged": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}]},
                "untyped_list": {"items": {"type": "string"}},
                "free_map": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        {
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/Node"}},
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {"label": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
                }
            },
        },
    ],
    ids=["assorted-keywords", "recursive-ref"],
)
def test_unusual_but_valid_schemas_still_get_conforming_content(schema: dict[str, Any]) -> None:
    output = json_output(make("Edge cases", "base", {"type": "json", "json_schema": schema}))
    assert_conforms(output.content, schema)


def test_json_basis_has_one_entry_per_field_plus_one_per_array_element() -> None:
    output = json_output(json_request())
    fields = [b.field for b in output.basis]
    expected: list[str] = []
    for key, value in output.content.items():
        expected.append(key)
        if isinstance(value, list):
            expected += [f"{key}.{i}" for i in range(len(cast(list[object], value)))]
    assert fields == expected
    for basis in output.basis:
        assert 1 <= len(basis.citations) <= 3
        assert basis.confidence in {"low", "medium", "high"}
        assert "emulat" in basis.reasoning.lower()
        for citation in basis.citations:
            assert citation.title
            assert citation.excerpts


# --- sources ----------------------------------------------------------------------------------


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_citations_are_on_invented_domains_under_a_reserved_tld_or_the_included_ones(request_name: str) -> None:
    run_input = REQUESTS[request_name]
    policy = run_input.source_policy
    allowed = (".gov", ".edu") if policy and policy.include_domains else (".example",)
    urls = all_citation_urls(build_output(run_input))
    assert urls
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme == "https"
        assert parts.hostname is not None
        assert parts.hostname.endswith(allowed), url


def test_include_domains_are_used_as_given() -> None:
    policy = {"include_domains": ["sec.gov", "*.reuters.com", "docs.python.org/3", ".edu"]}
    hosts_and_paths = {
        (urlsplit(u).hostname, urlsplit(u).path.split("/")[1])
        for u in all_citation_urls(build_output(make(processor="ultra", source_policy=policy)))
    }
    hosts = {host for host, _ in hosts_and_paths}
    assert {"sec.gov", "reuters.com", "docs.python.org"} <= hosts
    assert all(path == "3" for host, path in hosts_and_paths if host == "docs.python.org")
    assert any(host is not None and host.endswith(".edu") for host in hosts)
    assert hosts <= {"sec.gov", "reuters.com", "docs.python.org"} | {h for h in hosts if h and h.endswith(".edu")}


def test_exclude_domains_are_avoided() -> None:
    base = all_citation_urls(build_output(make(processor="ultra")))
    excluded_host = urlsplit(base[0]).hostname
    assert excluded_host is not None
    urls = all_citation_urls(build_output(make(processor="ultra", source_policy={"exclude_domains": [excluded_host]})))
    assert urls
    assert all(urlsplit(u).hostname != excluded_host for u in urls)


def test_excluding_the_reserved_tld_moves_sources_to_another_reserved_tld() -> None:
    urls = all_citation_urls(build_output(make(processor="pro", source_policy={"exclude_domains": [".example"]})))
    assert urls
    assert all((urlsplit(u).hostname or "").endswith(".test") for u in urls)


def test_exclude_domains_are_ignored_when_include_domains_are_set() -> None:
    policy = {"include_domains": ["who.int"], "exclude_domains": ["who.int"]}
    urls = all_citation_urls(build_output(make(processor="pro", source_policy=policy)))
    assert {urlsplit(u).hostname for u in urls} == {"who.int"}


# --- text -------------------------------------------------------------------------------------


@pytest.mark.parametrize("request_name", ["core-text", "core-bare-string", "pro-fast-text"])
def test_a_text_report_is_markdown_with_inline_citations_listed_in_the_basis(request_name: str) -> None:
    output = text_output(REQUESTS[request_name])
    assert output.content.startswith("# ")
    assert "\n## " in output.content
    assert "emulated" in output.content.lower()
    linked = {url for _, url in INLINE_LINK.findall(output.content)}
    assert len(linked) >= 3
    assert [b.field for b in output.basis] == ["output"]
    assert set(all_citation_urls(output)) == linked


def test_a_text_report_answers_the_question_and_echoes_the_requested_format() -> None:
    content = text_output(make(output_schema="A one-page memo for a CFO")).content
    assert QUESTION in content
    assert "A one-page memo for a CFO" in content


def test_higher_tiers_write_longer_reports() -> None:
    lengths = [
        len(text_output(make(processor=p, output_schema={"type": "text"})).content) for p in ("lite", "pro", "ultra8x")
    ]
    assert lengths == sorted(lengths)
    assert lengths[0] < lengths[2]


@pytest.mark.parametrize("processor", ["lite", "base-fast", "core", "core2x"])
@pytest.mark.parametrize("output_schema", [None, {"type": "auto"}], ids=["no-spec", "auto"])
def test_lower_tiers_answer_auto_requests_with_short_text(processor: str, output_schema: object) -> None:
    output = text_output(make(processor=processor, output_schema=output_schema))
    assert len(output.content) < 1000
    assert "emulat" in output.content.lower()
    assert [b.field for b in output.basis] == ["output"]
    assert INLINE_LINK.search(output.content)


# --- auto -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("processor", "low", "high"),
    [
        ("pro", 15, 30),
        ("pro-fast", 15, 30),
        ("ultra", 35, 50),
        ("ultra2x", 55, 70),
        ("ultra4x", 85, 100),
        ("ultra8x", 110, 140),
    ],
)
def test_auto_output_invents_a_schema_sized_to_the_tier(processor: str, low: int, high: int) -> None:
    output = json_output(make(processor=processor))
    assert output.output_schema is not None
    Draft202012Validator.check_schema(output.output_schema)
    assert_conforms(output.content, output.output_schema)
    assert check_output_schema(output.output_schema).errors == []
    assert low <= len(output.basis) <= high
    assert "emulated" in json.dumps(output.content).lower()


def test_auto_basis_uses_dot_paths_that_exist_in_the_content() -> None:
    output = json_output(make(processor="ultra2x"))
    fields = [b.field for b in output.basis]
    assert len(set(fields)) == len(fields)
    assert any(re.fullmatch(r"\w+\.\d+", f) for f in fields)
    assert any(re.fullmatch(r"\w+\.[a-z_]+", f) for f in fields)
    for field in fields:
        lookup(output.content, field)
    for key in output.content:
        assert key in fields


def test_ultra8x_auto_output_is_as_large_as_a_documented_real_run() -> None:
    output = json_output(make(processor="ultra8x"))
    assert len(output.basis) >= 110
    assert sum(len(b.citations) for b in output.basis) >= 550


def test_ultra8x_auto_output_builds_well_under_fifty_milliseconds() -> None:
    run_input = make(processor="ultra8x")
    timings: list[float] = []
    for _ in range(5):
        start = time.perf_counter()
        build_output(run_input)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05


# --- compatibility ----------------------------------------------------------------------------


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_every_output_parses_as_our_models_and_the_sdk_models(request_name: str) -> None:
    output = build_output(REQUESTS[request_name])
    wire = json.loads(output.model_dump_json())
    sdk_type = sdk.TaskRunJsonOutput if output.type == "json" else sdk.TaskRunTextOutput
    theirs = sdk_type.model_validate(wire)
    assert theirs.model_dump(mode="json", exclude_none=True) == output.model_dump(mode="json", exclude_none=True)
    run = {"run_id": "trun_1", "interaction_id": "trun_1", "status": "completed", "is_active": False}
    result = {"run": run | {"processor": REQUESTS[request_name].processor}, "output": wire}
    assert TaskRunResult.model_validate(result).output == output
    assert sdk.TaskRunResult.model_validate(result).output.type == output.type


@pytest.mark.parametrize("request_name", ["core-text", "core-json", "pro-auto", "lite-auto"])
def test_mcp_tool_calls_are_passed_through(request_name: str) -> None:
    calls = [
        McpToolCall(
            tool_call_id="call_1", server_name="crm", tool_name="lookup", arguments='{"q": "acme"}', content="{}"
        )
    ]
    output = build_output(REQUESTS[request_name], mcp_tool_calls=calls)
    assert output.mcp_tool_calls == calls
    assert build_output(REQUESTS[request_name]).mcp_tool_calls is None


# --- progress scripts -------------------------------------------------------------------------


def check_script(script: list[ProgressStep]) -> None:
    ats = [step.at for step in script]
    assert all(0 < at < 1 for at in ats)
    assert all(a < b for a, b in itertools.pairwise(ats))
    assert script[0].kind == "plan"
    assert (script[-1].kind, script[-1].message) == ("exec_status", "Finalizing")
    stats = [step for step in script if step.kind == "stats"]
    assert len(stats) >= 2
    meters = [s.progress_meter for s in stats]
    assert all(m is not None and 0 <= m <= 100 for m in meters)
    assert meters == sorted(meters, key=lambda m: m or 0.0)
    assert len(set(meters)) == len(meters)
    for previous, step in itertools.pairwise(stats):
        assert (step.num_sources_considered or 0) >= (previous.num_sources_considered or 0)
        assert (step.num_sources_read or 0) >= (previous.num_sources_read or 0)
    for step in stats:
        assert step.message is None
        assert (step.num_sources_read or 0) <= (step.num_sources_considered or 0)
        assert step.sources_read_sample
        assert all(url.startswith("https://") for url in step.sources_read_sample)
    for step in script:
        if step.kind != "stats":
            assert step.kind in MESSAGE_KINDS
            assert step.message
            assert step.progress_meter is None


@pytest.mark.parametrize("processor", sorted(PROCESSORS))
def test_every_processor_gets_a_well_formed_progress_script(processor: str) -> None:
    check_script(progress_script(make(processor=processor)))


def test_searches_are_derived_from_the_input() -> None:
    script = progress_script(make("Offshore wind permitting in Denmark", "pro"))
    searches = [s.message or "" for s in script if s.kind == "search"]
    assert len(searches) >= 3
    assert all("offshore wind permitting" in s for s in searches)
    assert len(set(searches)) == len(searches)


def test_higher_tiers_take_more_steps() -> None:
    tiers = ["lite", "base", "core", "core2x", "pro", "ultra", "ultra2x", "ultra4x", "ultra8x"]
    counts = [len(progress_script(make(processor=t))) for t in tiers]
    assert counts == sorted(counts)
    assert counts[0] < counts[-1]


def test_there_are_no_tool_call_steps_without_mcp_servers() -> None:
    assert all(step.kind != "tool_call" for step in progress_script(make(processor="ultra")))


SERVERS = [
    {"name": "crm", "url": "https://crm.example/mcp", "allowed_tools": ["lookup_account"]},
    {"name": "wiki", "url": "https://wiki.example/mcp"},
]


@pytest.mark.parametrize(("processor", "calls"), [("lite", 1), ("core", 1), ("pro", 2), ("ultra8x-fast", 2)])
def test_tool_call_steps_name_the_servers_and_respect_the_tier_limit(processor: str, calls: int) -> None:
    script = progress_script(make(processor=processor, mcp_servers=SERVERS))
    check_script(script)
    tool_calls = [s.message or "" for s in script if s.kind == "tool_call"]
    assert len(tool_calls) == calls
    assert "lookup_account" in tool_calls[0]
    assert "crm" in tool_calls[0]
