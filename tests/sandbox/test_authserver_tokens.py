"""The AS's keys, clients and token minting, without HTTP (RFC 9068, FAPI 2.0 §5.4)."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

import jwt
import pytest

from finward.auth.jwk import MAX_JWKS_KEYS, parse_jwks
from finward.auth.tokens import IssuerPolicy, TokenError, verify_access_token
from finward.clock import FakeClock
from finward.sandbox.authserver.clients import (
    CLIENT_SECRET_BASIC,
    TLS_CLIENT_AUTH,
    ClientRegistration,
    ClientRegistry,
    default_clients,
)
from finward.sandbox.authserver.keys import MAX_RETIRED_KEYS, SigningKeys
from finward.sandbox.authserver.state import AuthServerConfig
from finward.sandbox.authserver.tokens import (
    DEFAULT_ISSUER,
    mint_access_token,
    read_own_token,
)

NOW = 1_800_000_000.0
POLICY = IssuerPolicy(issuer=DEFAULT_ISSUER, audiences=frozenset({"finward"}))
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@cache
def all_keys() -> SigningKeys:
    """One key per algorithm, shared read-only (RSA generation is slow)."""
    return SigningKeys(FakeClock(NOW))


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_minted_tokens_verify_at_the_resource_server_for_every_fapi_alg(alg: str) -> None:
    keys = all_keys()
    token = mint_access_token(
        keys, client_id="tpp-initech", sub="psu-alice", scope=["accounts", "payments"], alg=alg
    )
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == alg
    assert header["kid"] == keys.current(alg).kid
    verified = verify_access_token(token, parse_jwks(keys.jwks()), POLICY, NOW)
    assert verified.sub == "psu-alice" and verified.client_id == "tpp-initech"
    assert verified.scopes == {"accounts", "payments"}
    assert verified.exp == NOW + 300 and verified.iat == NOW
    assert verified.claims["aud"] == "finward" and verified.cnf is None


def test_jti_is_unique_and_carries_at_least_128_random_bits() -> None:
    keys = all_keys()
    jtis = {
        jwt.decode(
            mint_access_token(keys, client_id="c", sub="s", scope="accounts"),
            options={"verify_signature": False},
        )["jti"]
        for _ in range(20)
    }
    assert len(jtis) == 20
    assert all(len(base64.urlsafe_b64decode(j + "==")) >= 16 for j in jtis)


def test_cnf_extra_claims_and_overrides_reach_the_token() -> None:
    keys = all_keys()
    token = mint_access_token(
        keys,
        client_id="tpp-acme-ais",
        sub="psu-bruno",
        scope="accounts",
        cnf={"jkt": "abc"},
        exp_in=60,
        now=NOW + 5,
        extra_claims={"consent_id": "c-1", "aud": "someone-else"},
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": "abc"} and claims["consent_id"] == "c-1"
    assert claims["exp"] == NOW + 65
    with pytest.raises(TokenError) as refused:
        verify_access_token(token, parse_jwks(keys.jwks()), POLICY, NOW + 10)
    assert refused.value.reason == "token_audience_invalid"


def test_jwks_holds_public_keys_only_with_kid_alg_and_use() -> None:
    document = all_keys().jwks()
    assert {key["alg"] for key in document["keys"]} == {"ES256", "PS256", "EdDSA"}
    for key in document["keys"]:
        assert not PRIVATE_MEMBERS & key.keys()
        assert key["use"] == "sig" and key["kid"]
    assert parse_jwks(document).skipped == ()


def test_rotation_keeps_the_old_key_published_for_the_grace_period_only() -> None:
    clock = FakeClock(NOW)
    keys = SigningKeys(clock, algorithms=["ES256"], grace_s=600)
    old_kid = keys.current().kid
    old = mint_access_token(keys, client_id="c", sub="s", scope="accounts", exp_in=3600)
    (new_key,) = keys.rotate()
    assert new_key.kid != old_kid and keys.current().kid == new_key.kid
    new = mint_access_token(keys, client_id="c", sub="s", scope="accounts")
    assert jwt.get_unverified_header(new)["kid"] == new_key.kid
    clock.advance(599)
    jwks = parse_jwks(keys.jwks())
    assert [k.kid for k in jwks.keys] == [new_key.kid, old_kid]
    verify_access_token(old, jwks, POLICY, clock.now())
    clock.advance(1)
    jwks = parse_jwks(keys.jwks())
    assert [k.kid for k in jwks.keys] == [new_key.kid]
    with pytest.raises(TokenError) as refused:
        verify_access_token(old, jwks, POLICY, clock.now())
    assert refused.value.reason == "token_key_unknown"


def test_rotating_often_never_publishes_more_keys_than_a_resource_server_accepts() -> None:
    keys = SigningKeys(FakeClock(NOW), algorithms=["ES256", "EdDSA"])
    for _ in range(MAX_RETIRED_KEYS + 5):
        keys.rotate()
    document = keys.jwks()
    assert len(document["keys"]) == 2 + MAX_RETIRED_KEYS <= MAX_JWKS_KEYS
    assert len(parse_jwks(document)) == len(document["keys"])


def test_rotation_of_one_algorithm_leaves_the_others_current() -> None:
    keys = SigningKeys(FakeClock(NOW), algorithms=["ES256", "EdDSA"])
    eddsa = keys.current("EdDSA").kid
    keys.rotate("ES256")
    assert keys.current("EdDSA").kid == eddsa
    with pytest.raises(KeyError):
        keys.rotate("PS256")


def test_key_set_refuses_unsupported_algorithms_and_negative_grace() -> None:
    with pytest.raises(ValueError, match="HS256"):
        SigningKeys(algorithms=["HS256"])
    with pytest.raises(ValueError, match="grace"):
        SigningKeys(algorithms=["ES256"], grace_s=-1)


def test_read_own_token_accepts_only_live_tokens_of_this_issuer_and_keys() -> None:
    keys = all_keys()
    token = mint_access_token(keys, client_id="c", sub="s", scope="accounts", now=NOW)
    claims = read_own_token(keys, token, issuer=DEFAULT_ISSUER, now=NOW)
    assert claims is not None and claims["sub"] == "s"
    assert read_own_token(keys, token, issuer="http://other", now=NOW) is None
    assert read_own_token(keys, token, issuer=DEFAULT_ISSUER, now=NOW + 300) is None
    assert read_own_token(keys, token, issuer=DEFAULT_ISSUER, now=NOW - 1) is None  # nbf
    stranger = SigningKeys(FakeClock(NOW), algorithms=["ES256"])
    assert read_own_token(stranger, token, issuer=DEFAULT_ISSUER, now=NOW) is None
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[::-1]}"
    assert read_own_token(keys, forged, issuer=DEFAULT_ISSUER, now=NOW) is None
    assert read_own_token(keys, "not.a.jwt", issuer=DEFAULT_ISSUER, now=NOW) is None


def test_client_registration_keeps_only_a_digest_of_the_secret() -> None:
    client = ClientRegistration("tpp-x", "X", secret="s3cret-value", scopes=frozenset({"accounts"}))
    assert "s3cret-value" not in repr(client)
    assert not any(getattr(client, n, None) == "s3cret-value" for n in dir(client))
    registry = ClientRegistry([client])
    assert registry.authenticate_secret("tpp-x", "s3cret-value") is client
    assert registry.authenticate_secret("tpp-x", "s3cret-valuE") is None
    assert registry.authenticate_secret("tpp-y", "s3cret-value") is None
    with pytest.raises(ValueError, match="already registered"):
        registry.register(client)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a secret"),
        ({"secret": "x", "auth_methods": {TLS_CLIENT_AUTH}}, "organisation_id"),
        ({"secret": "x", "auth_methods": {"private_key_jwt"}}, "auth methods"),
        ({"secret": "x", "grant_types": {"password"}}, "grant types"),
    ],
)
def test_client_registration_refuses_inconsistent_settings(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ClientRegistration("tpp-x", "X", **kwargs)


def test_default_tpps_carry_the_eidas_organisation_ids_of_the_test_certificates() -> None:
    clients = {c.client_id: c for c in default_clients()}
    assert clients["tpp-acme-ais"].organisation_id == "PSDDE-BAFIN-123456"
    assert clients["finward-gateway"].can_introspect and not clients["finward-gateway"].grant_types
    tpps = [c for c in clients.values() if TLS_CLIENT_AUTH in c.auth_methods]
    assert len(tpps) == 3
    assert all((c.organisation_id or "").startswith("PSDDE-BAFIN-") for c in tpps)
    # The demo's scraper has no certificate: a client secret only.
    assert clients["tpp-scraper"].auth_methods == {CLIENT_SECRET_BASIC}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": "127.0.0.1:8082"},
        {"issuer": "http://127.0.0.1:8082/"},
        {"issuer": "http://as", "token_lifetime_s": 0},
        {"issuer": "http://as", "code_lifetime_s": 601},
        {"issuer": "http://as", "consent_claim": "sub"},
        {"issuer": "http://as", "default_alg": "RS256"},
    ],
)
def test_config_refuses_unsafe_or_inconsistent_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AuthServerConfig(**kwargs)
