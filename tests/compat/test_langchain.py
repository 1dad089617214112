"""The README's LangChain snippet (langchain-mcp-adapters, a LangChain agent), in an mcp<2 environment of its own.

The probe (`langchain_probe.py`) is installed from `langchain-requirements.txt` by `uv run --isolated
--no-project`; when the registry cannot be reached that fails, and so does this test: never a skip.
The snippet's server gets its `PARALLEL_API_KEY` and talks to an emulator on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from tests.compat.support import HERE, keyed_server, runnable_snippet

pytestmark = pytest.mark.anyio

TOOLS = ["create_task_run", "get_task_run", "list_task_runs", "create_task_group", "get_task_group"]


def uv() -> str:
    """The uv running this suite (`uv run` says where), else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "the compatibility suite runs under uv: `uv run --isolated --group compat pytest tests/compat`"
    return found


async def test_the_readme_langchain_agent_loads_every_tool_strictly_and_runs_create_get_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with keyed_server(monkeypatch, tmp_path, speed=1000) as environment:
        env = {
            name: value for name, value in os.environ.items() if name not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
        }
        snippet = tmp_path / "snippet.py"
        snippet.write_text(runnable_snippet("LangChain and LangGraph", environment), encoding="utf-8")
        command = [
            uv(),
            "run",
            "--isolated",
            "--no-project",
            "--with-requirements",
            str(HERE / "langchain-requirements.txt"),
            "python",
            str(HERE / "langchain_probe.py"),
            str(snippet),
        ]
        with anyio.fail_after(300):
            done = await anyio.run_process(command, cwd=tmp_path, env=env, check=False)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, f"the LangChain probe failed (exit {done.returncode}):\n{stderr[-3000:]}"
    report = cast(dict[str, Any], json.loads(done.stdout))

    assert report["tools"] == TOOLS
    assert report["openai_strict"] == dict.fromkeys(TOOLS, "strict")
    assert report["calls"] == ["create_task_run", "get_task_run"]
    created, fetched = report["tool_results"]
    assert "queued" in created or "running" in created, created
    assert "completed" in fetched, fetched
    assert "- founder: " in fetched, "output_schema sent as JSON text must give fields, not a report"
    assert report["answer"].startswith("Done: ")
