"""Access-token verification: one test (at least) per reason code, named by requirement ID."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from finward.auth import tokens
from finward.auth.jwk import KeySet, b64url_decode, parse_jwks
from finward.auth.tokens import (
    MAX_TOKEN_BYTES,
    TYP_ABSENT,
    IssuerPolicy,
    TokenError,
    verify_access_token,
)
from tests.auth.jwt_factory import (
    AUDIENCE,
    ISSUER,
    NOW,
    b64,
    claims,
    ec_key,
    ed_key,
    issuer_keys,
    load_vectors,
    policy,
    public_jwk,
    rsa_key,
    sign,
    sign_raw,
)

FAPI_ALGS = ["PS256", "ES256", "EdDSA"]


def refused(token: str, reason: str, *, keys: KeySet | None = None, **policy_fields: Any) -> str:
    with pytest.raises(TokenError) as caught:
        verify_access_token(token, keys or issuer_keys(), policy(**policy_fields), NOW)
    assert caught.value.reason == reason, caught.value.detail
    assert caught.value.status == 401
    return caught.value.detail


def accepted(
    token: str, *, keys: KeySet | None = None, **policy_fields: Any
) -> tokens.VerifiedToken:
    return verify_access_token(token, keys or issuer_keys(), policy(**policy_fields), NOW)


# --- the happy path -------------------------------------------------------------------


@pytest.mark.parametrize("alg", FAPI_ALGS)
def test_fapi09_atjwt05_fapi_algorithms_verify(alg: str) -> None:
    token = sign(claims(cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}), alg)
    verified = accepted(token)
    assert verified.alg == alg
    assert verified.issuer == ISSUER
    assert (verified.sub, verified.client_id) == ("psu-4711", "tpp-client-1")
    assert verified.jti == "b7f1c2d4-0c1e-4f7e-9a55-6a3f0a3c1d10"
    assert verified.scopes == frozenset({"accounts", "payments"})
    assert verified.exp == NOW + 300 and verified.iat == NOW - 5
    assert verified.cnf is not None and str(verified.cnf["jkt"]).startswith("0ZcO")
    assert verified.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert verified.kid is not None and verified.token_type == "at+jwt"


def test_verified_token_is_read_only_and_repr_hides_token_and_subject() -> None:
    token = sign(claims(authorization_details=[{"type": "accounts", "ids": ["DE02"]}]))
    verified = accepted(token)
    with pytest.raises(TypeError):
        verified.claims["iss"] = "https://evil.example"  # type: ignore[index]
    details = verified.claims["authorization_details"]
    assert isinstance(details, tuple)  # arrays frozen too: cached claims are shared
    with pytest.raises(TypeError):
        details[0]["type"] = "payments"
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.sub = "someone-else"  # type: ignore[misc]
    assert token not in repr(verified) and "psu-4711" not in repr(verified)


def test_scopes_from_scp_array_and_application_at_jwt_typ() -> None:
    token = sign(claims(scope=None, scp=["accounts", "funds"]), typ="application/at+jwt")
    assert accepted(token).scopes == frozenset({"accounts", "funds"})
    assert accepted(sign(typ="AT+JWT")).token_type == "AT+JWT"  # RFC 7515 §4.1.9


def test_atjwt04_audience_list_containing_ours_is_accepted() -> None:
    assert accepted(sign(claims(aud=["https://other.example", AUDIENCE])))


def test_token_without_kid_is_tried_against_compatible_keys() -> None:
    assert accepted(sign(alg="EdDSA", kid=None)).kid is None


@pytest.mark.parametrize(("alg", "curve"), [("ES384", "P-384"), ("ES512", "P-521")])
def test_larger_ec_curves_verify_when_the_policy_allows_them(alg: str, curve: str) -> None:
    keys = parse_jwks({"keys": [public_jwk(ec_key(curve), kid="ec-big")]})
    token = sign(alg=alg, kid="ec-big")
    assert accepted(token, keys=keys, algorithms=frozenset({alg})).alg == alg
    refused(token, "token_algorithm_not_allowed", keys=keys)  # not in the FAPI default


# --- token_too_large / token_malformed ------------------------------------------------


def test_oversized_token_is_refused_before_any_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed an oversized token")

    monkeypatch.setattr(tokens, "b64url_decode", must_not_run)
    monkeypatch.setattr(json, "loads", must_not_run)
    refused("!" * (MAX_TOKEN_BYTES + 1), "token_too_large")  # garbage, yet too_large first


def test_token_of_exactly_the_limit_is_accepted_one_more_byte_is_not() -> None:
    at_limit = next(
        token
        for size in range(5700, 5900)
        if len(token := sign(claims(pad="x" * size), "EdDSA")) == MAX_TOKEN_BYTES
    )
    assert accepted(at_limit)
    refused(at_limit + "A", "token_too_large")


@pytest.mark.parametrize(
    "case", load_vectors("malformed_tokens.json")["cases"], ids=lambda c: c["why"]
)
def test_malformed_vectors(case: dict[str, str]) -> None:
    refused(case["token"], "token_malformed")


def _ed_header(**extra: Any) -> dict[str, Any]:
    return {"alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1", **extra}


@pytest.mark.parametrize(
    ("header", "payload"),
    [
        pytest.param(_ed_header(crit=["b64"], b64=False), claims(), id="crit-rfc7515-4.1.11"),
        pytest.param(_ed_header(cty="JWT"), claims(), id="nested-jwt-JWTBCP-03"),
        pytest.param(_ed_header(zip="DEF"), claims(), id="zip-is-jwe-only"),
        pytest.param(_ed_header(kid=7), claims(), id="kid-not-string"),
        pytest.param(_ed_header(typ=["at+jwt"]), claims(), id="typ-not-string"),
        pytest.param(_ed_header(), claims(exp="2030-01-01"), id="exp-not-numericdate"),
        pytest.param(_ed_header(), claims(exp=True), id="exp-boolean"),
        pytest.param(_ed_header(), claims(exp=10**30), id="exp-out-of-range"),
        pytest.param(_ed_header(), claims(aud=[AUDIENCE, 7]), id="aud-array-with-number"),
        pytest.param(_ed_header(), claims(aud={"x": AUDIENCE}), id="aud-object"),
        pytest.param(_ed_header(), claims(sub=12), id="sub-not-string"),
        pytest.param(_ed_header(), claims(scope=["accounts"]), id="scope-not-string"),
        pytest.param(_ed_header(), claims(scope=None, scp=[1]), id="scp-not-strings"),
        pytest.param(_ed_header(), claims(cnf="jkt"), id="cnf-not-object"),
    ],
)
def test_wrong_json_types_are_malformed(header: dict[str, Any], payload: dict[str, Any]) -> None:
    refused(sign_raw(header, payload), "token_malformed")


def _claims_json(**raw: str) -> bytes:
    """Valid claims JSON with some values spliced in as raw JSON text."""
    text = json.dumps(claims(**dict.fromkeys(raw, 0)))
    for name, value in raw.items():
        text = text.replace(f'"{name}": 0', f'"{name}": {value}')
    return text.encode()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"iss":"a","iss":"b"}', id="duplicate-member-names"),
        pytest.param(_claims_json(iss='"a", "iss": "b"'), id="duplicate-claim-in-full-token"),
        pytest.param(b'{"exp":NaN}', id="nan"),
        pytest.param(_claims_json(exp="1e999"), id="exp-1e999-is-infinity"),
        pytest.param(_claims_json(exp="-Infinity"), id="exp-infinity-literal"),
        pytest.param(b'{"sub":"\\ud800"}', id="lone-surrogate"),
        pytest.param('{"sub":"é"}'.encode("utf-16"), id="utf16-JWTBCP-06"),
        pytest.param(b'{"sub":"\xe9"}', id="latin1-not-utf8-JWTBCP-06"),
        pytest.param(b'{"a":' * 40 + b"1" + b"}" * 40, id="deep-nesting"),
        pytest.param(b"[" * 2500 + b"]" * 2500, id="recursion-bomb"),
    ],
)
def test_jwtbcp06_payload_must_be_strict_utf8_json(payload: bytes) -> None:
    refused(sign_raw(_ed_header(), payload), "token_malformed")


# --- token_signature_invalid ----------------------------------------------------------


@pytest.mark.parametrize("alg", FAPI_ALGS)
def test_fapi06_flipped_signature_byte_is_refused(alg: str) -> None:
    header, payload, signature = sign(alg=alg).split(".")
    raw = bytearray(b64url_decode(signature))
    raw[0] ^= 0x01
    refused(f"{header}.{payload}.{b64(bytes(raw))}", "token_signature_invalid")


def test_fapi06_swapped_payload_is_refused() -> None:
    header, _, signature = sign(claims(scope="accounts")).split(".")
    _, forged_payload, _ = sign(claims(scope="accounts payments admin")).split(".")
    refused(f"{header}.{forged_payload}.{signature}", "token_signature_invalid")


def test_token_signed_by_another_key_with_a_known_kid_is_refused() -> None:
    refused(sign(alg="ES256", key=ec_key(index=1)), "token_signature_invalid")


# --- token_algorithm_not_allowed (FAPI-09, JWTBCP-01/02) ------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_fapi09_jwtbcp02_alg_none_is_refused(alg: str) -> None:
    token = sign_raw({"alg": alg, "typ": "at+jwt", "kid": "rsa-1"}, claims())
    refused(token, "token_algorithm_not_allowed")


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(
            rsa_key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
            id="pem",
        ),
        pytest.param(
            rsa_key().public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
            id="der",
        ),
        pytest.param(public_jwk(rsa_key())["n"].encode(), id="jwk-n"),
    ],
)
def test_fapi09_jwtbcp01_hs256_with_rsa_public_key_as_secret_is_refused(secret: bytes) -> None:
    token = sign_raw(
        {"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"}, claims(), hmac_secret=secret
    )
    refused(token, "token_algorithm_not_allowed")


def test_fapi09_rs256_is_not_allowed_by_default_but_configurable() -> None:
    token = sign(alg="RS256", kid="rsa-1")
    refused(token, "token_algorithm_not_allowed")
    assert accepted(token, algorithms=frozenset({"RS256"})).alg == "RS256"


@pytest.mark.parametrize("algs", [{"none"}, {"HS256"}, {"PS256", "HS512"}, set()])
def test_fapi09_policy_cannot_be_configured_with_none_or_hmac(algs: set[str]) -> None:
    with pytest.raises(ValueError):
        policy(algorithms=frozenset(algs))


# --- token_key_unknown (FAPI-10, FAPI-12, JWTBCP-09) ----------------------------------


def test_unknown_kid_is_key_unknown_so_the_caller_can_refetch() -> None:
    refused(sign(alg="ES256", kid="rotated-in-tomorrow", key=ec_key()), "token_key_unknown")


@pytest.mark.parametrize("kid", ["../../etc/passwd", "' OR 1=1 --", "%s%n{0}", "\x00", ""])
def test_jwtbcp09_kid_is_an_opaque_string_never_echoed(kid: str) -> None:
    detail = refused(sign(alg="ES256", kid=kid), "token_key_unknown")
    assert kid not in detail or kid == ""


def test_fapi12_alg_key_type_mismatch_never_reaches_a_verifier() -> None:
    """ES256 header naming the RSA key's kid: no key for (kid, alg), so no confusion."""
    token = sign(alg="ES256", kid="rsa-1")
    refused(token, "token_key_unknown", algorithms=frozenset({"PS256", "ES256"}))


def test_fapi10_token_signed_by_1024_bit_rsa_key_is_refused() -> None:
    weak = rsa_key(1024)
    keys = parse_jwks({"keys": [public_jwk(weak, kid="weak")]})
    assert [s.reason for s in keys.skipped] == ["weak_key"]
    token = sign_raw({"alg": "PS256", "typ": "at+jwt", "kid": "weak"}, claims(), key=weak)
    refused(token, "token_key_unknown", keys=keys)


@pytest.mark.parametrize("param", ["jwk", "jku", "x5u", "x5c"])
@pytest.mark.parametrize("kid", ["ec-1", None])
def test_fapi12_jwtbcp09_embedded_key_headers_are_ignored(
    param: str, kid: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker signs with their own key and points the header at it: never used."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the verifier opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    attacker = ec_key(index=7)
    values = {
        "jwk": public_jwk(attacker),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": [b64(b"not a certificate")],
    }
    token = sign(alg="ES256", key=attacker, kid=kid, headers={param: values[param]})
    refused(token, "token_signature_invalid")
    # ...and the same header on a genuine token neither helps nor hurts.
    assert accepted(sign(alg="ES256", kid=kid, headers={param: values[param]}))


# --- time: token_expired / token_not_yet_valid / token_issued_in_future (FAPI-13) -----


@pytest.mark.parametrize(("exp_offset", "ok"), [(1, True), (0, False), (-1, False)])
def test_atjwt06_exp_boundary(exp_offset: int, ok: bool) -> None:
    token = sign(claims(exp=int(NOW) + exp_offset))
    if ok:
        assert accepted(token)
    else:
        refused(token, "token_expired")


def test_leeway_extends_exp_within_its_bound() -> None:
    token = sign(claims(exp=int(NOW) - 20))
    refused(token, "token_expired")
    assert accepted(token, leeway_s=30)
    with pytest.raises(ValueError):
        policy(leeway_s=61)


@pytest.mark.parametrize(("offset", "ok"), [(9, True), (10, True), (11, False), (61, False)])
def test_fapi13_iat_in_the_future_boundaries(offset: int, ok: bool) -> None:
    token = sign(claims(iat=int(NOW) + offset))
    if ok:
        assert accepted(token)
    else:
        refused(token, "token_issued_in_future")


def test_fapi13_max_future_is_capped_at_60_seconds() -> None:
    assert accepted(sign(claims(iat=int(NOW) + 60)), max_future_s=60)
    refused(sign(claims(iat=int(NOW) + 61)), "token_issued_in_future", max_future_s=60)
    with pytest.raises(ValueError):
        policy(max_future_s=61)


@pytest.mark.parametrize(("offset", "ok"), [(-100, True), (9, True), (11, False), (61, False)])
def test_fapi13_nbf_boundaries(offset: int, ok: bool) -> None:
    token = sign(claims(nbf=int(NOW) + offset))
    if ok:
        assert accepted(token)
    else:
        refused(token, "token_not_yet_valid")


# --- iss / aud / typ / required claims (ATJWT-01..04, JWTBCP-07/08/10) ----------------


@pytest.mark.parametrize("iss", [ISSUER + "/", ISSUER.upper(), "https://evil.example", ""])
def test_atjwt03_jwtbcp07_issuer_must_match_exactly(iss: str) -> None:
    expected = "token_claims_missing" if iss == "" else "token_issuer_invalid"
    refused(sign(claims(iss=iss)), expected)


@pytest.mark.parametrize("aud", ["https://other-rs.example", [], ["https://a", "https://b"]])
def test_atjwt04_jwtbcp08_audience_must_name_us(aud: object) -> None:
    refused(sign(claims(aud=aud)), "token_audience_invalid")


@pytest.mark.parametrize("typ", ["JWT", "jwt", "dpop+jwt", "at+jwt+x", None])
def test_atjwt01_typ_must_be_at_jwt(typ: str | None) -> None:
    refused(sign(typ=typ), "token_type_invalid")


def test_atjwt01_missing_typ_only_for_a_legacy_policy() -> None:
    token = sign(typ=None)
    refused(token, "token_type_invalid")
    assert accepted(token, token_types=frozenset({"at+jwt", TYP_ABSENT}))


def test_jwtbcp10_rfc9449_dpop_proof_is_not_an_access_token() -> None:
    """The published RFC 9449 proof verifies with its key, yet never passes as a token."""
    vector = load_vectors("rfc_vectors.json")["rfc9449_dpop"]
    keys = parse_jwks({"keys": [vector["jwk"]]})
    refused(vector["proof"], "token_type_invalid", keys=keys)
    # A policy that wrongly accepts the type gets past the real signature, to the claims:
    refused(vector["proof"], "token_claims_missing", keys=keys, token_types={"dpop+jwt"})
    header, payload, signature = vector["proof"].split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'Ag'}"
    refused(tampered, "token_signature_invalid", keys=keys, token_types={"dpop+jwt"})


@pytest.mark.parametrize("claim", sorted(tokens.RFC9068_REQUIRED_CLAIMS))
def test_atjwt02_each_required_claim_is_required(claim: str) -> None:
    detail = refused(sign(claims(**{claim: None})), "token_claims_missing")
    assert claim in detail


def test_atjwt02_empty_jti_counts_as_missing() -> None:
    refused(sign(claims(jti="")), "token_claims_missing")


def test_legacy_policy_may_drop_optional_claims_but_never_iss_aud_exp() -> None:
    relaxed = frozenset({"iss", "aud", "exp"})
    verified = accepted(sign(claims(jti=None, client_id=None, sub=None)), required_claims=relaxed)
    assert (verified.jti, verified.client_id, verified.sub) == (None, None, None)
    for claim in ("iss", "aud", "exp"):
        with pytest.raises(ValueError):
            policy(required_claims=relaxed - {claim})


# --- policy and error plumbing --------------------------------------------------------


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        IssuerPolicy(issuer="", audiences=frozenset({AUDIENCE}))
    with pytest.raises(ValueError):
        IssuerPolicy(issuer=ISSUER, audiences=frozenset())
    with pytest.raises(ValueError):
        policy(token_types=frozenset())
    assert policy(token_types={"AT+JWT"}).token_types == frozenset({"at+jwt"})


def test_token_error_challenge_and_decision() -> None:
    expired = TokenError("token_expired", "the token has expired")
    assert expired.challenge() == 'Bearer error="invalid_token"'
    assert expired.challenge("DPoP", ["ES256", "PS256"]) == (
        'DPoP algs="ES256 PS256", error="invalid_token"'
    )
    assert TokenError("token_missing", "none").challenge() == "Bearer"
    assert TokenError("token_in_query", "q").oauth_error == "invalid_request"
    decision = expired.to_decision()
    assert (decision.allowed, decision.status, decision.reason) == (False, 401, "token_expired")
    assert decision.headers == (("WWW-Authenticate", 'Bearer error="invalid_token"'),)
    with pytest.raises(KeyError):
        TokenError("token_is_bad", "uncatalogued")


def test_ed25519_key_verifies_fully_specified_alg_name() -> None:
    keys = parse_jwks({"keys": [public_jwk(ed_key(), kid="ed-1")]})
    header = {"alg": "Ed25519", "typ": "at+jwt", "kid": "ed-1"}
    token = sign_raw(header, claims(), alg="EdDSA", key=ed_key())  # RFC 9864 name
    assert accepted(token, keys=keys, algorithms=frozenset({"Ed25519"})).alg == "Ed25519"


def test_check_claims_accepts_plain_json_for_introspection_results() -> None:
    """RFC 7662 §2.2 (INTRO-03): the same claim checks apply to an introspection response."""
    tokens.check_claims(claims(aud=["x", AUDIENCE]), policy(), NOW)
    with pytest.raises(TokenError, match="token_expired"):
        tokens.check_claims(claims(exp=int(NOW) - 1), policy(), NOW)


@pytest.mark.parametrize("claim", ["client_id", "sub", "jti", "scope"])
def test_introspection_claims_must_be_strings(claim: str) -> None:
    """INTRO-03: a non-string client_id would skip suspension and the TPP mapping."""
    from finward.auth.tokens import verified_from_introspection

    claims = {"active": True, "client_id": "c", "sub": "s", "jti": "j", "scope": "a", claim: 7}
    with pytest.raises(TokenError) as caught:
        verified_from_introspection(claims, "https://as", "h" * 64)
    assert caught.value.reason == "token_malformed"
    ok = verified_from_introspection({"active": True, "client_id": "c"}, "https://as", "h")
    assert ok.client_id == "c" and ok.exp == float("inf")
