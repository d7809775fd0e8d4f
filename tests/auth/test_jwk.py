"""JWKS parsing (RFC 7517, FAPI 2.0 §5.4) and RFC 7638 thumbprints."""

from __future__ import annotations

import ast
import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from finward.auth.jwk import (
    MAX_JWKS_BYTES,
    MAX_JWKS_KEYS,
    JwksError,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    parse_jwks,
    parse_jwks_json,
)
from tests.auth.jwt_factory import (
    b64,
    ec_key,
    ed_key,
    load_vectors,
    private_jwk,
    public_jwk,
    rsa_key,
    sign,
)
from tests.core.test_sans_io import FORBIDDEN

VECTORS = load_vectors("rfc_vectors.json")


def skipped_reasons(*jwks: dict[str, Any]) -> list[str]:
    return [s.reason for s in parse_jwks({"keys": list(jwks)}).skipped]


# --- RFC 7638 thumbprints -------------------------------------------------------------


def test_rfc7638_section_3_1_example_thumbprint() -> None:
    vector = VECTORS["rfc7638_rsa"]
    assert jwk_thumbprint(vector["jwk"]) == vector["thumbprint"]


def test_rfc9449_example_jkt() -> None:
    vector = VECTORS["rfc9449_dpop"]
    assert jwk_thumbprint(vector["jwk"]) == vector["jkt"]


def test_thumbprint_ignores_optional_members_and_private_half() -> None:
    key = ec_key()
    public = public_jwk(key)
    decorated = {**public, "kid": "k", "use": "sig", "alg": "ES256", "x5c": ["..."]}
    assert jwk_thumbprint(decorated) == jwk_thumbprint(public) == jwk_thumbprint(private_jwk(key))


@pytest.mark.parametrize(
    "jwk",
    [
        {},
        {"kty": "XYZ"},
        {"kty": "EC", "crv": "P-256", "x": "AA"},
        {"kty": "RSA", "n": 1, "e": "AQAB"},
    ],
)
def test_thumbprint_of_unusable_jwk_raises_value_error(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        jwk_thumbprint(jwk)


# --- accepted key types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("private", "kty", "crv", "algs"),
    [
        (rsa_key(), "RSA", None, {"PS256", "PS384", "PS512", "RS256", "RS384", "RS512"}),
        (ec_key("P-256"), "EC", "P-256", {"ES256"}),
        (ec_key("P-384"), "EC", "P-384", {"ES384"}),
        (ec_key("P-521"), "EC", "P-521", {"ES512"}),
        (ed_key(), "OKP", "Ed25519", {"EdDSA", "Ed25519"}),
    ],
)
def test_supported_keys_are_parsed(private: Any, kty: str, crv: str | None, algs: set[str]) -> None:
    keys = parse_jwks({"keys": [public_jwk(private, kid="k1", use="sig")]})
    assert keys.skipped == () and len(keys) == 1
    key = keys.keys[0]
    assert (key.kid, key.kty, key.crv, key.algorithms) == ("k1", kty, crv, frozenset(algs))
    assert key.thumbprint == jwk_thumbprint(public_jwk(private))


def test_jwk_alg_pins_the_key_to_one_algorithm() -> None:
    keys = parse_jwks({"keys": [public_jwk(rsa_key(), kid="r", alg="PS256")]})
    assert keys.candidates("r", "PS256") and not keys.candidates("r", "RS256")


# --- skipped keys -----------------------------------------------------------------------


def test_fapi10_rsa_keys_under_2048_bits_are_skipped() -> None:
    assert skipped_reasons(public_jwk(rsa_key(1024), kid="weak")) == ["weak_key"]


@pytest.mark.parametrize("private", [rsa_key(), ec_key(), ed_key()], ids=["rsa", "ec", "ed25519"])
def test_private_jwks_are_never_used(private: Any) -> None:
    """A JWKS that leaks `d` is a misconfigured AS: the key is skipped, not trusted."""
    assert skipped_reasons(private_jwk(private, kid="leaked")) == ["private_key"]


def test_symmetric_oct_keys_are_never_used() -> None:
    assert skipped_reasons({"kty": "oct", "k": b64(b"s" * 32), "kid": "hmac"}) == ["private_key"]


@pytest.mark.parametrize(
    "extra",
    [{"use": "enc"}, {"key_ops": ["encrypt"]}, {"key_ops": "verify"}],
    ids=["use-enc", "key-ops-encrypt", "key-ops-not-list"],
)
def test_non_signature_keys_are_skipped(extra: dict[str, Any]) -> None:
    assert skipped_reasons(public_jwk(rsa_key(), **extra)) == ["not_for_signing"]


def _raw_public(key: Any) -> bytes:
    return bytes(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}, id="secp256k1"),
        pytest.param(
            {"kty": "OKP", "crv": "Ed448", "x": b64(_raw_public(ed448.Ed448PrivateKey.generate()))},
            id="ed448",
        ),
        pytest.param(
            {
                "kty": "OKP",
                "crv": "X25519",
                "x": b64(_raw_public(x25519.X25519PrivateKey.generate())),
            },
            id="x25519",
        ),
        pytest.param({"kty": "DSA"}, id="unknown-kty"),
        pytest.param({"n": "AA"}, id="no-kty"),
        pytest.param({**public_jwk(rsa_key()), "alg": "RSA-OAEP"}, id="rsa-encryption-alg"),
        pytest.param({**public_jwk(ec_key()), "alg": "ES384"}, id="alg-for-another-curve"),
        pytest.param({**public_jwk(rsa_key()), "alg": "HS256"}, id="rsa-key-pinned-to-hmac"),
    ],
)
def test_unsupported_keys_are_skipped(jwk: dict[str, Any]) -> None:
    assert skipped_reasons(jwk) == ["unsupported"]


def _off_curve_point() -> dict[str, Any]:
    jwk = public_jwk(ec_key())
    y = int.from_bytes(b64url_decode(jwk["y"]), "big")
    return {**jwk, "y": b64((y ^ 1).to_bytes(32, "big"))}


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param("not an object", id="not-object"),
        pytest.param({**public_jwk(ec_key()), "kid": 7}, id="kid-not-string"),
        pytest.param({**public_jwk(ec_key()), "alg": ["ES256"]}, id="alg-not-string"),
        pytest.param(_off_curve_point(), id="JWTBCP-04-point-not-on-curve"),
        pytest.param({**public_jwk(ec_key()), "x": "AA"}, id="short-coordinate"),
        pytest.param({**public_jwk(ec_key()), "x": public_jwk(ec_key())["x"] + "="}, id="padded"),
        pytest.param({**public_jwk(rsa_key()), "n": None}, id="rsa-no-n"),
        pytest.param({**public_jwk(rsa_key()), "e": "AA=="}, id="rsa-bad-e"),
        pytest.param({**public_jwk(rsa_key()), "e": "AQ"}, id="rsa-e-1"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x01" * 31)}, id="ed25519-short"),
    ],
)
def test_malformed_keys_are_skipped(jwk: Any) -> None:
    assert skipped_reasons(jwk) == ["malformed"]


def test_skipped_keys_do_not_stop_good_ones_and_report_index_and_kid() -> None:
    keys = parse_jwks(
        {"keys": [public_jwk(rsa_key(1024), kid="old"), public_jwk(ec_key(), kid="new")]}
    )
    assert [k.kid for k in keys.keys] == ["new"]
    assert [(s.index, s.kid, s.reason) for s in keys.skipped] == [(0, "old", "weak_key")]


# --- FAPI-12: duplicate kids ------------------------------------------------------------


def test_fapi12_duplicate_kid_is_disambiguated_by_key_type() -> None:
    keys = parse_jwks(
        {"keys": [public_jwk(rsa_key(), kid="2024-06"), public_jwk(ec_key(), kid="2024-06")]}
    )
    assert [k.kty for k in keys.candidates("2024-06", "PS256")] == ["RSA"]
    assert [k.kty for k in keys.candidates("2024-06", "ES256")] == ["EC"]
    assert keys.candidates("2024-06", "EdDSA") == ()


def test_the_same_key_published_twice_is_reported_as_duplicate() -> None:
    jwk = public_jwk(ec_key(), kid="k")
    assert skipped_reasons(jwk, dict(jwk)) == ["duplicate"]


def test_jwtbcp09_kid_is_stored_verbatim_never_interpreted() -> None:
    kids = ["../../etc/passwd", "' OR '1'='1", "{0.__class__}", "%s%s%s"]
    keys = parse_jwks({"keys": [public_jwk(ec_key(), kid=kid) for kid in kids]})
    assert [k.kid for k in keys.keys] == kids
    assert all(keys.has_kid(kid) for kid in kids) and not keys.has_kid("passwd")


# --- document level -------------------------------------------------------------------


@pytest.mark.parametrize("document", [{}, {"keys": {}}, {"keys": "x"}])
def test_document_without_keys_array_is_an_error(document: dict[str, Any]) -> None:
    with pytest.raises(JwksError):
        parse_jwks(document)


def test_too_many_keys_is_an_error() -> None:
    with pytest.raises(JwksError, match="more than"):
        parse_jwks({"keys": [public_jwk(ec_key(), kid=str(i)) for i in range(MAX_JWKS_KEYS + 1)]})


def test_oversized_jwks_json_is_refused_before_parsing() -> None:
    with pytest.raises(JwksError, match="exceeds"):
        parse_jwks_json(b"{" * (MAX_JWKS_BYTES + 1))  # not JSON either: size is checked first


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"[" * 100_000, '{"keys": 1}'])
def test_jwks_json_must_be_an_object_with_keys(raw: bytes | str) -> None:
    with pytest.raises(JwksError):
        parse_jwks_json(raw)


def test_parse_jwks_json_round_trip() -> None:
    raw = json.dumps({"keys": [public_jwk(ed_key(), kid="ed")]}).encode()
    assert [k.kid for k in parse_jwks_json(raw).keys] == ["ed"]


def test_key_set_is_immutable() -> None:
    keys = parse_jwks({"keys": [public_jwk(ec_key(), kid="k")]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        keys.keys = ()  # type: ignore[misc]
    assert isinstance(keys.keys, tuple)
    with pytest.raises(TypeError):
        keys._by_kid["evil"] = ()  # type: ignore[index]


# --- verification key: no key confusion at the lowest level (JWTBCP-01) ---------------


def test_verification_key_refuses_algorithms_it_is_not_for() -> None:
    rsa_vk = parse_jwks({"keys": [public_jwk(rsa_key(), kid="rsa-1")]}).keys[0]
    header, payload, signature = sign(alg="PS256").split(".")
    signing_input, raw_sig = f"{header}.{payload}".encode(), b64url_decode(signature)
    assert rsa_vk.verify("PS256", signing_input, raw_sig)
    for alg in ("ES256", "EdDSA", "HS256", "none", "ps256"):
        assert not rsa_vk.verify(alg, signing_input, raw_sig)
    assert not rsa_vk.verify("PS256", signing_input, raw_sig[:-1])


def test_ec_verification_key_refuses_wrong_length_signature() -> None:
    ec_vk = parse_jwks({"keys": [public_jwk(ec_key())]}).keys[0]
    assert not ec_vk.verify("ES256", b"x", b"\x00" * 63)


# --- base64url ------------------------------------------------------------------------


@pytest.mark.parametrize("segment", ["AB=", "A+", "A/", "A B", "A", "AB\n", "QR", "QQ="])
def test_b64url_decode_refuses_non_canonical_spellings(segment: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(segment)


@given(st.binary(max_size=200))
def test_b64url_round_trip(raw: bytes) -> None:
    assert b64url_decode(b64url_encode(raw)) == raw
    assert b64url_encode(raw) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@given(st.text(max_size=64))
def test_b64url_decode_is_one_to_one(segment: str) -> None:
    try:
        raw = b64url_decode(segment)
    except ValueError:
        return
    assert b64url_encode(raw) == segment


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_parse_jwks_never_raises_unexpectedly_on_junk_keys(junk: Any) -> None:
    keys = parse_jwks({"keys": [junk]})
    assert len(keys.keys) + len(keys.skipped) == 1


# --- package hygiene ------------------------------------------------------------------

_MINE = ["__init__.py", "jwk.py", "tokens.py", "token_policy.py", "bearer.py", "token_cache.py"]
_AUTH = Path(__file__).resolve().parents[2] / "src" / "finward" / "auth"


@pytest.mark.parametrize("name", _MINE)
def test_token_modules_are_sans_io(name: str) -> None:
    tree = ast.parse((_AUTH / name).read_text())
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    imported |= {
        n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    bad = {m for m in imported if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
    assert bad == set()


def test_package_init_imports_nothing() -> None:
    tree = ast.parse((_AUTH / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
