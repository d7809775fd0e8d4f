"""Credentials for the authenticated contenders of `run.py`, made fresh for every run.

- an issuer key (ES256) and its JWKS, served by the upstream nginx at `/jwks`;
- a CA and one client certificate, passed to finward the way nginx passes a verified
  client certificate (`X-SSL-Client-Cert`: URL-encoded PEM, as `$ssl_client_escaped_cert`);
- RFC 9068 access tokens signed with PyJWT: one bound to the certificate
  (`cnf.x5t#S256`, RFC 8705) and one per DPoP client key (`cnf.jkt`, RFC 9449);
- two DPoP clients, one with a P-256 key (ES256 proofs) and one with an RSA-2048 key
  (PS256 proofs: RSASSA-PSS, SHA-256, MGF1 SHA-256, salt length 32, RFC 7518 §3.5);
- DPoP proofs (RFC 9449 §4): each with its own `jti`, `iat` = the moment it was made,
  `htu` = public base URL + the request path and `ath` = hash of the DPoP token.

Proofs are signed with `cryptography` directly (the header is constant, only `jti` and
`iat` change): ES256 takes about 30 µs a proof on the bench machine, PS256 about 300 µs
(RSA signing); the result is a compact JWS that PyJWT verifies (checked in `self_check`).
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
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://as.bench.example"
AUDIENCE = "https://api.bench.example"
PUBLIC_BASE_URL = "https://api.bench.example"  # finward's auth.public_base_url (DPoP htu)
CERT_HEADER = "X-SSL-Client-Cert"
KID = "bench-es256"
TOKEN_LIFETIME_S = 4 * 3600  # longer than any bench run
DPOP_ALGORITHMS = ("ES256", "PS256")  # the proof algorithms the bench clients use
# RFC 7518 §3.5: PS256 = RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt as long as the hash.
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _public_jwk(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> dict[str, str]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {k: jwk[k] for k in ("kty", "n", "e")}
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {k: jwk[k] for k in ("kty", "crv", "x", "y")}


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an EC or RSA public JWK (required members, sorted)."""
    canonical = _json({k: jwk[k] for k in _THUMBPRINT_MEMBERS[jwk["kty"]]})
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
class DPoPClient:
    """A DPoP client: its key, the token bound to that key and the constant proof header."""

    alg: str  # "ES256" (P-256 key) or "PS256" (RSA-2048 key)
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    jkt: str
    token: str
    header_b64: str
    ath: str

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(signing_input, _PSS, hashes.SHA256())
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS form (RFC 7518 §3.4)


@dataclass
class AuthKit:
    issuer_key: ec.EllipticCurvePrivateKey
    jwks: dict[str, Any]
    ca_path: Path
    cert_header: str  # URL-encoded PEM of the client certificate
    mtls_token: str
    dpop: dict[str, DPoPClient]  # by proof algorithm

    @classmethod
    def create(cls, directory: Path) -> AuthKit:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        jwks = {"keys": [{**_public_jwk(issuer_key), "kid": KID, "use": "sig", "alg": "ES256"}]}
        ca_key, ca = _make_ca()
        leaf = _make_leaf(ca_key, ca)
        ca_path = directory / "client-ca.pem"
        ca_path.write_bytes(ca.public_bytes(Encoding.PEM))
        x5t = b64(hashlib.sha256(leaf.public_bytes(Encoding.DER)).digest())

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

        def dpop_client(alg: str) -> DPoPClient:
            key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
            if alg == "PS256":
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            else:
                key = ec.generate_private_key(ec.SECP256R1())
            jwk = _public_jwk(key)
            jkt = jwk_thumbprint(jwk)
            dpop_token = token({"jkt": jkt}, f"tpp-bench-dpop-{alg.lower()}")
            return DPoPClient(
                alg=alg,
                key=key,
                jkt=jkt,
                token=dpop_token,
                header_b64=b64(_json({"typ": "dpop+jwt", "alg": alg, "jwk": jwk})),
                ath=b64(hashlib.sha256(dpop_token.encode("ascii")).digest()),
            )

        return cls(
            issuer_key=issuer_key,
            jwks=jwks,
            ca_path=ca_path,
            cert_header=quote(leaf.public_bytes(Encoding.PEM).decode(), safe=""),
            mtls_token=token({"x5t#S256": x5t}, "tpp-bench-mtls"),
            dpop={alg: dpop_client(alg) for alg in DPOP_ALGORITHMS},
        )

    def jwks_json(self) -> str:
        return json.dumps(self.jwks, separators=(",", ":"))

    # -- credentials per contender ------------------------------------------------------

    def mtls_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mtls_token}", CERT_HEADER: self.cert_header}

    def dpop_headers(self, alg: str = "ES256") -> dict[str, str]:
        """The static part; every request adds its own `DPoP` proof header."""
        return {"Authorization": f"DPoP {self.dpop[alg].token}"}

    def proof(
        self, path: str, alg: str = "ES256", *, jti: str | None = None, iat: int | None = None
    ) -> str:
        """One DPoP proof (`alg`: ES256 or PS256) for `GET PUBLIC_BASE_URL + path`."""
        client = self.dpop[alg]
        payload = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": "GET",
            "htu": PUBLIC_BASE_URL + path,
            "iat": int(time.time()) if iat is None else iat,
            "ath": client.ath,
        }
        signing_input = f"{client.header_b64}.{b64(_json(payload))}"
        return f"{signing_input}.{b64(client.sign(signing_input.encode('ascii')))}"

    def write_proofs(self, path: Path, count: int, request_path: str, alg: str = "ES256") -> float:
        """Write `count` fresh proofs (unique jti, iat = now), one a line; return seconds taken.

        The file is written newest first: the proofs used first are the freshest, so the
        time it takes to make a batch (tens of seconds for PS256) does not age the proofs a
        run uses (at most a third of a batch) towards finward's 60 s `max_age_s`. Runs in
        the calling process; `run.py` keeps itself on the load core, so making proofs
        never takes CPU from the proxy under test.
        """
        started = time.perf_counter()
        prefix = secrets.token_urlsafe(9)  # unique per batch: no two batches share a jti
        iat = int(time.time())
        lines: list[str] = []
        for i in range(count):
            if i % 1024 == 0:
                iat = int(time.time())
            lines.append(self.proof(request_path, alg, jti=f"{prefix}-{i}", iat=iat))
        lines.reverse()
        lines.append("")
        path.write_text("\n".join(lines))
        return time.perf_counter() - started

    def self_check(self, request_path: str) -> None:
        """Each hand-made proof verifies with PyJWT and carries what RFC 9449 asks for."""
        for alg, client in self.dpop.items():
            proof = self.proof(request_path, alg)
            header = jwt.get_unverified_header(proof)
            assert header["typ"] == "dpop+jwt" and header["alg"] == alg, header
            claims = jwt.decode(proof, client.key.public_key(), algorithms=[alg])
            assert claims["htu"] == PUBLIC_BASE_URL + request_path and claims["ath"] == client.ath
            assert jwk_thumbprint(header["jwk"]) == client.jkt
            if alg == "PS256":  # RFC 7518 §3.5 exactly: a salt of 32 bytes, not "auto"
                assert isinstance(client.key, rsa.RSAPrivateKey)
                signing_input, _, signature = proof.rpartition(".")
                raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
                assert len(raw) == 256, len(raw)
                client.key.public_key().verify(
                    raw, signing_input.encode("ascii"), _PSS, hashes.SHA256()
                )
