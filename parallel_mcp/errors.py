"""The exceptions of parallel-mcp, mirroring the official SDK's tree.

ParallelMCPError
├── ArgumentError                   (a tool argument is invalid; the agent can fix it)
├── AccessError                     (the caller brought no usable credentials)
├── APIError
│   ├── APIConnectionError          (no HTTP answer; `request_sent` says if it may have arrived)
│   │   └── APITimeoutError
│   ├── RunMayExistError            (a create failed after it may have reached the API)
│   ├── APIResponseError            (a success answer whose body is not what the API documents)
│   └── APIStatusError              (an HTTP error answer; keeps `status_code` and `ref_id`)
│       ├── AuthenticationError     401
│       ├── PaymentRequiredError    402
│       ├── PermissionDeniedError   403 (the API's answer to an unknown processor)
│       ├── NotFoundError           404
│       ├── RequestTimeoutError     408
│       ├── UnprocessableEntityError 422
│       ├── RateLimitError          429
│       └── InternalServerError     5xx
└── TaskRunFailedError              (the run itself failed; keeps the run's error and ref_id)
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any, cast

from parallel_mcp.models import ErrorObject, TaskRun


class ParallelMCPError(Exception):
    """Base of every error raised by parallel-mcp."""


class ArgumentError(ParallelMCPError, ValueError):
    """A tool argument is invalid; the message names the argument and how to fix it."""


class AccessError(ParallelMCPError):
    """The caller brought no usable credentials (e.g. no Parallel key in multi-user mode)."""


class SpendRefused(ParallelMCPError):
    """A create refused by a spending guard; the message names the setting and says nothing was created."""


class RepeatLapsedError(ParallelMCPError):
    """A create let through unasked as a repeat of an earlier one no longer repeats it: nothing was sent."""


class APIError(ParallelMCPError):
    """A call to the Task API did not succeed."""


class APIConnectionError(APIError):
    """No HTTP answer came back."""

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        """False when the request provably never reached the API (e.g. connection refused)."""


class APITimeoutError(APIConnectionError):
    """The API did not answer in time."""


class RunMayExistError(APIError):
    """A create failed after the request may have reached the API, so a run may exist.

    It is never retried automatically: retrying could start a second, billed run.
    """

    def __init__(self, message: str, *, group_id: str | None = None) -> None:
        super().__init__(message)
        self.group_id = group_id
        """Set when runs may have been added to this (existing) group: check it rather than create again."""


class APIResponseError(APIError):
    """The API answered with success but a body that does not match its documented shape."""


class APIStatusError(APIError):
    """The API answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        ref_id: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.ref_id = ref_id
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        ref = f" (ref_id {self.ref_id})" if self.ref_id else ""
        return f"HTTP {self.status_code}: {self.message}{ref}"


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong."""


class PaymentRequiredError(APIStatusError):
    """402: not enough available credit (runs reserve their price up front)."""


class PermissionDeniedError(APIStatusError):
    """403: the API refused; for creates this means an invalid processor."""


class NotFoundError(APIStatusError):
    """404: unknown run or group."""


class RequestTimeoutError(APIStatusError):
    """408: a long-poll ended while the run is still active."""


class UnprocessableEntityError(APIStatusError):
    """422: the request body broke a rule; the message names the field."""


class RateLimitError(APIStatusError):
    """429: too many requests; honour `retry_after`."""


class InternalServerError(APIStatusError):
    """5xx: the API had a problem."""


class TaskRunFailedError(ParallelMCPError):
    """The run ended in `failed`; `error` holds the API's message and ref_id."""

    def __init__(self, run: TaskRun) -> None:
        self.run = run
        self.error = run.error or ErrorObject(ref_id="", message="the run failed without an error message")
        ref = f" (ref_id {self.error.ref_id})" if self.error.ref_id else ""
        super().__init__(f"run {run.run_id} failed: {self.error.message}{ref}")


_BY_STATUS: dict[int, type[APIStatusError]] = {
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None  # neither seconds nor an HTTP date: ignore it and back off as usual
    if parsed.tzinfo is None:
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def _message_and_ref(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    mapping = cast(dict[str, Any], body)
    error = mapping.get("error")
    if isinstance(error, dict):
        error_map = cast(dict[str, Any], error)
        message = error_map.get("message")
        ref_id = error_map.get("ref_id")
        return (str(message) if message else None, str(ref_id) if ref_id else None)
    detail = mapping.get("detail")
    if isinstance(detail, list):
        # FastAPI's HTTPValidationError (the group endpoints): name each field.
        parts: list[str] = []
        for item in cast(list[Any], detail):
            if isinstance(item, dict):
                entry = cast(dict[str, Any], item)
                loc = ".".join(str(p) for p in cast(list[Any], entry.get("loc") or []) if p != "body")
                parts.append(f"{loc}: {entry.get('msg')}" if loc else str(entry.get("msg")))
        return ("; ".join(parts) or None, None)
    if isinstance(detail, str):
        return detail, None
    message = mapping.get("message")
    return (str(message) if message else None, None)


def error_from_response(status_code: int, headers: Mapping[str, str], content: bytes) -> APIStatusError:
    """Map an HTTP error answer to the matching `APIStatusError` subclass, keeping message and ref_id."""
    body: Any
    try:
        body = json.loads(content) if content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = content[:500].decode("utf-8", "replace")
    message, ref_id = _message_and_ref(body)
    if message is None:
        message = body if isinstance(body, str) and body else f"the API answered HTTP {status_code}"
    cls = _BY_STATUS.get(status_code, InternalServerError if status_code >= 500 else APIStatusError)
    return cls(message, status_code=status_code, ref_id=ref_id, body=body, retry_after=parse_retry_after(headers))
