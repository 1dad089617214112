"""The `parallel-mcp` command line: the emulator command, configuration errors, exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import httpx2
import parallel
import pytest

from parallel_mcp import cli
from tests.processes import command, http_server, server_env
from tests.test_http_app import INITIALIZE, MCP_HEADERS

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


def test_only_the_flags_given_override_settings_and_the_rest_are_left_to_the_environment_and_file() -> None:
    serve = cli.build_parser().parse_args(["serve", "--port", "9000", "--multi-user"])
    assert cli.flags_given(serve, cli.SERVE_FLAGS) == {"port": 9000, "multi_user": True}
    emulator = cli.build_parser().parse_args(["emulator", "--speed", "50", "--allow-private-mcp-servers"])
    given = cli.flags_given(emulator, cli.EMULATOR_FLAGS)
    assert given == {"speed": 50.0, "allow_private_mcp_servers": True}


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


def test_serving_http_beyond_loopback_without_authentication_refuses_to_start_and_says_how_to_fix_it() -> None:
    done = subprocess.run(
        command("serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--port", "0"),
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    for remedy in ("--allow-unauthenticated", "PARALLEL_MCP_AUTH_TOKEN", "PARALLEL_MCP_OAUTH_ISSUER"):
        assert remedy in done.stderr


async def test_allow_unauthenticated_serves_beyond_loopback_with_a_loud_warning() -> None:
    args = ("serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--allow-unauthenticated")
    with anyio.fail_after(60):
        async with http_server(*args) as server:
            port = server.url.rsplit(":", 1)[1].split("/")[0]
            async with httpx2.AsyncClient() as http:
                response = await http.post(f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 200
    assert any("WITHOUT AUTHENTICATION" in line for line in server.stderr)


async def test_a_token_is_enough_to_serve_beyond_loopback_and_nothing_is_answered_without_it() -> None:
    env = server_env(PARALLEL_MCP_AUTH_TOKEN="tok-0123456789")
    with anyio.fail_after(60):
        async with http_server("serve", "--transport", "streamable-http", "--host", "0.0.0.0", env=env) as server:
            port = server.url.rsplit(":", 1)[1].split("/")[0]
            async with httpx2.AsyncClient() as http:
                refused = await http.post(f"http://127.0.0.1:{port}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert refused.status_code == 401
    assert not any("WITHOUT AUTHENTICATION" in line for line in server.stderr)


async def test_the_emulator_command_refuses_private_mcp_servers_unless_told_and_says_when_it_allows_them() -> None:
    with anyio.fail_after(60):
        async with http_server("emulator") as strict, http_server("emulator", "--allow-private-mcp-servers") as open_:
            pass
    assert not any("private addresses allowed" in line for line in strict.stderr)
    assert any("MCP servers on private addresses allowed" in line for line in open_.stderr)
