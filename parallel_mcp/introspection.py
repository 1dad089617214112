"""Opaque access tokens, checked at the issuer's introspection endpoint (RFC 7662).

Some providers issue access tokens that are not JWTs (or a team wants revocation to take effect at
once): the server asks the issuer about each one, as a confidential client of its own. An answer is
trusted only when the token is `active`, names this issuer (when it names one), this audience and a
subject, and has not expired. Answers are cached by the token's digest (never the token) for at most
a minute and never past the token's expiry; a refusal is cached briefly too, so made-up tokens cannot
make the server hammer the issuer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote_plus

import httpx2

logger = logging.getLogger(__name__)

CACHE_SECONDS = 60.0
"""How long an active answer is reused: a token revoked at the issuer stops working within this."""
REFUSAL_CACHE_SECONDS = 10.0
CACHE_ENTRIES = 10_000
TIMEOUT_SECONDS = 10.0


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
        self._cache: OrderedDict[str, tuple[float, Introspected | None]] = OrderedDict()

    async def check(self, endpoint: str, token: str) -> Introspected:
        """What the issuer vouches for about `token`.

        Raises:
            IntrospectionError: inactive, for another audience or issuer, expired, or the issuer could not be asked.
        """
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(digest)
            if cached[1] is None:
                raise IntrospectionError("the issuer refused this token a moment ago")
            return cached[1]
        try:
            answer = await self._post(endpoint, {"token": token, "token_type_hint": "access_token"}, self._credentials)
            found = self._vouched(answer, now)
        except IntrospectionError:
            self._remember(digest, now + REFUSAL_CACHE_SECONDS, None)
            raise
        except (httpx2.HTTPError, ValueError) as exc:
            # Not cached: the issuer may answer the next request.
            raise IntrospectionError(f"the introspection endpoint could not be asked: {type(exc).__name__}") from None
        until = now + CACHE_SECONDS if found.expires_at is None else min(now + CACHE_SECONDS, found.expires_at)
        self._remember(digest, until, found)
        return found

    def _remember(self, digest: str, until: float, found: Introspected | None) -> None:
        self._cache[digest] = (until, found)
        self._cache.move_to_end(digest)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    def _vouched(self, answer: object, now: float) -> Introspected:
        if not isinstance(answer, dict):
            raise ValueError("the introspection answer is not a JSON object")
        claims = cast(dict[str, Any], answer)
        if claims.get("active") is not True:
            raise IntrospectionError("the issuer says the token is not active")
        issuer = claims.get("iss")
        if issuer is not None and issuer != self.issuer:
            raise IntrospectionError(f"the token names issuer {issuer!r}")
        if self.audience not in _audiences(claims.get("aud")):
            raise IntrospectionError("the token does not name this server's audience")
        token_type = claims.get("token_type")
        if token_type is not None and str(token_type).lower() not in ("bearer", "dpop"):
            raise IntrospectionError(f"a {token_type!r} is not an access token")
        # A client acting for itself (client credentials) has no `sub`: it is its own subject, as RFC 9068 puts it.
        subject = claims.get("sub") or claims.get("client_id")
        if not isinstance(subject, str) or not subject:
            raise IntrospectionError("the token names no subject (sub) and no client_id")
        expires = claims.get("exp")
        if expires is not None and (not isinstance(expires, int | float) or expires + self.leeway <= now):
            raise IntrospectionError("the token has expired")
        return Introspected(
            subject=subject,
            client_id=str(claims.get("client_id") or ""),
            scopes=str(claims.get("scope") or "").split(),
            expires_at=int(expires) if expires is not None else None,
            claims=claims,
        )


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
