"""Our wire models: compatible with the official SDK, strict on documented limits, tolerant of API growth."""

import datetime as dt
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal, Required, Union, get_args, get_origin

import parallel.types as sdk
import pytest
from parallel.types import task_group_add_runs_params, task_run_create_params
from pydantic import BaseModel, ValidationError
from typing_extensions import get_type_hints

from parallel_mcp import models
from parallel_mcp.models.requests import RequestModel

# --- SDK compatibility ------------------------------------------------------------------------

# Where the SDK names a model differently from us.
SDK_NAME_TO_OURS = {"RunInput": "TaskRunInput"}
# Fields that take null through a validator rather than their annotation (each has its own test).
NULL_COERCED = {("FieldBasis", "citations")}


def _alternatives(annotation: Any) -> tuple[list[Any], bool]:
    """Flatten Annotated/Optional/Union into leaf types; also say whether None is accepted."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        leaves: list[Any] = []
        nullable = False
        for arg in get_args(annotation):
            sub, sub_nullable = _alternatives(arg)
            leaves += sub
            nullable = nullable or sub_nullable
        return leaves, nullable
    if annotation is None or annotation is type(None):
        return [], True
    if origin is Literal and None in get_args(annotation):
        return [Literal[tuple(a for a in get_args(annotation) if a is not None)]], True
    return [annotation], False


def _kind(leaf: Any) -> str:
    """The base kind of a leaf type: str, int, float, bool, date, list, dict, any or model:<Name>."""
    origin = get_origin(leaf)
    if origin is Literal:
        return type(get_args(leaf)[0]).__name__
    if origin in (list, Sequence, Iterable) or leaf is list:
        return "list"
    if origin is dict or leaf is dict:
        return "dict"
    if leaf is Any or leaf is object:
        return "any"
    if isinstance(leaf, type) and issubclass(leaf, BaseModel):
        return "model:" + SDK_NAME_TO_OURS.get(leaf.__name__, leaf.__name__)
    if isinstance(leaf, type):
        return leaf.__name__
    return repr(leaf)


def _accepts(ours: Any, theirs: Any) -> bool:
    """Whether our leaf type accepts every value of the SDK's leaf type (lists are compared by item)."""
    our_kind, their_kind = _kind(ours), _kind(theirs)
    if our_kind == "any":
        return True
    if our_kind == "list" and their_kind == "list":
        their_items, _ = _alternatives((get_args(theirs) or (Any,))[0])
        our_items, _ = _alternatives((get_args(ours) or (Any,))[0])
        return all(any(_accepts(o, t) for o in our_items) for t in their_items)
    # pydantic accepts an int for a float field.
    return our_kind == their_kind or (their_kind == "int" and our_kind == "float")


def compatibility_problems(ours: type[BaseModel], theirs: type[BaseModel]) -> list[str]:
    """Every way in which `ours` cannot stand in for the SDK model `theirs`.

    Checks each SDK field: it exists in ours (by name or alias), our type accepts each of the SDK's
    alternatives, a field the API may omit is optional in ours, a field the SDK allows to be null
    is nullable in our response models, and a field the API requires is required in our requests.
    """
    by_wire_name: dict[str, Any] = {}
    for name, info in ours.model_fields.items():
        by_wire_name[name] = info
        if info.alias:
            by_wire_name[info.alias] = info
    is_request = issubclass(ours, RequestModel)
    problems: list[str] = []
    for name, their_info in theirs.model_fields.items():
        info = by_wire_name.get(name) or by_wire_name.get(their_info.alias or "")
        if info is None:
            problems.append(f"{name}: missing")
            continue
        their_leaves, their_nullable = _alternatives(their_info.annotation)
        our_leaves, our_nullable = _alternatives(info.annotation)
        for leaf in their_leaves:
            if not any(_accepts(o, leaf) for o in our_leaves):
                problems.append(f"{name}: SDK type {_kind(leaf)} is not accepted by {[_kind(o) for o in our_leaves]}")
        if info.is_required() and not their_info.is_required():
            problems.append(f"{name}: required in ours, optional in the SDK")
        if is_request and their_info.is_required() and not info.is_required():
            problems.append(f"{name}: the API requires it, ours would let a request go without it")
        coerced = (ours.__name__, name) in NULL_COERCED
        if not is_request and their_nullable and not our_nullable and not info.is_required() and not coerced:
            problems.append(f"{name}: the SDK accepts null, ours does not")
    return problems


SDK_PAIRS: list[tuple[type[BaseModel], type[BaseModel]]] = [
    (models.TaskRun, sdk.TaskRun),
    (models.TaskRunResult, sdk.TaskRunResult),
    (models.TaskRunJsonOutput, sdk.TaskRunJsonOutput),
    (models.TaskRunTextOutput, sdk.TaskRunTextOutput),
    (models.FieldBasis, sdk.FieldBasis),
    (models.Citation, sdk.Citation),
    (models.McpToolCall, sdk.McpToolCall),
    (models.McpServer, sdk.McpServer),
    (models.TaskSpec, sdk.TaskSpec),
    (models.JsonSchema, sdk.JsonSchema),
    (models.TextSchema, sdk.TextSchema),
    (models.AutoSchema, sdk.AutoSchema),
    (models.Webhook, sdk.Webhook),
    (models.SourcePolicy, sdk.shared.SourcePolicy),
    (models.TaskAdvancedSettings, sdk.TaskAdvancedSettings),
    (models.TaskRunInput, sdk.RunInput),
    (models.Warning, sdk.shared.Warning),
    (models.ErrorObject, sdk.shared.ErrorObject),
    (models.ErrorResponse, sdk.shared.ErrorResponse),
    (models.TaskRunEvent, sdk.TaskRunEvent),
    (models.TaskRunProgressStatsEvent, sdk.TaskRunProgressStatsEvent),
    (models.TaskRunProgressMessageEvent, sdk.TaskRunProgressMessageEvent),
    (models.TaskRunSourceStats, sdk.TaskRunSourceStats),
    (models.ErrorEvent, sdk.ErrorEvent),
    (models.TaskGroup, sdk.TaskGroup),
    (models.TaskGroupStatus, sdk.TaskGroupStatus),
    (models.TaskGroupStatusEvent, sdk.TaskGroupStatusEvent),
    (models.TaskGroupRunResponse, sdk.TaskGroupRunResponse),
]


@pytest.mark.parametrize(("ours", "theirs"), SDK_PAIRS, ids=[theirs.__name__ for _, theirs in SDK_PAIRS])
def test_our_model_has_every_field_of_the_sdk_model_with_a_compatible_type(
    ours: type[BaseModel], theirs: type[BaseModel]
) -> None:
    assert compatibility_problems(ours, theirs) == []


def test_the_compatibility_check_reports_missing_fields_wrong_types_and_optionality() -> None:
    class Theirs(BaseModel):
        url: str
        count: int | None = None
        tags: list[str] | None = None
        note: str | None = None
        gone: str

    class Ours(models.WireModel):
        url: int
        count: float | None = None
        tags: list[int] | None = None
        note: str

    assert compatibility_problems(Ours, Theirs) == [
        "url: SDK type str is not accepted by ['int']",
        "tags: SDK type list is not accepted by ['list']",
        "note: required in ours, optional in the SDK",
        "gone: missing",
    ]


def test_the_compatibility_check_demands_nullable_response_fields() -> None:
    class Theirs(BaseModel):
        title: str | None = None

    class Ours(models.WireModel):
        title: str = ""

    assert compatibility_problems(Ours, Theirs) == ["title: the SDK accepts null, ours does not"]


def test_the_compatibility_check_demands_required_request_fields() -> None:
    class Theirs(BaseModel):
        url: str

    class Ours(RequestModel):
        url: str = "https://example.com"

    assert compatibility_problems(Ours, Theirs) == ["url: the API requires it, ours would let a request go without it"]


def test_every_create_param_of_the_sdk_is_a_field_of_task_run_input() -> None:
    params = task_run_create_params.TaskRunCreateParams
    keys = set(params.__required_keys__ | params.__optional_keys__) - {"betas"}  # betas is a header
    assert keys <= set(models.TaskRunInput.model_fields)
    # The SDK module uses string annotations, so `__required_keys__` is empty: read `Required[...]` itself.
    hints = get_type_hints(params, include_extras=True)
    required = {key for key, hint in hints.items() if get_origin(hint) is Required}
    assert required == {name for name, info in models.TaskRunInput.model_fields.items() if info.is_required()}


def test_every_add_runs_param_of_the_sdk_is_a_field_of_the_group_run_request() -> None:
    params = task_group_add_runs_params.TaskGroupAddRunsParams
    # betas is a header; refresh_status is a query parameter, not part of the body.
    keys = set(params.__required_keys__ | params.__optional_keys__) - {"betas", "refresh_status"}
    assert keys <= set(models.TaskGroupRunRequest.model_fields)


# --- limits -----------------------------------------------------------------------------------


def _run(**overrides: Any) -> dict[str, Any]:
    return {"input": "What is the tallest building in Oslo?", "processor": "base", **overrides}


def _spec(json_schema: dict[str, Any]) -> dict[str, Any]:
    return {"output_schema": {"type": "json", "json_schema": json_schema}}


def _strict(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(levels - 1):
        node = _strict(child=node)
    return node


LIMITS: list[tuple[str, Callable[[], object], list[str]]] = [
    (
        "metadata-key-17",
        lambda: models.TaskRunInput.model_validate(_run(metadata={"k" * 17: "v"})),
        ["metadata key", "17 characters", "limit is 16"],
    ),
    (
        "metadata-value-513",
        lambda: models.TaskRunInput.model_validate(_run(metadata={"note": "v" * 513})),
        ["metadata['note']", "513 characters", "limit is 512"],
    ),
    (
        "group-metadata-key",
        lambda: models.TaskGroupCreateRequest.model_validate({"metadata": {"k" * 17: 1}}),
        ["metadata key", "limit is 16"],
    ),
    (
        "domains-201",
        lambda: models.SourcePolicy(
            include_domains=[f"d{i}.com" for i in range(150)], exclude_domains=[f"x{i}.com" for i in range(51)]
        ),
        ["include_domains and exclude_domains", "201 domains", "limit is 200"],
    ),
    (
        "mcp-servers-11",
        lambda: models.TaskRunInput.model_validate(
            _run(mcp_servers=[{"name": f"s{i}", "url": f"https://mcp{i}.example/mcp"} for i in range(11)])
        ),
        ["mcp_servers", "11 servers", "limit is 10"],
    ),
    (
        "task-spec-15001",
        lambda: models.TaskSpec.model_validate(_spec(_strict(a={"type": "string", "description": "d" * 15_000}))),
        ["task_spec is", "limit is 15000"],
    ),
    (
        "spec-and-input-25001",
        lambda: models.TaskRunInput.model_validate(_run(input="q" * 25_001)),
        ["task_spec and input", "25001 characters", "limit is 25000"],
    ),
    (
        "root-not-object",
        lambda: models.TaskSpec.model_validate(_spec({"type": "array", "items": {"type": "string"}})),
        ["output_schema.json_schema", "root of the output schema must be"],
    ),
    (
        "root-anyOf",
        lambda: models.TaskSpec.model_validate(_spec({"anyOf": [_strict(a={"type": "string"})]})),
        ["output_schema.json_schema", "anyOf"],
    ),
    (
        "depth-6",
        lambda: models.TaskSpec.model_validate(_spec(_deep(6))),
        ["nested 6 levels", "limit is 5"],
    ),
    (
        "properties-101",
        lambda: models.TaskSpec.model_validate(_spec(_strict(**{f"p{i}": {"type": "string"} for i in range(101)}))),
        ["101 properties", "limit is 100"],
    ),
    (
        "unsupported-minLength",
        lambda: models.TaskSpec.model_validate(_spec(_strict(name={"type": "string", "minLength": 1}))),
        ["$.properties.name", "'minLength'"],
    ),
    (
        "standalone-null",
        lambda: models.TaskSpec.model_validate(_spec(_strict(nothing={"type": "null"}))),
        ["$.properties.nothing", '"null" alone'],
    ),
    (
        "group-inputs-1001",
        lambda: models.TaskGroupRunRequest.model_validate({"inputs": [_run() for _ in range(1001)]}),
        ["inputs has 1001 runs", "limit is 1000"],
    ),
    (
        "empty-input",
        lambda: models.TaskRunInput.model_validate(_run(input="   ")),
        ["input is empty"],
    ),
    (
        "bad-location",
        lambda: models.TaskRunInput.model_validate(_run(advanced_settings={"location": "usa"})),
        ["location 'usa'", "ISO 3166-1 alpha-2"],
    ),
    (
        "domain-with-scheme",
        lambda: models.SourcePolicy(include_domains=["https://example.com"]),
        ["'https://example.com' is not a domain"],
    ),
    (
        "mcp-server-not-http",
        lambda: models.McpServer(name="files", url="file:///tmp/mcp"),
        ["url 'file:///tmp/mcp'", "http(s)"],
    ),
]


@pytest.mark.parametrize(("make", "fragments"), [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_a_broken_limit_gives_a_message_naming_the_field_and_the_limit(
    make: Callable[[], object], fragments: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        make()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "make",
    [
        lambda: models.TaskRunInput.model_validate(_run(metadata={"k" * 16: "v" * 512, "n": 3, "ok": True})),
        lambda: models.SourcePolicy(include_domains=[f"d{i}.com" for i in range(200)]),
        lambda: models.TaskRunInput.model_validate(
            _run(mcp_servers=[{"name": f"s{i}", "url": f"https://mcp{i}.example/mcp"} for i in range(10)])
        ),
        lambda: models.TaskSpec.model_validate(_spec(_deep(5))),
        lambda: models.TaskSpec.model_validate(_spec(_strict(**{f"p{i}": {"type": "string"} for i in range(100)}))),
        lambda: models.TaskRunInput.model_validate(_run(input="q" * 25_000)),
        lambda: models.TaskRunInput.model_validate(
            _run(input={"company": "Acme"}, advanced_settings={"location": "gb"})
        ),
        lambda: models.SourcePolicy(include_domains=[".gov", "docs.python.org/3", "*.example.com"]),
        lambda: models.TaskGroupRunRequest.model_validate({"inputs": [_run() for _ in range(1000)]}),
    ],
    ids=[
        "metadata-at-limit",
        "200-domains",
        "10-mcp-servers",
        "depth-5",
        "100-properties",
        "input-25000",
        "object-input-and-location",
        "extension-path-wildcard-domains",
        "1000-group-inputs",
    ],
)
def test_a_request_exactly_at_a_limit_is_accepted(make: Callable[[], object]) -> None:
    make()


def test_a_soft_schema_rule_does_not_reject_the_task_spec() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    spec = models.TaskSpec.model_validate(_spec(loose))
    assert spec.output_kind() == "json"


def test_a_request_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        models.TaskRunInput.model_validate(_run(procesor="pro"))


def test_the_run_input_echo_parses_a_create_body_and_keeps_the_date() -> None:
    body = models.RunInput.model_validate(_run(source_policy={"after_date": "2025-01-31"}))
    assert body.source_policy is not None
    assert body.source_policy.after_date == dt.date(2025, 1, 31)
    assert body.model_dump(mode="json", exclude_none=True)["source_policy"] == {"after_date": "2025-01-31"}


def test_mcp_server_headers_are_kept_out_of_the_repr() -> None:
    server = models.McpServer(name="crm", url="https://crm.example/mcp", headers={"Authorization": "Bearer s3cret"})
    assert "s3cret" not in repr(server)


# --- tolerance --------------------------------------------------------------------------------

RUN: dict[str, Any] = {
    "run_id": "trun_0123456789abcdef0123456789abcdef",
    "interaction_id": "trun_0123456789abcdef0123456789abcdef",
    "status": "completed",
    "is_active": False,
    "processor": "core",
    "created_at": "2026-05-01T10:00:00Z",
    "modified_at": "2026-05-01T10:02:00Z",
}


def test_unknown_fields_on_a_response_are_kept_and_dumped_again() -> None:
    run = models.TaskRun.model_validate(RUN | {"usage": {"credits": 3}})
    assert run.model_extra == {"usage": {"credits": 3}}
    assert run.model_dump(mode="json")["usage"] == {"credits": 3}


def test_an_unknown_warning_type_is_accepted() -> None:
    run = models.TaskRun.model_validate(RUN | {"warnings": [{"type": "quota_warning", "message": "almost out"}]})
    assert run.warnings is not None
    assert run.warnings[0].type == "quota_warning"


def test_a_status_outside_the_enum_is_rejected() -> None:
    with pytest.raises(ValidationError, match="status"):
        models.TaskRun.model_validate(RUN | {"status": "exploded"})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"ceo": "Ada", "founded": 1999}', {"ceo": "Ada", "founded": 1999}),
        ({"ceo": "Ada"}, {"ceo": "Ada"}),
        ("not json at all", {"output": "not json at all"}),
    ],
    ids=["json-string", "object", "plain-string"],
)
def test_json_content_may_arrive_as_an_object_or_a_json_string(content: object, expected: dict[str, Any]) -> None:
    output = models.TaskRunJsonOutput.model_validate({"type": "json", "content": content, "basis": []})
    assert output.content == expected


@pytest.mark.parametrize(
    ("output", "expected_type"),
    [
        ({"type": "text", "content": "# Report", "basis": []}, models.TaskRunTextOutput),
        ({"type": "json", "content": {"a": 1}, "basis": []}, models.TaskRunJsonOutput),
        ({"type": "json", "content": '{"a": 1}', "basis": []}, models.TaskRunJsonOutput),
    ],
)
def test_the_result_output_is_discriminated_on_type(output: dict[str, Any], expected_type: type[BaseModel]) -> None:
    result = models.TaskRunResult.model_validate({"run": RUN, "output": output})
    assert type(result.output) is expected_type


def test_an_output_of_an_unknown_type_is_rejected() -> None:
    with pytest.raises(ValidationError):
        models.TaskRunResult.model_validate({"run": RUN, "output": {"type": "audio", "content": "", "basis": []}})


def test_a_field_basis_parses_citations_with_missing_titles_and_excerpts() -> None:
    basis = models.FieldBasis.model_validate(
        {"field": "ceo", "reasoning": "", "citations": [{"url": "https://a.example"}], "confidence": ""}
    )
    assert basis.citations[0].title is None
    assert basis.citations[0].excerpts is None
    assert models.FieldBasis.model_validate({"field": "ceo", "reasoning": "r"}).citations == []


def test_null_citations_on_a_field_basis_mean_no_citations() -> None:
    basis = models.FieldBasis.model_validate({"field": "ceo", "reasoning": "r", "citations": None})
    assert basis.citations == []


@pytest.mark.parametrize(
    ("output_schema", "kind"),
    [
        ("A two-paragraph summary", "text"),
        ({"type": "text"}, "text"),
        ({"description": "A short memo"}, "text"),
        ({"type": "auto"}, "auto"),
        ({"json_schema": _strict(a={"type": "string"})}, "json"),
        ({"type": "json", "json_schema": _strict(a={"type": "string"})}, "json"),
    ],
    ids=["bare-string", "text", "untyped-description", "auto", "untyped-json", "json"],
)
def test_the_output_schema_accepts_each_documented_form(output_schema: object, kind: str) -> None:
    spec = models.TaskSpec.model_validate({"output_schema": output_schema})
    assert spec.output_kind() == kind


def test_a_bare_string_output_schema_is_sent_back_as_a_string() -> None:
    spec = models.TaskSpec(output_schema="A short memo")
    assert spec.model_dump(mode="json", exclude_none=True) == {"output_schema": "A short memo"}


# --- events -----------------------------------------------------------------------------------


def test_parse_event_keeps_an_unknown_event_type_as_unknown_event() -> None:
    data = {"type": "task_run.heartbeat", "at": 3}
    event = models.parse_event(data)
    assert isinstance(event, models.UnknownEvent)
    assert event.type == "task_run.heartbeat"
    assert event.data == data


def test_parse_event_keeps_a_malformed_known_event_as_unknown_event() -> None:
    event = models.parse_event({"type": "task_run.state", "run": {"run_id": "x"}})
    assert isinstance(event, models.UnknownEvent)
    assert event.type == "task_run.state"


def test_parse_event_without_a_type_gives_an_unknown_event() -> None:
    event = models.parse_event({"message": "?"})
    assert isinstance(event, models.UnknownEvent)
    assert event.type == "unknown"


@pytest.mark.parametrize("kind", ["plan", "search", "result", "tool_call", "exec_status", "tool", "extract", "new"])
def test_parse_event_accepts_any_progress_message_kind(kind: str) -> None:
    event = models.parse_event({"type": f"task_run.progress_msg.{kind}", "message": "m", "timestamp": None})
    assert isinstance(event, models.TaskRunProgressMessageEvent)
    assert event.kind == kind


def test_a_progress_message_event_needs_the_prefix() -> None:
    with pytest.raises(ValidationError, match=r"task_run\.progress_msg\."):
        models.TaskRunProgressMessageEvent(type="plan", message="m")


def test_parse_event_reads_stats_state_error_and_group_events() -> None:
    stats = models.parse_event(
        {"type": "task_run.progress_stats", "progress_meter": 42.5, "source_stats": {"num_sources_read": 3}}
    )
    assert isinstance(stats, models.TaskRunProgressStatsEvent)
    assert stats.source_stats.num_sources_read == 3

    state = models.parse_event(
        {
            "type": "task_run.state",
            "event_id": None,
            "run": RUN,
            "input": _run(),
            "output": {"type": "text", "content": "done", "basis": []},
        }
    )
    assert isinstance(state, models.TaskRunEvent)
    assert isinstance(state.output, models.TaskRunTextOutput)
    assert state.input is not None
    assert state.input.processor == "base"

    error = models.parse_event({"type": "error", "error": {"ref_id": "ref_1", "message": "boom"}})
    assert isinstance(error, models.ErrorEvent)
    assert error.error.ref_id == "ref_1"

    group = models.parse_event(
        {
            "type": "task_group_status",
            "event_id": "evt_1",
            "status": {"num_task_runs": 2, "task_run_status_counts": {"running": 2}, "is_active": True},
        }
    )
    assert isinstance(group, models.TaskGroupStatusEvent)
    assert group.status.num_task_runs == 2


# --- wire names -------------------------------------------------------------------------------


def test_a_task_run_reads_and_dumps_taskgroup_id_on_the_wire() -> None:
    run = models.TaskRun.model_validate(RUN | {"taskgroup_id": "tgrp_1"})
    assert run.task_group_id == "tgrp_1"
    wire = run.model_dump(mode="json")
    assert wire["taskgroup_id"] == "tgrp_1"
    assert "task_group_id" not in wire
    assert models.TaskRun.model_validate_json(run.model_dump_json()) == run
    assert sdk.TaskRun.model_validate(wire).task_group_id == "tgrp_1"


def test_a_task_run_can_be_built_by_attribute_name() -> None:
    run = models.TaskRun.model_validate(RUN | {"task_group_id": "tgrp_2"})
    assert run.model_dump(mode="json")["taskgroup_id"] == "tgrp_2"


def test_a_task_group_dumps_taskgroup_id_on_the_wire() -> None:
    status: dict[str, Any] = {"num_task_runs": 0, "task_run_status_counts": {}, "is_active": False}
    group = models.TaskGroup.model_validate({"taskgroup_id": "tgrp_3", "status": status})
    assert group.model_dump(mode="json")["taskgroup_id"] == "tgrp_3"
    assert sdk.TaskGroup.model_validate(group.model_dump(mode="json")).task_group_id == "tgrp_3"


def test_a_create_body_round_trips_through_the_sdk_run_input() -> None:
    body = models.TaskRunInput.model_validate(
        _run(
            task_spec=_spec(_strict(a={"type": "string"})),
            metadata={"team": "r&d"},
            source_policy={"include_domains": [".gov"]},
            mcp_servers=[{"name": "crm", "url": "https://crm.example/mcp", "allowed_tools": ["lookup"]}],
            webhook={"url": "https://hooks.example/parallel"},
        )
    )
    wire = body.model_dump(mode="json", exclude_none=True)
    theirs = sdk.RunInput.model_validate(wire)
    assert theirs.model_dump(mode="json", exclude_none=True) == wire
    assert models.TaskRunInput.model_validate(wire) == body
