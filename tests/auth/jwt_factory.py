"""Real keys and real signed tokens for the access-token tests.

Keys are generated with ``cryptography``; well-formed tokens are signed with PyJWT
(``jwt.encode``). ``sign_raw`` builds a token from an exact header and payload (bytes or
JSON) with PyJWT's algorithm objects, for attacks PyJWT refuses to produce (a 1024-bit key,
``crit``, duplicate names, ``none``, HMAC with a public key as secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from finward.auth.jwk import KeySet, parse_jwks
from finward.auth.tokens import IssuerPolicy

NOW = 1_800_000_000.0
ISSUER = "https://as.bank.example"
AUDIENCE = "https://api.bank.example"
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "jwt"

# alg -> (key factory name, kid) for the issuer's default key set
ALG_KIDS = {"PS256": "rsa-1", "ES256": "ec-1", "EdDSA": "ed-1"}


@cache
def rsa_key(bits: int = 2048, index: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_key(curve: str = "P-256", index: int = 0) -> ec.EllipticCurvePrivateKey:
    curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    return ec.generate_private_key(curves[curve])


@cache
def ed_key(index: int = 0) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(private_key: Any, **members: Any) -> dict[str, Any]:
    """The public JWK of a key (via PyJWT), plus extra members such as kid/alg/use."""
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = get_default_algorithms()["RS256"].to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = get_default_algorithms()["ES256"].to_jwk(public, as_dict=True)
    else:
        jwk = get_default_algorithms()["EdDSA"].to_jwk(public, as_dict=True)
    jwk.update(members)
    return {k: v for k, v in jwk.items() if v is not None}


def private_jwk(private_key: Any, **members: Any) -> dict[str, Any]:
    if isinstance(private_key, rsa.RSAPrivateKey):
        jwk = get_default_algorithms()["RS256"].to_jwk(private_key, as_dict=True)
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        jwk = get_default_algorithms()["ES256"].to_jwk(private_key, as_dict=True)
    else:
        jwk = get_default_algorithms()["EdDSA"].to_jwk(private_key, as_dict=True)
    jwk.update(members)
    return dict(jwk)


def issuer_jwks() -> dict[str, Any]:
    return {
        "keys": [
            public_jwk(rsa_key(), kid="rsa-1", use="sig"),
            public_jwk(ec_key(), kid="ec-1", use="sig"),
            public_jwk(ed_key(), kid="ed-1"),
        ]
    }


def issuer_keys() -> KeySet:
    return parse_jwks(issuer_jwks())


def policy(**overrides: Any) -> IssuerPolicy:
    fields: dict[str, Any] = {"issuer": ISSUER, "audiences": frozenset({AUDIENCE})}
    fields.update(overrides)
    return IssuerPolicy(**fields)


def claims(**overrides: Any) -> dict[str, Any]:
    """RFC 9068 §2.2 claims valid at NOW; an override of None removes the claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "psu-4711",
        "client_id": "tpp-client-1",
        "iat": int(NOW) - 5,
        "exp": int(NOW) + 300,
        "jti": "b7f1c2d4-0c1e-4f7e-9a55-6a3f0a3c1d10",
        "scope": "accounts payments",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signing_key(alg: str) -> Any:
    if alg.startswith(("PS", "RS")):
        return rsa_key()
    if alg == "ES256":
        return ec_key()
    if alg == "ES384":
        return ec_key("P-384")
    if alg == "ES512":
        return ec_key("P-521")
    return ed_key()


def sign(
    payload: Mapping[str, Any] | None = None,
    alg: str = "ES256",
    *,
    key: Any = None,
    kid: str | None = "default",
    typ: str | None = "at+jwt",
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A token signed by PyJWT. kid="default" picks the issuer key id for ``alg``."""
    header: dict[str, Any] = {}
    if kid == "default":
        kid = ALG_KIDS.get(alg)
    if kid is not None:
        header["kid"] = kid
    if typ is not None:
        header["typ"] = typ
    header.update(headers or {})
    body = dict(payload if payload is not None else claims())
    if typ is None:  # PyJWT would add typ=JWT; build the exact header instead
        return sign_raw({"alg": alg, **header}, body, key=key)
    return jwt.encode(body, key if key is not None else signing_key(alg), alg, headers=header)


def sign_raw(
    header: Mapping[str, Any] | bytes,
    payload: Mapping[str, Any] | bytes,
    *,
    alg: str | None = None,
    key: Any = None,
    hmac_secret: bytes | None = None,
) -> str:
    """Sign exact bytes: header/payload given as dicts (JSON) or raw bytes."""
    header_raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    payload_raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if alg is None:
        alg = header["alg"] if isinstance(header, Mapping) else json.loads(header_raw)["alg"]
    signing_input = f"{b64(header_raw)}.{b64(payload_raw)}"
    if alg.lower() == "none":
        signature = b""
    elif hmac_secret is not None:
        signature = hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
    else:
        algorithm = get_default_algorithms()[alg]
        signature = algorithm.sign(signing_input.encode(), key or signing_key(alg))
    return f"{signing_input}.{b64(signature)}"


def load_vectors(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())
