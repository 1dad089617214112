"""Parallel's signed webhooks: the signature scheme, and the receiver that turns a delivery into news.

Parallel signs each delivery Standard-Webhooks style:

- `webhook-id`: a unique event id (`whevent_<hex>`), the same on retries, for de-duplication;
- `webhook-timestamp`: Unix seconds;
- `webhook-signature`: one or more space-separated `v1,<base64>` entries (several while a secret rotates).

Each signature is the standard Base64 (with padding) of an HMAC-SHA256 over `"{id}.{timestamp}.{raw body}"`,
keyed with the secret string's UTF-8 bytes as they are: Parallel's own examples do not decode `whsec_` keys the
way the `standardwebhooks` library does, so neither do we.

With `public_url` and `webhook_secret` set, every run the server creates carries a webhook to its own
`/webhooks/parallel`. Whichever replica receives a delivery checks it, drops repeats by `webhook-id`, notes the
run's status in the store and publishes `run_ended`, which wakes a call waiting for that run on any replica.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from parallel_mcp.intents import INTENT_TAG
from parallel_mcp.models import TaskRun
from parallel_mcp.store import RunRecord, Store, StoreError, run_ended

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/parallel"
TOLERANCE_SECONDS = 300
"""How far a delivery's timestamp may be from now (either way): older ones are replays or badly late."""
MAX_BODY_BYTES = 1 << 20

_SIGNATURE_VERSION = "v1"


def sign_webhook(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Return the `webhook-signature` entry (`"v1,<base64>"`) for one event.

    The signed content is `"{webhook_id}.{timestamp}."` followed by the raw body bytes, which is the same as the
    documented UTF-8 string `"{id}.{timestamp}.{body}"` for a UTF-8 body, without decoding and re-encoding it.
    """
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    return f"{_SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """Check an incoming webhook's signature and freshness.

    Returns True when any of the space-separated `v1,...` entries in `webhook-signature` matches (several are sent
    while a secret is being rotated) and `webhook-timestamp` is within `tolerance_seconds` of `now` (default: the
    current time) in either direction. Header names are matched case-insensitively. Missing or malformed headers
    give False; this never raises on bad input.
    """
    webhook_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    raw_signatures = _header(headers, "webhook-signature")
    if webhook_id is None or raw_timestamp is None or raw_signatures is None:
        return False
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    # A stale (or far-future) timestamp means a replayed or badly delayed request; refuse it even if signed.
    if abs(current - timestamp) > tolerance_seconds:
        return False

    expected = sign_webhook(secret, webhook_id, timestamp, body).encode("ascii")
    matched = False
    for candidate in raw_signatures.split():
        # Compare every entry (no early exit) and as bytes: compare_digest rejects non-ASCII str input.
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8"))
    return matched


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Look a header up case-insensitively (a plain dict may use any case; Starlette/httpx2 headers already do)."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def _rejected(status: int, reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=status)


class WebhookReceiver:
    """The `/webhooks/parallel` endpoint; the lifespan hands it the store once the store is open."""

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._clock = clock
        self.store: Store | None = None

    async def handle(self, request: Request) -> Response:
        """Check, de-duplicate and record one delivery. Bad, stale or unsigned deliveries change nothing."""
        if self.store is None:
            return _rejected(503, "not ready")
        body = await _bounded_body(request)
        if body is None:
            return _rejected(413, "body too large")
        if not verify_webhook(self._secret, request.headers, body, now=self._clock()):
            logger.warning("webhook refused: bad, stale or missing signature")
            return _rejected(401, "bad, stale or missing signature")
        run = _run_of(body)
        if run is None:
            return _rejected(400, "not a task_run.status event")
        delivery = request.headers["webhook-id"]
        try:
            if not await self.store.first_delivery(delivery, self._clock()):
                return JSONResponse({"duplicate": True})
            await self._record(self.store, run)
        except StoreError as exc:
            # Parallel retries a failed delivery: a database outage loses nothing.
            logger.error("webhook %s not recorded: %s", delivery, exc)
            return _rejected(503, "store unavailable")
        return JSONResponse({"ok": True})

    async def _record(self, store: Store, run: TaskRun) -> None:
        tag = (run.metadata or {}).get(INTENT_TAG)
        if isinstance(tag, str):
            record = RunRecord(
                run_id=run.run_id,
                processor=run.processor,
                status=run.status,
                input_excerpt="(found by its webhook after a lost create answer)",
                interaction_id=run.interaction_id,
                created_at=run.created_at,
            )
            if await store.adopt(tag, record):
                logger.info("run %s reconciled with the intent whose create answer was lost", run.run_id)
        await store.update_status(None, run.run_id, run.status)
        if not run.is_active:
            await store.publish(run_ended(run.run_id))


async def _bounded_body(request: Request) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _run_of(body: bytes) -> TaskRun | None:
    try:
        payload: Any = json.loads(body)
        if not isinstance(payload, dict) or cast(dict[str, Any], payload).get("type") != "task_run.status":
            return None
        return TaskRun.model_validate(cast(dict[str, Any], payload).get("data"))
    except (ValueError, ValidationError):
        return None


__all__ = ["WEBHOOK_PATH", "WebhookReceiver", "sign_webhook", "verify_webhook"]
