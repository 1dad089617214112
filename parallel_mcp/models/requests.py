"""Request bodies of the Task API, with its documented limits enforced.

Every limit error names the field and the limit, so a model (or a person) can fix the call.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from parallel_mcp.schema_rules import check_output_schema

MAX_METADATA_KEY = 16
MAX_METADATA_VALUE = 512
MAX_DOMAINS = 200
MAX_MCP_SERVERS = 10
MAX_TASK_SPEC_CHARS = 15_000
MAX_SPEC_AND_INPUT_CHARS = 25_000
MAX_GROUP_INPUTS = 1000

MetadataValue = str | int | float | bool


def _web_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url {url!r} must be an http(s) URL")
    return url


WebUrl = Annotated[str, Field(min_length=1), AfterValidator(_web_url)]
"""Where the service sends requests (an MCP server, a webhook)."""


class RequestModel(BaseModel):
    """Base for request bodies: unknown fields are mistakes, not extensions."""

    # defer_build: schemas are built on first use, keeping them off the start-up path.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True, defer_build=True)


class JsonSchema(RequestModel):
    """A JSON Schema for structured output (or input)."""

    type: Literal["json"] = "json"
    json_schema: dict[str, Any]


class TextSchema(RequestModel):
    """A plain-language description of the wanted output; the result is markdown with citations."""

    type: Literal["text"] = "text"
    description: str | None = None


class AutoSchema(RequestModel):
    """Let the processor design the output schema (deep research on `pro` and above)."""

    type: Literal["auto"] = "auto"


def _schema_tag(value: Any) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        declared = value.get("type")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        if isinstance(declared, str):
            return declared
        return "text" if "description" in value and "json_schema" not in value else "json"
    if isinstance(value, BaseModel):
        return str(getattr(value, "type", "json"))
    return "json"


OutputSchema = Annotated[
    Annotated[JsonSchema, Tag("json")]
    | Annotated[TextSchema, Tag("text")]
    | Annotated[AutoSchema, Tag("auto")]
    | Annotated[str, Tag("str")],
    Discriminator(_schema_tag),
]
InputSchema = Annotated[
    Annotated[JsonSchema, Tag("json")] | Annotated[TextSchema, Tag("text")] | Annotated[str, Tag("str")],
    Discriminator(_schema_tag),
]


class TaskSpec(RequestModel):
    """What the task must produce (and, optionally, what its input looks like)."""

    output_schema: OutputSchema
    input_schema: InputSchema | None = None

    @model_validator(mode="after")
    def _check_rules(self) -> TaskSpec:
        if isinstance(self.output_schema, JsonSchema):
            report = check_output_schema(self.output_schema.json_schema)
            if report.errors:
                raise ValueError(
                    "output_schema.json_schema is not accepted by the Task API: " + "; ".join(report.errors)
                )
        size = len(self.model_dump_json(exclude_none=True))
        if size > MAX_TASK_SPEC_CHARS:
            raise ValueError(f"task_spec is {size} characters; the limit is {MAX_TASK_SPEC_CHARS}")
        return self

    def output_kind(self) -> Literal["json", "text", "auto"]:
        """The kind of output this spec asks for; a bare string is a text schema."""
        schema = self.output_schema
        if isinstance(schema, str):
            return "text"
        return schema.type


class SourcePolicy(RequestModel):
    """Which web domains the run may use, and how recent sources must be."""

    include_domains: list[str] | None = None
    exclude_domains: list[str] | None = None
    after_date: dt.date | None = None

    @field_validator("include_domains", "exclude_domains")
    @classmethod
    def _check_domains(cls, domains: list[str] | None) -> list[str] | None:
        for domain in domains or []:
            if not domain.strip() or "://" in domain or any(c.isspace() for c in domain):
                raise ValueError(f"{domain!r} is not a domain; give a bare domain such as example.com or .gov")
        return domains

    @model_validator(mode="after")
    def _check_total(self) -> SourcePolicy:
        total = len(self.include_domains or []) + len(self.exclude_domains or [])
        if total > MAX_DOMAINS:
            raise ValueError(
                f"include_domains and exclude_domains hold {total} domains together; the limit is {MAX_DOMAINS}"
            )
        return self


class DataSources(RequestModel):
    """Partner data sources for a run (standard processors only)."""

    free: list[str] | None = None
    pay_per_use: list[str] | None = None


class TaskAdvancedSettings(RequestModel):
    """Geo-targeting and partner data sources."""

    location: str | None = None
    """ISO 3166-1 alpha-2 country code, such as `us` or `gb`."""
    data_sources: DataSources | None = None

    @field_validator("location")
    @classmethod
    def _check_location(cls, location: str | None) -> str | None:
        if location is not None and (len(location) != 2 or not location.isalpha()):
            raise ValueError(f"location {location!r} is not an ISO 3166-1 alpha-2 country code such as 'us' or 'gb'")
        return location


class McpServer(RequestModel):
    """An MCP server (streamable HTTP) whose tools the run may call."""

    type: Literal["url"] = "url"
    name: str = Field(min_length=1)
    url: WebUrl
    """Of a streamable-HTTP MCP server."""
    headers: dict[str, str] | None = Field(default=None, repr=False)
    """Sent to that server (e.g. an Authorization header); never echoed back."""
    allowed_tools: list[str] | None = None


class Webhook(RequestModel):
    """Where to POST a signed `task_run.status` event when the run ends."""

    url: WebUrl
    # The spec's default. The docs call the field required with `task_run.status` its only value, so callers that
    # want the event should name it rather than rely on what an empty list means to the service.
    event_types: list[Literal["task_run.status"]] = Field(default_factory=list[Literal["task_run.status"]])


class TaskRunInput(RequestModel):
    """The body of `POST /v1/tasks/runs` (the SDK's `TaskRunCreateParams` / `RunInput`)."""

    input: str | dict[str, Any]
    processor: str = Field(min_length=1)
    task_spec: TaskSpec | None = None
    metadata: dict[str, MetadataValue] | None = None
    source_policy: SourcePolicy | None = None
    advanced_settings: TaskAdvancedSettings | None = None
    previous_interaction_id: str | None = None
    mcp_servers: list[McpServer] | None = None
    enable_events: bool | None = None
    webhook: Webhook | None = None
    memory_scope_key: str | None = None

    @field_validator("input")
    @classmethod
    def _check_input(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if isinstance(value, str) and not value.strip():
            raise ValueError("input is empty; give a question or a JSON object")
        return value

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, metadata: dict[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
        for key, value in (metadata or {}).items():
            if len(key) > MAX_METADATA_KEY:
                raise ValueError(f"metadata key {key[:40]!r} is {len(key)} characters; the limit is {MAX_METADATA_KEY}")
            if isinstance(value, str) and len(value) > MAX_METADATA_VALUE:
                raise ValueError(
                    f"metadata[{key!r}] is {len(value)} characters; the limit is {MAX_METADATA_VALUE} per value"
                )
        return metadata

    @field_validator("mcp_servers")
    @classmethod
    def _check_mcp_servers(cls, servers: list[McpServer] | None) -> list[McpServer] | None:
        if servers is not None and len(servers) > MAX_MCP_SERVERS:
            raise ValueError(f"mcp_servers has {len(servers)} servers; the limit is {MAX_MCP_SERVERS}")
        return servers

    @model_validator(mode="after")
    def _check_size(self) -> TaskRunInput:
        check_spec_and_input(self.task_spec, self.input)
        return self

    def input_chars(self) -> int:
        """Length of the input as the API counts it (a JSON object counts as its JSON text)."""
        return input_chars(self.input)


def input_chars(value: str | dict[str, Any]) -> int:
    """Length of a run input as the API counts it (a JSON object counts as its JSON text)."""
    return len(value) if isinstance(value, str) else len(json.dumps(value))


def check_spec_and_input(spec: TaskSpec | None, value: str | dict[str, Any]) -> None:
    """Raise `ValueError` when task spec + input exceed the 25,000-character limit."""
    spec_chars = len(spec.model_dump_json(exclude_none=True)) if spec is not None else 0
    total = spec_chars + input_chars(value)
    if total > MAX_SPEC_AND_INPUT_CHARS:
        raise ValueError(
            f"task_spec and input are {total} characters together; the limit is {MAX_SPEC_AND_INPUT_CHARS}"
        )


RunInput = TaskRunInput
"""The SDK's name for the echo of a create body (`GET /v1/tasks/runs/{id}/input`)."""


class TaskGroupCreateRequest(RequestModel):
    """The body of `POST /v1/tasks/groups`."""

    metadata: dict[str, MetadataValue] | None = None

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, metadata: dict[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
        return TaskRunInput._check_metadata(metadata)  # pyright: ignore[reportPrivateUsage]


class TaskGroupRunRequest(RequestModel):
    """The body of `POST /v1/tasks/groups/{id}/runs`: up to 1,000 runs at once."""

    inputs: list[TaskRunInput] = Field(min_length=1)
    default_task_spec: TaskSpec | None = None

    @field_validator("inputs")
    @classmethod
    def _check_count(cls, inputs: list[TaskRunInput]) -> list[TaskRunInput]:
        if len(inputs) > MAX_GROUP_INPUTS:
            raise ValueError(f"inputs has {len(inputs)} runs; the limit is {MAX_GROUP_INPUTS} per request")
        return inputs
