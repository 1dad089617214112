"""Opaque access tokens: introspected at a real OpenID provider (tests/idp), checked, cached, and refused once revoked.

The provider issues opaque tokens for this module's resources; the server introspects them as a
confidential client of its own. The checks of an answer are also run on answers made here, through
the introspector's `post` seam, for the cases a provider would rarely produce.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from parallel_mcp.introspection import CACHE_SECONDS, REFUSAL_CACHE_SECONDS, IntrospectionError, Introspector
from tests.idp.harness import Idp, LoggingServer, provider_fixtures, signing_in_server
from tests.processes import command, server_env
from tests.support import structured
from tests.test_http_app import INITIALIZE, MCP_HEADERS

pytestmark = pytest.mark.anyio

SCOPE = "tasks"
SECRET = "client-secret-0123456789"
INTROSPECTION_SECRET = "introspection-secret-9876543210"
ELSEWHERE = "https://elsewhere.example/mcp"
IDP_CONFIG: dict[str, Any] = {
    "scopes": [SCOPE],
    "resources": {"*": {"scopes": [SCOPE], "format": "opaque"}},
    "clients": [
        {
            "client_id": "svc",
            "client_secret": SECRET,
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "response_types": [],
            "scope": SCOPE,
        },
        # The server's own client at the provider: it only asks about tokens.
        {
            "client_id": "parallel-mcp",
            "client_secret": INTROSPECTION_SECRET,
            "grant_types": [],
            "redirect_uris": [],
            "response_types": [],
        },
    ],
}


anyio_backend, idp = provider_fixtures(IDP_CONFIG)


@pytest.fixture(scope="module")
async def server(idp: Idp) -> AsyncGenerator[LoggingServer]:
    introspection = {
        "PARALLEL_MCP_OAUTH_INTROSPECTION_CLIENT_ID": "parallel-mcp",
        "PARALLEL_MCP_OAUTH_INTROSPECTION_CLIENT_SECRET": INTROSPECTION_SECRET,
    }
    async with signing_in_server(idp, SCOPE, **introspection) as running:
        yield running


async def _initialize(server: LoggingServer, token: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as http:
        return await http.post(server.url, json=INITIALIZE, headers={**MCP_HEADERS, "authorization": f"Bearer {token}"})


async def test_an_opaque_token_the_provider_vouches_for_signs_the_client_in(idp: Idp, server: LoggingServer) -> None:
    token = idp.token("svc", SECRET, resource=server.url, scope=SCOPE)
    assert token.count(".") != 2  # opaque: nothing the server could verify by itself
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(server.url, http_client=http)) as client:  # pyright: ignore[reportArgumentType]
        result = await client.call_tool("list_task_runs", {})
    assert not result.is_error and structured(result)["runs"] == []


async def test_opaque_tokens_for_another_audience_or_made_up_are_refused_and_never_logged(
    idp: Idp, server: LoggingServer
) -> None:
    elsewhere = idp.token("svc", SECRET, resource=ELSEWHERE, scope=SCOPE)
    for token in (elsewhere, "made-up-opaque-token-0123456789"):
        response = await _initialize(server, token)
        assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]
    said = await server.logged("refused an opaque access token")
    assert "audience" in said
    assert elsewhere not in said and INTROSPECTION_SECRET not in said


async def test_a_token_revoked_at_the_provider_is_refused_once_its_cached_answer_ends(idp: Idp) -> None:
    audience = "https://research.example.com/mcp"
    now = [1_000.0]
    introspector = Introspector(
        "parallel-mcp", INTROSPECTION_SECRET, issuer=idp.issuer, audience=audience, leeway=30, clock=lambda: now[0]
    )
    endpoint = f"{idp.issuer}/token/introspection"
    token = idp.token("svc", SECRET, resource=audience, scope=SCOPE)
    found = await introspector.check(endpoint, token)
    assert (found.subject, found.client_id, found.scopes) == ("svc", "svc", [SCOPE])
    idp.revoke("svc", SECRET, token)
    assert (await introspector.check(endpoint, token)).subject == "svc"  # the cached answer still holds
    now[0] += CACHE_SECONDS + 1
    with pytest.raises(IntrospectionError, match="not active"):
        await introspector.check(endpoint, token)


async def test_the_server_asks_as_its_own_client_and_a_wrong_secret_vouches_for_nothing(idp: Idp) -> None:
    audience = "https://research.example.com/mcp"
    wrong = Introspector("parallel-mcp", "not-the-secret", issuer=idp.issuer, audience=audience, leeway=30)
    token = idp.token("svc", SECRET, resource=audience, scope=SCOPE)
    with pytest.raises(IntrospectionError, match="could not be asked"):
        await wrong.check(f"{idp.issuer}/token/introspection", token)


ACTIVE: dict[str, Any] = {
    "active": True,
    "iss": "https://idp.example",
    "aud": "https://research.example.com/mcp",
    "sub": "alice",
    "client_id": "app",
    "scope": "tasks other",
    "exp": 2_000,
    "token_type": "Bearer",
}


def _introspector(answers: list[Any], asked: list[str], now: list[float]) -> Introspector:
    async def post(url: str, form: dict[str, str], credentials: tuple[str, str]) -> Any:
        asked.append(form["token"])
        await anyio.lowlevel.checkpoint()  # the issuer takes a moment: other requests run meanwhile
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Introspector(
        "parallel-mcp",
        "s",
        issuer="https://idp.example",
        audience="https://research.example.com/mcp",
        leeway=30,
        clock=lambda: now[0],
        post=post,
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"active": False}, "not active"),
        ({"iss": "https://elsewhere.example"}, "names issuer"),
        ({"aud": ["https://elsewhere.example/mcp"]}, "audience"),
        ({"aud": None}, "audience"),
        ({"token_type": "refresh_token"}, "not an access token"),
        ({"exp": 900}, "expired"),
        ({"sub": None, "client_id": None}, "no subject"),
        ({"token_use": "id"}, "not an access token"),
        ({"typ": "Refresh"}, "not an access token"),
        ({"nbf": 1_100}, "not valid yet"),
    ],
)
async def test_an_answer_that_does_not_vouch_for_this_server_is_refused(change: dict[str, Any], reason: str) -> None:
    answer = {key: value for key, value in {**ACTIVE, **change}.items() if value is not None}
    introspector = _introspector([answer], [], [1_000.0])
    with pytest.raises(IntrospectionError, match=reason):
        await introspector.check("https://idp.example/introspect", "t")


async def test_answers_are_cached_by_token_no_longer_than_a_minute_or_the_tokens_life() -> None:
    asked: list[str] = []
    now = [1_000.0]
    introspector = _introspector([ACTIVE, {**ACTIVE, "exp": 1_010}, ACTIVE], asked, now)
    found = await introspector.check("https://idp.example/introspect", "a")
    assert (found.subject, found.scopes, found.expires_at) == ("alice", ["tasks", "other"], 2_000)
    await introspector.check("https://idp.example/introspect", "a")
    await introspector.check("https://idp.example/introspect", "b")  # expires in 10 s: cached that long only
    now[0] += 11
    await introspector.check("https://idp.example/introspect", "a")
    await introspector.check("https://idp.example/introspect", "b")
    assert asked == ["a", "b", "b"]


async def test_a_refusal_is_remembered_briefly_and_an_unreachable_issuer_not_at_all() -> None:
    asked: list[str] = []
    now = [1_000.0]
    answers: list[Any] = [{"active": False}, httpx2.ConnectError("refused"), ACTIVE, ACTIVE]
    introspector = _introspector(answers, asked, now)
    for _ in range(2):
        with pytest.raises(IntrospectionError, match=r"not active|a moment ago"):
            await introspector.check("https://idp.example/introspect", "bad")
    with pytest.raises(IntrospectionError, match="could not be asked"):
        await introspector.check("https://idp.example/introspect", "good")
    assert (await introspector.check("https://idp.example/introspect", "good")).subject == "alice"
    now[0] += REFUSAL_CACHE_SECONDS + 1
    assert (await introspector.check("https://idp.example/introspect", "bad")).subject == "alice"
    assert asked == ["bad", "good", "good", "bad"]


async def test_an_answer_without_iss_is_the_asked_issuers_and_a_client_without_sub_is_its_own_subject() -> None:
    answer = {key: value for key, value in ACTIVE.items() if key not in ("iss", "sub")}
    found = await _introspector([answer], [], [1_000.0]).check("https://idp.example/introspect", "t")
    assert (found.claims["iss"], found.claims["sub"], found.subject) == ("https://idp.example", "app", "app")


async def test_requests_bearing_one_token_at_once_ask_the_issuer_once_and_a_huge_token_never() -> None:
    asked: list[str] = []
    introspector = _introspector([ACTIVE], asked, [1_000.0])
    subjects: list[str] = []

    async def one() -> None:
        subjects.append((await introspector.check("https://idp.example/introspect", "same")).subject)

    async with anyio.create_task_group() as tasks:
        for _ in range(5):
            tasks.start_soon(one)
    assert subjects == ["alice"] * 5 and asked == ["same"]
    with pytest.raises(IntrospectionError, match="not an access token"):
        await introspector.check("https://idp.example/introspect", "x" * 5000)
    assert asked == ["same"]


async def test_doctor_checks_the_issuer_and_its_introspection_client_without_showing_the_secret(
    idp: Idp, tmp_path: Path
) -> None:
    def doctor_env(secret: str) -> dict[str, str]:
        return server_env(
            XDG_STATE_HOME=str(tmp_path / "state"),
            PARALLEL_MCP_OAUTH_ISSUER=idp.issuer,
            PARALLEL_MCP_PUBLIC_URL="https://research.example.com",
            PARALLEL_MCP_OAUTH_INTROSPECTION_CLIENT_ID="parallel-mcp",
            PARALLEL_MCP_OAUTH_INTROSPECTION_CLIENT_SECRET=secret,
        )

    with anyio.fail_after(60):
        good = await anyio.run_process(command("doctor"), env=doctor_env(INTROSPECTION_SECRET), check=False)
        bad = await anyio.run_process(command("doctor"), env=doctor_env("not-the-secret"), check=False)
    said, refused = good.stdout.decode(), bad.stdout.decode()
    assert f"ok    OAuth issuer: {idp.issuer}: 2 signing key(s); its introspection endpoint answers" in said
    assert (
        bad.returncode == 1 and "FAIL  OAuth issuer: the issuer refused this server's introspection client" in refused
    )
    assert (
        INTROSPECTION_SECRET not in said + good.stderr.decode()
        and "not-the-secret" not in refused + bad.stderr.decode()
    )
