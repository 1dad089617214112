"""Opaque access tokens, checked at the issuer's introspection endpoint (RFC 7662).

Some providers issue access tokens that are not JWTs (or a team wants revocation to take effect at
once): the server asks the issuer about each one, as a confidential client of its own. An answer is
trusted only when the token is `active`, names this issuer (when it names one), this audience and a
subject (for a client acting for itself, its client id), is an access token, and is within its
`nbf`/`exp`. Answers are cached by the token's digest (never the token) for at most a minute and
never past the token's expiry; refusals are cached briefly in a cache of their own, so made-up tokens
can neither evict good answers nor make the server hammer the issuer: at most `MAX_IN_FLIGHT`
questions are open at once, and requests bearing one token share one question.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import quote_plus

import anyio
import httpx2

logger = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
"""How long an active answer is reused: a token revoked at the issuer stops working within this."""
REFUSAL_CACHE_SECONDS = 10.0
CACHE_ENTRIES = 10_000
MAX_IN_FLIGHT = 8
MAX_TOKEN_CHARS = 4096
"""Longer is no access token any provider issues: refused without asking."""
TIMEOUT_SECONDS = 10.0
_ACCESS_TYPES = frozenset({"bearer", "dpop", "access", "access_token", "at+jwt"})
"""What `token_type`, `token_use` or `typ` may say: anything else (refresh, id) is not for a resource server."""


class IntrospectionError(Exception):
    """The issuer did not vouch for the token (or could not be asked); the token is refused."""


@dataclass(frozen=True)
class Introspected:
    """What the issuer said of an active token that passed every check."""

    subject: str
    client_id: str
    scopes: list[str]
    expires_at: int | None
    claims: dict[str, Any]


V = TypeVar("V")


@dataclass
class _Question:
    """One introspection request under way, which every request bearing that token waits for."""

    done: anyio.Event = field(default_factory=anyio.Event)
    answer: Introspected | IntrospectionError | None = None


Post = Callable[[str, dict[str, str], tuple[str, str]], Any]
"""`async (url, form, (client_id, secret)) -> JSON`: how the introspection request is sent (tests count them)."""


class Introspector:
    """Asks the issuer about opaque tokens as one client, and checks and caches what it says."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        issuer: str,
        audience: str,
        leeway: float,
        clock: Callable[[], float] = time.time,
        post: Post | None = None,
    ) -> None:
        self._credentials = (client_id, client_secret)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._clock = clock
        self._post = post or _post_form
        self._vouched_for: OrderedDict[str, tuple[float, Introspected]] = OrderedDict()
        self._refused: OrderedDict[str, tuple[float, None]] = OrderedDict()
        self._asking: dict[str, _Question] = {}
        self._slots: anyio.Semaphore | None = None

    async def check(self, endpoint: str, token: str) -> Introspected:
        """What the issuer vouches for about `token`.

        Raises:
            IntrospectionError: inactive, for another audience or issuer, expired, or the issuer could not be asked.
        """
        if len(token) > MAX_TOKEN_CHARS or not token.isprintable():
            raise IntrospectionError("not an access token any issuer would have made")
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        if (found := _fresh(self._vouched_for, digest, now)) is not None:
            return found[1]
        if _fresh(self._refused, digest, now) is not None:
            raise IntrospectionError("the issuer refused this token a moment ago")
        question = self._asking.get(digest)
        if question is None:
            self._asking[digest] = question = _Question()
            try:
                question.answer = await self._ask(endpoint, token, digest)
            except IntrospectionError as exc:
                question.answer = exc
            finally:
                del self._asking[digest]
                question.done.set()
        else:
            await question.done.wait()  # another request asks about this very token: share its answer
        if isinstance(question.answer, Introspected):
            return question.answer
        raise question.answer or IntrospectionError("the question about this token was abandoned")

    async def probe(self, endpoint: str) -> None:
        """Ask about a token nobody issued, as `parallel-mcp doctor` does: the issuer must answer this client.

        Raises:
            IntrospectionError: the issuer refused this client, or could not be asked.
        """
        try:
            await self._post(endpoint, {"token": "parallel-mcp-doctor-probe"}, self._credentials)
        except (httpx2.HTTPError, ValueError) as exc:
            why = _why_unasked(exc)
            raise IntrospectionError(why if _client_refused(exc) else f"{endpoint} could not be asked: {why}") from None

    async def _ask(self, endpoint: str, token: str, digest: str) -> Introspected:
        if self._slots is None:
            self._slots = anyio.Semaphore(MAX_IN_FLIGHT)
        try:
            async with self._slots:
                answer = await self._post(
                    endpoint, {"token": token, "token_type_hint": "access_token"}, self._credentials
                )
            now = self._clock()
            found = self._vouched(answer, now)
        except IntrospectionError:
            _remember(self._refused, digest, (self._clock() + REFUSAL_CACHE_SECONDS, None))
            raise
        except (httpx2.HTTPError, ValueError) as exc:
            # Not cached: the issuer may answer the next request.
            why = _why_unasked(exc)
            if _client_refused(exc):
                logger.warning("%s", why)
            raise IntrospectionError(f"the introspection endpoint could not be asked: {why}") from None
        until = now + CACHE_SECONDS if found.expires_at is None else min(now + CACHE_SECONDS, found.expires_at)
        _remember(self._vouched_for, digest, (until, found))
        return found

    def _vouched(self, answer: object, now: float) -> Introspected:
        if not isinstance(answer, dict):
            raise ValueError("the introspection answer is not a JSON object")
        claims = dict(cast(dict[str, Any], answer))
        if claims.get("active") is not True:
            raise IntrospectionError("the issuer says the token is not active")
        issuer = claims.setdefault("iss", self.issuer)  # RFC 7662 makes it optional: the issuer asked is the one
        if issuer != self.issuer:
            raise IntrospectionError(f"the token names issuer {issuer!r}")
        if self.audience not in _audiences(claims.get("aud")):
            raise IntrospectionError("the token does not name this server's audience")
        for name in ("token_type", "token_use", "typ"):
            kind = claims.get(name)
            if kind is not None and str(kind).lower() not in _ACCESS_TYPES:
                raise IntrospectionError(f"a token whose {name} is {kind!r} is not an access token")
        # A client acting for itself (client credentials) has no `sub`: it is its own subject, as RFC 9068 puts it.
        subject = claims.get("sub") or claims.get("client_id")
        if not isinstance(subject, str) or not subject:
            raise IntrospectionError("the token names no subject (sub) and no client_id")
        claims["sub"] = subject
        expires, not_before = claims.get("exp"), claims.get("nbf")
        if expires is not None and (not isinstance(expires, int | float) or expires + self.leeway <= now):
            raise IntrospectionError("the token has expired")
        if not_before is not None and (not isinstance(not_before, int | float) or not_before - self.leeway > now):
            raise IntrospectionError("the token is not valid yet (nbf)")
        return Introspected(
            subject=subject,
            client_id=str(claims.get("client_id") or ""),
            scopes=str(claims.get("scope") or "").split(),
            expires_at=int(expires) if expires is not None else None,
            claims=claims,
        )


def _fresh(cache: OrderedDict[str, tuple[float, V]], digest: str, now: float) -> tuple[float, V] | None:
    """The cached (expiry, entry) for `digest`, if it has not expired."""
    entry = cache.get(digest)
    if entry is None:
        return None
    if entry[0] <= now:
        del cache[digest]
        return None
    cache.move_to_end(digest)
    return entry


def _remember(cache: OrderedDict[str, tuple[float, V]], digest: str, entry: tuple[float, V]) -> None:
    cache[digest] = entry
    cache.move_to_end(digest)
    while len(cache) > CACHE_ENTRIES:
        cache.popitem(last=False)


_CLIENT_REFUSED = (400, 401, 403)


def _why_unasked(exc: httpx2.HTTPError | ValueError) -> str:
    """Why the introspection endpoint gave no answer to go by, naming the settings when it refused this client."""
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        if status in _CLIENT_REFUSED:
            return (
                f"the issuer refused this server's introspection client (HTTP {status}): check "
                "PARALLEL_MCP_OAUTH_INTROSPECTION_CLIENT_ID and its secret"
            )
        return f"HTTP {status}"
    return type(exc).__name__


def _client_refused(exc: httpx2.HTTPError | ValueError) -> bool:
    return isinstance(exc, httpx2.HTTPStatusError) and exc.response.status_code in _CLIENT_REFUSED


def _audiences(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(item) for item in cast(list[object], value)]
    return []


async def _post_form(url: str, form: Mapping[str, str], credentials: tuple[str, str]) -> Any:
    # client_secret_basic (RFC 6749 §2.3.1): each part form-encoded before it is joined and base64-encoded.
    user, secret = (quote_plus(part) for part in credentials)
    async with httpx2.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as http:
        response = await http.post(url, data=dict(form), auth=(user, secret), headers={"accept": "application/json"})
        response.raise_for_status()
        return response.json()
