"""`phase: before_auth`: failed authentications count against IP limits (OWASP API2/API4)."""

from __future__ import annotations

import dataclasses

import pytest

from finward.config.model import ApiAuthConfig, RateLimitConfig, RateLimitsConfig
from finward.errors import ConfigError
from finward.gateway import compile_gateway
from tests.auth.gateway_env import (
    JwksServer,
    Pki,
    auth_config,
    bearer,
    call,
    jwks_server,
    pki,
    start_auth_gateway,
    token,
)
from tests.harness import Upstream, make_config

__all__ = ["jwks_server", "pki"]


async def test_bad_tokens_count_against_a_before_auth_ip_limit(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    early = RateLimitConfig(
        name="per-ip", algorithm="sliding_window", limit=3, period_s=60, key=("ip",),
        phase="before_auth",
    )  # fmt: skip
    late = RateLimitConfig(name="per-client", algorithm="fixed_window", limit=100, period_s=60)
    config = auth_config(
        upstream, jwks_server.url, pki, ApiAuthConfig(sender_constraint="optional")
    )
    config = dataclasses.replace(config, rate_limits=RateLimitsConfig(limits=(early, late)))
    gw, _ = await start_auth_gateway(config)
    try:
        guesses = [await call(gw, "GET", "/accounts", headers=bearer("guess")) for _ in range(3)]
        assert {r.reason for r in guesses} == {"token_malformed"}  # counted, then refused
        blocked = await call(gw, "GET", "/accounts", headers=bearer("guess"))
        assert (blocked.status, blocked.reason) == (429, "rate_limited")
        # The address is over its limit whatever it sends now, a valid token included.
        valid = await call(gw, "GET", "/accounts", headers=bearer(token()))
        assert (valid.status, valid.reason) == (429, "rate_limited")
        assert '"per-ip"' in valid.headers["RateLimit-Policy"]
    finally:
        await gw.stop()


def test_phases_compile_into_separate_policies(upstream: Upstream) -> None:
    early = RateLimitConfig(name="e", algorithm="gcra", limit=5, key=("ip",), phase="before_auth")
    config = make_config(upstream.url, rate_limits=RateLimitsConfig(limits=(early,)))
    names = compile_gateway(config).pipeline.policy_names
    assert names == ("canonical_path", "routing", "rate_limit")
    bad = dataclasses.replace(early, costs={"noSuchOperation": 2})
    with pytest.raises(ConfigError):
        compile_gateway(make_config(upstream.url, rate_limits=RateLimitsConfig(limits=(bad,))))
