"""How an emulator instance behaves: auth, speed, credit, rate limit and scripted faults."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from parallel_mcp.emulator.faults import Fault

DEFAULT_SPEED = 20.0
"""Runs go 20x faster than the real service: `lite` (10-60 s) takes 0.5-3 s, about 2 s on average."""


class EmulatorConfig(BaseModel):
    """Settings of one emulator; load them from TOML or JSON with `from_file`.

    A fault file looks like this (TOML)::

        speed = 50
        [[faults]]
        kind = "status"
        method = "POST"
        path = "/v1/tasks/runs"
        status = 503
        times = 2
    """

    model_config = ConfigDict(extra="forbid")

    api_key: str | None = None
    """The only accepted `x-api-key`; None accepts any non-empty key (a missing one is still 401)."""
    speed: float = Field(default=DEFAULT_SPEED, gt=0)
    """How many times faster than the real service runs go."""
    instant: bool = False
    """Runs complete as soon as they are created (create still answers `queued`)."""
    frozen: bool = False
    """Runs never advance by themselves; tests move them with `EmulatorState.advance/finish/fail`."""
    webhook_secret: str | None = None
    """Secret that signs webhooks; without one, no webhook is delivered."""
    credit_usd: float | None = Field(default=None, ge=0)
    """Account credit; each run reserves its processor's price. None is unlimited."""
    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    """Creates (run and group-run POSTs) allowed per minute; above it, 429 with `Retry-After`."""
    faults: list[Fault] = Field(default_factory=list[Fault])
    """Faults in force from the start."""
    sse_max_seconds: float = Field(default=570.0, gt=0)
    """A run's event stream closes after this long (on the emulator's clock), as the real one does after 570 s."""
    group_sse_max_seconds: float = Field(default=3600.0, gt=0)
    """A group's event stream closes after this long at most (on the emulator's clock; the API's 1 hour)."""
    mcp_timeout: float = Field(default=10.0, gt=0)
    """Seconds allowed for listing and calling tools on the `mcp_servers` of a run."""
    allow_private_mcp_servers: bool = False
    """Call `mcp_servers` that resolve to loopback, private, link-local or metadata addresses.

    Off by default: the real service calls MCP servers from Parallel's network, while the emulator
    calls them from this machine, where such a URL reaches services that trust local callers.
    """

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> EmulatorConfig:
        """Load a config from a `.toml` or `.json` file (or a JSON list of faults); non-None overrides win."""
        file = Path(path)
        text = file.read_text(encoding="utf-8")
        loaded: Any = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
        # A JSON file may hold just the list of faults.
        data: dict[str, Any] = {"faults": loaded} if isinstance(loaded, list) else dict(loaded)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)
