"""Every tool's input schema through each stack's own converter: the old definitions fail, today's pass.

The current tools come from a real server's tools/list; the old ones from `old_tools.json` (the
design before issue 8). Asserting both keeps "this failed before" explicit and permanent.
"""

from __future__ import annotations

from tests.compat.converters import (
    anthropic_problems,
    gemini_problems,
    langchain_problems,
    openai_agents_problems,
    pydantic_ai_problems,
)
from tests.compat.support import (
    BUDGET_CHARS,
    FASTMCP_ALIASES,
    OLD_SIZE_CHARS,
    SAMPLE_TOOLS,
    ToolDict,
    first_error,
    model_visible,
    old_tools,
    samples_for,
)

CREATE_TOOLS = {"create_task_run", "create_task_group"}


def test_the_samples_are_valid_arguments_of_the_schemas_they_were_written_for(current_tools: list[ToolDict]) -> None:
    for tools in (old_tools(), current_tools):
        samples = samples_for(tools)
        assert set(samples) == SAMPLE_TOOLS == {tool["name"] for tool in tools}
        for tool in tools:
            for sample in samples[tool["name"]]:
                assert first_error(sample, tool["inputSchema"]) is None, (tool["name"], sample)


def test_the_tool_definitions_fit_8000_characters_where_the_old_ones_took_16535(
    current_tools: list[ToolDict],
) -> None:
    """Issue 8, problem 4: what a model sees of tools/list, paid on every turn."""
    old = sum(model_visible(tool) for tool in old_tools())
    current = sum(model_visible(tool) for tool in current_tools)
    assert old == OLD_SIZE_CHARS > BUDGET_CHARS
    assert current <= BUDGET_CHARS, {tool["name"]: model_visible(tool) for tool in current_tools}


@FASTMCP_ALIASES
def test_google_genai_mcp_conversion_crashed_on_the_old_create_tools_and_takes_every_tool_now(
    current_tools: list[ToolDict],
) -> None:
    """Issue 8, problem 2: `'bool' object has no attribute 'items'` before any request (live path: test_gemini)."""
    old = gemini_problems(old_tools())
    for name in CREATE_TOOLS:
        assert old[name] == ["raises AttributeError: 'bool' object has no attribute 'items'"], old[name]
    assert any("description dropped" in problem for problem in old["get_task_run"])
    assert gemini_problems(current_tools) == {}


def test_openai_agents_strict_conversion_fell_back_on_the_old_create_tools_and_keeps_every_tool_strict(
    current_tools: list[ToolDict],
) -> None:
    """Issue 8, problem 3: 'an object that permits undeclared properties' meant a silent non-strict fallback."""
    old = openai_agents_problems(old_tools())
    assert set(old) == CREATE_TOOLS
    for problems in old.values():
        assert "permits undeclared properties" in problems[0], problems
    assert openai_agents_problems(current_tools) == {}


def test_pydantic_ai_openai_strict_closed_the_old_free_form_objects_and_expresses_every_body_now(
    current_tools: list[ToolDict],
) -> None:
    """Issue 8, problem 3: strict mode closed json_schema, object input, metadata and headers to `{}`."""
    old = pydantic_ai_problems(old_tools(), "openai-strict")
    assert set(old) >= CREATE_TOOLS  # and list_task_runs: strict mode drops limit's default, so a model must pick one
    for name in CREATE_TOOLS:
        assert any("json_schema: Additional properties are not allowed" in problem for problem in old[name]), old[name]
    assert pydantic_ai_problems(current_tools, "openai-strict") == {}


def test_pydantic_ai_openai_auto_strict_and_google_transforms_lose_nothing(current_tools: list[ToolDict]) -> None:
    """Auto-strict sends these tools non-strict (optional arguments stay optional) but whole; Google takes them."""
    assert pydantic_ai_problems(current_tools, "openai-auto") == {}
    assert pydantic_ai_problems(current_tools, "google") == {}


def test_pydantic_ai_anthropic_strict_closed_the_old_free_form_objects_and_expresses_every_body_now(
    current_tools: list[ToolDict],
) -> None:
    old = pydantic_ai_problems(old_tools(), "anthropic-strict")
    assert set(old) == CREATE_TOOLS
    assert any("not supported by Anthropic in strict mode" in problem for problem in old["create_task_run"])
    assert pydantic_ai_problems(current_tools, "anthropic-strict") == {}


def test_anthropic_strict_transform_closed_the_old_free_form_objects_and_expresses_every_body_now(
    current_tools: list[ToolDict],
) -> None:
    old = anthropic_problems(old_tools())
    assert set(old) == CREATE_TOOLS
    for name in CREATE_TOOLS:
        assert any("json_schema: Additional properties are not allowed" in problem for problem in old[name]), old[name]
    assert anthropic_problems(current_tools) == {}


def test_langchain_strict_binding_closed_the_old_metadata_and_expresses_every_body_now(
    current_tools: list[ToolDict],
) -> None:
    """`bind_tools(..., strict=True)` on tools built as langchain-mcp-adapters builds them (see test_langchain)."""
    old = langchain_problems(old_tools(), "openai-strict")
    assert set(old) == CREATE_TOOLS
    assert langchain_problems(current_tools, "openai-strict") == {}


def test_langchain_google_genai_declared_old_objects_gemini_rejects_and_takes_every_tool_now(
    current_tools: list[ToolDict],
) -> None:
    old = langchain_problems(old_tools(), "gemini")
    assert set(old) == CREATE_TOOLS
    for problems in old.values():
        assert any("OBJECT without properties" in problem for problem in problems), problems
    assert langchain_problems(current_tools, "gemini") == {}
