"""Users sign in: the HTTP server as an OAuth 2.1 resource server, against a real OpenID provider.

The provider is `oidc-provider` (tests/idp), a certified implementation, run over loopback; the MCP
server is a real `parallel-mcp serve` subprocess on its embedded emulator. The end-to-end test drives
the `mcp` SDK's own OAuth client (discovery from the 401, registration, PKCE, token); the refusal
cases use tokens the provider minted (expired, another audience, another issuer, too few scopes,
rotated keys) and a few made here that it could never have signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from parallel_mcp.auth import JwtVerifier, discovery_urls
from parallel_mcp.config import ConfigError, Settings, load_settings
from parallel_mcp.emulator.config import EmulatorConfig
from parallel_mcp.exposure import check_serving
from parallel_mcp.http_app import build_http_app
from parallel_mcp.server import create_server
from parallel_mcp.serving import base_url, listening_socket, serve_asgi
from tests.idp.harness import (
    HeadlessBrowser,
    Idp,
    LoggingServer,
    MemoryTokenStorage,
    provider_fixtures,
    signing_in_server,
)
from tests.processes import server_env
from tests.support import emulator_client, structured, text_of
from tests.test_http_app import INITIALIZE, MCP_HEADERS

pytestmark = pytest.mark.anyio

SCOPE = "tasks"
REDIRECT_URI = "http://127.0.0.1:47913/callback"  # nothing listens: the headless browser stops at it
SECRET = "client-secret-0123456789"


def _service(client_id: str, scope: str = SCOPE, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_secret": SECRET,
        "grant_types": ["client_credentials"],
        "redirect_uris": [],
        "response_types": [],
        "scope": scope,
        **extra,
    }


IDP_CONFIG: dict[str, Any] = {
    "accounts": ["alice", "bob"],
    "scopes": [SCOPE, "other"],
    "resources": {"*": {"scopes": [SCOPE, "other"]}},
    "clients": [
        _service("svc", f"{SCOPE} other"),
        _service("narrow", "other"),
        _service("expired", tokenClaims={"expiredSecondsAgo": 600}),
        _service("elsewhere", tokenClaims={"iss": "https://elsewhere.example"}),
    ],
}


anyio_backend, idp = provider_fixtures(IDP_CONFIG)


@pytest.fixture(scope="module")
async def server(idp: Idp) -> AsyncGenerator[LoggingServer]:
    async with signing_in_server(idp, SCOPE) as running:
        yield running


def _service_token(idp: Idp, server: LoggingServer, client_id: str = "svc", scope: str = SCOPE) -> str:
    return idp.token(client_id, SECRET, resource=server.url, scope=scope)


async def _initialize(server: LoggingServer, authorization: str | None) -> httpx2.Response:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["authorization"] = authorization
    async with httpx2.AsyncClient() as http:
        return await http.post(server.url, json=INITIALIZE, headers=headers)


class SignedInUser:
    """An MCP client that signs `login` in through the SDK's OAuth client: registration, PKCE, token."""

    def __init__(self, server: LoggingServer, login: str) -> None:
        self.url = server.url
        self.browser = HeadlessBrowser(REDIRECT_URI, login_hint=login)
        self.storage = MemoryTokenStorage()
        self.requests: list[str] = []
        self.oauth = OAuthClientProvider(
            server_url=server.url,
            client_metadata=OAuthClientMetadata.model_validate(
                {"client_name": "test", "redirect_uris": [REDIRECT_URI]}
            ),
            storage=self.storage,
            redirect_handler=self.browser.redirect_handler,
            callback_handler=self.browser.callback_handler,
        )

    async def _seen(self, response: httpx2.Response) -> None:
        self.requests.append(f"{response.request.method} {response.request.url.path} {response.status_code}")

    @asynccontextmanager
    async def connect(self, mode: str = "auto") -> AsyncGenerator[Client]:
        http = httpx2.AsyncClient(auth=self.oauth, event_hooks={"response": [self._seen]}, timeout=30)
        async with http, Client(streamable_http_client(self.url, http_client=http), mode=mode) as client:  # pyright: ignore[reportArgumentType]
            yield client

    def claims(self) -> dict[str, Any]:
        assert self.storage.tokens is not None
        return jwt.decode(self.storage.tokens.access_token, options={"verify_signature": False})


async def test_an_mcp_client_signs_in_at_the_identity_provider_and_creates_a_run(
    idp: Idp, server: LoggingServer
) -> None:
    alice = SignedInUser(server, "alice")
    with anyio.fail_after(60):
        async with alice.connect() as client:
            view = structured(await client.call_tool("create_task_run", {"input": "q", "wait_seconds": 10}))
    assert view["status"] == "completed" and view["emulated"] is True
    # The SDK found everything from the 401: metadata, registration, the provider's code flow with PKCE.
    assert alice.requests[0] == "POST /mcp 401"
    assert "GET /.well-known/oauth-protected-resource/mcp 200" in alice.requests
    assert "POST /reg 201" in alice.requests and "POST /token 200" in alice.requests
    claims = alice.claims()
    assert claims["iss"] == idp.issuer and claims["aud"] == server.url and claims["sub"] == "alice"


async def test_without_a_token_the_server_answers_401_pointing_at_its_resource_metadata(
    idp: Idp, server: LoggingServer
) -> None:
    refused = await _initialize(server, None)
    base = server.url.removesuffix("/mcp")
    async with httpx2.AsyncClient() as http:
        suffixed = await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")
        root = await http.get(f"{base}/.well-known/oauth-protected-resource")
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    assert f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert suffixed.status_code == root.status_code == 200
    assert suffixed.json() == root.json()
    assert root.json()["resource"] == server.url
    assert root.json()["authorization_servers"] == [idp.issuer]
    assert root.json()["scopes_supported"] == [SCOPE]


async def test_a_valid_token_from_the_provider_is_accepted(idp: Idp, server: LoggingServer) -> None:
    response = await _initialize(server, f"Bearer {_service_token(idp, server)}")
    assert response.status_code == 200


async def test_an_expired_token_is_refused_with_401(idp: Idp, server: LoggingServer) -> None:
    token = _service_token(idp, server, "expired")
    assert (
        jwt.decode(token, options={"verify_signature": False})["exp"]
        < jwt.decode(_service_token(idp, server), options={"verify_signature": False})["iat"]
    )
    response = await _initialize(server, f"Bearer {token}")
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]
    await server.logged("ExpiredSignatureError")


async def test_a_token_for_another_audience_is_refused_with_401(idp: Idp, server: LoggingServer) -> None:
    token = idp.token("svc", SECRET, resource="http://127.0.0.1:9/mcp", scope=SCOPE)
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "http://127.0.0.1:9/mcp"
    assert (await _initialize(server, f"Bearer {token}")).status_code == 401
    await server.logged("InvalidAudienceError")


async def test_a_token_naming_another_issuer_is_refused_with_401(idp: Idp, server: LoggingServer) -> None:
    token = _service_token(idp, server, "elsewhere")  # signed by the provider's own key, so only `iss` is wrong
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "https://elsewhere.example"
    assert (await _initialize(server, f"Bearer {token}")).status_code == 401
    await server.logged("InvalidIssuerError")


def _resigned(token: str, **header: Any) -> str:
    """The token's claims and key id under a signature the provider never made."""
    claims = jwt.decode(token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(token)["kid"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt", **header})


def _part(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _unsigned(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    header = {"alg": "none", "typ": "at+jwt", "kid": jwt.get_unverified_header(token)["kid"]}
    return f"{_part(header)}.{_part(claims)}."


def _tampered(token: str) -> str:
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    return f"{header}.{_part({**claims, 'sub': 'bob'})}.{signature}"


@pytest.mark.parametrize(
    ("forge", "reason"),
    [(_resigned, "InvalidSignatureError"), (_unsigned, "InvalidAlgorithmError"), (_tampered, "InvalidSignatureError")],
    ids=["bad-signature", "alg-none", "tampered"],
)
async def test_a_token_the_provider_did_not_sign_is_refused_with_401(
    idp: Idp, server: LoggingServer, forge: Any, reason: str
) -> None:
    assert (await _initialize(server, f"Bearer {forge(_service_token(idp, server))}")).status_code == 401
    await server.logged(reason)


async def test_a_token_signed_with_hs256_over_the_providers_public_key_is_refused(
    idp: Idp, server: LoggingServer
) -> None:
    # The classic algorithm confusion: the public key (which anyone can read) used as an HMAC secret.
    genuine = _service_token(idp, server)
    kid = jwt.get_unverified_header(genuine)["kid"]
    public = next(key for key in httpx2.get(f"{idp.issuer}/jwks").json()["keys"] if key["kid"] == kid)
    pem = jwt.PyJWK(public).key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{_part({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{genuine.split('.')[1]}"
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    confused = f"{signing_input}.{signature.rstrip(b'=').decode()}"
    assert (await _initialize(server, f"Bearer {confused}")).status_code == 401
    assert "'HS256' is not accepted" in await server.logged("HS256")


async def test_a_token_without_the_required_scope_is_refused_with_403_insufficient_scope(
    idp: Idp, server: LoggingServer
) -> None:
    token = _service_token(idp, server, "narrow", scope="other")
    response = await _initialize(server, f"Bearer {token}")
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_another_users_run_reads_exactly_like_a_run_that_does_not_exist(server: LoggingServer) -> None:
    alice, bob = SignedInUser(server, "alice"), SignedInUser(server, "bob")
    with anyio.fail_after(60):
        async with alice.connect(mode="legacy") as client:
            run = structured(await client.call_tool("create_task_run", {"input": "alice's", "wait_seconds": 10}))
            group = structured(await client.call_tool("create_task_group", {"inputs": ["a"], "wait_seconds": 10}))
            own = structured(await client.call_tool("get_task_run", {"run_id": run["run_id"], "wait_seconds": 0}))
        async with bob.connect(mode="legacy") as client:
            stolen = await client.call_tool("get_task_run", {"run_id": run["run_id"], "wait_seconds": 0})
            unknown_id = "trun_" + "0" * (len(run["run_id"]) - 5)
            unknown = await client.call_tool("get_task_run", {"run_id": unknown_id, "wait_seconds": 0})
            peek = await client.call_tool(
                "get_task_group", {"task_group_id": group["task_group_id"], "wait_seconds": 0}
            )
            listed = structured(await client.call_tool("list_task_runs", {}))
            same_body = structured(await client.call_tool("create_task_run", {"input": "alice's", "wait_seconds": 0}))
    assert own["status"] == "completed"
    assert same_body["run_id"] != run["run_id"]  # a repeated create is deduplicated per user, never across users
    assert alice.claims()["sub"] == "alice" and bob.claims()["sub"] == "bob"
    assert stolen.is_error and unknown.is_error
    assert text_of(stolen).replace(run["run_id"], "ID") == text_of(unknown).replace(unknown_id, "ID")
    assert peek.is_error and "alice's" not in text_of(peek)
    assert listed["runs"] == []


async def test_after_the_provider_rotates_its_keys_new_tokens_are_accepted_and_withdrawn_keys_refused(
    idp: Idp, server: LoggingServer
) -> None:
    before = _service_token(idp, server)
    assert (await _initialize(server, f"Bearer {before}")).status_code == 200  # the old key is cached
    rotated = idp.rotate(keep_old=False)
    after = _service_token(idp, server)
    assert jwt.get_unverified_header(after)["kid"] in rotated["signing"].values()
    assert (await _initialize(server, f"Bearer {after}")).status_code == 200  # an unknown kid refetched the keys
    assert (await _initialize(server, f"Bearer {before}")).status_code == 401  # its key is no longer published
    for token in (before, after):
        assert not any(token in line for line in server.stderr)  # refused or not, tokens are never logged


async def test_the_sse_transport_signs_users_in_the_same_way(idp: Idp) -> None:
    sock = listening_socket()
    base = base_url(sock)
    settings = Settings(transport="sse", oauth_issuer=idp.issuer, public_url=base, oauth_scopes=[SCOPE])
    browser = HeadlessBrowser(REDIRECT_URI, login_hint="bob")
    oauth = OAuthClientProvider(
        server_url=f"{base}/sse",
        client_metadata=OAuthClientMetadata.model_validate({"client_name": "test", "redirect_uris": [REDIRECT_URI]}),
        storage=MemoryTokenStorage(),
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    with anyio.fail_after(60):
        async with emulator_client(EmulatorConfig(instant=True)) as (_emulator, client):
            app = build_http_app(create_server(settings, client=client, emulated=True), settings)
            async with serve_asgi(app, sock=sock), httpx2.AsyncClient() as http:
                refused = await http.get(f"{base}/sse")
                async with Client(sse_client(f"{base}/sse", auth=oauth)) as mcp:
                    listed = structured(await mcp.call_tool("list_task_runs", {}))
    assert refused.status_code == 401
    assert f'resource_metadata="{base}/.well-known/oauth-protected-resource/sse"' in refused.headers["www-authenticate"]
    assert listed["runs"] == []


# Configuration rules, checked before the server starts.


def _settings(**values: Any) -> Settings:
    return Settings.model_validate({"transport": "streamable-http", **values})


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"oauth_issuer": "https://idp.example", "auth_token": "t"}, "PARALLEL_MCP_AUTH_TOKEN"),
        ({"oauth_issuer": "https://idp.example"}, "PARALLEL_MCP_PUBLIC_URL"),
        (
            {"oauth_issuer": "https://idp.example", "public_url": "https://mcp.example", "multi_user": True},
            "--multi-user",
        ),
        ({"host": "0.0.0.0"}, "--allow-unauthenticated"),
        (
            {
                "oauth_issuer": "https://idp.example",
                "public_url": "https://mcp.example",
                "oauth_introspection_client_id": "c",
            },
            "PARALLEL_MCP_OAUTH_INTROSPECTION_CLIENT_SECRET",
        ),
    ],
)
def test_a_configuration_that_cannot_work_or_would_serve_strangers_is_refused_naming_the_setting(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        check_serving(_settings(**values))


def test_an_issuer_in_plain_http_beyond_loopback_is_refused_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARALLEL_MCP_OAUTH_ISSUER", "http://idp.example")
    with pytest.raises(ConfigError, match=r"PARALLEL_MCP_OAUTH_ISSUER.*https"):
        load_settings()


def test_with_oauth_the_audience_defaults_to_the_public_url_and_any_host_may_be_bound() -> None:
    settings = _settings(oauth_issuer="https://idp.example/", public_url="https://mcp.example/", host="0.0.0.0")
    assert check_serving(settings) is None
    verifier = JwtVerifier(settings.oauth_issuer or "", "https://mcp.example/mcp")
    assert verifier.issuer == "https://idp.example/"  # exactly as configured: issuers compare as strings
    assert _settings(oauth_issuer="https://idp.example", oauth_audience="https://mcp.example/mcp").uses_oauth
    assert not Settings(oauth_issuer="https://idp.example").uses_oauth  # stdio: no HTTP users to sign in


async def test_an_opaque_token_is_refused_when_no_introspection_client_is_configured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier = JwtVerifier("https://idp.example", "https://mcp.example/mcp", fetch=_never_fetched)
    with caplog.at_level("INFO"):
        assert await verifier.verify_token("an-opaque-token-0123456789") is None
    assert "no introspection client is configured" in caplog.text and "an-opaque-token" not in caplog.text


async def _never_fetched(url: str) -> Any:
    raise AssertionError(f"fetched {url}")


def test_a_stdio_server_never_loads_the_jwt_library() -> None:
    probe = (
        "import sys; from parallel_mcp.config import Settings; from parallel_mcp.server import create_server; "
        "import parallel_mcp.cli, parallel_mcp.stdio_guard; create_server(Settings()); "
        "print(sorted(m for m in sys.modules if m == 'jwt' or m.startswith(('jwt.', 'parallel_mcp.auth'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=server_env(), capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


# The verifier's key cache, with a fake issuer: rotation, rate limits, mix-ups.


class FakeIssuer:
    """An issuer's metadata and keys as `fetch` sees them, with a manual clock and a count of fetches."""

    def __init__(self, issuer: str = "https://idp.example/tenant") -> None:
        self.issuer = issuer
        self.now = 1000.0
        self.fetches: list[str] = []
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.metadata_issuer = issuer
        self.jwks_uri = "https://idp.example/jwks"
        self.add_key("k1")

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def fetch(self, url: str) -> Any:
        self.fetches.append(url)
        if url.endswith("/jwks"):
            published = [(kid, RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)) for kid, key in self.keys.items()]
            return {"keys": [{**jwk, "kid": kid} for kid, jwk in published]}
        if url == "https://idp.example/.well-known/oauth-authorization-server/tenant":
            return {"issuer": self.metadata_issuer, "jwks_uri": self.jwks_uri}
        raise httpx2.HTTPError(f"404 {url}")

    def token(self, kid: str, *, header_kid: str | None = None, **claims: Any) -> str:
        payload = {"iss": self.issuer, "aud": "https://mcp.example/mcp", "sub": "u1", "exp": 2**40, **claims}
        return jwt.encode(payload, self.keys[kid], algorithm="RS256", headers={"kid": header_kid or kid})

    def verifier(self) -> JwtVerifier:
        return JwtVerifier(self.issuer, "https://mcp.example/mcp", clock=lambda: self.now, fetch=self.fetch)


def test_issuer_metadata_is_looked_up_where_rfc_8414_and_openid_discovery_put_it() -> None:
    assert discovery_urls("https://kc.example/realms/team") == [
        "https://kc.example/.well-known/oauth-authorization-server/realms/team",
        "https://kc.example/realms/team/.well-known/openid-configuration",
        "https://kc.example/realms/team/.well-known/oauth-authorization-server",
    ]
    assert discovery_urls("https://tenant.auth0.com/")[1] == "https://tenant.auth0.com/.well-known/openid-configuration"


async def test_unknown_key_ids_refetch_the_keys_at_most_once_per_cooldown() -> None:
    issuer = FakeIssuer()
    verifier = issuer.verifier()
    assert await verifier.verify_token(issuer.token("k1")) is not None
    issuer.add_key("k2")
    assert await verifier.verify_token(issuer.token("k2")) is not None  # first unknown kid: refetched at once
    issuer.add_key("k3")
    assert await verifier.verify_token(issuer.token("k3")) is None  # a second one within the cooldown: not yet
    for n in range(20):  # made-up key ids cost no request either
        assert await verifier.verify_token(issuer.token("k1", header_kid=f"made-up-{n}")) is None
    issuer.now += 11
    assert await verifier.verify_token(issuer.token("k3")) is not None
    assert issuer.fetches.count("https://idp.example/jwks") == 3


async def test_keys_are_refreshed_when_old_so_a_withdrawn_key_stops_verifying() -> None:
    issuer = FakeIssuer()
    verifier = issuer.verifier()
    old = issuer.token("k1")
    assert await verifier.verify_token(old) is not None
    del issuer.keys["k1"]
    issuer.add_key("k2")
    assert await verifier.verify_token(old) is not None  # still cached
    issuer.now += 601
    assert await verifier.verify_token(old) is None


@pytest.mark.parametrize(
    ("field", "value"), [("metadata_issuer", "https://evil.example"), ("jwks_uri", "http://idp.example/jwks")]
)
async def test_metadata_naming_another_issuer_or_keys_in_plain_http_is_never_trusted(field: str, value: str) -> None:
    issuer = FakeIssuer()
    setattr(issuer, field, value)
    assert await issuer.verifier().verify_token(issuer.token("k1")) is None


async def test_a_verified_token_gives_the_user_its_scopes_and_client() -> None:
    issuer = FakeIssuer()
    token = await issuer.verifier().verify_token(issuer.token("k1", scp=["tasks", "read"], azp="app-1"))
    assert token is not None
    assert (token.subject, token.client_id, token.scopes) == ("u1", "app-1", ["tasks", "read"])
    assert token.claims is not None and token.claims["iss"] == issuer.issuer
