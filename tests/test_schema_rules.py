"""`check_output_schema` turns the documented output-schema rules into errors and warnings with paths."""

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from parallel_mcp.schema_rules import (
    MAX_DEPTH,
    MAX_PROPERTIES,
    RESERVED_PROPERTY_NAMES,
    UNSUPPORTED_KEYWORDS,
    check_output_schema,
)


def obj(**properties: dict[str, Any]) -> dict[str, Any]:
    """A strict object schema: every property required, no additional properties."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


STRING: dict[str, Any] = {"type": "string"}


def nested(levels: int) -> dict[str, Any]:
    """An object schema `levels` deep, counting the root as level 1."""
    node: dict[str, Any] = STRING
    for _ in range(levels - 1):
        node = obj(child=node)
    return node


def test_a_strict_schema_has_no_errors_and_no_warnings() -> None:
    schema = obj(
        name=STRING,
        founded={"type": "integer"},
        revenue={"type": ["number", "null"]},
        public={"type": "boolean"},
        tags={"type": "array", "items": STRING},
        status={"type": "string", "enum": ["active", "closed"]},
        address=obj(city=STRING, country=STRING),
    )
    report = check_output_schema(schema)
    assert report.errors == []
    assert report.warnings == []


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "array", "items": STRING}, "root of the output schema must be"),
        ({"type": "object"}, "root of the output schema must be"),
        ({"properties": {"a": STRING}}, "root of the output schema must be"),
        ({"anyOf": [obj(a=STRING), obj(b=STRING)]}, "must not use anyOf"),
    ],
    ids=["array-root", "object-without-properties", "untyped-root", "root-anyOf"],
)
def test_the_root_must_be_one_object_with_properties(schema: dict[str, Any], fragment: str) -> None:
    report = check_output_schema(schema)
    assert any(fragment in error for error in report.errors), report.errors


def test_an_object_root_given_as_a_one_item_type_list_is_accepted() -> None:
    schema = obj(a=STRING) | {"type": ["object"]}
    assert check_output_schema(schema).errors == []


@pytest.mark.parametrize("keyword", sorted(UNSUPPORTED_KEYWORDS))
def test_each_unsupported_keyword_is_an_error_naming_it_and_its_path(keyword: str) -> None:
    schema = obj(outer=obj(inner={"type": "string", keyword: 1}))
    errors = check_output_schema(schema).errors
    assert len(errors) == 1
    assert f"'{keyword}'" in errors[0]
    assert errors[0].startswith("$.properties.outer.properties.inner ")


def test_several_unsupported_keywords_give_one_error_each_in_a_stable_order() -> None:
    errors = check_output_schema(obj(n={"type": "integer", "minimum": 0, "maximum": 9})).errors
    assert errors == [
        "$.properties.n uses the unsupported keyword 'maximum'; describe the constraint in words",
        "$.properties.n uses the unsupported keyword 'minimum'; describe the constraint in words",
    ]


def test_supported_keywords_such_as_description_enum_and_defs_are_fine() -> None:
    schema = obj(kind={"type": "string", "enum": ["a", "b"], "description": "the kind", "title": "Kind"})
    assert check_output_schema(schema).errors == []


def test_a_standalone_null_type_is_an_error_with_its_path() -> None:
    errors = check_output_schema(obj(nothing={"type": "null"})).errors
    assert errors == [
        '$.properties.nothing has type "null" alone; null is allowed only in a union like ["string", "null"]'
    ]


@pytest.mark.parametrize(
    "optional",
    [
        {"type": ["string", "null"]},
        {"anyOf": [STRING, {"type": "null"}]},
        {"oneOf": [{"type": "integer"}, {"type": "null"}]},
    ],
    ids=["type-list", "anyOf", "oneOf"],
)
def test_null_inside_a_union_is_allowed(optional: dict[str, Any]) -> None:
    assert check_output_schema(obj(maybe=optional)).errors == []


def test_a_pydantic_model_with_optional_fields_passes_without_errors() -> None:
    class Company(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str
        ticker: str | None

    assert check_output_schema(Company.model_json_schema()).errors == []


def test_null_alone_inside_allof_is_still_an_error() -> None:
    errors = check_output_schema(obj(x={"allOf": [{"type": "null"}]})).errors
    assert len(errors) == 1
    assert errors[0].startswith("$.properties.x.allOf[0] ")


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert check_output_schema(nested(MAX_DEPTH)).errors == []


def test_nesting_one_level_past_the_limit_is_an_error_with_path_and_limit() -> None:
    errors = check_output_schema(nested(MAX_DEPTH + 1)).errors
    path = "$" + ".properties.child" * MAX_DEPTH
    assert errors == [f"{path} is nested {MAX_DEPTH + 1} levels deep; the limit is {MAX_DEPTH}"]


def test_array_items_count_as_a_nesting_level() -> None:
    node: dict[str, Any] = STRING
    for _ in range(MAX_DEPTH):
        node = {"type": "array", "items": node}
    errors = check_output_schema(obj(deep=node)).errors
    assert len(errors) == 1
    assert "levels deep" in errors[0]
    assert ".items" in errors[0]


def test_one_hundred_properties_are_accepted() -> None:
    assert check_output_schema(obj(**{f"p{i}": STRING for i in range(MAX_PROPERTIES)})).errors == []


def test_one_hundred_and_one_properties_are_an_error_with_the_count_and_limit() -> None:
    errors = check_output_schema(obj(**{f"p{i}": STRING for i in range(MAX_PROPERTIES + 1)})).errors
    assert errors == ["the output schema has 101 properties; the limit is 100 in total"]


def test_nested_properties_count_towards_the_total() -> None:
    halves = {f"h{i}": obj(**{f"p{j}": STRING for j in range(50)}) for i in range(2)}
    errors = check_output_schema(obj(**halves)).errors
    assert errors == ["the output schema has 102 properties; the limit is 100 in total"]


def test_more_than_five_hundred_enum_values_in_total_are_an_error() -> None:
    schema = obj(a={"type": "string", "enum": [f"a{i}" for i in range(250)]}, b={"enum": [f"b{i}" for i in range(251)]})
    assert check_output_schema(schema).errors == ["the output schema has 501 enum values; the limit is 500 in total"]


def test_a_large_enum_with_long_values_is_an_error_with_its_path() -> None:
    values = [f"{i:03d}-" + "x" * 30 for i in range(260)]
    errors = check_output_schema(obj(big={"type": "string", "enum": values})).errors
    assert len(errors) == 1
    assert errors[0].startswith("$.properties.big has an enum of 260 values over 7500 characters")


def test_a_large_enum_with_short_values_is_accepted() -> None:
    schema = obj(big={"type": "string", "enum": [f"v{i}" for i in range(260)]})
    assert check_output_schema(schema).errors == []


def test_a_schema_over_twenty_five_thousand_characters_is_an_error() -> None:
    schema = obj(a={"type": "string", "description": "d" * 25_000})
    errors = check_output_schema(schema).errors
    assert len(errors) == 1
    assert "the limit is 25000" in errors[0]


def test_a_property_that_is_not_required_is_a_warning_not_an_error() -> None:
    schema = obj(a=STRING, b=STRING)
    schema["required"] = ["a"]
    report = check_output_schema(schema)
    assert report.errors == []
    assert report.warnings == ["$.properties.b is not required; use a null union for optional"]


def test_an_object_without_additional_properties_false_is_a_warning_at_its_path() -> None:
    inner = obj(city=STRING)
    del inner["additionalProperties"]
    report = check_output_schema(obj(address=inner))
    assert report.errors == []
    assert report.warnings == ["$.properties.address should set additionalProperties to false"]


@pytest.mark.parametrize("name", sorted(RESERVED_PROPERTY_NAMES))
def test_a_property_named_like_the_basis_is_a_warning(name: str) -> None:
    report = check_output_schema(obj(**{name: STRING}))
    assert report.errors == []
    assert report.warnings == [f"$.properties.{name} duplicates the basis the API already returns"]


def test_rules_apply_inside_array_items_unions_and_defs() -> None:
    schema = obj(
        items={"type": "array", "items": {"type": "string", "pattern": "x"}},
        choice={"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
    )
    schema["$defs"] = {"Thing": {"type": "string", "minLength": 1}}
    errors = check_output_schema(schema).errors
    assert errors == [
        "$.properties.items.items uses the unsupported keyword 'pattern'; describe the constraint in words",
        "$.properties.choice.anyOf[0] uses the unsupported keyword 'format'; describe the constraint in words",
        "$.$defs.Thing uses the unsupported keyword 'minLength'; describe the constraint in words",
    ]


def test_a_pydantic_generated_schema_warns_about_its_loose_objects() -> None:
    class Address(BaseModel):
        city: str

    class Company(BaseModel):
        name: str
        address: Address
        note: str = ""

    report = check_output_schema(Company.model_json_schema())
    assert report.errors == []
    assert "$.properties.note is not required; use a null union for optional" in report.warnings
    assert "$ should set additionalProperties to false" in report.warnings
    assert "$.$defs.Address should set additionalProperties to false" in report.warnings
