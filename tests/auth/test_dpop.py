"""DPoP proof verification (RFC 9449; requirement IDs DPOP-01..15 of standards.md)."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from jwt.algorithms import get_default_algorithms

from finward.auth.dpop import (
    DPoPError,
    DPoPPolicy,
    DPoPProof,
    access_token_hash,
    check_token_scheme,
    request_htu,
)
from finward.auth.jwk import jwk_thumbprint
from finward.auth.replay import MemoryReplayCache, NonceService
from finward.clock import FakeClock
from finward.http import Headers

from .dpop_client import BASE, ES, NOW, POLICY, URL, b64, refused, signer, verify

# RFC 9449 §4.1 Figure 2 and §7.1 Figure 13 (RFC 8792 folding undone); §6.1 and §7.1 values.
RFC_TOKEN_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0Vj"
    "NoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5"
    "VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9T"
    "VCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8"
    "lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC_RESOURCE_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0Vj"
    "NoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5"
    "VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUI"
    "iwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI"
    "2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzh"
    "rtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
RFC_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RFC_ATH = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
    "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
    "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v"
    "MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


# --- RFC vectors --------------------------------------------------------------------------


def test_rfc9449_figure2_token_request_proof_verifies() -> None:
    proof = verify(
        RFC_TOKEN_PROOF,
        method="POST",
        url="https://server.example.com/token",
        access_token=None,
        now=1562262616,
        token_jkt=None,
    )
    assert (proof.jkt, proof.jti, proof.alg) == (RFC_JKT, "-BwC3ESc6acc2lTc", "ES256")


def test_dpop12_rfc9449_figure13_resource_proof_with_ath_and_jkt() -> None:
    kwargs: dict[str, Any] = {
        "url": "https://resource.example.org/protectedresource",
        "access_token": RFC_ACCESS_TOKEN,
        "now": 1562262618,
        "token_jkt": RFC_JKT,
    }
    assert verify(RFC_RESOURCE_PROOF, **kwargs).jkt == RFC_JKT
    refused("dpop_proof_invalid", RFC_RESOURCE_PROOF, **{**kwargs, "access_token": "other"})
    refused("dpop_binding_mismatch", RFC_RESOURCE_PROOF, **{**kwargs, "token_jkt": ES.jkt})


def test_rfc_thumbprint_and_ath_vectors() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    header = json.loads(base64.urlsafe_b64decode(RFC_TOKEN_PROOF.split(".")[0] + "=="))
    assert jwk_thumbprint(header["jwk"]) == RFC_JKT
    assert access_token_hash(RFC_ACCESS_TOKEN) == RFC_ATH


# --- accepted proofs ----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_real_proofs_verify_for_each_fapi_algorithm(alg: str) -> None:
    s = signer(alg)
    proof = verify(s.proof(jti="unique-1"), token_jkt=s.jkt)
    assert proof == DPoPProof(jkt=s.jkt, jti="unique-1", iat=NOW, alg=alg)


def test_ed448_and_allow_listed_extra_algorithms() -> None:
    policy = DPoPPolicy(algorithms=("ES384", "RS256", "EdDSA"))
    for s in (signer("ES384"), signer("RS256"), signer("EdDSA", "ed448")):
        assert verify(s.proof(), policy=policy, token_jkt=s.jkt).alg == s.alg


# --- DPOP-01/02: one header, one compact JWS ------------------------------------------------


def test_dpop01_missing_header() -> None:
    err = refused("dpop_proof_missing", Headers([("Authorization", "DPoP x")]))
    assert err.detail == "the request has no DPoP proof"
    refused("dpop_proof_missing", Headers([("DPoP", " ")]))


def test_dpop01_two_headers_or_comma_joined_values() -> None:
    p = ES.proof()
    refused("dpop_proof_invalid", Headers([("DPoP", p), ("dpop", p)]))
    err = refused("dpop_proof_invalid", f"{p}, {ES.proof(jti='other')}")
    assert "more than one value" in err.detail


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "a.b",
        "a.b.c.d.e",  # JWE compact has five parts
        "eyJhbGciOiJub25lIn0.e30.",  # unsecured JWS, empty signature
        "e30.e30.e30.e30",
        "e3@.e30.AAAA",
        "W10.e30.AAAA",  # header is a JSON array
        "bm90IGpzb24.e30.AAAA",  # header is not JSON
        "e30.e30.AAAAA",  # base64url of impossible length (1 mod 4)
    ],
)
def test_dpop02_not_one_well_formed_jws(value: str) -> None:
    assert "compact JWS" in refused("dpop_proof_invalid", value).detail


def test_dpop02_two_jwts_concatenated() -> None:
    refused("dpop_proof_invalid", ES.proof() + "." + ES.proof())


def test_dpop02_size_cap_applies_before_parsing() -> None:
    err = refused("dpop_proof_invalid", "e30." + "A" * 9000 + ".AAAA")
    assert err.detail == "the DPoP proof is too large"


def test_dpop02_duplicate_members_and_non_json_constants() -> None:
    header = json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": ES.jwk}).encode()
    claims = json.dumps(ES.claims()).encode()
    assert verify(ES.raw(header, claims)).jkt == ES.jkt
    dup_header = header[:-1] + b',"typ":"dpop+jwt"}'
    refused("dpop_proof_invalid", ES.raw(dup_header, claims))
    dup_claims = claims[:-1] + b',"htm":"POST"}'
    refused("dpop_proof_invalid", ES.raw(header, dup_claims))
    refused("dpop_proof_invalid", ES.raw(header, claims[:-1] + b',"x":NaN}'))


def test_dpop02_non_canonical_base64url_is_refused() -> None:
    proof = ES.proof()
    head, body, sig = proof.split(".")
    # 64-byte ES256 signature: the last character carries 2 data bits and 4 zero bits.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(sig[-1]) + 1]
    assert base64.urlsafe_b64decode(sig[:-1] + twin + "==") == base64.urlsafe_b64decode(sig + "==")
    refused("dpop_proof_invalid", f"{head}.{body}.{sig[:-1]}{twin}")


# --- DPOP-03..07: header, algorithm, key, signature ----------------------------------------


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_dpop03_each_required_claim(claim: str) -> None:
    err = refused("dpop_proof_invalid", ES.proof(**{claim: None}))
    assert claim in err.detail


def test_dpop03_ath_required_with_access_token_only() -> None:
    assert "ath" in refused("dpop_proof_invalid", ES.proof(ath=None)).detail
    assert verify(ES.proof(ath=None), access_token=None, token_jkt=None).jkt == ES.jkt


def test_dpop03_jti_length_is_capped() -> None:
    assert verify(ES.proof(jti="j" * 256)).jti == "j" * 256
    assert "too long" in refused("dpop_proof_invalid", ES.proof(jti="j" * 257)).detail


def test_dpop03_critical_extensions_are_not_ignored() -> None:
    """RFC 7515 §4.1.11: a ``crit`` header we do not implement invalidates the proof."""
    err = refused("dpop_proof_invalid", ES.proof(header={"crit": ["exp"], "exp": 1}))
    assert "critical" in err.detail


def test_dpop03_jwk_header_required() -> None:
    proof = jwt.encode(ES.claims(), ES.key, algorithm="ES256", headers={"typ": "dpop+jwt"})
    assert "jwk" in refused("dpop_proof_invalid", proof).detail


@pytest.mark.parametrize("typ", ["JWT", "DPOP+JWT", "application/dpop+jwt", None])
def test_dpop04_typ_must_be_dpop_jwt(typ: str | None) -> None:
    header = json.dumps({"alg": "ES256", "jwk": ES.jwk, **({"typ": typ} if typ else {})})
    proof = ES.raw(header.encode(), json.dumps(ES.claims()).encode())
    assert "typ" in refused("dpop_proof_invalid", proof).detail


def test_dpop05_hmac_none_and_unlisted_algorithms_are_refused() -> None:
    claims = json.dumps(ES.claims()).encode()
    hs = json.dumps({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}})
    hs_input = f"{b64(hs.encode())}.{b64(claims)}".encode()
    hs_sig = get_default_algorithms()["HS256"].sign(hs_input, b"secret")
    refused("dpop_proof_invalid", f"{hs_input.decode()}.{b64(hs_sig)}")
    none = json.dumps({"typ": "dpop+jwt", "alg": "none", "jwk": ES.jwk}).encode()
    refused("dpop_proof_invalid", f"{b64(none)}.{b64(claims)}.AAAA")
    err = refused("dpop_proof_invalid", signer("ES384").proof(), token_jkt=signer("ES384").jkt)
    assert err.detail == "DPoP proof alg is not accepted"


@pytest.mark.parametrize("algs", [("HS256",), ("none",), ("ES256", "HS512"), ()])
def test_dpop05_policy_never_allows_symmetric_algorithms(algs: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        DPoPPolicy(algorithms=algs)


def test_dpop06_signature_must_verify_with_embedded_jwk() -> None:
    head, body, sig = ES.proof().split(".")
    flipped = b64(bytes([base64.urlsafe_b64decode(sig + "==")[0] ^ 1]))[:2]
    tampered = f"{head}.{body}.{flipped}{sig[2:]}"
    assert "signature" in refused("dpop_proof_invalid", tampered).detail
    # Signed by one key, claiming another.
    other = signer("ES256", "other")
    forged = jwt.encode(
        ES.claims(), other.key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": ES.jwk}
    )
    assert "signature" in refused("dpop_proof_invalid", forged).detail


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
def test_dpop07_private_key_material_in_jwk(member: str) -> None:
    err = refused("dpop_proof_invalid", ES.proof(header={"jwk": {**ES.jwk, member: "AAAA"}}))
    assert "private" in err.detail


def test_dpop07_jwk_must_fit_the_algorithm() -> None:
    ps = signer("PS256")
    mixed = ES.proof(header={"jwk": ps.jwk})  # alg ES256 with an RSA key
    assert "fit" in refused("dpop_proof_invalid", mixed).detail
    p384 = signer("ES384")  # alg ES256 with a P-384 key (RFC 7518 §3.4 pairs them)
    wrong_curve = p384.raw(
        json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": p384.jwk}).encode(),
        json.dumps(p384.claims()).encode(),
        alg="ES384",
    )
    err = refused("dpop_proof_invalid", wrong_curve, token_jkt=p384.jkt)
    assert err.detail == "DPoP proof jwk does not fit its alg"
    ps = signer("PS256")
    huge_e = {**ps.jwk, "e": b64((2**32 + 1).to_bytes(5, "big"))}
    err = refused("dpop_proof_invalid", ps.proof(header={"jwk": huge_e}), token_jkt=ps.jkt)
    assert err.detail == "DPoP proof jwk is not a valid public key"
    weak = signer("PS256", "weak")  # RSA-1024, signed without PyJWT's key-length warning
    header = json.dumps({"typ": "dpop+jwt", "alg": "PS256", "jwk": weak.jwk}).encode()
    proof = weak.raw(header, json.dumps(weak.claims()).encode())
    assert "valid public key" in refused("dpop_proof_invalid", proof, token_jkt=weak.jkt).detail


# --- DPOP-08/09: method and URI --------------------------------------------------------------


def test_dpop08_htm_must_equal_method() -> None:
    assert "htm" in refused("dpop_proof_invalid", ES.proof(), method="POST").detail
    refused("dpop_proof_invalid", ES.proof(htm="get"))


def test_dpop09_forwarded_host_cannot_redirect_htu() -> None:
    """The URI is built from configuration; a forged X-Forwarded-Host changes nothing."""
    proof = ES.proof(htu="https://evil.example/v1/accounts")
    headers = Headers([("X-Forwarded-Host", "evil.example"), ("DPoP", proof)])
    refused("dpop_proof_invalid", headers, url=request_htu(BASE, "/v1/accounts"))
    assert request_htu(BASE + "/", "/v1/accounts") == URL
    for bad_base in ("api.bank.example", "ftp://x", BASE + "?q", BASE + "#f"):
        with pytest.raises(ValueError):
            request_htu(bad_base, "/v1/accounts")
    with pytest.raises(ValueError):
        request_htu(BASE, "v1/accounts")


# --- DPOP-10: server nonces --------------------------------------------------------------------

SECRET = b"k" * 32


def test_dpop10_missing_nonce_gets_a_fresh_one_and_use_dpop_nonce_challenge() -> None:
    nonces = NonceService([SECRET])
    err = refused("dpop_nonce_required", ES.proof(), nonces=nonces)
    assert err.nonce == nonces.issue(NOW)
    headers = dict(err.challenge_headers(POLICY.algorithms))
    assert headers["DPoP-Nonce"] == err.nonce
    assert headers["WWW-Authenticate"].startswith('DPoP error="use_dpop_nonce"')
    assert verify(ES.proof(nonce=err.nonce), nonces=nonces).jkt == ES.jkt


def test_dpop10_stale_and_forged_nonces() -> None:
    nonces = NonceService([SECRET], rotation_s=60)
    stale = nonces.issue(NOW - 120)
    assert "stale" in refused("dpop_nonce_required", ES.proof(nonce=stale), nonces=nonces).detail
    forged = NonceService([b"x" * 32]).issue(NOW)
    refused("dpop_nonce_required", ES.proof(nonce=forged), nonces=nonces)
    refused("dpop_nonce_required", ES.proof(nonce=12345), nonces=nonces)


# --- DPOP-11: iat window -------------------------------------------------------------------------


@pytest.mark.parametrize("iat, ok", [(NOW - 60, True), (NOW - 61, False), (NOW + 10, True)])
def test_dpop11_iat_window_edges(iat: float, ok: bool) -> None:
    if ok:
        assert verify(ES.proof(iat=iat)).iat == iat
    else:
        assert "too old" in refused("dpop_proof_invalid", ES.proof(iat=iat)).detail


def test_dpop11_iat_in_the_future_and_ten_minutes_old() -> None:
    assert "future" in refused("dpop_proof_invalid", ES.proof(iat=NOW + 11)).detail
    refused("dpop_proof_invalid", ES.proof(iat=NOW - 600))


@pytest.mark.parametrize("iat", ["1800000000", True, 10**400, [1]])
def test_dpop11_iat_must_be_a_finite_number(iat: object) -> None:
    assert "iat" in refused("dpop_proof_invalid", ES.proof(iat=iat)).detail


@pytest.mark.parametrize("kwargs", [{"max_age_s": 0}, {"max_age_s": 301}, {"max_future_s": -1}])
def test_dpop11_window_is_bounded_by_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DPoPPolicy(**kwargs)


# --- DPOP-12: ath and cnf.jkt --------------------------------------------------------------------


def test_dpop12_ath_must_hash_the_presented_token() -> None:
    err = refused("dpop_proof_invalid", ES.proof(ath=access_token_hash("other")))
    assert "ath" in err.detail
    refused("dpop_proof_invalid", ES.proof(ath="\ud800"))


def test_dpop12_proof_key_must_be_the_token_key() -> None:
    """Proof from key B with a token bound to key A → 401."""
    other = signer("ES256", "other")
    err = refused("dpop_binding_mismatch", other.proof())
    assert err.challenge_headers(["ES256"])[0][1].startswith('DPoP error="invalid_token"')


def test_dpop12_access_token_without_jkt_is_not_dpop_bound() -> None:
    refused("token_binding_missing", ES.proof(), token_jkt=None)


# --- DPOP-13: replay ---------------------------------------------------------------------------


def test_dpop13_same_proof_twice_is_replayed() -> None:
    cache_ = MemoryReplayCache(FakeClock(NOW))
    proof = ES.proof(jti="once")
    verify(proof, replay=cache_)
    err = refused("dpop_proof_replayed", proof, replay=cache_)
    assert err.detail == "this DPoP proof was already used"


def test_dpop13_replicas_sharing_the_cache_see_the_replay() -> None:
    shared = MemoryReplayCache(FakeClock(NOW))
    proof = ES.proof(jti="shared")
    verify(proof, replay=shared, policy=DPoPPolicy())
    refused("dpop_proof_replayed", proof, replay=shared, policy=DPoPPolicy())


def test_dpop13_refused_proof_does_not_spend_its_jti_and_jti_is_per_key() -> None:
    cache_ = MemoryReplayCache(FakeClock(NOW))
    proof = ES.proof(jti="j")
    refused("dpop_proof_invalid", proof, method="POST", replay=cache_)
    verify(proof, replay=cache_)
    other = signer("ES256", "other")
    verify(other.proof(jti="j"), replay=cache_, token_jkt=other.jkt)


# --- DPOP-14/15: scheme downgrade and challenges --------------------------------------------------


@pytest.mark.parametrize(
    "scheme, cnf, required",
    [
        ("Bearer", {"jkt": RFC_JKT}, False),  # DPoP-bound token sent as Bearer (§7.2)
        ("DPoP", None, False),  # unbound token with the DPoP scheme
        ("DPoP", {"x5t#S256": "x"}, False),
        ("Bearer", None, True),  # binding required, token unbound
        ("bearer", {}, True),
    ],
)
def test_dpop14_binding_downgrades(scheme: str, cnf: dict[str, str] | None, required: bool) -> None:
    with pytest.raises(DPoPError) as info:
        check_token_scheme(scheme, cnf, binding_required=required)
    assert info.value.reason == "token_binding_missing"


@pytest.mark.parametrize(
    "scheme, cnf, required",
    [
        ("DPoP", {"jkt": RFC_JKT}, True),
        ("Bearer", {"x5t#S256": "x"}, True),
        ("Bearer", None, False),
    ],
)
def test_dpop14_proper_schemes_pass(
    scheme: str, cnf: dict[str, str] | None, required: bool
) -> None:
    check_token_scheme(scheme, cnf, binding_required=required)


def test_dpop15_challenge_lists_error_and_accepted_algs() -> None:
    err = refused("dpop_proof_invalid", "garbage")
    assert err.challenge_headers(POLICY.algorithms) == (
        (
            "WWW-Authenticate",
            'DPoP error="invalid_dpop_proof", '
            'error_description="the DPoP proof is not a compact JWS", algs="PS256 ES256 EdDSA"',
        ),
    )
