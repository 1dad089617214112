"""`parallel-mcp runs`, `show` and `doctor`, run as a person would: real subprocesses, a fresh state directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr

from parallel_mcp.config import Settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator
from parallel_mcp.models import TaskRunInput
from parallel_mcp.server import create_server
from tests.processes import command, server_env
from tests.support import API_KEY, emulator_client, structured

pytestmark = pytest.mark.anyio


def env(state: Path, emulator: RunningEmulator | None, key: str | None = API_KEY) -> dict[str, str]:
    extra = {"XDG_STATE_HOME": str(state)}
    if emulator is not None:
        extra["PARALLEL_BASE_URL"] = emulator.base_url
    if key is not None:
        extra["PARALLEL_API_KEY"] = key
    return server_env(**extra)


async def cli(*args: str, environment: dict[str, str]) -> tuple[int, str, str]:
    with anyio.fail_after(60):
        done = await anyio.run_process(command(*args), env=environment, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_runs_and_show_on_a_fresh_state_directory_say_there_is_nothing_yet(tmp_path: Path) -> None:
    async with emulator_client(EmulatorConfig(instant=True)) as (emulator, _client):
        environment = env(tmp_path / "state", emulator)
        code, out, err = await cli("runs", environment=environment)
        shown, _, shown_err = await cli("show", "trun_nothing", environment=environment)
    keyless, _, keyless_err = await cli("show", "trun_nothing", environment=env(tmp_path / "state", None, key=None))
    assert code == 0 and "No runs yet" in out and not err
    assert shown == 1 and "no run 'trun_nothing' for this key" in shown_err and "Traceback" not in shown_err
    assert keyless == 1 and "without PARALLEL_API_KEY" in keyless_err
    assert not (tmp_path / "state").exists()  # reading never creates a journal


async def test_runs_lists_what_the_agents_started_and_show_prints_the_whole_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))  # the server below journals where the commands read
    async with emulator_client(EmulatorConfig(instant=True)) as (emulator, client):
        settings = Settings(api_key=SecretStr(API_KEY), base_url=emulator.base_url)
        async with Client(create_server(settings, client=client, emulated=False)) as mcp:
            first = structured(
                await mcp.call_tool("create_task_run", {"input": "Who founded Acme?", "processor": "lite"})
            )
            second = structured(await mcp.call_tool("create_task_run", {"input": "Who founded Initech?"}))
        elsewhere = await client.create_run(TaskRunInput(input="Started elsewhere", processor="lite"))
        await emulator.state.wait_for(elsewhere.run_id)
        environment = env(state, emulator)
        code, listed, _ = await cli("runs", environment=environment)
        _, as_json, _ = await cli("runs", "--json", "--limit", "1", environment=environment)
        shown_code, report, _ = await cli("show", first["run_id"], environment=environment)
        _, raw, _ = await cli("show", first["run_id"], "--json", environment=environment)
        written = tmp_path / "report.md"
        _, said, _ = await cli("show", second["run_id"], "--output", str(written), environment=environment)
        _, fetched, _ = await cli("show", elsewhere.run_id, environment=environment)
        stranger, leaked, refused = await cli("show", first["run_id"], environment=env(state, emulator, key="other"))
    lines = listed.splitlines()
    assert code == 0 and lines[0].split()[:5] == ["RUN", "STATUS", "PROCESSOR", "COST", "AGE"]
    assert second["run_id"] in lines[1] and first["run_id"] in lines[2]  # newest first
    assert "completed" in lines[2] and "lite" in lines[2] and "$0.005" in lines[2] and "ago" in lines[2]
    assert "Who founded Acme?" in lines[2] and "$0.01" in lines[1]  # base, the default processor
    assert [entry["run_id"] for entry in json.loads(as_json)] == [second["run_id"]]
    assert shown_code == 0 and report.startswith(f"# Task run {first['run_id']}") and "## Sources" in report
    assert json.loads(raw)["run"]["run_id"] == first["run_id"]
    assert said.startswith(f"wrote {written}") and written.read_text().startswith(f"# Task run {second['run_id']}")
    assert fetched.startswith(f"# Task run {elsewhere.run_id}")  # not journaled here: read once from the API
    # Another key finds nothing of this key's in the journal, and the API refuses it.
    assert stranger == 1 and not leaked and "401" in refused


async def test_doctor_checks_the_key_without_spending_and_prints_the_client_config(tmp_path: Path) -> None:
    async with emulator_client(EmulatorConfig(instant=True)) as (emulator, _client):
        code, out, err = await cli("doctor", environment=env(tmp_path / "state", emulator))
        runs_after = emulator.state.run_count
        bad, refused, _ = await cli("doctor", environment=env(tmp_path / "state", emulator, key="wrong-key"))
        live, spent, _ = await cli("doctor", "--live", environment=env(tmp_path / "state", emulator))
        runs_live = emulator.state.run_count
    assert code == 0, out + err
    assert "ok    API key: accepted" in out and f"ok    base URL: {emulator.base_url} answers" in out
    assert "ok    journal: " in out and "(owner-only)" in out
    assert "ok    HTTP: http://127.0.0.1:8000/mcp, no authentication" in out
    assert runs_after == 0  # a read of an unknown run: nothing billed
    uvx = shutil.which("uvx") or "/ABSOLUTE/PATH/TO/uvx"
    project = Path(__file__).resolve().parent.parent
    expected = f"-- {uvx} --from {project} parallel-mcp"
    assert expected in out and '"command": "' + uvx + '"' in out
    assert API_KEY not in out + err
    assert bad == 1 and "FAIL  API key: rejected by the API (401)" in refused and "wrong-key" not in refused
    assert live == 0 and "ok    live run: trun_" in spent and runs_live == 1


async def test_doctor_without_a_key_says_the_emulator_serves_and_refuses_an_open_http_bind(tmp_path: Path) -> None:
    environment = env(tmp_path / "state", None, key=None) | {"PARALLEL_MCP_HOST": "0.0.0.0"}
    code, out, _ = await cli("doctor", environment=environment)
    assert code == 1
    assert "warn  API key: PARALLEL_API_KEY is not set" in out and "warn  journal: in memory" in out
    assert "FAIL  HTTP: " in out and "--allow-unauthenticated" in out
    assert "Claude Desktop" in out
