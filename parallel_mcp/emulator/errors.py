"""Error bodies in the API's two shapes: `ErrorResponse` (run endpoints) and FastAPI's 422 (groups)."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse

from parallel_mcp.models.common import ErrorObject


def new_ref_id() -> str:
    """A fresh reference id: unique per error, as support asks for it."""
    return str(uuid.uuid4())


def error_object(message: str, detail: dict[str, Any] | None = None) -> ErrorObject:
    """An `ErrorObject` with a fresh ref_id."""
    return ErrorObject(ref_id=new_ref_id(), message=message, detail=detail)


def api_error(
    status: int, message: str, *, detail: dict[str, Any] | None = None, retry_after: float | None = None
) -> JSONResponse:
    """`{"type": "error", "error": {ref_id, message, detail}}` with `status`."""
    body = {"type": "error", "error": error_object(message, detail).model_dump(mode="json")}
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range for a JSON number")
    return value


def json_body_errors(body: bytes, *, prefix: Sequence[int | str] = ()) -> list[dict[str, Any]]:
    """Problems pydantic's JSON parser lets through: NaN/Infinity and numbers too large to represent.

    They would parse, then make every later JSON answer about the run impossible to encode.
    """
    try:
        json.loads(body or b"null", parse_constant=_reject_constant, parse_float=_finite_float)
    except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
        return [{"loc": list(prefix), "msg": f"Invalid JSON: {exc}", "type": "json_invalid"}]
    return []


def _loc_text(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validation_errors(exc: ValidationError, *, prefix: Sequence[int | str] = ()) -> list[dict[str, Any]]:
    """Pydantic errors as FastAPI's `ValidationError` items: `loc`, `msg`, `type` (JSON-safe)."""
    items: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = [*prefix, *error["loc"]]
        items.append({"loc": loc, "msg": error["msg"], "type": error["type"]})
    return items


def validation_message(items: Sequence[Mapping[str, Any]]) -> str:
    """A one-line message naming the offending field(s), e.g. `metadata: Value error, ...`."""
    parts: list[str] = []
    for item in items[:3]:
        loc = [p for p in item["loc"] if p != "body"]
        where = _loc_text(loc)
        parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    return "Request validation error: " + "; ".join(parts) + more


def run_validation_error(items: Sequence[Mapping[str, Any]]) -> JSONResponse:
    """422 in the run endpoints' `ErrorResponse` shape; the message names the field."""
    return api_error(422, validation_message(items), detail={"errors": list(items)})


def group_validation_error(items: Sequence[Mapping[str, Any]]) -> JSONResponse:
    """422 in FastAPI's `HTTPValidationError` shape, as the group endpoints declare."""
    return JSONResponse({"detail": list(items)}, status_code=422)
