"""The signature-verification cache: faster, never laxer (WSO2 product-apim #11521)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from finward.auth.jwk import VerificationKey, parse_jwks
from finward.auth.token_cache import CachedVerification, TokenCache, verify_with_cache
from finward.auth.tokens import MAX_TOKEN_BYTES, TokenError, token_sha256
from finward.clock import FakeClock
from tests.auth.jwt_factory import (
    AUDIENCE,
    NOW,
    claims,
    ec_key,
    issuer_jwks,
    issuer_keys,
    policy,
    public_jwk,
    sign,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Count public-key operations by wrapping VerificationKey.verify."""
    calls: list[str] = []
    real = VerificationKey.verify

    def counting(self: VerificationKey, alg: str, signing_input: bytes, sig: bytes) -> bool:
        calls.append(alg)
        return real(self, alg, signing_input, sig)

    monkeypatch.setattr(VerificationKey, "verify", counting)
    yield calls


def test_second_verification_is_a_hit_without_crypto(
    clock: FakeClock, verify_calls: list[str]
) -> None:
    cache, keys, token = TokenCache(), issuer_keys(), sign(alg="PS256")
    first = verify_with_cache(token, keys, policy(), clock.now(), cache)
    clock.advance(10)
    second = verify_with_cache(token, keys, policy(), clock.now(), cache)
    assert second is first
    assert verify_calls == ["PS256"]
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_cache_hit_still_refuses_an_expired_token(clock: FakeClock) -> None:
    """Even an entry that claims to live forever is re-checked against ``now``."""
    cache, keys, token = TokenCache(), issuer_keys(), sign(claims(exp=int(NOW) + 60))
    verified = verify_with_cache(token, keys, policy(), clock.now(), cache)
    cache.put(token_sha256(token), CachedVerification(verified, expires_at=float("inf")), NOW)
    clock.advance(60)
    with pytest.raises(TokenError) as caught:
        verify_with_cache(token, keys, policy(), clock.now(), cache)
    assert caught.value.reason == "token_expired"
    assert cache.hits == 1  # it was a hit, and it was still refused


def test_expired_entries_are_evicted_lazily_on_read(clock: FakeClock) -> None:
    cache, keys, token = TokenCache(), issuer_keys(), sign(claims(exp=int(NOW) + 60))
    verify_with_cache(token, keys, policy(), clock.now(), cache)
    clock.advance(3600)
    assert len(cache) == 1  # no timer ran
    with pytest.raises(TokenError, match="token_expired"):
        verify_with_cache(token, keys, policy(), clock.now(), cache)
    assert len(cache) == 0 and cache.evictions == 1


def test_cache_hit_rechecks_policy_audience_issuer_and_algorithms(clock: FakeClock) -> None:
    cache, keys, token = TokenCache(), issuer_keys(), sign(alg="ES256")
    verify_with_cache(token, keys, policy(), NOW, cache)
    cases = {
        "token_audience_invalid": policy(audiences=frozenset({"https://other-rs.example"})),
        "token_issuer_invalid": policy(issuer="https://other-as.example"),
        "token_algorithm_not_allowed": policy(algorithms=frozenset({"PS256"})),
        "token_type_invalid": policy(token_types=frozenset({"jwt"})),
        "token_claims_missing": policy(required_claims=frozenset({"iss", "aud", "exp", "acr"})),
    }
    for reason, other in cases.items():
        with pytest.raises(TokenError) as caught:
            verify_with_cache(token, keys, other, NOW, cache)
        assert caught.value.reason == reason
    assert cache.hits == len(cases)


def test_cache_hit_rechecks_nbf_and_iat_against_a_new_policy(clock: FakeClock) -> None:
    cache, keys = TokenCache(), issuer_keys()
    token = sign(claims(iat=int(NOW) + 30, nbf=int(NOW) + 30))
    verify_with_cache(token, keys, policy(max_future_s=60), NOW, cache)
    with pytest.raises(TokenError, match="token_not_yet_valid"):
        verify_with_cache(token, keys, policy(), NOW, cache)


def test_key_rotated_out_of_the_jwks_invalidates_the_entry(verify_calls: list[str]) -> None:
    cache, token = TokenCache(), sign(alg="ES256")
    verify_with_cache(token, issuer_keys(), policy(), NOW, cache)
    rotated = parse_jwks({"keys": [public_jwk(ec_key(index=2), kid="ec-2")]})
    with pytest.raises(TokenError, match="token_key_unknown"):
        verify_with_cache(token, rotated, policy(), NOW, cache)
    assert len(cache) == 0
    # A refetched JWKS that still holds the key (a new KeySet object) keeps the hit.
    verify_with_cache(token, issuer_keys(), policy(), NOW, cache)
    verify_with_cache(token, parse_jwks(issuer_jwks()), policy(), NOW, cache)
    assert verify_calls == ["ES256", "ES256"]  # initial, and once after the rotation


def test_same_kid_with_a_different_key_is_not_a_hit() -> None:
    cache, token = TokenCache(), sign(alg="ES256")
    verify_with_cache(token, issuer_keys(), policy(), NOW, cache)
    impostor = parse_jwks({"keys": [public_jwk(ec_key(index=3), kid="ec-1")]})
    with pytest.raises(TokenError, match="token_signature_invalid"):
        verify_with_cache(token, impostor, policy(), NOW, cache)


def test_cache_is_keyed_by_hash_and_never_holds_the_raw_token() -> None:
    cache, token = TokenCache(), sign(alg="EdDSA")
    verify_with_cache(token, issuer_keys(), policy(), NOW, cache)
    internals = cache._entries
    assert list(internals) == [token_sha256(token)]
    assert all(len(key) == 64 and token not in key for key in internals)
    for entry in internals.values():
        verified = entry.verified
        texts = [repr(entry), repr(dict(verified.claims))]
        texts += [repr(getattr(verified, f.name)) for f in dataclasses.fields(verified)]
        assert not any(token in text for text in texts)
    assert token not in repr(vars(cache))


def test_failures_are_never_cached(verify_calls: list[str]) -> None:
    cache, keys = TokenCache(), issuer_keys()
    bad = sign(alg="ES256", key=ec_key(index=4))
    for _ in range(2):
        with pytest.raises(TokenError, match="token_signature_invalid"):
            verify_with_cache(bad, keys, policy(), NOW, cache)
    assert len(cache) == 0 and verify_calls == ["ES256", "ES256"]


def test_lru_bound_evicts_least_recently_used() -> None:
    cache, keys = TokenCache(max_entries=2), issuer_keys()
    a, b, c = (sign(claims(jti=f"jti-{n}"), "EdDSA") for n in "abc")
    verify_with_cache(a, keys, policy(), NOW, cache)
    verify_with_cache(b, keys, policy(), NOW, cache)
    verify_with_cache(a, keys, policy(), NOW, cache)  # a is now the most recent
    verify_with_cache(c, keys, policy(), NOW, cache)
    assert set(cache._entries) == {token_sha256(a), token_sha256(c)}
    assert cache.evictions == 1


def test_oversized_token_is_refused_without_hashing_or_caching() -> None:
    cache = TokenCache()
    with pytest.raises(TokenError, match="token_too_large"):
        verify_with_cache("a" * (MAX_TOKEN_BYTES + 1), issuer_keys(), policy(), NOW, cache)
    assert len(cache) == 0 and cache.misses == 0


def test_dead_entries_are_not_stored_and_capacity_must_be_positive() -> None:
    cache = TokenCache()
    verified = verify_with_cache(sign(), issuer_keys(), policy(), NOW, TokenCache())
    cache.put("h", CachedVerification(verified, expires_at=NOW), NOW)
    assert len(cache) == 0
    with pytest.raises(ValueError):
        TokenCache(max_entries=0)


def test_discard_forces_fresh_verification(verify_calls: list[str]) -> None:
    cache, token = TokenCache(), sign(claims(aud=[AUDIENCE]), "EdDSA")
    verify_with_cache(token, issuer_keys(), policy(), NOW, cache)
    cache.discard(token_sha256(token))
    verify_with_cache(token, issuer_keys(), policy(), NOW, cache)
    assert verify_calls == ["EdDSA", "EdDSA"]
    cache.clear()
    assert len(cache) == 0
