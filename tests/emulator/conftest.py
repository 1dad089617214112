"""Helpers for emulator tests: a live emulator on a loopback port and an HTTP client for it."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx2

from parallel_mcp.emulator.clock import EmulatorClock
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.emulator.runner import RunningEmulator, serve_emulator
from parallel_mcp.models import TaskRunInput
from parallel_mcp.models.betas import betas_for

API_KEY = "test-key"
HEADERS = {"x-api-key": API_KEY}


@asynccontextmanager
async def running(
    clock: EmulatorClock | None = None, **config: Any
) -> AsyncGenerator[tuple[RunningEmulator, httpx2.AsyncClient]]:
    """An emulator (config from keywords, `api_key` defaults to `API_KEY`) and a client that sends the key."""
    config.setdefault("api_key", API_KEY)
    async with (
        serve_emulator(EmulatorConfig(**config), clock=clock) as emu,
        httpx2.AsyncClient(base_url=emu.base_url, headers=HEADERS, timeout=10.0) as client,
    ):
        yield emu, client


def body(response: httpx2.Response) -> dict[str, Any]:
    """The JSON object a response carries."""
    return cast(dict[str, Any], response.json())


def assert_api_error(response: httpx2.Response, status: int, *needles: str) -> dict[str, Any]:
    """Check the `{"type":"error","error":{ref_id,message}}` shape and that the message names `needles`."""
    assert response.status_code == status, response.text
    data = body(response)
    assert data["type"] == "error"
    error = cast(dict[str, Any], data["error"])
    assert isinstance(error["ref_id"], str) and error["ref_id"]
    for needle in needles:
        assert needle in error["message"], error["message"]
    return error


async def iter_sse(response: httpx2.Response) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
    """(event type, payload) of each SSE frame as it arrives."""
    async for sse in httpx2.EventSource(response):
        yield sse.event, cast(dict[str, Any], json.loads(sse.data))


async def read_sse(response: httpx2.Response) -> list[tuple[str, dict[str, Any]]]:
    """Every (event type, payload) of an SSE response, until the server closes it."""
    return [event async for event in iter_sse(response)]


def beta_headers(payload: dict[str, Any]) -> dict[str, str]:
    """The `parallel-beta` header a well-behaved client sends with this run body (none when it needs none)."""
    betas = betas_for(TaskRunInput.model_validate(payload))
    return {"parallel-beta": ",".join(betas)} if betas else {}


async def create(client: httpx2.AsyncClient, **fields: Any) -> dict[str, Any]:
    """Create a run (default: a lite question) with the betas it needs, and return the TaskRun."""
    payload: dict[str, Any] = {"input": "What is the capital of France?", "processor": "lite", **fields}
    response = await client.post("/v1/tasks/runs", json=payload, headers=beta_headers(payload))
    assert response.status_code == 202, response.text
    return body(response)
