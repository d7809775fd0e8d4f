"""Property-based tests: for any input the verifier raises TokenError or verifies a genuine token.

Mutations work on the token text, segment by segment (flip, truncate, insert, delete a
character). Because base64url decoding is canonical, a mutated token can never verify: the
only string that verifies is the one the AS signed.
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from finward.auth.tokens import TokenError, verify_access_token
from tests.auth.jwt_factory import NOW, claims, issuer_keys, policy, sign, sign_raw

KEYS = issuer_keys()
POLICY = policy()
GENUINE = {alg: sign(alg=alg) for alg in ("PS256", "ES256", "EdDSA")}
B64URL = string.ascii_letters + string.digits + "-_"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(token: str) -> str:
    """'ok' or the reason code; any other exception fails the test."""
    try:
        verify_access_token(token, KEYS, POLICY, NOW)
    except TokenError as error:
        return error.reason
    return "ok"


@SETTINGS
@given(st.text(max_size=400))
@example("")
@example("..")
@example("a.b.c")
def test_random_text_is_refused_with_token_error(text: str) -> None:
    assert outcome(text) != "ok"


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_as_latin1_are_refused(raw: bytes) -> None:
    assert outcome(raw.decode("latin-1")) != "ok"


@SETTINGS
@given(st.lists(st.text(alphabet=B64URL, max_size=120), min_size=1, max_size=6))
def test_random_base64url_segments_are_refused(segments: list[str]) -> None:
    assert outcome(".".join(segments)) != "ok"


def _mutate(token: str, data: st.DataObject) -> str:
    segments = token.split(".")
    index = data.draw(st.integers(0, 2), label="segment")
    segment = segments[index]
    position = data.draw(st.integers(0, max(len(segment) - 1, 0)), label="position")
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete", "dot"]))
    char = data.draw(st.sampled_from(B64URL + "=.+/ \x00é"), label="char")
    if kind == "flip":
        segment = segment[:position] + char + segment[position + 1 :]
    elif kind == "truncate":
        segment = segment[:position]
    elif kind == "insert":
        segment = segment[:position] + char + segment[position:]
    elif kind == "delete":
        segment = segment[:position] + segment[position + 1 :]
    else:
        segment = segment[:position] + "." + segment[position:]
    segments[index] = segment
    return ".".join(segments)


@SETTINGS
@given(st.sampled_from(sorted(GENUINE)), st.data())
def test_mutated_tokens_verify_only_when_unmodified(alg: str, data: st.DataObject) -> None:
    original = GENUINE[alg]
    mutated = _mutate(original, data)
    result = outcome(mutated)
    assert (result == "ok") == (mutated == original), result


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
CLAIM_NAMES = ["iss", "aud", "sub", "client_id", "iat", "exp", "nbf", "jti", "scope", "scp", "cnf"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(CLAIM_NAMES), json_values, max_size=4))
def test_genuinely_signed_tokens_with_random_claim_values_never_crash(
    overrides: dict[str, Any],
) -> None:
    """The AS signed it, but the claim values are junk: TokenError or a sane result."""
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1"}
    token = sign_raw(header, claims(**overrides))  # PyJWT would refuse a non-string iss
    try:
        verified = verify_access_token(token, KEYS, POLICY, NOW)
    except TokenError:
        return
    assert verified.issuer == POLICY.issuer and verified.exp > NOW


@SETTINGS
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_random_headers_never_crash(extra: dict[str, Any]) -> None:
    header = {"alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1", **extra}
    token = sign_raw(json.dumps(header).encode(), claims(), alg="EdDSA")
    result = outcome(token)
    assert result in {
        "ok",
        "token_malformed",
        "token_algorithm_not_allowed",
        "token_type_invalid",
        "token_key_unknown",
        "token_signature_invalid",
    }
    if result == "ok":
        assert header["alg"] == "EdDSA" and str(header["typ"]).lower() == "at+jwt"
