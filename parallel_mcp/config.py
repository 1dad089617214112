"""Settings: one `Settings` object, loaded once by the CLI and passed down.

Precedence: CLI flag > environment > TOML config file > default. The API key and base URL reuse
the official SDK's variable names (`PARALLEL_API_KEY`, `PARALLEL_BASE_URL`); everything else is
`PARALLEL_MCP_<NAME>`. Errors name the variable, file key or flag that holds the bad value.

The three sources are merged here rather than with pydantic-settings: that package costs about
50 ms of imports, a third of the start-up budget beyond the MCP SDK itself (see bench/).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from parallel_mcp.deadline import CALL_MARGIN_SECONDS
from parallel_mcp.processors import PROCESSORS

DEFAULT_BASE_URL = "https://api.parallel.ai"
CONFIG_ENV = "PARALLEL_MCP_CONFIG"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_WAIT_SECONDS = 50.0
"""Claude Desktop cuts a tool call at about 60 s: no single wait may come near it."""


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting and where it came from."""


class Settings(BaseModel):
    """Every setting of the server, the CLI and the embedded emulator."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    api_key: SecretStr | None = Field(
        default=None, description="Parallel API key. Without one, the server runs on the embedded emulator."
    )
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Task API base URL.")
    default_processor: str = Field(default="base", description="Processor used when a call names none.")
    wait_seconds: float = Field(
        default=25.0, ge=0, le=MAX_WAIT_SECONDS, description="How long a tool call waits for a run by default."
    )
    call_margin_seconds: float = Field(
        default=CALL_MARGIN_SECONDS,
        gt=0,
        le=10,
        description="How long a call may take beyond its wait (the create, one last read); wait + margin must "
        "stay under the client's call timeout.",
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
    journal: str = Field(
        default="auto",
        description='Run journal: "auto" (a file in the user state dir; in memory on the emulator), "off", '
        "or a file path.",
    )
    database_url: SecretStr | None = Field(
        default=None, description="postgresql://... : a PostgreSQL store shared by replicas, instead of the journal."
    )
    dedupe_window_seconds: float = Field(
        default=600.0,
        ge=0,
        description="An identical create within this many seconds returns the first run (0 turns it off).",
    )
    public_url: str | None = Field(
        default=None, description="The server's public base URL (https://research.example.com), for webhooks and OAuth."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Secret of Parallel's signed webhooks; with public_url, runs report their end."
    )
    oauth_issuer: str | None = Field(
        default=None,
        description="HTTP: users sign in with this OAuth authorization server (its issuer URL, exactly as its "
        "metadata spells it); the server then accepts only its access tokens.",
    )
    oauth_audience: str | None = Field(
        default=None, description="The audience access tokens must name (default: public_url + /mcp, or /sse for SSE)."
    )
    oauth_scopes: list[str] = Field(default_factory=list[str], description="Scopes every access token must carry.")
    oauth_introspection_client_id: str | None = Field(default=None, description="Introspects opaque tokens (RFC 7662).")
    oauth_introspection_client_secret: SecretStr | None = Field(default=None, description="That client's secret.")
    allow_unauthenticated: bool = Field(
        default=False, description="Serve HTTP beyond loopback without any authentication (not recommended)."
    )
    session_idle_timeout: float = Field(
        default=300.0, gt=0, le=86_400, description="HTTP: a legacy session idle this many seconds is closed."
    )
    max_sessions: int = Field(default=1000, ge=1, description="HTTP: legacy sessions open at once, in total.")
    max_sessions_per_client: int = Field(
        default=50, ge=1, description="HTTP: legacy sessions one client (a signed-in user, else an IP) may hold."
    )
    emulator_allow_private_mcp: bool = Field(
        default=False, description="Embedded emulator: let mcp_servers reach loopback and private addresses."
    )
    confirm_above_usd: float | None = Field(
        default=None, ge=0, description="Ask the user before a call whose runs cost more than this in total."
    )
    daily_budget_usd: float | None = Field(
        default=None, ge=0, description="Refuse creates that would take an owner's spend today above this."
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

    @field_validator("oauth_issuer", "public_url")
    @classmethod
    def _web_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        # Kept exactly as given (a trailing slash included): issuers are compared as exact strings (RFC 8414 §3.3).
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{url!r} is not an http(s) URL without query or fragment")
        # The issuer's keys decide who is signed in: they must not travel in clear beyond this machine.
        if info.field_name == "oauth_issuer" and parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError(f"{url!r} must use https (plain http is only accepted on loopback)")
        return url

    @property
    def uses_oauth(self) -> bool:
        """True when HTTP users sign in with the OAuth issuer (on stdio the user is whoever started the process)."""
        return self.oauth_issuer is not None and self.transport != "stdio"

    @property
    def uses_emulator(self) -> bool:
        """True when no API key is configured: the server runs on the embedded emulator."""
        return self.api_key is None and not self.multi_user


def env_name(field: str) -> str:
    """The environment variable of a setting."""
    return _SDK_ENV_NAMES.get(field, f"PARALLEL_MCP_{field.upper()}")


_SDK_ENV_NAMES = {
    "api_key": "PARALLEL_API_KEY",
    "base_url": "PARALLEL_BASE_URL",
    "webhook_secret": "PARALLEL_WEBHOOK_SECRET",
}
_LIST_FIELDS = frozenset({"extra_betas", "allowed_hosts", "allowed_origins", "oauth_scopes"})


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings found in the environment; list settings take a JSON list or comma-separated values."""
    values: dict[str, Any] = {}
    for field in Settings.model_fields:
        raw = environ.get(env_name(field))
        if raw is None:
            continue
        if field in _LIST_FIELDS:
            stripped = raw.strip()
            values[field] = (
                json.loads(stripped)
                if stripped.startswith("[")
                else [item.strip() for item in stripped.split(",") if item.strip()]
            )
        else:
            values[field] = raw
    return values


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
    try:
        env_values = read_environment(os.environ)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid configuration: a list setting in the environment is not valid JSON: {exc}"
        ) from None
    flags = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings.model_validate({**file_values, **env_values, **flags})
    except ValidationError as exc:
        problems = "; ".join(
            f"{_source(err['loc'], flags, env_values, path)}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def _source(loc: tuple[int | str, ...], flags: Mapping[str, Any], env: Mapping[str, Any], path: Path | None) -> str:
    field = str(loc[0]) if loc else "settings"
    if field in flags:
        return f"--{field.replace('_', '-')}"
    if field in env:
        return env_name(field)
    if path is not None:
        return f"{field} (config file {path})"
    return field
