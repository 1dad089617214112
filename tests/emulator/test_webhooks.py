"""Webhook signing, verification and delivery, against a real receiver on the loopback interface."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass, field

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parallel_mcp.emulator.webhooks import build_webhook_request, deliver_webhook, sign_webhook, verify_webhook
from parallel_mcp.serving import serve_asgi
from tests.support import closed_port

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

SECRET = "my-webhook-secret"
PAYLOAD = {
    "timestamp": "2026-11-20T10:00:00Z",
    "type": "task_run.status",
    "data": {"run_id": "trun_1", "status": "completed", "is_active": False},
}


@dataclass
class Receiver:
    """A webhook endpoint that checks signatures and answers the scripted statuses in turn (the last one repeats)."""

    statuses: list[int]
    ids: list[str] = field(default_factory=list[str])
    bodies: list[bytes] = field(default_factory=list[bytes])
    verified: list[bool] = field(default_factory=list[bool])

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            self.ids.append(request.headers.get("webhook-id", ""))
            self.bodies.append(body)
            self.verified.append(verify_webhook(SECRET, request.headers, body))
            status = self.statuses[min(len(self.ids), len(self.statuses)) - 1]
            return Response(status_code=status if self.verified[-1] else 401)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def expected_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.{body.decode('utf-8')}".encode()
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def signed_headers(secrets: list[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign_webhook(secret, webhook_id, timestamp, body) for secret in secrets),
    }


def test_signature_is_v1_base64_hmac_sha256_of_id_timestamp_and_body() -> None:
    body = b'{"type":"task_run.status","note":"caf\xc3\xa9"}'
    signature = sign_webhook(SECRET, "whevent_abc", 1_763_000_000, body)
    assert signature == expected_signature(SECRET, "whevent_abc", 1_763_000_000, body)
    # Standard Base64 with padding: a SHA-256 digest is 32 bytes, so 44 characters ending in "=".
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", signature)


def test_verify_accepts_a_correctly_signed_request() -> None:
    body = b'{"ok":true}'
    headers = signed_headers([SECRET], "whevent_1", 1_000_000, body)
    assert verify_webhook(SECRET, headers, body, now=1_000_000)


def test_verify_accepts_any_of_several_signatures_while_a_secret_is_rotated() -> None:
    body = b'{"ok":true}'
    headers = signed_headers(["old-secret", "new-secret"], "whevent_1", 1_000_000, body)
    assert verify_webhook("old-secret", headers, body, now=1_000_000)
    assert verify_webhook("new-secret", headers, body, now=1_000_000)
    assert not verify_webhook("other-secret", headers, body, now=1_000_000)


def test_verify_matches_header_names_case_insensitively() -> None:
    body = b"{}"
    headers = {name.title(): value for name, value in signed_headers([SECRET], "whevent_1", 50, body).items()}
    assert verify_webhook(SECRET, headers, body, now=50)


def test_verify_rejects_a_tampered_body() -> None:
    headers = signed_headers([SECRET], "whevent_1", 1_000_000, b'{"status":"failed"}')
    assert not verify_webhook(SECRET, headers, b'{"status":"completed"}', now=1_000_000)


def test_verify_rejects_a_signature_made_with_another_secret() -> None:
    body = b"{}"
    headers = signed_headers(["wrong-secret"], "whevent_1", 1_000_000, body)
    assert not verify_webhook(SECRET, headers, body, now=1_000_000)


def test_verify_rejects_a_tampered_id_or_timestamp() -> None:
    body = b"{}"
    headers = signed_headers([SECRET], "whevent_1", 1_000_000, body)
    assert not verify_webhook(SECRET, {**headers, "webhook-id": "whevent_2"}, body, now=1_000_000)
    assert not verify_webhook(SECRET, {**headers, "webhook-timestamp": "1000001"}, body, now=1_000_000)


def test_verify_rejects_stale_and_far_future_timestamps_outside_the_tolerance() -> None:
    body = b"{}"
    headers = signed_headers([SECRET], "whevent_1", 1_000_000, body)
    assert verify_webhook(SECRET, headers, body, now=1_000_000 + 300)
    assert not verify_webhook(SECRET, headers, body, now=1_000_000 + 301)
    assert not verify_webhook(SECRET, headers, body, now=1_000_000 - 301)
    assert verify_webhook(SECRET, headers, body, now=1_000_000 + 3_000, tolerance_seconds=3_600)


@pytest.mark.parametrize(
    "broken",
    [
        {"webhook-signature": ""},
        {"webhook-signature": "v1,not-base64"},
        {"webhook-timestamp": "yesterday"},
    ],
)
def test_verify_rejects_malformed_headers_without_raising(broken: dict[str, str]) -> None:
    body = b"{}"
    headers = {**signed_headers([SECRET], "whevent_1", 1_000_000, body), **broken}
    assert not verify_webhook(SECRET, headers, body, now=1_000_000)


def test_verify_rejects_a_request_missing_a_header() -> None:
    body = b"{}"
    headers = signed_headers([SECRET], "whevent_1", 1_000_000, body)
    del headers["webhook-id"]
    assert not verify_webhook(SECRET, headers, body, now=1_000_000)


def test_built_request_has_a_whevent_id_a_timestamp_a_valid_signature_and_the_json_body() -> None:
    headers, body = build_webhook_request(SECRET, PAYLOAD)
    assert re.fullmatch(r"whevent_[0-9a-f]+", headers["webhook-id"])
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == PAYLOAD
    assert verify_webhook(SECRET, headers, body)


def test_built_request_uses_the_given_id_and_timestamp() -> None:
    headers, body = build_webhook_request(SECRET, PAYLOAD, webhook_id="whevent_fixed", timestamp=1_234)
    assert headers["webhook-id"] == "whevent_fixed"
    assert headers["webhook-timestamp"] == "1234"
    assert headers["webhook-signature"] == expected_signature(SECRET, "whevent_fixed", 1_234, body)


async def test_delivery_retries_after_a_500_with_the_same_webhook_id_and_succeeds() -> None:
    receiver = Receiver(statuses=[500, 200])
    with anyio.fail_after(10):
        async with serve_asgi(receiver.app()) as base, httpx2.AsyncClient() as http:
            delivered = await deliver_webhook(http, f"{base}/hook", SECRET, PAYLOAD, backoff=0.01)
    assert delivered
    assert len(receiver.ids) == 2
    assert receiver.ids[0] == receiver.ids[1]
    assert receiver.ids[0].startswith("whevent_")
    assert receiver.verified == [True, True]
    assert [json.loads(body) for body in receiver.bodies] == [PAYLOAD, PAYLOAD]


async def test_delivery_returns_false_after_all_attempts_fail(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = Receiver(statuses=[503])
    with anyio.fail_after(10):
        async with serve_asgi(receiver.app()) as base, httpx2.AsyncClient() as http:
            delivered = await deliver_webhook(http, f"{base}/hook", SECRET, PAYLOAD, attempts=3, backoff=0.01)
    assert not delivered
    assert len(receiver.ids) == 3
    assert len(set(receiver.ids)) == 1
    assert "503" in caplog.text
    assert SECRET not in caplog.text


async def test_delivery_to_an_unreachable_url_returns_false_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with anyio.fail_after(10):
        async with httpx2.AsyncClient() as http:
            delivered = await deliver_webhook(
                http, f"http://127.0.0.1:{closed_port()}/hook?token=abc", SECRET, PAYLOAD, attempts=2, backoff=0.01
            )
    assert not delivered
    assert "ConnectError" in caplog.text
    assert SECRET not in caplog.text
    # The URL's query may hold a token, so only scheme, host, port and path are logged.
    assert "token=abc" not in caplog.text
