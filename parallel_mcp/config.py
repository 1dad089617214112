"""Settings: one `Settings` object, loaded once by the CLI and passed down.

Precedence: CLI flag > environment > TOML config file > default. The API key and base URL reuse
the official SDK's variable names (`PARALLEL_API_KEY`, `PARALLEL_BASE_URL`); everything else is
`PARALLEL_MCP_<NAME>`.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from parallel_mcp.processors import PROCESSORS

DEFAULT_BASE_URL = "https://api.parallel.ai"
CONFIG_ENV = "PARALLEL_MCP_CONFIG"
MAX_WAIT_SECONDS = 50.0
"""Claude Desktop cuts a tool call at about 60 s: no single wait may come near it."""


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting and where it came from."""


class Settings(BaseSettings):
    """Every setting of the server, the CLI and the embedded emulator."""

    model_config = SettingsConfigDict(
        env_prefix="PARALLEL_MCP_", extra="forbid", populate_by_name=True, validate_default=True
    )

    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("PARALLEL_API_KEY", "api_key"),
        description="Parallel API key. Without one, the server runs on the embedded emulator.",
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        validation_alias=AliasChoices("PARALLEL_BASE_URL", "base_url"),
        description="Task API base URL.",
    )
    default_processor: str = Field(default="base", description="Processor used when a call names none.")
    wait_seconds: float = Field(
        default=25.0, ge=0, le=MAX_WAIT_SECONDS, description="How long a tool call waits for a run by default."
    )
    result_budget_tokens: int = Field(
        default=8000, ge=500, le=100_000, description="Upper bound on one tool result, in estimated tokens."
    )
    max_cost_usd: float | None = Field(
        default=None, ge=0, description="Refuse runs whose list price is above this, unless confirmed."
    )
    extra_betas: list[str] = Field(default_factory=list[str], description="Extra `parallel-beta` values.")
    max_retries: int = Field(default=2, ge=0, le=10)
    connect_timeout: float = Field(default=5.0, gt=0)
    request_timeout: float = Field(default=60.0, gt=0)
    progress_interval: float = Field(
        default=4.0, gt=0, le=5.0, description="Seconds between progress notifications while waiting."
    )
    emulator_speed: float = Field(default=20.0, gt=0, description="How much faster than real the emulator runs.")
    auth_token: SecretStr | None = Field(
        default=None, description="Bearer token HTTP clients must present to this server (HTTP transports)."
    )
    multi_user: bool = Field(
        default=False, description="HTTP: each request brings its own Parallel key (Authorization or x-api-key)."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list[str], description="Extra Host values accepted over HTTP (e.g. mcp.example.com:443)."
    )
    allowed_origins: list[str] = Field(default_factory=list[str], description="Extra Origin values accepted.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    transport: Literal["stdio", "streamable-http", "sse"] = "stdio"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @field_validator("default_processor")
    @classmethod
    def _known_processor(cls, name: str) -> str:
        if name not in PROCESSORS:
            raise ValueError(f"unknown processor {name!r}; choose one of {', '.join(PROCESSORS)}")
        return name

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url.rstrip("/")

    @property
    def uses_emulator(self) -> bool:
        """True when no API key is configured: the server runs on the embedded emulator."""
        return self.api_key is None and not self.multi_user

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env: secrets come from the host's env
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, InitSettingsSource(settings_cls, _file_values.get({})))


# The TOML file's values for the Settings being built; a context variable keeps loads independent.
_file_values: ContextVar[dict[str, Any]] = ContextVar("parallel_mcp_file_values")


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file (keys are setting names, e.g. ``default_processor = "core"``)."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    # A [parallel-mcp] table is accepted too, so the file can be shared with other tools.
    table: Any = data.get("parallel-mcp", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [parallel-mcp] must be a table")
    return cast(dict[str, Any], table)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from flags (`overrides`, None values ignored), the environment and a TOML file.

    Args:
        config_file: a TOML file; defaults to `$PARALLEL_MCP_CONFIG` when set.
        overrides: values from CLI flags; they win over everything else.

    Raises:
        ConfigError: a setting is invalid; the message names it.
    """
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    file_values = read_config_file(path) if path else {}
    flags = {key: value for key, value in overrides.items() if value is not None}
    token = _file_values.set(file_values)
    try:
        return Settings(**flags)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        source = f" (config file {path})" if path else ""
        raise ConfigError(f"invalid configuration{source}: {problems}") from None
    finally:
        _file_values.reset(token)
