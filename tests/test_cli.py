"""The `parallel-mcp` command line: the emulator command, configuration errors, exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import parallel
import pytest

from tests.processes import command, http_server, server_env

pytestmark = pytest.mark.anyio

FAULTS = """\
speed = 400
[[faults]]
kind = "status"
method = "POST"
path = "/v1/tasks/runs"
status = 503
retry_after = 0
times = 1
"""


async def test_the_emulator_command_serves_the_official_sdk_with_faults_from_a_file(tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text(FAULTS)
    with anyio.fail_after(60):
        async with http_server("emulator", "--api-key", "k-123", "--faults", str(faults)) as server:
            sdk = parallel.AsyncParallel(api_key="k-123", base_url=server.url, max_retries=2)
            stranger = parallel.AsyncParallel(api_key="wrong", base_url=server.url, max_retries=0)
            async with sdk, stranger:
                run = await sdk.task_run.create(input="What is 2+2?", processor="lite")
                result = await sdk.task_run.result(run.run_id, api_timeout=30)
                with pytest.raises(parallel.AuthenticationError):
                    await stranger.task_run.retrieve(run.run_id)
    assert result.run.status == "completed"
    assert any("1 fault(s)" in line for line in server.stderr)


def test_an_invalid_setting_exits_2_with_a_message_naming_it() -> None:
    env = server_env(PARALLEL_MCP_DEFAULT_PROCESSOR="mega")
    done = subprocess.run(command("serve"), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "PARALLEL_MCP_DEFAULT_PROCESSOR" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        command("--config", str(tmp_path / "nope.toml"), "serve"),
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "does not exist" in done.stderr
