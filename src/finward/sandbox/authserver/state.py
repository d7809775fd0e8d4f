"""Configuration and in-memory state of one sandbox AS: codes, opaque tokens, revocations.

Everything expires lazily against the injected clock (DESIGN.md: no timer threads), and
every store is keyed by a digest, so neither codes nor tokens are kept in clear.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from finward.auth.dpop import DPoPPolicy
from finward.auth.replay import MemoryReplayCache
from finward.clock import Clock, SystemClock
from finward.sandbox.authserver.clients import ClientRegistry, default_clients
from finward.sandbox.authserver.keys import DEFAULT_ALGORITHM, SIGNING_ALGORITHMS, SigningKeys
from finward.sandbox.authserver.tokens import (
    DEFAULT_AUDIENCE,
    DEFAULT_TOKEN_LIFETIME_S,
    new_opaque_token,
    token_digest,
)

# RFC 6749 §4.1.2: codes should live at most 10 minutes; one minute is what FAPI
# deployments use, and all a browser redirect needs.
DEFAULT_CODE_LIFETIME_S = 60
# Bounds on the in-memory stores: a sandbox must not grow without limit under a load test.
# Expired entries are purged first; beyond the cap the request fails (fails closed).
MAX_LIVE_CODES = 10_000
MAX_LIVE_OPAQUE_TOKENS = 100_000
MAX_REVOKED_JTIS = 100_000

_V = TypeVar("_V")


class StoreFullError(Exception):
    """An in-memory store is full of live entries; the AS answers 503."""


@dataclass(frozen=True, slots=True)
class AuthServerConfig:
    """What one AS instance issues. ``sandbox_mode`` enables the test-only knobs:
    the ``alg`` and ``token_format`` form parameters, ``POST /admin/rotate`` and
    ``POST /admin/mint``."""

    issuer: str
    audience: str = DEFAULT_AUDIENCE
    token_lifetime_s: int = DEFAULT_TOKEN_LIFETIME_S
    code_lifetime_s: int = DEFAULT_CODE_LIFETIME_S
    consent_claim: str = "consent_id"
    default_alg: str = DEFAULT_ALGORITHM
    sandbox_mode: bool = True
    known_psus: frozenset[str] | None = None  # None: any well-formed PSU id is accepted

    def __post_init__(self) -> None:
        if not self.issuer.startswith(("http://", "https://")) or self.issuer.endswith("/"):
            raise ValueError("issuer must be an http(s) URL without a trailing slash")
        if not self.audience:
            raise ValueError("audience must not be empty")
        if not 0 < self.token_lifetime_s <= 86_400:
            raise ValueError("token_lifetime_s must be within 1..86400")
        if not 0 < self.code_lifetime_s <= 600:  # RFC 6749 §4.1.2: at most 10 minutes
            raise ValueError("code_lifetime_s must be within 1..600")
        if not self.consent_claim or self.consent_claim in _RESERVED_CLAIMS:
            raise ValueError("consent_claim must be a non-reserved claim name")
        if self.default_alg not in SIGNING_ALGORITHMS:
            raise ValueError(f"default_alg must be one of {', '.join(SIGNING_ALGORITHMS)}")

    def endpoint(self, path: str) -> str:
        return self.issuer + path


_RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "cnf"}
)


@dataclass(slots=True)
class AuthorizationCode:
    """What ``/authorize`` granted, waiting to be redeemed once at ``/token``."""

    client_id: str
    redirect_uri: str
    scope: str
    psu_id: str
    consent_id: str | None
    code_challenge: str
    expires_at: float
    redeemed: bool = False
    # Tokens issued from this code, revoked if the code is replayed (RFC 6749 §4.1.2).
    issued: list[tuple[str, float]] = field(default_factory=list)  # (jti, exp)


class AuthServer:
    """One AS: configuration, keys, clients and the stores its endpoints share."""

    def __init__(
        self,
        config: AuthServerConfig,
        *,
        keys: SigningKeys | None = None,
        clients: ClientRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.keys = keys if keys is not None else SigningKeys(self.clock)
        if config.default_alg not in self.keys.algorithms:
            raise ValueError("the key set has no key for the default algorithm")
        self.clients = clients if clients is not None else default_clients()
        self.dpop_policy = DPoPPolicy()
        self.dpop_replay = MemoryReplayCache(self.clock)
        self._codes: dict[str, AuthorizationCode] = {}
        self._opaque: dict[str, dict[str, Any]] = {}
        self._revoked: dict[str, float] = {}  # jti -> exp: forgotten once the token expired

    # Authorization codes -------------------------------------------------------------
    def store_code(self, code: str, grant: AuthorizationCode) -> None:
        now = self.clock.now()
        _purge(self._codes, lambda g: g.expires_at <= now, MAX_LIVE_CODES)
        self._codes[token_digest(code)] = grant

    def take_code(self, code: str) -> AuthorizationCode | None:
        """The grant for ``code`` if it exists and has not expired (redeemed or not)."""
        grant = self._codes.get(token_digest(code))
        if grant is None or grant.expires_at <= self.clock.now():
            return None
        return grant

    # Opaque tokens ------------------------------------------------------------------
    def store_opaque(self, claims: Mapping[str, Any]) -> str:
        now = self.clock.now()
        _purge(self._opaque, lambda c: c["exp"] <= now, MAX_LIVE_OPAQUE_TOKENS)
        token = new_opaque_token()
        self._opaque[token_digest(token)] = dict(claims)
        return token

    def opaque_claims(self, token: str) -> dict[str, Any] | None:
        claims = self._opaque.get(token_digest(token))
        if claims is None or claims["exp"] <= self.clock.now():
            return None
        return claims

    def forget_opaque(self, token: str) -> None:
        self._opaque.pop(token_digest(token), None)

    # Revocation (RFC 7009) ----------------------------------------------------------
    def revoke_jti(self, jti: str, exp: float) -> None:
        now = self.clock.now()
        _purge(self._revoked, lambda e: e <= now, MAX_REVOKED_JTIS)
        self._revoked[jti] = exp

    def is_revoked(self, jti: object) -> bool:
        return isinstance(jti, str) and jti in self._revoked


def _purge(store: dict[str, _V], expired: Callable[[_V], bool], cap: int) -> None:
    """Drop expired entries once the store reaches ``cap``; refuse if all are live."""
    if len(store) < cap:
        return
    for key in [k for k, v in store.items() if expired(v)]:
        del store[key]
    if len(store) >= cap:
        raise StoreFullError("in-memory store is full")
