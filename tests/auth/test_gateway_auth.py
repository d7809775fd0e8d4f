"""Authentication through the whole gateway: real sockets, real keys, real certificates.

Requirement IDs (../shared/reference/standards.md) are named in each test's docstring.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import pytest
from aiohttp import web

from finward.auth.dpop import access_token_hash
from finward.auth.rules import compile_rules
from finward.config.model import (
    AccessRule,
    ApiAuthConfig,
    IntrospectionConfig,
    IssuerConfig,
    ProxyConfig,
    TlsListenConfig,
)
from finward.errors import ConfigError
from finward.openapi.loader import load_spec
from tests.auth import jwt_factory
from tests.auth.dpop_client import signer
from tests.auth.gateway_env import (
    JwksServer,
    Leaf,
    Pki,
    auth_config,
    bearer,
    call,
    jwks_server,
    pki,
    proof,
    start_auth_gateway,
    token,
    with_cert,
)
from tests.harness import Gateway, Upstream, shared_specs_dir

__all__ = ["jwks_server", "pki"]  # fixtures re-exported for pytest

OPTIONAL = ApiAuthConfig(sender_constraint="optional")


@pytest.fixture
async def plain_gw(upstream: Upstream, jwks_server: JwksServer, pki: Pki) -> AsyncIterator[Gateway]:
    """Bearer tokens allowed (sender constraint optional)."""
    gw, _ = await start_auth_gateway(auth_config(upstream, jwks_server.url, pki, OPTIONAL))
    yield gw
    await gw.stop()


@pytest.fixture
async def fapi_gw(upstream: Upstream, jwks_server: JwksServer, pki: Pki) -> AsyncIterator[Gateway]:
    """FAPI 2.0 default: sender-constrained tokens required (mTLS or DPoP)."""
    gw, _ = await start_auth_gateway(auth_config(upstream, jwks_server.url, pki))
    yield gw
    await gw.stop()


# -- tokens: where they come from, what reaches the upstream --------------------------


async def test_valid_token_reaches_upstream_with_identity_headers_not_credentials(
    plain_gw: Gateway, upstream: Upstream
) -> None:
    """FAPI-05, ATJWT-*: a valid at+jwt passes; the upstream learns who called from
    finward's identity headers, never sees the token, and spoofed copies are stripped."""
    at = token(sub="psu-alice", client_id="tpp-acme", consent_id="consent-42")
    reply = await call(
        plain_gw,
        "GET",
        "/accounts",
        headers={
            **bearer(at),
            "X-Finward-PSU-ID": "psu-mallory",
            "x-finward-client-id": "tpp-evil",
            "DPoP": "stray-proof",
        },
    )
    assert reply.status == 200, reply.body
    seen = reply.upstream_headers()
    assert seen["x-finward-psu-id"] == ["psu-alice"]
    assert seen["x-finward-client-id"] == ["tpp-acme"]
    assert seen["x-finward-consent-id"] == ["consent-42"]
    assert seen["x-finward-scopes"] == ["accounts payments"]
    assert "authorization" not in seen
    assert "dpop" not in seen


async def test_forward_token_passes_authorization(
    upstream: Upstream,
    jwks_server: JwksServer,
    pki: Pki,
) -> None:
    """Item 8: the upstream receives the token only when configured to."""
    config = auth_config(upstream, jwks_server.url, pki, OPTIONAL, forward_token=True)
    gw, _ = await start_auth_gateway(config)
    try:
        at = token()
        reply = await call(gw, "GET", "/accounts", headers=bearer(at))
        assert reply.status == 200
        assert reply.upstream_headers()["authorization"] == [f"Bearer {at}"]
    finally:
        await gw.stop()


async def test_missing_token_is_401_with_challenges(plain_gw: Gateway, upstream: Upstream) -> None:
    """RFC 6750 §3, RFC 9449 §7.1: no token gets a bare challenge per accepted scheme."""
    reply = await call(plain_gw, "GET", "/accounts")
    assert (reply.status, reply.reason) == (401, "token_missing")
    assert "Bearer" in reply.challenges
    assert any(c.startswith("DPoP algs=") for c in reply.challenges)
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("where", "reason"),
    [("query", "token_in_query"), ("cookie", "token_in_cookie"), ("jwt-cookie", "token_in_cookie")],
)
async def test_token_outside_authorization_is_refused(
    plain_gw: Gateway, upstream: Upstream, where: str, reason: str
) -> None:
    """FAPI-05: only the Authorization header carries tokens; others are never forwarded."""
    at = token()
    headers = bearer(at)
    path = "/accounts"
    if where == "query":
        path += f"?access_token={at}"
    elif where == "cookie":
        headers["Cookie"] = f"theme=dark; access_token={at}"
    else:
        headers["Cookie"] = f"session={at}"
    reply = await call(plain_gw, "GET", path, headers=headers)
    assert (reply.status, reply.reason) == (401, reason)
    assert reply.challenges
    assert upstream.seen == []


async def test_token_in_form_body_is_refused(plain_gw: Gateway, upstream: Upstream) -> None:
    """FAPI-05, RFC 6750 §2.2: a form body with access_token is refused, not forwarded."""
    at = token(scope="payments")
    form = f"amount=10&access_token={at}".encode()
    headers = {**bearer(at), "Content-Type": "application/x-www-form-urlencoded"}
    reply = await call(plain_gw, "POST", "/payments", headers=headers, data=form)
    assert (reply.status, reply.reason) == (401, "token_in_body")
    assert upstream.seen == []
    ok = await call(plain_gw, "POST", "/payments", headers=headers, data=b"amount=10")
    assert ok.status == 200
    assert ok.body["body"] == "amount=10"


# -- token validation -----------------------------------------------------------------


def _forged() -> str:
    other = jwt_factory.ec_key(index=7)  # a key the issuer never published
    return jwt_factory.sign(jwt_factory.claims(), "ES256", key=other, kid="ec-1")


def _alg_none() -> str:
    return jwt_factory.sign_raw(
        {"alg": "none", "typ": "at+jwt", "kid": "ec-1"}, jwt_factory.claims()
    )


def _key_confusion() -> str:
    # HS256 with the issuer's public key as the HMAC secret (RFC 8725 §2.1).
    secret = str(jwt_factory.issuer_jwks()["keys"][0]).encode()
    return jwt_factory.sign_raw(
        {"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, jwt_factory.claims(), hmac_secret=secret
    )


BAD_TOKENS = {
    "expired": (lambda: token(exp=int(jwt_factory.NOW) - 1), "token_expired"),
    "future iat": (lambda: token(iat=int(jwt_factory.NOW) + 61), "token_issued_in_future"),
    "wrong audience": (lambda: token(aud="https://other.example"), "token_audience_invalid"),
    "wrong issuer": (lambda: token(iss="https://evil.example"), "token_issuer_invalid"),
    "forged signature": (_forged, "token_signature_invalid"),
    "alg none": (_alg_none, "token_algorithm_not_allowed"),
    "key confusion HS256": (_key_confusion, "token_algorithm_not_allowed"),
    "id token typ": (
        lambda: jwt_factory.sign(jwt_factory.claims(), "ES256", typ="JWT"),
        "token_type_invalid",
    ),
    "no client_id": (lambda: token(client_id=None), "token_claims_missing"),
    "garbage": (lambda: "not-a-token", "token_malformed"),
    "five segments (JWE)": (lambda: "a.b.c.d.e", "token_malformed"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401_with_reason(
    plain_gw: Gateway, upstream: Upstream, case: str
) -> None:
    """ATJWT-01..07, JWTBCP-01..10, FAPI-09/13: each attack gets its own reason code."""
    make, reason = BAD_TOKENS[case]
    reply = await call(plain_gw, "GET", "/accounts", headers=bearer(make()))
    assert (reply.status, reply.reason) == (401, reason)
    assert any('error="invalid_token"' in c for c in reply.challenges), reply.challenges
    assert upstream.seen == []


async def test_unknown_kid_storm_refetches_once(
    upstream: Upstream,
    jwks_server: JwksServer,
    pki: Pki,
) -> None:
    """JWKS rules: an unknown kid refetches once, single-flight and rate-limited."""
    gw, clock = await start_auth_gateway(auth_config(upstream, jwks_server.url, pki, OPTIONAL))
    try:
        assert (await call(gw, "GET", "/accounts", headers=bearer(token()))).status == 200
        assert len(jwks_server.fetches) == 1

        async def storm() -> None:
            replies = await asyncio.gather(
                *(
                    call(
                        gw,
                        "GET",
                        "/accounts",
                        headers=bearer(
                            jwt_factory.sign(jwt_factory.claims(), "ES256", kid=f"kid-{i}")
                        ),
                    )
                    for i in range(20)
                )
            )
            assert {(r.status, r.reason) for r in replies} == {(401, "token_key_unknown")}

        await storm()  # within jwks_min_refetch_s of the first fetch: no refetch at all
        assert len(jwks_server.fetches) == 1
        clock.advance(11)
        await storm()
        assert len(jwks_server.fetches) == 2  # one refetch for the whole storm
        await storm()
        assert len(jwks_server.fetches) == 2
    finally:
        await gw.stop()


async def test_jwks_unreachable_fails_closed(upstream: Upstream, pki: Pki) -> None:
    """Fail closed: no keys means 503 jwks_unavailable, never a pass."""
    config = auth_config(upstream, "http://127.0.0.1:9/jwks", pki, OPTIONAL)
    gw, _ = await start_auth_gateway(config)
    try:
        reply = await call(gw, "GET", "/accounts", headers=bearer(token()))
        assert (reply.status, reply.reason) == (503, "jwks_unavailable")
        assert upstream.seen == []
    finally:
        await gw.stop()


# -- sender-constrained tokens --------------------------------------------------------


async def test_unbound_token_refused_where_binding_required(fapi_gw: Gateway) -> None:
    """FAPI-08: sender-constrained tokens are required by default."""
    reply = await call(fapi_gw, "GET", "/accounts", headers=bearer(token()))
    assert (reply.status, reply.reason) == (401, "token_binding_missing")


async def test_mtls_bound_token(fapi_gw: Gateway, pki: Pki, upstream: Upstream) -> None:
    """MTLS-01..03: cnf.x5t#S256 must match the (terminator-forwarded) client certificate,
    and a cached token is re-checked on every request (WSO2 #11521)."""
    mine, other = pki.leaf("PSP_AI"), pki.leaf("PSP_AI")
    at = token(cnf={"x5t#S256": mine.thumbprint})
    ok = await call(fapi_gw, "GET", "/accounts", headers=with_cert(mine, bearer(at)))
    assert ok.status == 200, ok.body
    assert ok.upstream_headers()["x-finward-tpp-id"] == ["PSDDE-BAFIN-123456"]
    assert "x-ssl-client-cert" not in ok.upstream_headers()
    stolen = await call(fapi_gw, "GET", "/accounts", headers=with_cert(other, bearer(at)))
    assert (stolen.status, stolen.reason) == (401, "mtls_binding_mismatch")
    bare = await call(fapi_gw, "GET", "/accounts", headers=bearer(at))
    assert (bare.status, bare.reason) == (401, "client_cert_required")
    again = await call(fapi_gw, "GET", "/accounts", headers=with_cert(mine, bearer(at)))
    assert again.status == 200


async def test_dpop_bound_token(fapi_gw: Gateway, upstream: Upstream) -> None:
    """DPOP-01..15: proof checks, replay, downgrade to Bearer, stolen token, cache."""
    alice, mallory = signer("ES256"), signer("EdDSA")
    at = token(cnf={"jkt": alice.jkt})
    auth = {"Authorization": f"DPoP {at}"}
    first = proof(alice, at, "GET", "/accounts")
    ok = await call(fapi_gw, "GET", "/accounts", headers={**auth, "DPoP": first})
    assert ok.status == 200, ok.body
    assert "dpop" not in ok.upstream_headers()
    replay = await call(fapi_gw, "GET", "/accounts", headers={**auth, "DPoP": first})
    assert (replay.status, replay.reason) == (401, "dpop_proof_replayed")
    assert replay.challenges[0].startswith('DPoP error="invalid_dpop_proof"')
    # The token is now in the verified-token cache; another key must still be refused.
    stolen = proof(mallory, at, "GET", "/accounts")
    theft = await call(fapi_gw, "GET", "/accounts", headers={**auth, "DPoP": stolen})
    assert (theft.status, theft.reason) == (401, "dpop_binding_mismatch")
    downgrade = await call(fapi_gw, "GET", "/accounts", headers=bearer(at))
    assert (downgrade.status, downgrade.reason) == (401, "token_binding_missing")
    wrong_uri = proof(alice, at, "GET", "/accounts/other")
    moved = await call(fapi_gw, "GET", "/accounts", headers={**auth, "DPoP": wrong_uri})
    assert (moved.status, moved.reason) == (401, "dpop_proof_invalid")
    no_proof = await call(fapi_gw, "GET", "/accounts", headers=auth)
    assert (no_proof.status, no_proof.reason) == (401, "dpop_proof_missing")
    fresh = proof(alice, at, "GET", "/accounts")
    assert (await call(fapi_gw, "GET", "/accounts", headers={**auth, "DPoP": fresh})).status == 200


async def test_dpop_server_nonce(upstream: Upstream, jwks_server: JwksServer, pki: Pki) -> None:
    """DPOP nonces (RFC 9449 §9): use_dpop_nonce with a DPoP-Nonce to retry with."""
    base = auth_config(upstream, jwks_server.url, pki)
    dpop = dataclasses.replace(base.auth.dpop, nonce=True, nonce_secrets=("n" * 32,))
    gw, _ = await start_auth_gateway(
        dataclasses.replace(base, auth=dataclasses.replace(base.auth, dpop=dpop))
    )
    try:
        alice = signer("ES256")
        at = token(cnf={"jkt": alice.jkt})
        auth = {"Authorization": f"DPoP {at}"}
        first = await call(
            gw, "GET", "/accounts", headers={**auth, "DPoP": proof(alice, at, "GET", "/accounts")}
        )
        assert (first.status, first.reason) == (401, "dpop_nonce_required")
        assert 'error="use_dpop_nonce"' in first.challenges[0]
        nonce = first.headers["DPoP-Nonce"]
        retry = proof(alice, at, "GET", "/accounts", nonce=nonce)
        ok = await call(gw, "GET", "/accounts", headers={**auth, "DPoP": retry})
        assert ok.status == 200, ok.body
        assert ok.headers["DPoP-Nonce"]
    finally:
        await gw.stop()


async def test_method_restriction(upstream: Upstream, jwks_server: JwksServer, pki: Pki) -> None:
    """sender_method: mtls refuses a DPoP-bound token on that operation."""
    rule = ApiAuthConfig(operations={"listAccounts": AccessRule(sender_method="mtls")})
    gw, _ = await start_auth_gateway(auth_config(upstream, jwks_server.url, pki, rule))
    try:
        alice = signer("ES256")
        at = token(cnf={"jkt": alice.jkt})
        headers = {"Authorization": f"DPoP {at}", "DPoP": proof(alice, at, "GET", "/accounts")}
        reply = await call(gw, "GET", "/accounts", headers=headers)
        assert (reply.status, reply.reason) == (401, "token_binding_missing")
        headers["DPoP"] = proof(alice, at, "GET", "/accounts/a1")
        other = await call(gw, "GET", "/accounts/a1", headers=headers)
        assert other.status == 200, other.body
    finally:
        await gw.stop()


# -- scopes ---------------------------------------------------------------------------


async def test_scopes_from_openapi_security(plain_gw: Gateway) -> None:
    """FAPI-07, ATJWT-07: scopes come from the operation's security requirement."""
    payments_only = token(scope="payments")
    reply = await call(plain_gw, "GET", "/accounts", headers=bearer(payments_only))
    assert (reply.status, reply.reason) == (403, "insufficient_scope")
    assert reply.challenges == ['Bearer error="insufficient_scope", scope="accounts"']
    # Alternatives: fundsconfirmation alone, or payments AND accounts.
    for scope, status in [
        ("fundsconfirmation", 200),
        ("payments accounts", 200),
        ("payments", 403),
        ("accounts", 403),
    ]:
        got = await call(
            plain_gw, "POST", "/funds-confirmations", headers=bearer(token(scope=scope))
        )
        assert got.status == status, (scope, got.body)
    # An API-key-only operation needs no scope.
    assert (await call(plain_gw, "GET", "/keyed", headers=bearer(payments_only))).status == 200


async def test_scope_override_in_configuration(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    """A policy override replaces the spec's scopes (by tag, then by operation)."""
    rule = ApiAuthConfig(
        sender_constraint="optional",
        tags={"AIS": AccessRule(scopes=("ais:read",))},
        operations={"GET /accounts/{accountId}": AccessRule(scopes=())},
    )
    gw, _ = await start_auth_gateway(auth_config(upstream, jwks_server.url, pki, rule))
    try:
        at = token(scope="accounts")
        assert (await call(gw, "GET", "/accounts", headers=bearer(at))).status == 403
        assert (
            await call(gw, "GET", "/accounts", headers=bearer(token(scope="ais:read")))
        ).status == 200
        assert (await call(gw, "GET", "/accounts/x", headers=bearer(at))).status == 200
    finally:
        await gw.stop()


async def test_token_modes(upstream: Upstream, jwks_server: JwksServer, pki: Pki) -> None:
    """token: spec follows the OpenAPI security (open, optional, required); off ignores."""
    rule = ApiAuthConfig(
        token="spec",
        sender_constraint="optional",
        operations={"keyed": AccessRule(token="off")},
    )
    gw, _ = await start_auth_gateway(auth_config(upstream, jwks_server.url, pki, rule))
    try:
        assert (await call(gw, "GET", "/public/rates")).status == 200
        assert (await call(gw, "GET", "/offers")).status == 200
        assert (await call(gw, "GET", "/accounts")).reason == "token_missing"
        # Optional still validates a token that is offered.
        bad = await call(gw, "GET", "/offers", headers=bearer(token(exp=1)))
        assert bad.reason == "token_expired"
        signed_in = await call(gw, "GET", "/offers", headers=bearer(token(sub="psu-bob")))
        assert signed_in.upstream_headers()["x-finward-psu-id"] == ["psu-bob"]
        off = await call(gw, "GET", "/keyed", headers={"Authorization": "Basic abc"})
        assert off.status == 200
        assert off.upstream_headers()["authorization"] == ["Basic abc"]
    finally:
        await gw.stop()


# -- revocation and suspension ----------------------------------------------------------


async def test_revoked_token_and_suspended_client(plain_gw: Gateway) -> None:
    """Item 7: revocation by jti and suspension by client, checked on cache hits too."""
    at = token(jti="jti-to-revoke", client_id="tpp-shady")
    assert (await call(plain_gw, "GET", "/accounts", headers=bearer(at))).status == 200
    services = plain_gw.worker.auth
    assert services is not None
    await services.store.revoke_token("jti-to-revoke", jwt_factory.NOW + 600, actor="test")
    revoked = await call(plain_gw, "GET", "/accounts", headers=bearer(at))
    assert (revoked.status, revoked.reason) == (401, "token_revoked")
    other = token(client_id="tpp-shady")
    assert (await call(plain_gw, "GET", "/accounts", headers=bearer(other))).status == 200
    await services.store.suspend_client("tpp-shady", actor="test", reason="fraud")
    suspended = await call(plain_gw, "GET", "/accounts", headers=bearer(other))
    assert (suspended.status, suspended.reason) == (403, "client_suspended")
    await services.store.unsuspend_client("tpp-shady", actor="test")
    assert (await call(plain_gw, "GET", "/accounts", headers=bearer(other))).status == 200


# -- eIDAS TPP identity -----------------------------------------------------------------

TPP_RULES = ApiAuthConfig(
    sender_constraint="optional",
    tags={
        "AIS": AccessRule(tpp_roles=("PSP_AI",)),
        "PIS": AccessRule(tpp_roles=("PSP_PI",)),
        "PIIS": AccessRule(tpp_roles=("PSP_IC",)),
    },
)


async def test_tpp_roles_and_identity(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    """RTS-15..17: roles from the QWAC's PSD2 QCStatement; identity agrees with the client."""
    config = auth_config(upstream, jwks_server.url, pki, TPP_RULES)
    config = dataclasses.replace(
        config,
        auth=dataclasses.replace(
            config.auth,
            tpp=dataclasses.replace(config.auth.tpp, clients={"tpp-acme": "PSDDE-BAFIN-123456"}),
        ),
    )
    gw, _ = await start_auth_gateway(config)
    try:
        ais = pki.leaf("PSP_AI")
        at = token(client_id="tpp-acme", scope="accounts payments")
        ok = await call(gw, "GET", "/accounts", headers=with_cert(ais, bearer(at)))
        assert ok.status == 200, ok.body
        assert ok.upstream_headers()["x-finward-tpp-id"] == ["PSDDE-BAFIN-123456"]
        pis = await call(gw, "POST", "/payments", headers=with_cert(ais, bearer(at)))
        assert (pis.status, pis.reason) == (403, "tpp_role_invalid")
        assert "code" not in pis.body
        none = await call(gw, "GET", "/accounts", headers=bearer(at))
        assert (none.status, none.reason) == (401, "client_cert_required")
        other_org = pki.leaf("PSP_AI", organization_id="PSDDE-BAFIN-999999")
        mismatch = await call(gw, "GET", "/accounts", headers=with_cert(other_org, bearer(at)))
        assert (mismatch.status, mismatch.reason) == (403, "tpp_client_mismatch")
        unmapped = token(client_id="tpp-unknown")
        alone = await call(gw, "GET", "/accounts", headers=with_cert(ais, bearer(unmapped)))
        assert alone.reason == "tpp_client_mismatch"
        # A certificate-bound token ties client and certificate without a mapping.
        bound = token(client_id="tpp-unknown", cnf={"x5t#S256": ais.thumbprint})
        assert (
            await call(gw, "GET", "/accounts", headers=with_cert(ais, bearer(bound)))
        ).status == 200
        not_qwac = pki.leaf(qwac=False)
        plain = await call(gw, "GET", "/accounts", headers=with_cert(not_qwac, bearer(at)))
        assert (plain.status, plain.reason) == (403, "tpp_certificate_invalid")
        services = gw.worker.auth
        assert services is not None
        await services.store.suspend_client("PSDDE-BAFIN-123456", actor="test", reason="NCA")
        blocked = await call(gw, "GET", "/accounts", headers=with_cert(ais, bearer(at)))
        assert (blocked.status, blocked.reason) == (403, "client_suspended")
    finally:
        await gw.stop()


async def test_berlin_group_role_invalid(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    """BG-11: on Berlin Group routes a role mismatch is 401 with code ROLE_INVALID."""
    rule = dataclasses.replace(TPP_RULES, error_format="berlin-group")
    config = auth_config(upstream, jwks_server.url, pki, rule)
    gw, _ = await start_auth_gateway(config)
    try:
        ais = pki.leaf("PSP_AI")
        at = token(scope="payments", cnf={"x5t#S256": ais.thumbprint})
        reply = await call(gw, "POST", "/payments", headers=with_cert(ais, bearer(at)))
        assert reply.status == 401
        assert reply.body["code"] == "ROLE_INVALID"
        assert reply.reason == "tpp_role_invalid"
        expired = await call(gw, "GET", "/accounts", headers=bearer(token(exp=1)))
        assert (expired.status, expired.body["code"]) == (401, "TOKEN_EXPIRED")
    finally:
        await gw.stop()


# -- several issuers, opaque tokens -----------------------------------------------------


async def test_second_issuer_and_untrusted_issuer(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    """Several issuers: the token's iss picks the issuer; an unknown iss is refused."""
    config = auth_config(upstream, jwks_server.url, pki, OPTIONAL)
    second = IssuerConfig(
        issuer="https://as2.bank.example", jwks_uri=jwks_server.url, allow_insecure_loopback=True
    )
    config = dataclasses.replace(
        config, auth=dataclasses.replace(config.auth, issuers=(*config.auth.issuers, second))
    )
    gw, _ = await start_auth_gateway(config)
    try:
        assert (await call(gw, "GET", "/accounts", headers=bearer(token()))).status == 200
        other = token(iss="https://as2.bank.example")
        assert (await call(gw, "GET", "/accounts", headers=bearer(other))).status == 200
        evil = token(iss="https://as3.bank.example")
        reply = await call(gw, "GET", "/accounts", headers=bearer(evil))
        assert (reply.status, reply.reason) == (401, "token_issuer_invalid")
    finally:
        await gw.stop()


def test_ath_helper_matches_rfc9449() -> None:
    # RFC 9449 §4.2 example: ath of "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".
    assert access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == (
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


# -- real TLS handshake ---------------------------------------------------------------


async def test_mtls_over_a_real_tls_handshake(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    """MTLS-01/04: the verified certificate of the TLS connection itself binds the token,
    and its QWAC roles gate the operation (no terminator in between)."""
    server = pki.leaf(qwac=False, server=True)
    config = auth_config(
        upstream, jwks_server.url, pki, dataclasses.replace(TPP_RULES, sender_constraint="required")
    )
    tls = TlsListenConfig(
        cert=server.cert_path, key=server.key_path, client_ca=pki.ca_path, client_cert="optional"
    )
    config = dataclasses.replace(
        config,
        listen=dataclasses.replace(config.listen, tls=tls),
        proxy=ProxyConfig(),  # no terminator: only the handshake counts
    )
    gw, _ = await start_auth_gateway(config)

    def client(leaf: Leaf | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(pki.ca_path))
        if leaf is not None:
            ctx.load_cert_chain(str(leaf.cert_path), str(leaf.key_path))
        return ctx

    try:
        tpp = pki.leaf("PSP_AI", "PSP_PI")
        other = pki.leaf("PSP_AI")
        at = token(cnf={"x5t#S256": tpp.thumbprint}, scope="accounts")
        ok = await call(gw, "GET", "/accounts", headers=bearer(at), ssl_context=client(tpp))
        assert ok.status == 200, ok.body
        assert ok.upstream_headers()["x-finward-tpp-id"] == ["PSDDE-BAFIN-123456"]
        stolen = await call(gw, "GET", "/accounts", headers=bearer(at), ssl_context=client(other))
        assert (stolen.status, stolen.reason) == (401, "mtls_binding_mismatch")
        # A certificate in a header is ignored without a trusted terminator.
        spoof = await call(
            gw, "GET", "/accounts", headers=with_cert(tpp, bearer(at)), ssl_context=client(None)
        )
        assert (spoof.status, spoof.reason) == (401, "client_cert_required")
    finally:
        await gw.stop()


# -- opaque tokens: RFC 7662 introspection ----------------------------------------------


async def test_opaque_tokens_through_introspection(upstream: Upstream, pki: Pki) -> None:
    """INTRO-01..05: opaque tokens are introspected with client authentication, cached by
    hash (bounded by exp and max_ttl_s), bound tokens still need their proof, and an
    unreachable AS fails closed with 503."""
    calls: list[str] = []
    alice = signer("ES256")
    answers = {
        "opaque-good": {
            "active": True,
            "client_id": "tpp-acme",
            "sub": "psu-alice",
            "scope": "accounts",
            "exp": int(jwt_factory.NOW) + 30,
            "iss": jwt_factory.ISSUER,
            "jti": "opaque-jti-1",
        },
        "opaque-dpop": {
            "active": True,
            "client_id": "tpp-acme",
            "scope": "accounts",
            "exp": int(jwt_factory.NOW) + 30,
            "cnf": {"jkt": alice.jkt},
        },
        "opaque-dead": {"active": False},
    }

    async def introspect(request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(b"finward-rs:s3cret").decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        calls.append(str(form["token"]))
        return web.json_response(answers.get(str(form["token"]), {"active": False}))

    app = web.Application()
    app.router.add_post("/introspect", introspect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}/introspect"
    issuer = IssuerConfig(
        issuer=jwt_factory.ISSUER,
        token_format="opaque",
        allow_insecure_loopback=True,
        introspection=IntrospectionConfig(
            endpoint=endpoint, client_id="finward-rs", client_secret="s3cret", max_ttl_s=10
        ),
    )
    config = auth_config(upstream, "unused", pki, OPTIONAL, issuer=issuer)
    gw, clock = await start_auth_gateway(config)
    try:
        ok = await call(gw, "GET", "/accounts", headers=bearer("opaque-good"))
        assert ok.status == 200, ok.body
        assert ok.upstream_headers()["x-finward-psu-id"] == ["psu-alice"]
        assert (await call(gw, "GET", "/accounts", headers=bearer("opaque-good"))).status == 200
        assert calls == ["opaque-good"]  # the second answer came from the cache
        clock.advance(11)  # past max_ttl_s: asked again
        assert (await call(gw, "GET", "/accounts", headers=bearer("opaque-good"))).status == 200
        assert calls == ["opaque-good", "opaque-good"]
        dead = await call(gw, "GET", "/accounts", headers=bearer("opaque-dead"))
        assert (dead.status, dead.reason) == (401, "token_inactive")
        auth = {"Authorization": "DPoP opaque-dpop"}
        no_proof = await call(gw, "GET", "/accounts", headers=auth)
        assert no_proof.reason == "dpop_proof_missing"
        good = {**auth, "DPoP": proof(alice, "opaque-dpop", "GET", "/accounts")}
        assert (await call(gw, "GET", "/accounts", headers=good)).status == 200
        await runner.cleanup()
        down = await call(gw, "GET", "/accounts", headers=bearer("opaque-new"))
        assert (down.status, down.reason) == (503, "introspection_unavailable")
    finally:
        await gw.stop()
        await runner.cleanup()


# -- regressions from the security review -------------------------------------------------


async def test_underscore_spellings_of_identity_headers_are_stripped(
    plain_gw: Gateway,
) -> None:
    """CGI/WSGI upstreams read X_Finward_PSU_ID as X-Finward-PSU-ID: strip both."""
    headers = [
        *bearer(token(sub="psu-alice")).items(),
        ("X_Finward_PSU_ID", "psu-mallory"),
        ("X-Finward-Consent_ID", "consent-evil"),
    ]
    reply = await call(plain_gw, "GET", "/accounts", headers=headers)
    assert reply.status == 200
    seen = reply.upstream_headers()
    assert seen["x-finward-psu-id"] == ["psu-alice"]
    assert not any("_" in name and "finward" in name for name in seen)


@pytest.mark.parametrize(
    "cnf",
    [
        {"jwk": {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}},
        {"kid": "key-1"},
        {"x5t#s256": "wrong-case"},
        {"jkt": None},
        {"x5t#S256": None},
        {},
    ],
)
async def test_unsupported_binding_is_not_a_bearer_token(plain_gw: Gateway, cnf: object) -> None:
    """FAPI-08, MTLS-01: a bound token whose method we cannot check is refused, even where
    sender constraint is optional; it never degrades into a bearer token."""
    reply = await call(plain_gw, "GET", "/accounts", headers=bearer(token(cnf=cnf)))
    assert (reply.status, reply.reason) == (401, "token_binding_missing")


async def test_tpp_named_only_when_certificate_agrees(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    """BG-11 on routes without role checks: a disagreeing QWAC is not named upstream, and
    a suspended organisation is refused."""
    config = auth_config(upstream, jwks_server.url, pki, OPTIONAL)
    tpp = dataclasses.replace(config.auth.tpp, clients={"tpp-acme": "PSDDE-BAFIN-123456"})
    config = dataclasses.replace(config, auth=dataclasses.replace(config.auth, tpp=tpp))
    gw, _ = await start_auth_gateway(config)
    try:
        at = token(client_id="tpp-acme")
        other = pki.leaf("PSP_AI", organization_id="PSDDE-BAFIN-999999")
        reply = await call(gw, "GET", "/accounts", headers=with_cert(other, bearer(at)))
        assert reply.status == 200
        # The mapping names the client's organisation; the foreign certificate does not.
        assert reply.upstream_headers()["x-finward-tpp-id"] == ["PSDDE-BAFIN-123456"]
        services = gw.worker.auth
        assert services is not None
        await services.store.suspend_client("PSDDE-BAFIN-999999", actor="test", reason="NCA")
        refused = await call(gw, "GET", "/accounts", headers=with_cert(other, bearer(at)))
        assert (refused.status, refused.reason) == (403, "client_suspended")
    finally:
        await gw.stop()


async def test_repeated_certificate_header_is_refused(
    fapi_gw: Gateway, pki: Pki, upstream: Upstream
) -> None:
    """MTLS-03: a terminator that appends would let the client's copy come first."""
    victim, attacker = pki.leaf("PSP_AI"), pki.leaf("PSP_AI")
    at = token(cnf={"x5t#S256": victim.thumbprint})
    headers = [
        *bearer(at).items(),
        ("X-SSL-Client-Cert", victim.header),
        ("X-SSL-Client-Cert", attacker.header),
    ]
    reply = await call(fapi_gw, "GET", "/accounts", headers=headers)
    assert (reply.status, reply.reason) == (400, "client_cert_invalid")
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="access_token"\r\n\r\nT\r\n--XyZ--\r\n',
        ),
        ("application/x-www-form-urlencoded, text/plain", b"a=1&access_token=T"),
        ("APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8", b"access.token=T"),
        ("application/x-www-form-urlencoded", b"access+token=T"),
        ("application/x-www-form-urlencoded", b"access_token%5B%5D=T"),
    ],
)
async def test_token_in_any_form_spelling_is_refused(
    plain_gw: Gateway, upstream: Upstream, content_type: str, body: bytes
) -> None:
    """FAPI-05: form bodies in the spellings frameworks read as access_token."""
    headers = {**bearer(token(scope="payments")), "Content-Type": content_type}
    reply = await call(plain_gw, "POST", "/payments", headers=headers, data=body)
    assert (reply.status, reply.reason) == (401, "token_in_body")
    assert upstream.seen == []


@pytest.mark.parametrize("query", ["access.token=T", "access%20token=T", "access_token[]=T"])
async def test_token_in_query_php_spellings(plain_gw: Gateway, query: str) -> None:
    reply = await call(plain_gw, "GET", f"/accounts?{query}", headers=bearer(token()))
    assert (reply.status, reply.reason) == (401, "token_in_query")


async def test_foreign_jwt_cookie_is_not_a_token(plain_gw: Gateway) -> None:
    """A JWT cookie from another issuer (an app session) is left alone."""
    session = jwt_factory.sign(jwt_factory.claims(iss="https://sessions.example"), "ES256")
    headers = {**bearer(token()), "Cookie": f"session={session}"}
    assert (await call(plain_gw, "GET", "/accounts", headers=headers)).status == 200


def test_undefined_security_scheme_is_a_configuration_error(tmp_path: Path) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n"
        "paths:\n  /x:\n    get:\n      operationId: x\n      security: [{oauht: [a]}]\n"
        "      responses: {'200': {description: ok}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        compile_rules("api", ApiAuthConfig(), load_spec(spec, api="api"))
    assert "'oauht'" in caught.value.problems[0]


def test_scopes_of_the_real_open_banking_specs() -> None:
    """FAPI-07 on the shared specs: UK OB operations need their API's scope."""
    specs = shared_specs_dir()
    expected = {
        "uk-ob-account-info-openapi-4.0.0.yaml": "accounts",
        "uk-ob-payment-initiation-openapi-4.0.0.yaml": "payments",
        "uk-ob-confirmation-funds-openapi-4.0.0.yaml": "fundsconfirmations",
    }
    for name, scope in expected.items():
        rules = compile_rules("ob", ApiAuthConfig(), load_spec(specs / name, api="ob"))
        assert rules
        assert {r.scope_alternatives for r in rules.values()} == {(frozenset({scope}),)}


def test_mixed_alternatives_keep_the_token_scopes(tmp_path: Path) -> None:
    """An API-key alternative does not waive the scopes of the OAuth alternative."""
    spec = tmp_path / "api.yaml"
    spec.write_text(
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n"
        "paths:\n  /x:\n    post:\n      operationId: x\n"
        "      security: [{key: []}, {oauth: [payments]}]\n"
        "      responses: {'200': {description: ok}}\n"
        "components:\n  securitySchemes:\n    key: {type: apiKey, in: header, name: K}\n"
        "    oauth: {$ref: 'schemes.yaml#/oauth'}\n"
    )
    (tmp_path / "schemes.yaml").write_text(
        "oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: 'https://as/t', "
        "scopes: {payments: p}}}}\n"
    )
    rules = compile_rules("api", ApiAuthConfig(), load_spec(spec, api="api"))
    assert rules[("POST", "/x")].scope_alternatives == (frozenset({"payments"}),)


async def test_keep_alive_connection_rechecks_every_request(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    """WSO2 #11521 on one keep-alive connection: the token verified on an earlier request
    of the connection is not verified again, but binding, revocation, expiry and scopes
    are, request by request."""
    gw, clock = await start_auth_gateway(auth_config(upstream, jwks_server.url, pki))
    mine, other = pki.leaf("PSP_AI"), pki.leaf("PSP_AI")
    alice, mallory = signer("ES256"), signer("EdDSA")
    mtls_at = token(cnf={"x5t#S256": mine.thumbprint}, exp=int(jwt_factory.NOW) + 30)
    dpop_at = token(cnf={"jkt": alice.jkt}, scope="accounts")
    outcomes: list[tuple[int, str | None]] = []
    policy = gw.worker.state.gateway.auth
    assert policy is not None
    verify, verified = policy.verifier.verify, []

    async def counting(raw: str) -> object:
        verified.append(raw)
        return await verify(raw)

    policy.verifier.verify = counting  # type: ignore[method-assign]
    try:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def send(headers: dict[str, str], path: str = "/accounts") -> None:
                async with session.get(gw.url + path, headers=headers) as response:
                    body = await response.json(content_type=None)
                    outcomes.append((response.status, body.get("reason")))

            await send(with_cert(mine, bearer(mtls_at)))
            await send(with_cert(other, bearer(mtls_at)))  # same token, another cert
            await send(with_cert(mine, bearer(mtls_at)))
            dpop = {"Authorization": f"DPoP {dpop_at}"}
            await send({**dpop, "DPoP": proof(alice, dpop_at, "GET", "/accounts")})
            stolen = proof(mallory, dpop_at, "GET", "/accounts")
            await send({**dpop, "DPoP": stolen})  # same token, the thief's key
            payments = proof(alice, dpop_at, "POST", "/payments")
            async with session.post(
                gw.url + "/payments", headers={**dpop, "DPoP": payments}
            ) as response:  # scope re-checked: the token has accounts only
                outcomes.append((response.status, (await response.json())["reason"]))
            services = gw.worker.auth
            assert services is not None
            claims = jwt.decode(dpop_at, options={"verify_signature": False})
            jti = str(claims["jti"])
            await services.store.revoke_token(jti, jwt_factory.NOW + 600, actor="test")
            await send({**dpop, "DPoP": proof(alice, dpop_at, "GET", "/accounts")})
            clock.advance(31)  # past the mTLS token's exp
            await send(with_cert(mine, bearer(mtls_at)))
        assert len(gw.worker.connections) <= 1  # all of it over one connection
    finally:
        await gw.stop()
    assert outcomes == [
        (200, None),
        (401, "mtls_binding_mismatch"),
        (200, None),
        (200, None),
        (401, "dpop_binding_mismatch"),
        (403, "insufficient_scope"),
        (401, "token_revoked"),
        (401, "token_expired"),
    ]
    # Verified once per token change on the connection, and again once expired.
    assert verified == [mtls_at, dpop_at, mtls_at]
