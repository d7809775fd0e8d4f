"""A bounded LRU cache of access-token *signature verification* results.

What it caches, and what it does not
====================================
A cache entry records only that a token's **signature and header** were verified with a
given AS key, plus the decoded (read-only) claims, so the expensive public-key operation
(≈25-110 µs, DESIGN.md) runs once per token instead of once per request.

It does **not** cache a decision. ``verify_with_cache`` re-checks on *every* call, hit or
miss, everything that can have changed: the time claims (``exp``, ``nbf``, ``iat``) at the
injected ``now`` always, and - when the caller passes a different ``IssuerPolicy`` or
``KeySet`` object than the entry was checked with (a reload, a JWKS refresh) - the
``alg``/``typ`` lists, that the verifying key is still published, issuer, audience and
required claims. With the same objects those are pure functions of unchanged inputs, so
they are not recomputed. Callers must still run, on every request, the checks that
depend on the request or on state that changes: sender constraint (``cnf`` against the
mTLS certificate or DPoP proof), revocation, replay, scopes and consent. WSO2 API Manager
shipped exactly this bug (wso2/product-apim #11521): a cached token skipped the ``cnf``
binding check, so a stolen certificate-bound token worked from any client.

Entries are keyed by the token's SHA-256, never by the token, so a heap dump or a debug
view of the cache does not hand out credentials. An entry lives until the token's ``exp``
(plus the policy's leeway) and is evicted lazily when read, or in LRU order when the cache
is full - no timers, no threads. Time is injected as ``now`` (from the caller's ``Clock``).
Failures are never cached. Not thread-safe: one cache per event loop / worker.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from finward.auth.jwk import KeySet
from finward.auth.token_policy import MAX_TOKEN_BYTES, IssuerPolicy, TokenError
from finward.auth.tokens import (
    VerifiedToken,
    check_times,
    check_verified_token,
    token_sha256,
    verify_access_token,
)

# Default capacity. An entry is a few hundred bytes of claims; 10 000 distinct live tokens
# covers a busy gateway's working set (tokens live minutes) in a few MB per worker.
DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class CachedVerification:
    verified: VerifiedToken
    expires_at: float  # token exp + policy leeway at the time of verification
    # The policy and key set the entry was checked against. While the caller still
    # passes these very objects, the checks that depend only on (claims, policy, keys)
    # cannot have changed, and a hit re-runs only the time checks.
    policy: IssuerPolicy | None = None
    keys: KeySet | None = None


class TokenCache:
    """Bounded LRU map from token SHA-256 to ``CachedVerification``."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, CachedVerification] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token_hash: str, now: float) -> CachedVerification | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            self.misses += 1
            return None
        if now >= entry.expires_at:  # lazy expiry
            del self._entries[token_hash]
            self.evictions += 1
            self.misses += 1
            return None
        self._entries.move_to_end(token_hash)
        self.hits += 1
        return entry

    def put(self, token_hash: str, entry: CachedVerification, now: float) -> None:
        if now >= entry.expires_at:
            return  # already dead: caching it would only displace a live entry
        self._entries[token_hash] = entry
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def discard(self, token_hash: str) -> None:
        """Forget one token (e.g. on revocation), so the next use is verified afresh."""
        self._entries.pop(token_hash, None)

    def clear(self) -> None:
        self._entries.clear()


def verify_with_cache(
    token: str, keys: KeySet, policy: IssuerPolicy, now: float, cache: TokenCache
) -> VerifiedToken:
    """``verify_access_token`` with the signature check cached by token hash.

    On a hit the signature is not recomputed but ``check_verified_token`` re-runs every
    other check against ``keys``, ``policy`` and ``now`` (see the module docstring), so a
    cached token that has since expired, or whose key was rotated out, is refused.
    Binding, revocation and scope checks remain the caller's job on every request.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
        # Same refusal as the verifier, before hashing an arbitrarily long string.
        return verify_access_token(token, keys, policy, now)
    token_hash = token_sha256(token)
    entry = cache.get(token_hash, now)
    if entry is not None:
        try:
            if entry.policy is policy and entry.keys is keys:
                check_times(entry.verified.claims, policy, now)
            else:
                check_verified_token(entry.verified, keys, policy, now)
                # Re-checked against the new policy or keys: remember them.
                cache.put(token_hash, replace(entry, policy=policy, keys=keys), now)
        except TokenError as exc:
            if exc.reason != "token_key_unknown":
                raise
            cache.discard(token_hash)  # key rotated out: verify against the new set
        else:
            return entry.verified
    verified = verify_access_token(token, keys, policy, now)
    entry = CachedVerification(verified, verified.exp + policy.leeway_s, policy, keys)
    cache.put(token_hash, entry, now)
    return verified
