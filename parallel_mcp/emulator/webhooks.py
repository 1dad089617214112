"""Signed webhook delivery for the emulator, following the Task API's Standard-Webhooks-style scheme.

Every event carries three headers:

- `webhook-id`: a unique event id (`whevent_<hex>`), kept the same on retries so receivers can de-duplicate;
- `webhook-timestamp`: Unix seconds;
- `webhook-signature`: one or more space-separated `v1,<base64>` entries.

The signature scheme (`sign_webhook`, `verify_webhook`) is the server's own (`parallel_mcp.webhooks`), which
receives these deliveries: one definition for the sender and the receiver.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2

from parallel_mcp.webhooks import sign_webhook, verify_webhook

__all__ = ["build_webhook_request", "deliver_webhook", "sign_webhook", "verify_webhook"]

logger = logging.getLogger(__name__)


def build_webhook_request(
    secret: str,
    payload: dict[str, Any],
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    """Serialize `payload` and sign it, returning `(headers, raw_body)` ready to POST.

    `webhook_id` defaults to a fresh `whevent_<hex>` and `timestamp` to the current Unix time. The payload must be
    JSON-serializable (dump pydantic models with `mode="json"` first).
    """
    event_id = webhook_id if webhook_id is not None else f"whevent_{uuid.uuid4().hex}"
    sent_at = timestamp if timestamp is not None else int(time.time())
    # Compact separators: the signature covers these exact bytes, so they are produced once and sent verbatim.
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(sent_at),
        "webhook-signature": sign_webhook(secret, event_id, sent_at, body),
    }
    return headers, body


async def deliver_webhook(
    http: httpx2.AsyncClient,
    url: str,
    secret: str,
    payload: dict[str, Any],
    *,
    attempts: int = 3,
    backoff: float = 0.2,
) -> bool:
    """POST a signed event to `url`, retrying on a non-2xx answer or a connection error.

    Up to `attempts` tries, waiting `backoff`, then twice that, and so on between them (the real service starts at
    about 5 s and keeps going for hours; the emulator keeps it short). Every try carries the same `webhook-id` and
    body, so the receiver can de-duplicate; the timestamp and signature are refreshed per try so a late retry still
    passes a receiver's freshness check. Returns True once a try gets a 2xx, False when all tries fail. Network
    errors are logged, never raised; neither the secret nor the URL's query or credentials are logged.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    webhook_id = f"whevent_{uuid.uuid4().hex}"
    target = _loggable_url(url)
    delay = backoff
    for attempt in range(1, attempts + 1):
        headers, body = build_webhook_request(secret, payload, webhook_id=webhook_id)
        try:
            response = await http.post(url, content=body, headers=headers)
        except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
            logger.warning(
                "webhook %s to %s: attempt %d/%d failed: %s",
                webhook_id,
                target,
                attempt,
                attempts,
                type(exc).__name__,
            )
        else:
            if response.is_success:
                logger.info("webhook %s delivered to %s on attempt %d", webhook_id, target, attempt)
                return True
            logger.warning(
                "webhook %s to %s: attempt %d/%d answered HTTP %d",
                webhook_id,
                target,
                attempt,
                attempts,
                response.status_code,
            )
        if attempt < attempts:
            await anyio.sleep(delay)
            delay *= 2
    logger.error("webhook %s to %s: giving up after %d attempts", webhook_id, target, attempts)
    return False


def _loggable_url(url: str) -> str:
    """Scheme, host, port and path only: a webhook URL's query or userinfo may carry a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # an IPv6 literal lost its brackets in `hostname`
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"
