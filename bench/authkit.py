"""Credentials for the authenticated contenders of `run.py`, made fresh for every run.

- an issuer key (ES256) and its JWKS, served by the upstream nginx at `/jwks`;
- a CA and one client certificate, passed to finward the way nginx passes a verified
  client certificate (`X-SSL-Client-Cert`: URL-encoded PEM, as `$ssl_client_escaped_cert`);
- two RFC 9068 access tokens signed with PyJWT: one bound to the certificate
  (`cnf.x5t#S256`, RFC 8705) and one bound to a DPoP key (`cnf.jkt`, RFC 9449);
- DPoP proofs (ES256, RFC 9449 §4): each with its own `jti`, `iat` = the moment it was
  made, `htu` = public base URL + the request path and `ath` = hash of the DPoP token.

Proofs are signed with `cryptography` directly (the header is constant, only `jti` and
`iat` change), which makes about ten thousand a second per core on the bench machine; the
result is the same compact JWS PyJWT would produce (checked in `self_check`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm

ISSUER = "https://as.bench.example"
AUDIENCE = "https://api.bench.example"
PUBLIC_BASE_URL = "https://api.bench.example"  # finward's auth.public_base_url (DPoP htu)
CERT_HEADER = "X-SSL-Client-Cert"
KID = "bench-es256"
TOKEN_LIFETIME_S = 4 * 3600  # longer than any bench run


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {k: jwk[k] for k in ("kty", "crv", "x", "y")}


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an EC public JWK (the members in lexicographic order)."""
    canonical = _json({k: jwk[k] for k in ("crv", "kty", "x", "y")})
    return b64(hashlib.sha256(canonical).digest())


def _make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "finward bench CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench TPP"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "tpp.bench.example"),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


@dataclass
class AuthKit:
    issuer_key: ec.EllipticCurvePrivateKey
    jwks: dict[str, Any]
    ca_path: Path
    cert_header: str  # URL-encoded PEM of the client certificate
    mtls_token: str
    dpop_key: ec.EllipticCurvePrivateKey
    dpop_jkt: str
    dpop_token: str
    _proof_header_b64: str = ""
    _ath: str = ""

    @classmethod
    def create(cls, directory: Path) -> AuthKit:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        jwks = {"keys": [{**_public_jwk(issuer_key), "kid": KID, "use": "sig", "alg": "ES256"}]}
        ca_key, ca = _make_ca()
        leaf = _make_leaf(ca_key, ca)
        ca_path = directory / "client-ca.pem"
        ca_path.write_bytes(ca.public_bytes(Encoding.PEM))
        x5t = b64(hashlib.sha256(leaf.public_bytes(Encoding.DER)).digest())
        dpop_key = ec.generate_private_key(ec.SECP256R1())
        dpop_jwk = _public_jwk(dpop_key)
        jkt = jwk_thumbprint(dpop_jwk)

        def token(cnf: dict[str, str], client: str) -> str:
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "psu-bench",
                "client_id": client,
                "iat": now,
                "exp": now + TOKEN_LIFETIME_S,
                "jti": secrets.token_urlsafe(12),
                "scope": "accounts",
                "cnf": cnf,
            }
            header = {"kid": KID, "typ": "at+jwt"}
            return jwt.encode(claims, issuer_key, "ES256", headers=header)

        kit = cls(
            issuer_key=issuer_key,
            jwks=jwks,
            ca_path=ca_path,
            cert_header=quote(leaf.public_bytes(Encoding.PEM).decode(), safe=""),
            mtls_token=token({"x5t#S256": x5t}, "tpp-bench-mtls"),
            dpop_key=dpop_key,
            dpop_jkt=jkt,
            dpop_token=token({"jkt": jkt}, "tpp-bench-dpop"),
        )
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": dpop_jwk}
        kit._proof_header_b64 = b64(_json(header))
        kit._ath = b64(hashlib.sha256(kit.dpop_token.encode("ascii")).digest())
        return kit

    def jwks_json(self) -> str:
        return json.dumps(self.jwks, separators=(",", ":"))

    # -- credentials per contender ------------------------------------------------------

    def mtls_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mtls_token}", CERT_HEADER: self.cert_header}

    def dpop_headers(self) -> dict[str, str]:
        """The static part; every request adds its own `DPoP` proof header."""
        return {"Authorization": f"DPoP {self.dpop_token}"}

    def proof(self, path: str, *, jti: str | None = None, iat: int | None = None) -> str:
        """One ES256 DPoP proof for `GET PUBLIC_BASE_URL + path`."""
        payload = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": "GET",
            "htu": PUBLIC_BASE_URL + path,
            "iat": int(time.time()) if iat is None else iat,
            "ath": self._ath,
        }
        signing_input = f"{self._proof_header_b64}.{b64(_json(payload))}".encode("ascii")
        r, s = decode_dss_signature(self.dpop_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return (
            f"{signing_input.decode('ascii')}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        )

    def write_proofs(self, path: Path, count: int, request_path: str) -> float:
        """Write `count` fresh proofs (unique jti, iat = now), one a line; return seconds taken."""
        started = time.perf_counter()
        prefix = secrets.token_urlsafe(9)  # unique per batch: no two batches share a jti
        iat = int(time.time())
        with path.open("w") as out:
            for i in range(count):
                if i % 4096 == 0:
                    iat = int(time.time())
                out.write(self.proof(request_path, jti=f"{prefix}-{i}", iat=iat))
                out.write("\n")
        return time.perf_counter() - started

    def self_check(self, request_path: str) -> None:
        """The hand-made proof verifies with PyJWT and carries what RFC 9449 asks for."""
        proof = self.proof(request_path)
        header = jwt.get_unverified_header(proof)
        assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256", header
        claims = jwt.decode(proof, self.dpop_key.public_key(), algorithms=["ES256"])
        assert claims["htu"] == PUBLIC_BASE_URL + request_path and claims["ath"] == self._ath
        assert jwk_thumbprint(header["jwk"]) == self.dpop_jkt
