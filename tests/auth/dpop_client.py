"""A DPoP client for the tests: real keys, real proofs signed with PyJWT."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cache
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from finward.auth.dpop import DPoPError, DPoPPolicy, DPoPProof, access_token_hash, verify_dpop_proof
from finward.auth.jwk import jwk_thumbprint
from finward.auth.replay import MemoryReplayCache, NonceService
from finward.http import Headers

NOW = 1_800_000_000.0
BASE = "https://api.bank.example"
URL = BASE + "/v1/accounts"
TOKEN = "at-7q2CkVQ.xyz~token"
POLICY = DPoPPolicy()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class Signer:
    """A client key pair that makes real proofs with PyJWT."""

    alg: str
    key: Any

    @property
    def jwk(self) -> dict[str, Any]:
        return dict(get_default_algorithms()[self.alg].to_jwk(self.key.public_key(), as_dict=True))

    @property
    def jkt(self) -> str:
        return jwk_thumbprint(self.jwk)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {"jti": "jti-" + b64(bytes(12)), "htm": "GET", "htu": URL}
        claims.update(iat=int(NOW), ath=access_token_hash(TOKEN))
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def proof(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(self.claims(**claims), self.key, algorithm=self.alg, headers=headers)

    def raw(self, header: bytes, payload: bytes, alg: str | None = None) -> str:
        """Sign exact JSON bytes (for duplicate members and other malformed JSON)."""
        signing_input = f"{b64(header)}.{b64(payload)}".encode()
        signature = get_default_algorithms()[alg or self.alg].sign(signing_input, self.key)
        return f"{signing_input.decode()}.{b64(signature)}"


@cache
def signer(alg: str, variant: str = "") -> Signer:
    if alg.startswith("ES"):
        curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1()}[alg]
        return Signer(alg, ec.generate_private_key(curve))
    if alg.startswith(("PS", "RS")):
        size = 1024 if variant == "weak" else 2048
        return Signer(alg, rsa.generate_private_key(public_exponent=65537, key_size=size))
    if variant == "ed448":
        return Signer(alg, ed448.Ed448PrivateKey.generate())
    return Signer(alg, ed25519.Ed25519PrivateKey.generate())


ES = signer("ES256")


def verify(
    proof: str | Headers,
    *,
    method: str = "GET",
    url: str = URL,
    access_token: str | None = TOKEN,
    now: float = NOW,
    policy: DPoPPolicy = POLICY,
    nonces: NonceService | None = None,
    replay: MemoryReplayCache | None = None,
    token_jkt: str | None = ES.jkt,
) -> DPoPProof:
    headers = proof if isinstance(proof, Headers) else Headers([("DPoP", proof)])
    return verify_dpop_proof(
        headers, method, url, access_token, now, policy, nonces, replay=replay, token_jkt=token_jkt
    )


def refused(reason: str, proof: str | Headers, **kwargs: Any) -> DPoPError:
    with pytest.raises(DPoPError) as info:
        verify(proof, **kwargs)
    assert info.value.reason == reason, info.value.detail
    return info.value
