"""Settings: flag > environment > TOML file > default, with errors that name the setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from parallel_mcp.config import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PARALLEL_API_KEY", "PARALLEL_BASE_URL", "PARALLEL_MCP_CONFIG", "PARALLEL_MCP_WAIT_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_use_the_emulator_on_loopback() -> None:
    settings = load_settings()
    assert settings.uses_emulator and settings.host == "127.0.0.1" and settings.base_url == "https://api.parallel.ai"


def test_a_flag_beats_the_environment_which_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('wait_seconds = 10\ndefault_processor = "core"\n')
    monkeypatch.setenv("PARALLEL_MCP_WAIT_SECONDS", "12")
    assert load_settings(config).wait_seconds == 12
    assert load_settings(config).default_processor == "core"
    assert load_settings(config, wait_seconds=3).wait_seconds == 3


def test_the_sdk_variable_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARALLEL_API_KEY", "sk-abc")
    monkeypatch.setenv("PARALLEL_BASE_URL", "http://127.0.0.1:9/")
    settings = load_settings()
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sk-abc"
    assert settings.base_url == "http://127.0.0.1:9" and not settings.uses_emulator
    assert "sk-abc" not in repr(settings)


def test_the_config_file_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[parallel-mcp]\ndefault_processor = "pro-fast"\n')
    monkeypatch.setenv("PARALLEL_MCP_CONFIG", str(config))
    assert load_settings().default_processor == "pro-fast"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('default_processor = "mega"', "default_processor"),
        ("wait_seconds = 90", "wait_seconds"),
        ("unknown_setting = 1", "unknown_setting"),
        ("wait_seconds = ", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_an_error_naming_the_setting_and_file(tmp_path: Path, content: str, needle: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(content + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert needle in str(caught.value) and str(config) in str(caught.value)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_a_secret_in_an_invalid_setting_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARALLEL_BASE_URL", "not-a-url")
    monkeypatch.setenv("PARALLEL_API_KEY", "sk-very-secret")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "sk-very-secret" not in str(caught.value) and "PARALLEL_BASE_URL" in str(caught.value)


def test_list_settings_take_json_or_commas_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARALLEL_MCP_ALLOWED_HOSTS", '["a.example:443", "b.example:443"]')
    monkeypatch.setenv("PARALLEL_MCP_EXTRA_BETAS", "beta-one, beta-two")
    settings = load_settings()
    assert settings.allowed_hosts == ["a.example:443", "b.example:443"]
    assert settings.extra_betas == ["beta-one", "beta-two"]


def test_errors_name_the_flag_or_variable_that_holds_the_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARALLEL_MCP_PORT", "eighty")
    with pytest.raises(ConfigError, match="PARALLEL_MCP_PORT"):
        load_settings()
    with pytest.raises(ConfigError, match="--wait-seconds"):
        load_settings(port=80, wait_seconds=-1)


def test_the_documented_config_file_loads_with_its_defaults() -> None:
    documented = Path(__file__).resolve().parent.parent / "config" / "parallel-mcp.toml"
    assert load_settings(documented) == load_settings()


def test_every_setting_is_in_the_readme_table_and_the_documented_config_file() -> None:
    root = Path(__file__).resolve().parent.parent
    table = root.joinpath("README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = root.joinpath("config", "parallel-mcp.toml").read_text()
    # The transport is chosen per command (`serve --transport`), not configured.
    settings = [name for name in Settings.model_fields if name != "transport"]
    assert [name for name in settings if f"`{name}`" not in table] == []
    assert [name for name in settings if not re.search(rf"^#? ?{name} =", documented, re.M)] == []


@pytest.mark.parametrize("value", ["0", "11", "abc"])
def test_a_call_margin_outside_0_to_10_seconds_is_refused_by_its_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PARALLEL_MCP_CALL_MARGIN_SECONDS", value)
    with pytest.raises(ConfigError, match="PARALLEL_MCP_CALL_MARGIN_SECONDS"):
        load_settings()
