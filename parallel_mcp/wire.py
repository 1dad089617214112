"""Reading the Task API's answers: JSON bodies into models, server-sent event streams into events.

A body of another shape than documented is the API's fault, never the agent's: it becomes an
`APIResponseError`, and a malformed event in a stream is skipped.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx2
from pydantic import BaseModel, ValidationError

from parallel_mcp.errors import APIResponseError
from parallel_mcp.models import RunEvent, TaskGroupStatusEvent, parse_event

ModelT = TypeVar("ModelT", bound=BaseModel)


def json_body(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise APIResponseError(f"{response.request.method} {response.request.url.path} answered non-JSON") from None


def parse_body(model: type[ModelT], response: httpx2.Response) -> ModelT:
    """The answer as `model`; a body of another shape is the API's fault, never the agent's."""
    try:
        return model.model_validate(json_body(response))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors(include_url=False)[:3]
        )
        where = f"{response.request.method} {response.request.url.path}"
        raise APIResponseError(f"{where} answered a {model.__name__} that does not parse ({problems})") from None


def parse_sse_event(data: str) -> RunEvent | TaskGroupStatusEvent | None:
    try:
        payload = json.loads(data)
        return parse_event(payload) if isinstance(payload, dict) else None  # pyright: ignore[reportUnknownArgumentType]
    except (json.JSONDecodeError, ValidationError):
        return None


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield the `data` of each server-sent event (multi-line data joined with newlines)."""
    buffer: list[str] = []
    async for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            buffer.append(value.removeprefix(" "))
    if buffer:
        yield "\n".join(buffer)
