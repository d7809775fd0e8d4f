"""The I/O behind authentication: JWKS and introspection clients, the state store.

One ``AuthServices`` per worker process, made inside its event loop: HTTP sessions to the
authorisation servers and the state store (memory or Redis). A configuration reload
builds new issuer clients (issuers may have changed) over the same sessions and store.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from finward.adapters.introspection import (
    ClientAuth,
    ClientSecretBasic,
    IntrospectionClient,
    PrivateKey,
    PrivateKeyJwt,
)
from finward.adapters.jwks import FetchFailure, KeyProvider
from finward.auth.token_cache import TokenCache, verify_with_cache
from finward.auth.token_policy import TYP_ABSENT, IssuerPolicy, TokenError
from finward.auth.tokens import (
    VerifiedToken,
    check_times,
    peek_unverified,
    token_sha256,
    verified_from_introspection,
)
from finward.clock import Clock
from finward.config.model import AuthConfig, IntrospectionConfig, IssuerConfig
from finward.events import Event, GatewayEvent
from finward.storage.base import StateStore, open_state_store

log = logging.getLogger("finward.auth")

_SessionKey = tuple[Path | None, Path | None, Path | None]
EventSink = Callable[[Event], None]


class AuthServices:
    """Per-worker resources: sessions by TLS settings, and the state store."""

    def __init__(self, auth: AuthConfig, clock: Clock, emit: EventSink | None = None) -> None:
        self.clock = clock
        self.state_store_url = auth.state_store
        self.store: StateStore = open_state_store(auth.state_store, clock=clock)
        self._sessions: dict[_SessionKey, aiohttp.ClientSession] = {}
        self._emit = emit

    async def start(self) -> None:
        await self.store.start()

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        await self.store.close()

    def session(
        self, ca: Path | None, client_cert: Path | None = None, client_key: Path | None = None
    ) -> aiohttp.ClientSession:
        key = (ca, client_cert, client_key)
        session = self._sessions.get(key)
        if session is None or session.closed:
            context = ssl.create_default_context(cafile=str(ca) if ca else None)
            if client_cert is not None:
                context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=8),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
            self._sessions[key] = session
        return session

    def verifier(self, auth: AuthConfig) -> GatewayTokenVerifier:
        issuers = [IssuerRuntime(cfg, auth, self) for cfg in auth.issuers]
        return GatewayTokenVerifier(issuers, self.clock)

    def jwks_failed(self, failure: FetchFailure) -> None:
        log.warning(
            "JWKS fetch from %s failed: %s%s",
            failure.source,
            failure.detail,
            " (serving cached keys)" if failure.serving_cached else "",
        )
        if self._emit is not None:
            self._emit(
                GatewayEvent(
                    self.clock.now(),
                    "jwks_fetch_failed",
                    "failure",
                    f"{failure.source}: {failure.detail}",
                    "gateway",
                )
            )


def issuer_policy(cfg: IssuerConfig, auth: AuthConfig) -> IssuerPolicy:
    types = set(cfg.token_types)
    if cfg.accept_untyped:
        types.add(TYP_ABSENT)
    return IssuerPolicy(
        issuer=cfg.issuer,
        audiences=frozenset(cfg.audiences or auth.audiences),
        algorithms=frozenset(cfg.algorithms),
        token_types=frozenset(types),
        max_future_s=cfg.max_future_s,
        leeway_s=cfg.leeway_s,
        required_claims=frozenset(cfg.required_claims),
    )


class IssuerRuntime:
    """One trusted AS: its policy, key provider, introspection client and token cache."""

    def __init__(self, cfg: IssuerConfig, auth: AuthConfig, services: AuthServices) -> None:
        self.config = cfg
        self.policy = issuer_policy(cfg, auth)
        self.cache = TokenCache(auth.token_cache_entries)
        self.keys: KeyProvider | None = None
        self.introspection: IntrospectionClient | None = None
        if cfg.token_format != "opaque":
            self.keys = KeyProvider(
                services.session(cfg.ca),
                clock=services.clock,
                jwks_uri=cfg.jwks_uri,
                issuer=None if cfg.jwks_uri else cfg.issuer,
                allow_insecure_loopback=cfg.allow_insecure_loopback,
                max_age_s=cfg.jwks_max_age_s,
                min_refetch_interval_s=cfg.jwks_min_refetch_s,
                timeout_s=cfg.timeout_s,
                on_failure=services.jwks_failed,
            )
        intro = cfg.introspection
        if intro is not None:
            session = services.session(
                cfg.ca,
                intro.client_cert if intro.auth_method == "tls_client_auth" else None,
                intro.client_key if intro.auth_method == "tls_client_auth" else None,
            )
            self.introspection = IntrospectionClient(
                session,
                endpoint=intro.endpoint,
                auth=_client_auth(intro),
                clock=services.clock,
                policy=self.policy,
                max_ttl_s=intro.max_ttl_s,
                timeout_s=intro.timeout_s,
                allow_insecure_loopback=cfg.allow_insecure_loopback,
            )


class _TlsClientAuth:
    """RFC 8705 §2: the client is authenticated by its TLS certificate; send client_id."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def credentials(self, endpoint: str, now: float) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {"client_id": self.client_id}


def _client_auth(cfg: IntrospectionConfig) -> ClientAuth:
    if cfg.auth_method == "client_secret_basic":
        return ClientSecretBasic(cfg.client_id, cfg.client_secret or "")
    if cfg.auth_method == "private_key_jwt":
        if cfg.private_key is None:
            raise ValueError("private_key_jwt needs private_key")
        key = load_pem_private_key(cfg.private_key.read_bytes(), password=None)
        return PrivateKeyJwt(cfg.client_id, _as_signing_key(key), cfg.private_key_alg, cfg.key_id)
    return _TlsClientAuth(cfg.client_id)


def _as_signing_key(key: object) -> PrivateKey:
    return key  # type: ignore[return-value]  # load_pem_private_key's union is wider


class GatewayTokenVerifier:
    """Implements ``finward.auth.policy.TokenVerifier`` over the configured issuers."""

    def __init__(self, issuers: list[IssuerRuntime], clock: Clock) -> None:
        self._clock = clock
        self._jwt = {rt.config.issuer: rt for rt in issuers if rt.keys is not None}
        self._single_jwt = next(iter(self._jwt.values())) if len(self._jwt) == 1 else None
        self._opaque = next(
            (
                rt
                for rt in issuers
                if rt.introspection is not None and rt.config.token_format in ("opaque", "any")
            ),
            None,
        )

    async def verify(self, token: str) -> VerifiedToken:
        if token.count(".") == 2 and self._jwt:
            runtime = self._single_jwt
            if runtime is None:
                iss, _ = peek_unverified(token)
                runtime = self._jwt.get(iss or "")
                if runtime is None:
                    raise TokenError("token_issuer_invalid", "the token's issuer is not trusted")
            return await self._verify_jwt(runtime, token)
        opaque = self._opaque
        if opaque is None or opaque.introspection is None:
            raise TokenError("token_malformed", "the access token is not a JWT")
        claims = await opaque.introspection.introspect(token)
        return verified_from_introspection(claims, opaque.config.issuer, token_sha256(token))

    def stamp(self, token: VerifiedToken) -> object | None:
        """What ``token`` was just verified against (issuer runtime, key set), for
        ``revalidate``; None when it cannot be revalidated that way (opaque tokens)."""
        runtime = self._jwt.get(token.issuer)
        if runtime is None or runtime.keys is None or token.token_type == "opaque":
            return None
        return (runtime, runtime.keys.cached)

    def revalidate(self, token: VerifiedToken, stamp: object) -> bool:
        """Whether ``token`` still stands without verifying it again: the same issuer
        configuration and the same, still fresh key set as at ``stamp``. Re-runs the time
        checks (raises ``TokenError`` when the token has expired meanwhile). False: call
        ``verify`` (the keys were refreshed, or the configuration changed)."""
        if not isinstance(stamp, tuple):
            return False
        runtime = self._jwt.get(token.issuer)
        if runtime is None or stamp[0] is not runtime or runtime.keys is None:
            return False
        keys = stamp[1]
        if keys is None or runtime.keys.fresh_keys() is not keys:
            return False
        check_times(token.claims, runtime.policy, self._clock.now())
        return True

    async def _verify_jwt(self, runtime: IssuerRuntime, token: str) -> VerifiedToken:
        provider = runtime.keys
        assert provider is not None  # only JWT issuers are in self._jwt
        keys = await provider.get_keys()
        try:
            return verify_with_cache(token, keys, runtime.policy, self._clock.now(), runtime.cache)
        except TokenError as exc:
            if exc.reason != "token_key_unknown":
                raise
        # Unknown kid: maybe the AS rotated. One refetch, single-flight and rate-limited.
        _, kid = peek_unverified(token)
        keys = await provider.keys_for_unknown_kid(kid or "")
        return verify_with_cache(token, keys, runtime.policy, self._clock.now(), runtime.cache)
