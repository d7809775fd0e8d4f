"""Compile a configuration into the immutable structures the data plane reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from finward.auth.dpop import DPoPPolicy
from finward.auth.policy import (
    AuthPolicy,
    AuthSettings,
    AuthState,
    IdentityHeaders,
    TokenVerifier,
)
from finward.auth.replay import NonceService
from finward.auth.rules import OperationAuth, compile_rules
from finward.auth.tokens import VerifiedToken
from finward.clock import Clock, SystemClock
from finward.config.model import ApiAuthConfig, AuthConfig, GatewayConfig
from finward.core.canonical import CanonicalPathPolicy
from finward.core.pipeline import AnyPolicy, Pipeline
from finward.core.route_policy import RoutingPolicy
from finward.core.routing import Mount, Router
from finward.errors import ConfigError
from finward.limits.base import Check, LimitStore, Outcome
from finward.limits.policy import RateLimitPolicy
from finward.limits.rules import compile_limits
from finward.openapi.loader import load_spec
from finward.openapi.model import LoadedSpec


class AuthBackend(Protocol):
    """What the adapter provides for authentication (finward.adapters.auth_runtime)."""

    clock: Clock

    @property
    def store(self) -> AuthState: ...

    def verifier(self, auth: AuthConfig) -> TokenVerifier: ...


class LimitBackend(Protocol):
    """What the adapter provides for rate limits (finward.adapters.limit_runtime)."""

    clock: Clock

    @property
    def store(self) -> LimitStore: ...

    def store_error(self, detail: str) -> None:
        """The store failed (called at most once per 10 s): emit an event."""


@dataclass(frozen=True, slots=True)
class CompiledGateway:
    """Everything a request needs, built once per configuration (re)load."""

    config: GatewayConfig
    router: Router
    pipeline: Pipeline
    auth: AuthPolicy | None = None
    rate_limit: RateLimitPolicy | None = None


def compile_gateway(
    config: GatewayConfig,
    backend: AuthBackend | None = None,
    limits: LimitBackend | None = None,
) -> CompiledGateway:
    """Compile ``config``. Without ``backend`` (validation only) the auth policy is built
    but refuses every request with 503, as it has no way to verify tokens; without
    ``limits``, so does the rate limit policy."""
    mounts = []
    specs: list[tuple[str, LoadedSpec]] = []
    rules: dict[tuple[str, str, str], OperationAuth] = {}
    auth_on = bool(config.auth.issuers)
    problems: list[str] = []
    for api in config.apis:
        spec = load_spec(api.spec, api=api.name)
        specs.append((api.name, spec))
        mounts.append(
            Mount(
                api=api.name,
                base_path=api.base_path,
                upstream=api.upstream,
                upstream_path_prefix=api.upstream_path_prefix,
                operations=spec.operations,
            )
        )
        if not auth_on:
            if api.auth is not None and api.auth.token != "off":
                problems.append(f"apis.{api.name}.auth: no issuers are configured in auth.issuers")
            continue
        try:
            compiled = compile_rules(api.name, api.auth or ApiAuthConfig(), spec)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        rules.update({(api.name, m, t): rule for (m, t), rule in compiled.items()})
    rate_limit = early_limit = None
    phases = {limit.phase for limit in config.rate_limits.limits}
    try:
        if "after_auth" in phases:
            rate_limit = _rate_limit_policy(config, specs, limits, "after_auth")
        if "before_auth" in phases:
            early_limit = _rate_limit_policy(config, specs, limits, "before_auth")
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    router = Router.compile(mounts)
    policies: list[AnyPolicy] = [CanonicalPathPolicy(), RoutingPolicy(router)]
    if early_limit is not None:  # counts failed authentications too (ip/net/header keys)
        policies.append(early_limit)
    auth_policy = None
    if auth_on:
        auth_policy = _auth_policy(config.auth, rules, backend)
        policies.append(auth_policy)
    if rate_limit is not None:  # after auth: limits count per client, TPP, PSU …
        policies.append(rate_limit)
    return CompiledGateway(
        config=config,
        router=router,
        pipeline=Pipeline(policies),
        auth=auth_policy,
        rate_limit=rate_limit,
    )


def _rate_limit_policy(
    config: GatewayConfig,
    specs: list[tuple[str, LoadedSpec]],
    backend: LimitBackend | None,
    phase: str,
) -> RateLimitPolicy:
    settings = config.rate_limits
    compiled = compile_limits(settings, specs, phase)
    if backend is None:
        return RateLimitPolicy(compiled, _NoLimitStore(), SystemClock(), headers=settings.headers)
    return RateLimitPolicy(
        compiled,
        backend.store,
        backend.clock,
        headers=settings.headers,
        on_store_error=backend.store_error,
    )


def auth_settings(auth: AuthConfig) -> AuthSettings:
    dpop = auth.dpop
    names = auth.identity_headers
    nonces = None
    if dpop.nonce:
        secrets = [s.encode("utf-8") for s in dpop.nonce_secrets]
        nonces = NonceService(secrets, rotation_s=dpop.nonce_rotation_s)
    return AuthSettings(
        dpop=DPoPPolicy(
            algorithms=dpop.algorithms, max_age_s=dpop.max_age_s, max_future_s=dpop.max_future_s
        ),
        identity_headers=IdentityHeaders(
            client_id=names.client_id,
            tpp_organisation=names.tpp_organisation,
            subject=names.subject,
            consent_id=names.consent_id,
            scopes=names.scopes,
        ),
        public_base_url=auth.public_base_url,
        nonces=nonces,
        forward_token=auth.forward_token,
        consent_claim=auth.consent_claim,
        tpp_clients=dict(auth.tpp.clients),
        require_qc_compliance=auth.tpp.require_qc_compliance,
        issuers=frozenset(issuer.issuer for issuer in auth.issuers),
    )


def _auth_policy(
    auth: AuthConfig,
    rules: dict[tuple[str, str, str], OperationAuth],
    backend: AuthBackend | None,
) -> AuthPolicy:
    settings = auth_settings(auth)
    if backend is None:
        unavailable = _NoBackend()
        return AuthPolicy(rules, settings, unavailable, unavailable, SystemClock())
    return AuthPolicy(rules, settings, backend.verifier(auth), backend.store, backend.clock)


class _NoBackend:
    """Stands in when a configuration is compiled only to be validated: fails closed."""

    async def verify(self, token: str) -> VerifiedToken:
        raise RuntimeError("no authentication backend")

    def stamp(self, token: VerifiedToken) -> object | None:
        return None

    def revalidate(self, token: VerifiedToken, stamp: object) -> bool:
        return False

    async def seen_before(self, key: str, expires_at: float) -> bool:
        raise RuntimeError("no state store")

    def is_token_revoked(self, jti: str) -> bool:
        raise RuntimeError("no state store")

    def is_client_suspended(self, client_id: str) -> bool:
        raise RuntimeError("no state store")


class _NoLimitStore:
    """Stands in when a configuration is compiled only to be validated: fails closed
    (503 internal_error), even for limits with on_store_error: open."""

    shared = False

    async def start(self) -> None:
        return None

    async def acquire(self, checks: Sequence[Check], now: float) -> tuple[Outcome, ...]:
        raise RuntimeError("no rate limit store")

    async def release(self, checks: Sequence[Check], now: float) -> None:
        raise RuntimeError("no rate limit store")

    async def peek(self, check: Check, now: float) -> Outcome:
        raise RuntimeError("no rate limit store")

    async def close(self) -> None:
        return None
