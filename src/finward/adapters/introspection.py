"""RFC 7662 token introspection client with a bounded, hash-keyed result cache.

The gateway, as a protected resource, asks the authorization server whether a token is
active (INTRO-01): a form POST with the token, authenticated with ``client_secret_basic``
(RFC 6749 §2.3.1) or ``private_key_jwt`` (RFC 7523 §2.2, ``aud`` = the endpoint).

- ``active`` must be the JSON boolean ``true``; ``false`` or absent refuses the token with
  ``token_inactive`` (401, INTRO-02).
- ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` are checked where present (INTRO-03);
  ``cnf`` and ``scope`` are returned for the binding and scope policies.
- Results are cached under the token's SHA-256, never the token itself, for at most
  ``min(exp, max_ttl_s)`` (INTRO-04): revocation takes effect after ``max_ttl_s`` at worst.
- An unreachable AS, a timeout, a 5xx, a refused client authentication or a response that
  is not a JSON object fails closed with ``introspection_unavailable`` (503, INTRO-05).

mTLS client authentication (RFC 8705) is not implemented: use the session's connector.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, TypeAlias
from urllib.parse import quote

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from finward.adapters.jwks import DEFAULT_TIMEOUT_S, check_url
from finward.auth.token_policy import MAX_TOKEN_BYTES
from finward.auth.tokens import IssuerPolicy, TokenError, token_sha256
from finward.clock import Clock
from finward.decision import DenialError

# The longest an introspection result is trusted: the revocation latency (INTRO-04).
DEFAULT_MAX_TTL_S = 60.0
# A cap on remembered results: each is a hash and a few claims. When full, expired entries
# are purged and then the oldest dropped, so a flood of random tokens cannot grow memory.
MAX_CACHE_ENTRIES = 10_000
# Introspection responses carry a token's claims: a few KiB at most.
MAX_RESPONSE_BYTES = 64 * 1024
# RFC 7523 §3: a client assertion is short-lived and single-use (random jti).
ASSERTION_LIFETIME_S = 60
PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_ASSERTION_ALGORITHMS = frozenset({"PS256", "ES256", "EdDSA", "RS256"})


class IntrospectionUnavailableError(DenialError):
    """The AS could not answer usefully: fail closed (503), never let the request through."""

    reason = "introspection_unavailable"


class ClientAuth(Protocol):
    """How the gateway authenticates to the introspection endpoint."""

    def credentials(self, endpoint: str, now: float) -> tuple[dict[str, str], dict[str, str]]:
        """Extra request headers and form fields."""


@dataclass(frozen=True, slots=True)
class ClientSecretBasic:
    """RFC 6749 §2.3.1: both parts form-urlencoded, then HTTP Basic (RFC 7617)."""

    client_id: str
    secret: str = field(repr=False)

    def credentials(self, endpoint: str, now: float) -> tuple[dict[str, str], dict[str, str]]:
        pair = f"{quote(self.client_id, safe='')}:{quote(self.secret, safe='')}"
        basic = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {basic}"}, {}


@dataclass(frozen=True, slots=True)
class PrivateKeyJwt:
    """RFC 7523 §2.2 / OIDC Core §9: a signed assertion with ``aud`` = the endpoint.

    ``private_key`` is a ``cryptography`` private key fit for ``alg``.
    """

    client_id: str
    private_key: PrivateKey = field(repr=False)
    alg: str = "PS256"
    kid: str | None = None

    def __post_init__(self) -> None:
        if self.alg not in _ASSERTION_ALGORITHMS:
            raise ValueError(f"alg must be one of {sorted(_ASSERTION_ALGORITHMS)}")

    def credentials(self, endpoint: str, now: float) -> tuple[dict[str, str], dict[str, str]]:
        issued = int(now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": endpoint,
            "jti": secrets.token_urlsafe(24),
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME_S,
        }
        headers = {"kid": self.kid} if self.kid is not None else None
        assertion = jwt.encode(claims, self.private_key, algorithm=self.alg, headers=headers)
        return {}, {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }


@dataclass(frozen=True, slots=True)
class _Entry:
    expires_at: float  # wall-clock seconds (the clock's now), compared with `exp`
    claims: Mapping[str, object] | None  # None: the AS said the token is not active


class IntrospectionClient:
    """Ask one AS's introspection endpoint about tokens; cache the answers briefly.

    ``policy`` (optional) supplies the issuer, audiences, leeway and future skew that the
    response's claims are checked against where present. The caller owns ``session``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        endpoint: str,
        auth: ClientAuth,
        clock: Clock,
        policy: IssuerPolicy | None = None,
        max_ttl_s: float = DEFAULT_MAX_TTL_S,
        max_entries: int = MAX_CACHE_ENTRIES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        allow_insecure_loopback: bool = False,
    ) -> None:
        check_url(endpoint, "endpoint", allow_insecure_loopback=allow_insecure_loopback)
        if not 0 <= max_ttl_s <= 3600:
            raise ValueError("max_ttl_s must be within 0..3600")
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        if not 0 < timeout_s <= 60:
            raise ValueError("timeout_s must be within (0, 60]")
        self._session = session
        self._endpoint = endpoint
        self._auth = auth
        self._clock = clock
        self._policy = policy
        self._max_ttl_s = max_ttl_s
        self._max_entries = max_entries
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._cache: dict[str, _Entry] = {}  # keyed by token_sha256(token), never the token

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def introspect(self, token: str) -> Mapping[str, object]:
        """The active token's introspection claims (read-only at the top level), or raise.

        Raises ``TokenError`` (``token_inactive``, or a claim check's reason, 401) and
        ``IntrospectionUnavailableError`` (``introspection_unavailable``, 503).
        """
        if not isinstance(token, str) or not token:
            raise TokenError("token_malformed", "the token is not a non-empty string")
        if len(token) > MAX_TOKEN_BYTES:  # before any I/O, like the JWT verifier
            raise TokenError("token_too_large", f"the token exceeds {MAX_TOKEN_BYTES} bytes")
        key = token_sha256(token)
        now = self._clock.now()
        entry = self._cache.get(key)
        if entry is None or now >= entry.expires_at:
            self._cache.pop(key, None)
            entry = self._remember(key, await self._ask(token), now)
        if entry.claims is None:
            raise TokenError(
                "token_inactive", "the authorization server says the token is inactive"
            )
        self._check(entry.claims, now)
        return entry.claims

    def forget(self, token: str) -> None:
        """Drop a cached result (e.g. after the gateway learns of a revocation)."""
        self._cache.pop(token_sha256(token), None)

    async def _ask(self, token: str) -> Mapping[str, object] | None:
        headers, form = self._auth.credentials(self._endpoint, self._clock.now())
        headers = {**headers, "Accept": "application/json", "Accept-Encoding": "identity"}
        form = {**form, "token": token, "token_type_hint": "access_token"}
        try:
            async with self._session.post(
                self._endpoint,
                data=form,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                status = response.status
                body = await _read_capped(response) if status == 200 else b""
        except TimeoutError:
            raise IntrospectionUnavailableError("the authorization server timed out") from None
        except aiohttp.ClientError as exc:
            raise IntrospectionUnavailableError(
                f"the authorization server is unreachable ({type(exc).__name__})"
            ) from None
        if status in (400, 401):  # RFC 6749 §5.2 invalid_client
            raise IntrospectionUnavailableError(
                f"the authorization server refused the gateway's client authentication "
                f"(HTTP {status}); check the introspection client credentials"
            )
        if status == 403:
            raise IntrospectionUnavailableError(
                "the gateway's client is not allowed to introspect tokens (HTTP 403)"
            )
        if status != 200:
            raise IntrospectionUnavailableError(f"the authorization server answered HTTP {status}")
        return _parse(body)

    def _remember(self, key: str, claims: Mapping[str, object] | None, now: float) -> _Entry:
        expires_at = now + self._max_ttl_s
        if claims is not None:
            exp = claims.get("exp")
            if isinstance(exp, int | float) and not isinstance(exp, bool) and math.isfinite(exp):
                expires_at = min(expires_at, float(exp))
        entry = _Entry(expires_at, claims)
        if expires_at > now:
            if len(self._cache) >= self._max_entries:
                self._evict(now)
            self._cache[key] = entry
        return entry

    def _evict(self, now: float) -> None:
        for stale in [k for k, e in self._cache.items() if now >= e.expires_at]:
            del self._cache[stale]
        while len(self._cache) >= self._max_entries:
            del self._cache[next(iter(self._cache))]  # oldest insertion first

    def _check(self, claims: Mapping[str, object], now: float) -> None:
        """RFC 9068 §4-style checks on whichever of iss/aud/exp/nbf/iat the AS returned."""
        policy = self._policy
        leeway = policy.leeway_s if policy is not None else 0.0
        future = policy.max_future_s if policy is not None else 0.0
        if policy is not None and "iss" in claims and claims["iss"] != policy.issuer:
            raise TokenError("token_issuer_invalid", "iss is not the configured issuer")
        if policy is not None and "aud" in claims:
            aud = claims["aud"]
            audiences = (aud,) if isinstance(aud, str) else aud
            if not isinstance(audiences, tuple | list) or not all(
                isinstance(a, str) for a in audiences
            ):
                raise TokenError("token_malformed", "claim aud is not a string or array")
            if policy.audiences.isdisjoint(audiences):
                raise TokenError("token_audience_invalid", "aud does not name this API")
        exp = _numeric(claims, "exp")
        if exp is not None and now >= exp + leeway:
            raise TokenError("token_expired", "the token has expired")
        nbf = _numeric(claims, "nbf")
        if nbf is not None and nbf > now + future:
            raise TokenError("token_not_yet_valid", "nbf is in the future")
        iat = _numeric(claims, "iat")
        if iat is not None and iat > now + future:
            raise TokenError("token_issued_in_future", "iat is in the future")


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    if response.content_length is not None and response.content_length > MAX_RESPONSE_BYTES:
        raise IntrospectionUnavailableError("the introspection response is too large")
    body = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise IntrospectionUnavailableError("the introspection response is too large")
    return bytes(body)


def _parse(body: bytes) -> Mapping[str, object] | None:
    """The response's claims when ``active`` is ``true``; None when false or absent."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise IntrospectionUnavailableError("the introspection response is not JSON") from None
    if not isinstance(document, dict):
        raise IntrospectionUnavailableError("the introspection response is not a JSON object")
    active = document.get("active")
    if active is None or active is False:
        return None  # RFC 7662 §2.2: inactive; INTRO-02 treats a missing member alike
    if active is not True:  # "true", 1 ...: a broken AS, not an active token
        raise IntrospectionUnavailableError("the introspection response's active is not a boolean")
    return MappingProxyType(document)


def _numeric(claims: Mapping[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TokenError("token_malformed", f"claim {name} is not a NumericDate")
    return float(value)
