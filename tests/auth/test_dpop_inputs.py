"""DPoP inputs: equivalent and hostile ``htu`` forms (DPOP-09), and properties: anything but
a valid proof is a DPoPError (RFC 9449 §4.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from finward.auth.dpop import DPoPError
from finward.auth.htu import normalize_htu

from .dpop_client import BASE, ES, URL, refused, verify

_PROOF = ES.proof(jti="hypothesis")
_HEADER_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0xFF)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(_HEADER_CHARS, max_size=400))
def test_random_header_values_only_raise_dpop_error(value: str) -> None:
    with pytest.raises(DPoPError):
        verify(value)


@FUZZ
@given(st.integers(0, len(_PROOF) - 1), st.text(_HEADER_CHARS, min_size=0, max_size=3))
def test_mutated_proofs_only_raise_dpop_error(position: int, replacement: str) -> None:
    mutated = _PROOF[:position] + replacement + _PROOF[position + 1 :]
    assume(mutated != _PROOF)
    with pytest.raises(DPoPError):
        verify(mutated)


@FUZZ
@given(st.dictionaries(st.sampled_from(["typ", "alg", "jwk", "crit", "x"]), _JSON), _JSON)
def test_signed_random_json_only_raises_dpop_error(header: dict[str, Any], claims: Any) -> None:
    raw = ES.raw(json.dumps(header).encode(), json.dumps(claims).encode(), alg="ES256")
    with pytest.raises(DPoPError):
        verify(raw)


@FUZZ
@given(st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), _JSON))
def test_valid_header_random_claims_never_crash(claims: dict[str, Any]) -> None:
    header = json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": ES.jwk}).encode()
    try:
        verify(ES.raw(header, json.dumps(claims).encode()))
    except DPoPError:
        pass


# --- DPOP-09: htu through the verifier -------------------------------------------------------


@pytest.mark.parametrize(
    "htu",
    [
        URL,
        URL + "?page=2#frag",  # query and fragment are ignored
        "HTTPS://API.Bank.Example/v1/accounts",  # scheme and host case
        "https://api.bank.example:443/v1/accounts",  # default port
        "https://api.bank.example:/v1/accounts",  # empty port
        "https://api.bank.example/v1/%61ccounts",  # encoded unreserved character
        "https://api.bank.example/v1/x/../accounts",  # dot segments
    ],
)
def test_dpop09_htu_equivalent_forms_are_accepted(htu: str) -> None:
    assert verify(ES.proof(htu=htu)).jkt == ES.jkt


@pytest.mark.parametrize(
    "htu",
    [
        URL + "/1",  # /accounts proof used on /accounts/1 (and vice versa below)
        BASE + "/v1",
        "http://api.bank.example/v1/accounts",  # scheme
        "https://api.bank.example:8443/v1/accounts",  # port
        "https://API.bank.example/V1/accounts",  # path case matters
        "https://user@api.bank.example/v1/accounts",  # userinfo
        "https://evil.example/v1/accounts",
        "/v1/accounts",  # relative
        "https://api.bank.example/v1/accounts%zz",
        "https://api.bank.example/v1/accounts\u00e9",
    ],
)
def test_dpop09_htu_mismatch(htu: str) -> None:
    assert "htu" in refused("dpop_proof_invalid", ES.proof(htu=htu)).detail


# --- htu normalisation (RFC 3986 §6.2.2-6.2.3, RFC 9449 §4.3 (9)) ----------------------------


@pytest.mark.parametrize(
    "uri, normal",
    [
        (
            "HTTPS://Server.Example.COM:443/a/./b/../token?x=1#f",
            "https://server.example.com/a/token",
        ),
        ("http://h.test:80", "http://h.test/"),
        ("http://h.test?q", "http://h.test/"),
        ("https://h.test:8443/x", "https://h.test:8443/x"),
        ("https://h.test:08443/x", "https://h.test:8443/x"),
        ("https://h.test/%7euser/%2f", "https://h.test/~user/%2F"),
        ("https://h.test/a/b/..", "https://h.test/a/"),
        ("https://h.test/..", "https://h.test/"),
        ("https://h.test/a//b", "https://h.test/a//b"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("https://[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
    ],
)
def test_htu_normal_form(uri: str, normal: str) -> None:
    assert normalize_htu(uri) == normal


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "/relative",
        "ftp://h.test/x",
        "https://",
        "https://:443/x",
        "https://u:p@h.test/x",
        "https://h.test:99999/x",
        "https://h.test:8a/x",
        "https://[::1/x",
        "https://[::1]x/x",
        "https://h%2etest/x",
        "https://h.test/%zz",
        "https://h.test/%4",
        "https://h.test/ x",
        "https://h.test/\\x",
        "https://h.test/" + "a" * 5000,
    ],
)
def test_htu_unusable(uri: str) -> None:
    assert normalize_htu(uri) is None


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"\Ahttps?://[a-z.:\[\]0-9]{0,12}/[a-z/.%0-9]{0,20}\Z"))
def test_htu_normalisation_is_total_and_idempotent(uri: str) -> None:
    normal = normalize_htu(uri)
    if normal is not None:
        assert normalize_htu(normal) == normal
