"""An async client for the Task API, built for waiting on long runs without waste.

- One connection pool per server lifetime; `with_api_key` shares it between users (multi-user HTTP).
- The `parallel-beta` header is derived from what each request uses.
- Reads retry with backoff and jitter, honouring `Retry-After`. A create is retried only when the
  request provably created nothing (connection refused, 429, 503); otherwise `RunMayExistError`.
- `/result` long-polls: `None` means still running; a 404 is resolved by reading the run.
- `events` reads the SSE stream and de-duplicates the replay that follows a reconnect.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Self, TypeVar, cast
from urllib.parse import quote

import anyio
import httpx2
from pydantic import BaseModel

from parallel_mcp import __version__
from parallel_mcp.deadline import remaining
from parallel_mcp.errors import (
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    NotFoundError,
    RequestTimeoutError,
    RunMayExistError,
    TaskRunFailedError,
    error_from_response,
)
from parallel_mcp.models import (
    ErrorEvent,
    GroupEvent,
    RunEvent,
    TaskGroup,
    TaskGroupRunResponse,
    TaskGroupStatusEvent,
    TaskRun,
    TaskRunEvent,
    TaskRunInput,
    TaskRunProgressMessageEvent,
    TaskRunResult,
    TaskSpec,
    UnknownEvent,
)
from parallel_mcp.models.betas import betas_for
from parallel_mcp.wire import json_body, parse_body, parse_sse_event, sse_data

logger = logging.getLogger(__name__)

MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0
DEFAULT_MAX_RETRY_WAIT = 10.0
"""A tool call must end well inside a client's ~60 s: a longer Retry-After is reported, not slept out."""
# Statuses a create may retry: the API rejected the request before doing anything with it.
_CREATE_RETRY_STATUSES = frozenset({429, 503})
_READ_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})

ModelT = TypeVar("ModelT", bound=BaseModel)


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry number `attempt` (0-based): `Retry-After` when sane, else 0.5 s doubling to 8 s."""
    if retry_after is not None and 0 < retry_after <= MAX_RETRY_AFTER:
        return retry_after
    base = min(0.5 * 2**attempt, MAX_BACKOFF)
    return base * (1 - 0.25 * random.random())  # up to 25 % less, so clients spread out


class _Pool:
    """What clients made by `with_api_key` share: one connection pool, opened on first use, and a count.

    Opening the pool lazily keeps its cost (TLS context, transport imports) out of server start-up.
    """

    def __init__(
        self,
        http_client: httpx2.AsyncClient | None,
        timeout: httpx2.Timeout,
        before_request: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self._http = http_client
        self.owned = http_client is None
        self.timeout = timeout
        self.before_request = before_request
        self.requests = 0

    async def http(self) -> httpx2.AsyncClient:
        if self.before_request is not None:
            await self.before_request()
        if self._http is None:
            self._http = httpx2.AsyncClient(
                timeout=self.timeout,
                # Idle connections go before a server's usual 5 s keep-alive ends: a reused one it has just closed
                # would fail a create after sending it, and say "a run may exist" for nothing.
                limits=httpx2.Limits(max_connections=200, max_keepalive_connections=40, keepalive_expiry=4.0),
                headers={"User-Agent": f"parallel-mcp/{__version__}"},
            )
        return self._http

    async def aclose(self) -> None:
        if self.owned and self._http is not None:
            await self._http.aclose()


class AsyncTaskClient:
    """Async client for the Task API endpoints under `/v1/tasks`."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        http_client: httpx2.AsyncClient | None = None,
        max_retries: int = 2,
        extra_betas: tuple[str, ...] = (),
        connect_timeout: float = 5.0,
        request_timeout: float = 60.0,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        before_request: Callable[[], Awaitable[None]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        """Set up the client; the connection pool opens on the first request.

        Args:
            before_request: awaited before each request (e.g. to start an embedded backend on first use).
            sleep: how backoff waits between retries (tests record the delays instead of sleeping them).
        """
        self._api_key = api_key
        self.max_retry_wait = max_retry_wait
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.extra_betas = tuple(extra_betas)
        timeout = httpx2.Timeout(request_timeout, connect=connect_timeout)
        self._pool = _Pool(http_client, timeout, before_request)
        self._sleep = sleep
        self._owns_pool = True

    @property
    def request_count(self) -> int:
        """Requests sent by this client and every client sharing its pool via `with_api_key`."""
        return self._pool.requests

    def __repr__(self) -> str:
        return f"AsyncTaskClient(base_url={self.base_url!r})"

    def with_api_key(self, api_key: str) -> AsyncTaskClient:
        """A client for another key that shares this one's connection pool (multi-user mode)."""
        clone = AsyncTaskClient.__new__(AsyncTaskClient)
        clone.__dict__.update(self.__dict__)
        clone._api_key = api_key
        clone._owns_pool = False
        return clone

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool if this client created it."""
        if self._owns_pool:
            await self._pool.aclose()

    # -- runs ---------------------------------------------------------------------------------

    async def create_run(self, body: TaskRunInput) -> TaskRun:
        """Create a run (`POST /v1/tasks/runs`); it starts `queued`.

        Raises:
            RunMayExistError: the request may have reached the API; do not blindly retry.
            APIStatusError: the API refused (401, 402, 403 invalid processor, 422, 429 after retries).
        """
        payload = body.model_dump(mode="json", exclude_none=True)
        headers = self._beta_headers(betas_for(body, extra=self.extra_betas))
        response = await self._send("POST", "/v1/tasks/runs", json_body=payload, headers=headers, create=True)
        return parse_body(TaskRun, response)

    async def get_run(self, run_id: str) -> TaskRun:
        """Read a run's status (`GET /v1/tasks/runs/{id}`)."""
        return await self._get_model(f"/v1/tasks/runs/{_segment(run_id)}", TaskRun)

    async def get_input(self, run_id: str) -> dict[str, Any]:
        """Read back the body a run was created with (header values are never returned by the API)."""
        response = await self._send("GET", f"/v1/tasks/runs/{_segment(run_id)}/input")
        data = json_body(response)
        if not isinstance(data, dict):
            raise APIResponseError(f"GET {response.request.url.path} answered {type(data).__name__}, not an object")
        return cast(dict[str, Any], data)

    async def get_result(self, run_id: str, *, timeout: int) -> TaskRunResult | None:
        """Long-poll `/result` for up to `timeout` seconds.

        Returns:
            The result, or `None` when the run is still active after `timeout` (the API's 408).

        Raises:
            TaskRunFailedError: the run failed (the API answers 404; the run says why).
            NotFoundError: there is no such run.
        """
        path = f"/v1/tasks/runs/{_segment(run_id)}/result"
        extra_time = float(timeout) + 10.0
        try:
            response = await self._send(
                "GET",
                path,
                params={"timeout": max(1, int(timeout))},
                headers=self._beta_headers(list(self.extra_betas)),
                read_timeout=extra_time,
                retry_408=False,
            )
        except RequestTimeoutError:
            return None
        except NotFoundError:
            run = await self.get_run(run_id)  # raises NotFoundError for an unknown id
            if run.status == "failed":
                raise TaskRunFailedError(run) from None
            if run.is_active:
                return None
            raise
        return parse_body(TaskRunResult, response)

    async def events(self, run_id: str, *, reconnects: int = 2) -> AsyncIterator[RunEvent]:
        """Stream a run's events, reconnecting when the stream drops and skipping replayed ones.

        The stream replays every message on reconnect and closes after 570 s; events already
        seen (same type, timestamp and message) are not yielded twice. Ends with the final
        `task_run.state` (the one carrying the output of a completed run), when the stream of an
        ended run closes, or when reconnects are exhausted.
        """
        seen: set[tuple[str, str | None, str]] = set()
        attempts = 0
        while True:
            ended = False
            try:
                async for event in self._event_stream(f"/v1/tasks/runs/{_segment(run_id)}/events"):
                    if isinstance(event, TaskGroupStatusEvent):
                        continue  # not part of a run's stream
                    if isinstance(event, TaskRunProgressMessageEvent):
                        key = (event.type, event.timestamp, event.message)
                        if key in seen:
                            continue
                        seen.add(key)
                    yield event
                    if isinstance(event, ErrorEvent) or (isinstance(event, TaskRunEvent) and event.output is not None):
                        return
                    if isinstance(event, TaskRunEvent):
                        # An ended run's stream opens with its state and then replays its history.
                        ended = not event.run.is_active
                if ended:
                    return
            except APIConnectionError as exc:
                logger.debug("event stream for %s dropped: %s", run_id, type(exc).__name__)
            attempts += 1
            if attempts > reconnects:
                return
            await self._sleep(backoff_delay(attempts - 1))

    # -- task groups ------------------------------------------------------------------------------

    async def create_group(self, metadata: Mapping[str, str | int | float | bool] | None = None) -> TaskGroup:
        """Create a task group."""
        body = {"metadata": dict(metadata)} if metadata else {}
        response = await self._send("POST", "/v1/tasks/groups", json_body=body, create=True)
        return parse_body(TaskGroup, response)

    async def get_group(self, group_id: str) -> TaskGroup:
        """Read a group's aggregate status."""
        return await self._get_model(f"/v1/tasks/groups/{_segment(group_id)}", TaskGroup)

    async def add_runs(
        self, group_id: str, inputs: list[TaskRunInput], *, default_task_spec: TaskSpec | None = None
    ) -> TaskGroupRunResponse:
        """Add up to 1,000 runs to a group in one request."""
        body: dict[str, Any] = {"inputs": [i.model_dump(mode="json", exclude_none=True) for i in inputs]}
        if default_task_spec is not None:
            body["default_task_spec"] = default_task_spec.model_dump(mode="json", exclude_none=True)
        betas: list[str] = []
        for item in inputs:
            betas.extend(betas_for(item))
        headers = self._beta_headers(list(dict.fromkeys([*betas, *self.extra_betas])))
        response = await self._send(
            "POST", f"/v1/tasks/groups/{_segment(group_id)}/runs", json_body=body, headers=headers, create=True
        )
        return parse_body(TaskGroupRunResponse, response)

    async def group_events(self, group_id: str, *, timeout: float | None = None) -> AsyncIterator[GroupEvent]:
        """Stream a group's status changes and run endings; it ends when no run is active any more."""
        params: dict[str, str | int | float | bool] = {} if timeout is None else {"timeout": timeout}
        async for event in self._event_stream(f"/v1/tasks/groups/{_segment(group_id)}/events", params):
            if isinstance(event, TaskGroupStatusEvent | TaskRunEvent | ErrorEvent | UnknownEvent):
                yield event

    async def group_runs(
        self, group_id: str, *, include_input: bool = False, include_output: bool = False
    ) -> AsyncIterator[TaskRunEvent]:
        """Every run of a group, at once (with inputs and outputs when asked)."""
        params: dict[str, str | int | float | bool] = {"include_input": include_input, "include_output": include_output}
        async for event in self._event_stream(f"/v1/tasks/groups/{_segment(group_id)}/runs", params):
            if isinstance(event, TaskRunEvent):
                yield event

    # -- plumbing ------------------------------------------------------------------------------

    def _beta_headers(self, betas: list[str]) -> dict[str, str]:
        return {"parallel-beta": ",".join(betas)} if betas else {}

    async def _get_model(self, path: str, model: type[ModelT]) -> ModelT:
        response = await self._send("GET", path)
        return parse_body(model, response)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        create: bool = False,
        read_timeout: float | None = None,
        retry_408: bool = True,
    ) -> httpx2.Response:
        attempt = 0
        while True:
            try:
                response = await self._capped_request(method, path, json_body, params, headers, read_timeout)
            except _OutOfTime as exc:
                # The call's deadline: whatever upstream does, the agent gets an answer while its client waits.
                if create and exc.sent:
                    raise _may_exist(path, "got no answer within the call's time") from None
                raise APITimeoutError(
                    f"{method} {path} got no answer within the call's time", request_sent=exc.sent
                ) from None
            except httpx2.ConnectError as exc:
                # Refused or unreachable: nothing reached the API, so any request may retry.
                error: Exception = APIConnectionError(
                    f"could not connect to {self.base_url}: {_describe(exc)}", request_sent=False
                )
            except httpx2.TimeoutException as exc:
                sent = not isinstance(exc, httpx2.ConnectTimeout | httpx2.PoolTimeout)
                if create and sent:
                    raise _may_exist(path, "timed out") from None
                error = APITimeoutError(f"{method} {path} timed out", request_sent=sent)
            except httpx2.TransportError as exc:
                if create:
                    raise _may_exist(path, f"lost the connection ({_describe(exc)})") from None
                error = APIConnectionError(f"{method} {path} failed: {_describe(exc)}", request_sent=True)
            else:
                if response.is_success:
                    return response
                error = error_from_response(response.status_code, response.headers, response.content)
                assert isinstance(error, APIStatusError)
                if create and response.status_code not in _CREATE_RETRY_STATUSES:
                    if response.status_code >= 500:
                        raise _may_exist(path, f"got HTTP {response.status_code}") from None
                    raise error
                if not create and (
                    response.status_code not in _READ_RETRY_STATUSES or (response.status_code == 408 and not retry_408)
                ):
                    raise error
            if attempt >= self.max_retries:
                raise error
            retry_after = error.retry_after if isinstance(error, APIStatusError) else None
            if retry_after is not None and retry_after > self.max_retry_wait:
                raise error  # the caller tells the agent when to come back
            delay = backoff_delay(attempt, retry_after)
            left = remaining()
            if left is not None and delay >= left:
                raise error  # a retry could not finish within the call's time
            logger.info("retrying %s %s in %.2fs after %s", method, path, delay, _summary(error))
            await self._sleep(delay)
            attempt += 1

    async def _capped_request(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        read_timeout: float | None,
    ) -> httpx2.Response:
        """One request, cut when the call's deadline comes (`_OutOfTime`)."""
        left = remaining()
        if left is not None and left <= 0:
            raise _OutOfTime(sent=False)
        http = await self._pool.http()
        extensions: dict[str, Any] = {}
        if read_timeout is not None:
            timeout = self._pool.timeout
            extensions["timeout"] = httpx2.Timeout(
                read_timeout, connect=timeout.connect, pool=timeout.pool, write=timeout.write
            ).as_dict()
        request = http.build_request(
            method,
            self.base_url + path,
            json=json_body,
            params=params,
            headers={"x-api-key": self._api_key, **(headers or {})},
            extensions=extensions,
        )
        self._pool.requests += 1
        response: httpx2.Response | None = None
        with anyio.move_on_after(math.inf if left is None else left):
            response = await http.send(request)
        if response is None:
            raise _OutOfTime(sent=True)
        return response

    async def _event_stream(
        self, path: str, params: Mapping[str, str | int | float | bool] | None = None
    ) -> AsyncIterator[RunEvent | TaskGroupStatusEvent]:
        headers = {
            "x-api-key": self._api_key,
            "accept": "text/event-stream",
            **self._beta_headers(betas_for(events=True, extra=self.extra_betas)),
        }
        http = await self._pool.http()
        self._pool.requests += 1
        # A stream may stay quiet for long; it is bounded by the call's deadline when there is one.
        timeout = httpx2.Timeout(remaining(), connect=self._pool.timeout.connect)
        query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in (params or {}).items()}
        try:
            async with http.stream(
                "GET", self.base_url + path, headers=headers, params=query, timeout=timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise error_from_response(response.status_code, response.headers, response.content)
                async for data in sse_data(response.aiter_lines()):
                    event = parse_sse_event(data)
                    if event is None:
                        logger.debug("skipping a malformed event on %s", path)
                        continue
                    yield event
        except httpx2.TransportError as exc:
            # A cut stream is a lost connection like any other: callers handle APIError, never httpx2's.
            raise APIConnectionError(f"GET {path} stream broke: {_describe(exc)}", request_sent=True) from None


class _OutOfTime(Exception):
    """The call's deadline came before (`sent` False) or during a request."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__("out of the call's time")
        self.sent = sent


def _segment(value: str) -> str:
    # Ids are opaque strings from the model: keep them inside one path segment.
    return quote(value, safe="")


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _summary(error: Exception) -> str:
    return f"HTTP {error.status_code}" if isinstance(error, APIStatusError) else type(error).__name__


def _may_exist(path: str, what: str) -> RunMayExistError:
    return RunMayExistError(
        f"POST {path} {what} after the request was sent, so the API may have created a run. "
        "It was not retried, to avoid a duplicate billed run."
    )


__all__ = ["AsyncTaskClient", "backoff_delay"]
