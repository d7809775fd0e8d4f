"""Access-token verification cost: finward's verifier, its cache hit, and plain PyJWT.

Run:  .venv/bin/python bench/bench_tokens.py [--rounds 15]

Prints a table (it does not write docs/benchmarks.md). For each FAPI algorithm it measures,
side by side in the same run and as medians over repeated rounds:

- ``pyjwt``: ``jwt.decode`` with the public key, algorithm, issuer and audience (signature
  and standard claims, no typ / required-claims / JWKS lookup) - the baseline;
- ``finward``: ``verify_access_token`` (size, strict parse, alg/typ policy, kid lookup,
  signature, RFC 9068 claims, read-only claims);
- ``cache hit``: ``verify_with_cache`` when the signature result is cached (hash the
  token, re-check header policy, key presence and every claim).

Absolute microseconds depend on the machine (2 shared cores here); the ratios are the
figures to quote.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import cryptography
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from finward.auth.jwk import parse_jwks
from finward.auth.token_cache import TokenCache, verify_with_cache
from finward.auth.tokens import IssuerPolicy, verify_access_token

COMMAND = ".venv/bin/python bench/bench_tokens.py"
ROUND_SECONDS = 0.2  # each round repeats the operation for at least this long
ISSUER = "https://as.bank.example"
AUDIENCE = "https://api.bank.example"


def make_keys() -> dict[str, tuple[Any, dict[str, Any]]]:
    """alg -> (private key, public JWK with kid)."""
    private = {
        "PS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }
    out = {}
    for alg, key in private.items():
        jwk = get_default_algorithms()[alg].to_jwk(key.public_key(), as_dict=True)
        out[alg] = (key, {**jwk, "kid": f"{alg.lower()}-1", "use": "sig"})
    return out


def one_round_us(operation: Callable[[], object]) -> float:
    """Mean time per call over at least ROUND_SECONDS, in microseconds."""
    calls, start = 0, time.perf_counter()
    deadline = start + ROUND_SECONDS
    while True:
        for _ in range(50):
            operation()
        calls += 50
        now = time.perf_counter()
        if now >= deadline:
            return (now - start) / calls * 1e6


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Per-round samples, the contenders taking turns inside every round so that load
    changes on a shared machine hit all of them alike (ratios are taken per round)."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, operation in contenders.items():
            samples[name].append(one_round_us(operation))
    return samples


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    keys = make_keys()
    key_set = parse_jwks({"keys": [jwk for _, jwk in keys.values()]})
    policy = IssuerPolicy(issuer=ISSUER, audiences=frozenset({AUDIENCE}))
    now = time.time()  # PyJWT reads the system clock; give finward the same instant
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "psu-4711",
        "client_id": "tpp-client-1",
        "iat": int(now) - 5,
        "exp": int(now) + 3600,
        "jti": "b7f1c2d4-0c1e-4f7e-9a55-6a3f0a3c1d10",
        "scope": "accounts payments",
        "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},
    }

    rows = []
    for alg, (private, jwk) in keys.items():
        token = jwt.encode(claims, private, alg, headers={"kid": jwk["kid"], "typ": "at+jwt"})
        public = private.public_key()
        cache = TokenCache()
        verify_with_cache(token, key_set, policy, now, cache)  # warm: the next calls hit

        def pyjwt(token: str = token, public: Any = public, alg: str = alg) -> object:
            return jwt.decode(token, public, [alg], audience=AUDIENCE, issuer=ISSUER)

        def finward(token: str = token) -> object:
            return verify_access_token(token, key_set, policy, now)

        def hit(token: str = token, cache: TokenCache = cache) -> object:
            return verify_with_cache(token, key_set, policy, now, cache)

        samples = interleaved({"pyjwt": pyjwt, "finward": finward, "hit": hit}, args.rounds)
        assert cache.misses == 1, "the cache-hit column must measure hits only"
        rows.append(
            (
                alg,
                len(token),
                statistics.median(samples["pyjwt"]),
                statistics.median(samples["finward"]),
                statistics.median(samples["hit"]),
                median_ratio(samples["finward"], samples["pyjwt"]),
                median_ratio(samples["finward"], samples["hit"]),
            )
        )

    print(f"# Access-token verification ({COMMAND} --rounds {args.rounds})")
    print(
        f"# Python {platform.python_version()}, PyJWT {jwt.__version__}, "
        f"cryptography {cryptography.__version__}, {platform.machine()}, "
        f"median of {args.rounds} interleaved rounds x >= {ROUND_SECONDS}s each; "
        "ratios are medians of per-round ratios"
    )
    header = (
        "| alg | token bytes | PyJWT decode (µs) | finward verify (µs) | finward / PyJWT "
        "| cache hit (µs) | verify / hit |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|")
    for alg, size, pyjwt_us, finward_us, hit_us, vs_pyjwt, vs_hit in rows:
        print(
            f"| {alg} | {size} | {pyjwt_us:.1f} | {finward_us:.1f} | "
            f"{vs_pyjwt:.2f} | {hit_us:.1f} | {vs_hit:.1f}x |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
