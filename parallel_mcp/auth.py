"""Users sign in with the team's identity provider: the HTTP server as an OAuth 2.1 resource server.

The `mcp` SDK does the protocol side (401/403 with `WWW-Authenticate`, protected resource metadata,
the principal of each request); this module is its `TokenVerifier`. JWT access tokens are checked
with PyJWT against the issuer's published keys: found through its metadata (RFC 8414, else OpenID
discovery), cached, refetched when an unknown key id appears (rate-limited) and when they grow old.
Signature with an allow-list of asymmetric algorithms, `iss`, `aud`, `exp`/`nbf` with a small leeway;
the SDK then checks the required scopes. Opaque access tokens are asked about at the issuer's
introspection endpoint when the server has an introspection client (`introspection`), else refused.

PyJWT is imported on first use: a stdio server never loads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import anyio
import httpx2

from parallel_mcp.config import Settings
from parallel_mcp.exposure import oauth_audience, oauth_resource

if TYPE_CHECKING:
    import jwt
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings

    from parallel_mcp.introspection import Introspector

logger = logging.getLogger(__name__)

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
"""Asymmetric only: never `none`, and never HS*, whose key would be whatever the verifier is handed."""
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})
"""RFC 9068's `at+jwt`, and the plain `JWT` that Keycloak, Auth0, Entra ID and Okta put on their access tokens."""
LEEWAY_SECONDS = 30.0
"""Clock skew forgiven on `exp`, `nbf` and `iat`."""
KEYS_MAX_AGE_SECONDS = 600.0
"""Keys are refetched this often, so a key the issuer withdrew stops verifying within ten minutes."""
UNKNOWN_KID_COOLDOWN_SECONDS = 10.0
"""At most one refetch per this many seconds for unknown key ids: made-up kids cannot make us hammer the issuer.
The first unknown kid after a rotation still refetches at once (a refetch for age or the first fetch do not count)."""
DISCOVERY_RETRY_SECONDS = 5.0
"""After the issuer could not be reached, wait this long before trying again (every request meanwhile is a 401)."""
FETCH_TIMEOUT_SECONDS = 10.0


def auth_settings(settings: Settings) -> AuthSettings:
    """The SDK's resource-server settings: metadata naming the issuer and scopes, and the required scopes."""
    from mcp.server.auth.settings import AuthSettings

    assert settings.oauth_issuer is not None
    # From plain strings: an AnyHttpUrl would render a bare origin with a trailing slash, and an issuer that
    # differs by one slash from the issuer's own metadata fails the clients' exact comparison (RFC 8414 §3.3).
    return AuthSettings.model_validate(
        {
            "issuer_url": settings.oauth_issuer,
            "resource_server_url": oauth_resource(settings),
            "required_scopes": list(settings.oauth_scopes) or None,
            # The verifier checks `aud` itself, against the configured audience, which need not be this URL
            # (Auth0 API identifiers, Entra ID application ids).
            "validate_token_resource": False,
        }
    )


def token_verifier(settings: Settings) -> JwtVerifier:
    """The verifier for the configured issuer and audience (and introspection client, if any)."""
    assert settings.oauth_issuer is not None
    audience = oauth_audience(settings)
    introspector = None
    secret = settings.oauth_introspection_client_secret
    if settings.oauth_introspection_client_id is not None and secret is not None:
        from parallel_mcp.introspection import Introspector

        introspector = Introspector(
            settings.oauth_introspection_client_id,
            secret.get_secret_value(),
            issuer=settings.oauth_issuer,
            audience=audience,
            leeway=LEEWAY_SECONDS,
        )
    return JwtVerifier(settings.oauth_issuer, audience, introspector=introspector)


def discovery_urls(issuer: str) -> list[str]:
    """Where an issuer's metadata may be: RFC 8414 (path inserted), OpenID discovery, and the appended RFC 8414
    form some providers serve (Okta's custom authorization servers)."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}{path}/.well-known/openid-configuration",
        f"{origin}{path}/.well-known/oauth-authorization-server",
    ]


class KeyUnavailableError(Exception):
    """The issuer's keys cannot be had right now (unreachable, bad metadata); the token is refused."""


@dataclass
class _KeySet:
    keys: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    fetched_at: float = -float("inf")
    generation: int = 0
    """Counts fetches: a request that missed a kid in generation N waits for N + 1, not for a clock tick."""


class JwtVerifier:
    """A `TokenVerifier` (the SDK's protocol) for the access tokens of one issuer and audience: JWTs, and
    opaque ones through `introspector`.

    Any failure is a plain None, which the SDK answers with 401 `invalid_token`; the reason is logged at
    INFO level, never the token.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        leeway: float = LEEWAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str], Any] | None = None,
        introspector: Introspector | None = None,
    ) -> None:
        """
        Args:
            issuer: the issuer URL, exactly as its metadata and its tokens' `iss` spell it.
            audience: what each token's `aud` must name.
            leeway: seconds of clock skew forgiven.
            clock: a monotonic clock for the key cache (tests move it).
            fetch: `async (url) -> JSON` (tests count fetches); by default a plain GET.
            introspector: asks the issuer about opaque tokens; without it they are refused.
        """
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._clock = clock
        self._fetch = fetch or _get_json
        self._introspector = introspector
        self._metadata: dict[str, Any] | None = None
        self._discovery_failed_at = -float("inf")
        self._keys = _KeySet()
        self._last_unknown_kid_refetch = -float("inf")
        self._lock: anyio.Lock | None = None

    async def verify_token(self, token: str) -> AccessToken | None:
        """The access token's principal and scopes, or None when it must be refused."""
        import jwt

        try:
            header = jwt.get_unverified_header(token) if token.count(".") == 2 else None
        except jwt.DecodeError:
            header = None  # an opaque token may have two dots too
        if header is None:
            return await self._verify_opaque(token)
        try:
            key = await self._key_for(header)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(header["alg"])],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, KeyUnavailableError) as exc:
            logger.info("refused an access token: %s: %s", type(exc).__name__, exc)
            return None
        except Exception:  # a bug here must refuse the token (401), not fail the request (500)
            logger.exception("refused an access token: unexpected error while verifying it")
            return None
        from mcp.server.auth.provider import AccessToken

        return AccessToken(
            token=token,
            client_id=_client_id(claims),
            scopes=_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self.audience,
            subject=str(claims["sub"]),
            claims=claims,
        )

    async def probe(self) -> str:
        """What works at the issuer, for `parallel-mcp doctor`: its metadata, its keys, and introspection.

        Raises:
            KeyUnavailableError: no usable metadata, or no keys (and no introspection to fall back on).
            IntrospectionError: the issuer refused this server's introspection client.
        """
        if self._introspector is not None and "jwks_uri" not in await self._discover():
            said = "no signing keys (opaque tokens only)"
        else:
            keys = await self._current_keys()
            if not keys:
                raise KeyUnavailableError(f"the issuer {self.issuer} publishes no signing keys")
            said = f"{len(keys)} signing key(s)"
        if self._introspector is not None:
            await self._introspector.probe(await self._endpoint("introspection_endpoint"))
            said += "; its introspection endpoint answers this server's client"
        return said

    async def _verify_opaque(self, token: str) -> AccessToken | None:
        from parallel_mcp.introspection import IntrospectionError

        if self._introspector is None:
            logger.info("refused an access token: not a JWT, and no introspection client is configured")
            return None
        try:
            endpoint = await self._endpoint("introspection_endpoint")
            found = await self._introspector.check(endpoint, token)
        except (IntrospectionError, KeyUnavailableError) as exc:
            logger.info("refused an opaque access token: %s", exc)
            return None
        except Exception:  # as for JWTs: a bug here refuses the token (401), never fails the request (500)
            logger.exception("refused an opaque access token: unexpected error while introspecting it")
            return None
        from mcp.server.auth.provider import AccessToken

        return AccessToken(
            token=token,
            client_id=found.client_id,
            scopes=found.scopes,
            expires_at=found.expires_at,
            resource=self.audience,
            subject=found.subject,
            claims=found.claims,
        )

    async def _key_for(self, header: Mapping[str, Any]) -> jwt.PyJWK:
        import jwt

        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"algorithm {alg!r} is not accepted")
        typ = header.get("typ")
        if typ is not None and str(typ).lower() not in ACCESS_TOKEN_TYPES:
            raise jwt.InvalidTokenError(f"token type {typ!r} is not an access token")
        kid = header.get("kid")
        found = self._pick(await self._current_keys(), kid, alg)
        if found is None and kid is not None:
            seen = self._keys.generation
            now = self._clock()
            if now - self._last_unknown_kid_refetch >= UNKNOWN_KID_COOLDOWN_SECONDS:
                self._last_unknown_kid_refetch = now
                found = self._pick(await self._current_keys(newer_than=seen), kid, alg)
            else:  # a refetch may be under way: its keys may hold this kid
                found = self._pick(await self._current_keys(), kid, alg)
        if found is None:
            raise jwt.InvalidKeyError(f"no published key {kid!r} for {alg}")
        if "alg" in found and found["alg"] != alg:
            raise jwt.InvalidAlgorithmError(f"key {kid!r} is for {found['alg']}, the token says {alg}")
        return jwt.PyJWK(found, algorithm=alg)

    @staticmethod
    def _pick(keys: list[dict[str, Any]], kid: object, alg: str) -> dict[str, Any] | None:
        if kid is not None:
            return next((key for key in keys if key.get("kid") == kid), None)
        # No kid: only an unambiguous key will do.
        fitting = [key for key in keys if key.get("alg") in (None, alg)]
        return fitting[0] if len(fitting) == 1 else None

    def _fresh(self, newer_than: int | None) -> bool:
        if newer_than is not None and self._keys.generation <= newer_than:
            return False
        return self._clock() - self._keys.fetched_at < KEYS_MAX_AGE_SECONDS

    async def _current_keys(self, *, newer_than: int | None = None) -> list[dict[str, Any]]:
        """The issuer's signing keys; refetched when old, or when they are still generation `newer_than`."""
        if self._lock is None:
            self._lock = anyio.Lock()
        if not self._lock.locked() and self._fresh(newer_than):
            return self._keys.keys
        async with self._lock:
            # A fetch that ended while this request waited may already be what it needs.
            if self._fresh(newer_than):
                return self._keys.keys
            started = self._clock()
            jwks_uri = await self._endpoint("jwks_uri")
            try:
                data = await self._fetch(jwks_uri)
                keys = [
                    cast(dict[str, Any], key)
                    for key in cast(list[object], data["keys"])
                    if isinstance(key, dict) and cast(dict[str, Any], key).get("use", "sig") == "sig"
                ]
            except (httpx2.HTTPError, KeyError, TypeError, ValueError) as exc:
                if self._keys.keys:
                    # Keep verifying with the keys we have, and try again in a little while, not at every request.
                    logger.warning("could not refresh the OAuth issuer's keys (%s); keeping the cached ones", exc)
                    self._keys.fetched_at = started - KEYS_MAX_AGE_SECONDS + DISCOVERY_RETRY_SECONDS
                    return self._keys.keys
                raise KeyUnavailableError(f"the issuer's keys at {jwks_uri} could not be read: {exc}") from None
            self._keys = _KeySet(keys, started, self._keys.generation + 1)
            logger.info("fetched %d signing key(s) of %s", len(keys), self.issuer)
            return keys

    async def _endpoint(self, name: str) -> str:
        """An endpoint the issuer's metadata names (`jwks_uri`, `introspection_endpoint`), over https unless the
        issuer itself is a plain-http one (loopback, see config)."""
        url = (await self._discover()).get(name)
        schemes = ("https://",) if self.issuer.startswith("https://") else ("https://", "http://")
        if isinstance(url, str) and url.startswith(schemes):
            return url
        raise KeyUnavailableError(f"the metadata of issuer {self.issuer} names no usable {name}")

    async def _discover(self) -> dict[str, Any]:
        if self._metadata is not None:
            return self._metadata
        if self._clock() - self._discovery_failed_at < DISCOVERY_RETRY_SECONDS:
            raise KeyUnavailableError("the issuer's metadata could not be read a moment ago")
        problems: list[str] = []
        for url in discovery_urls(self.issuer):
            try:
                metadata = await self._fetch(url)
            except (httpx2.HTTPError, ValueError) as exc:
                problems.append(f"{url}: {exc}")
                continue
            if not isinstance(metadata, dict):
                problems.append(f"{url}: not a JSON object")
                continue
            document = cast(dict[str, Any], metadata)
            # RFC 8414 §3.3: metadata for another issuer would hand us someone else's keys.
            if document.get("issuer") != self.issuer:
                problems.append(f"{url}: names issuer {document.get('issuer')!r}")
                continue
            if not isinstance(document.get("jwks_uri"), str) and not isinstance(
                document.get("introspection_endpoint"), str
            ):
                problems.append(f"{url}: neither jwks_uri nor introspection_endpoint")
                continue
            self._metadata = document
            return document
        self._discovery_failed_at = self._clock()
        logger.warning("OAuth issuer %s: no usable metadata (%s)", self.issuer, "; ".join(problems))
        raise KeyUnavailableError(f"no usable metadata for issuer {self.issuer}")


async def _get_json(url: str) -> Any:
    async with httpx2.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as http:
        response = await http.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        return response.json()


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    # RFC 9068 `scope` is a space-separated string; Okta and Entra ID use `scp`, as a list or a string.
    value = claims.get("scope", claims.get("scp", ""))
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(item) for item in cast(list[object], value)]
    return []


def _client_id(claims: Mapping[str, Any]) -> str:
    # RFC 9068 `client_id`; `azp` (Keycloak, Auth0, Entra v2), `cid` (Okta), `appid` (Entra v1).
    for name in ("client_id", "azp", "cid", "appid"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return ""
