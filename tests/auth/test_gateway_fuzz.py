"""Garbage never crashes a worker: random and mutated tokens and proofs, end to end.

A seeded generator (deterministic, so a failure reproduces) mutates valid tokens and
DPoP proofs - bit flips in each segment, swapped and truncated segments, re-encoded
headers, random printable junk - and sends them through the gateway. Every answer must
be a 401 or 403 with a catalogued reason code and a WWW-Authenticate challenge (or the
HTTP layer's 400/431 for a header it refuses outright), never a 5xx, and nothing may
reach the upstream.
"""

from __future__ import annotations

import base64
import json
import random
import string

import aiohttp

from finward.errors import REASONS
from tests.auth import jwt_factory
from tests.auth.dpop_client import signer
from tests.auth.gateway_env import (
    JwksServer,
    Pki,
    auth_config,
    jwks_server,
    pki,
    proof,
    start_auth_gateway,
    token,
)
from tests.harness import Upstream

__all__ = ["jwks_server", "pki"]

CASES = 300
_PRINTABLE = string.ascii_letters + string.digits + "-._~+/=!#$%&'*^`|"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mutate(rng: random.Random, value: str) -> str:
    parts = value.split(".")
    choice = rng.randrange(8)
    if choice == 0:  # flip one character of one segment
        i = rng.randrange(len(parts))
        seg = parts[i]
        if seg:
            j = rng.randrange(len(seg))
            seg = seg[:j] + rng.choice(_PRINTABLE) + seg[j + 1 :]
        parts[i] = seg
    elif choice == 1:  # truncate
        return value[: rng.randrange(len(value))]
    elif choice == 2:  # swap two segments
        rng.shuffle(parts)
    elif choice == 3:  # drop or duplicate a segment
        if rng.random() < 0.5 and len(parts) > 1:
            parts.pop(rng.randrange(len(parts)))
        else:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(parts))
    elif choice == 4:  # re-encode the header with a hostile twist
        header = rng.choice(
            [
                {"alg": "none"},
                {"alg": "HS256", "typ": "at+jwt"},
                {"alg": "ES256", "typ": "at+jwt", "kid": "x" * rng.randrange(1, 4000)},
                {"alg": "ES256", "typ": "at+jwt", "crit": ["exp"]},
                {"alg": "ES256", "jku": "http://127.0.0.1:1/keys", "kid": "ec-1"},
                {"alg": ["ES256"], "kid": {"a": 1}},
                [],
            ]
        )
        parts[0] = _b64(json.dumps(header).encode())
    elif choice == 5:  # payload replaced by nested or odd JSON
        depth = rng.randrange(1, 200)
        payload = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"exp": 1e999}'
        if len(parts) > 1:
            parts[1] = _b64(payload.encode())
    elif choice == 6:  # random junk
        return "".join(rng.choice(_PRINTABLE) for _ in range(rng.randrange(1, 200)))
    else:  # oversized
        return value + "A" * rng.randrange(8000, 12000)
    return ".".join(parts)


async def test_mutated_tokens_and_proofs_never_crash(
    upstream: Upstream,
    jwks_server: JwksServer,
    pki: Pki,
) -> None:
    rng = random.Random(20261129)
    gw, _ = await start_auth_gateway(auth_config(upstream, jwks_server.url, pki))
    alice = signer("ES256")
    statuses: dict[int, int] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(CASES):
                at = token(cnf={"jkt": alice.jkt})
                good_proof = proof(alice, at, "GET", "/accounts")
                target = rng.randrange(3)
                bad_token = _mutate(rng, at) if target != 1 else at
                bad_proof = _mutate(rng, good_proof) if target != 0 else good_proof
                scheme = rng.choice(["DPoP", "Bearer", "dpop", "Basic", ""])
                headers = {"Authorization": f"{scheme} {bad_token}".strip(), "DPoP": bad_proof}
                if bad_token == at and bad_proof == good_proof:
                    continue  # the mutation happened to be a no-op
                async with session.get(gw.url + "/accounts", headers=headers) as response:
                    body = await response.json(content_type=None)
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    # 400/431: the HTTP layer refused the header itself (bad bytes, size).
                    assert response.status in (400, 401, 403, 431), (headers, body)
                    assert body["reason"] in REASONS
                    if response.status in (401, 403):
                        assert response.headers.getall("WWW-Authenticate"), body
        assert upstream.seen == []
        assert sum(statuses.values()) > CASES * 0.9
        assert statuses.get(401, 0) > CASES * 0.5, statuses
        # The workers survived: a valid request still goes through.
        at = token(cnf={"jkt": alice.jkt})
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"DPoP {at}", "DPoP": proof(alice, at, "GET", "/accounts")}
            async with session.get(gw.url + "/accounts", headers=headers) as response:
                assert response.status == 200
    finally:
        await gw.stop()


def test_iss_lookup_ignores_unverified_garbage() -> None:
    from finward.auth.tokens import peek_unverified

    assert peek_unverified(jwt_factory.sign(jwt_factory.claims(), "ES256")) == (
        jwt_factory.ISSUER,
        "ec-1",
    )
    for junk in ["", "a.b.c", "..", "e30.e30.", "x" * 9000, "ééé.b.c"]:
        assert peek_unverified(junk) == (None, None)
