"""Proof freshness: single-use caches and server nonces (RFC 9449 §9, §11.1, DPOP-10/13).

A DPoP proof is valid for a short window, so a stolen proof can be replayed until
its ``iat`` leaves that window. The verifier records every accepted ``(jkt, jti)``
pair until then and refuses a second use.

The production cache lives in the shared state store (memory or Redis) so that
every replica sees every proof; the adapter implements :class:`ReplayCache` over it
(for Redis: ``SET key 1 NX EXAT expires_at`` is the atomic check-and-set).
:class:`MemoryReplayCache` is the embedded, single-process implementation.

Server nonces bound a proof's lifetime by the server's clock rather than the
client's ``iat``; :class:`NonceService` makes them without shared state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
from collections.abc import Sequence
from typing import Protocol

from finward.clock import Clock
from finward.errors import FinwardError

# Upper bound on live entries in the embedded cache. At the default 60 s DPoP window
# this absorbs ~1.6k proofs/s per process; beyond it the cache refuses (fails closed)
# rather than forgetting entries, which would reopen the replay window.
DEFAULT_MAX_REPLAY_ENTRIES = 100_000


class ReplayCache(Protocol):
    """Atomic "have I seen this key before?" with an expiry."""

    def seen_before(self, key: str, expires_at: float) -> bool:
        """Record ``key`` until ``expires_at`` (epoch seconds).

        Returns True when the key was already present and unexpired (a replay);
        False when it was absent and is now recorded. Check and insert are one
        atomic step so two workers racing on the same proof cannot both win.
        """
        ...


class ReplayCacheFullError(FinwardError):
    """The embedded cache is full of unexpired entries.

    Raised instead of evicting a live entry: an enforcing policy turns it into a
    503 ``internal_error`` (fail closed), and operators move to the shared store.
    """


def replay_key(jkt: str, jti: str) -> str:
    """The cache key for a proof: SHA-256 over the key thumbprint and the jti.

    Attacker-chosen ``jti`` strings are never stored (or sent to Redis) raw, keys
    have a fixed size, and a jti is only unique per key (RFC 9449 §11.1), so two
    clients choosing the same jti do not collide. Lengths are prefixed so that
    ``("ab", "c")`` and ``("a", "bc")`` hash differently.
    """
    h = hashlib.sha256(b"finward-dpop-jti\x00")
    for part in (jkt.encode("utf-8"), jti.encode("utf-8", "surrogatepass")):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.hexdigest()


class MemoryReplayCache:
    """Bounded in-process :class:`ReplayCache` with lazy expiry and no timers.

    Expired entries are dropped on access, oldest expiry first (a min-heap), so
    the cost is amortised O(log n) per call. ``seen_before`` never yields (no await,
    no lock), so check-and-set is atomic within a worker's event loop; the sans-IO
    rule keeps threads out of this package.
    """

    def __init__(self, clock: Clock, max_entries: int = DEFAULT_MAX_REPLAY_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def seen_before(self, key: str, expires_at: float) -> bool:
        now = self._clock.now()
        current = self._expiry.get(key)
        if current is not None and current > now:
            return True
        self._evict_expired(now)
        if expires_at <= now:
            # Already expired: nothing to remember, and it was not a live replay.
            return False
        if len(self._expiry) >= self._max:
            raise ReplayCacheFullError("replay cache is full of unexpired entries")
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, key))
        return False

    def _evict_expired(self, now: float) -> None:
        # Every live key has exactly one heap entry: a key is only re-recorded after its
        # entry expired, and that entry is popped here first.
        heap = self._heap
        while heap and heap[0][0] <= now:
            del self._expiry[heapq.heappop(heap)[1]]


# Server nonces (RFC 9449 §8-9) rotate with this period; a nonce is accepted in the
# window it was issued in and the next one, so it lives between 1 and 2 periods.
DPOP_NONCE_ROTATION_S = 60
# HMAC-SHA256 keys shorter than the hash output weaken the MAC (RFC 2104 §3).
MIN_NONCE_SECRET_BYTES = 32
_NONCE_MAC_BYTES = 16  # 128-bit tag: forgery by guessing is out of reach
_NONCE_CHARS = 32  # base64url of 8-byte window counter + 16-byte tag
_NONCE_LABEL = b"finward-dpop-nonce\x00"


class NonceService:
    """Stateless DPoP server nonces: ``base64url(window || HMAC(secret, window))``.

    Any worker holding the secrets validates any other worker's nonce without shared
    state, and every worker issues the same nonce within a window, so clients are not
    bounced between workers. The first secret signs; the others are still accepted,
    for rolling a secret without rejecting nonces in flight. Time is passed in by the
    caller (the request's injected clock).
    """

    def __init__(
        self, secrets: Sequence[bytes], *, rotation_s: int = DPOP_NONCE_ROTATION_S
    ) -> None:
        if not secrets or any(len(s) < MIN_NONCE_SECRET_BYTES for s in secrets):
            raise ValueError(f"nonce secrets must be at least {MIN_NONCE_SECRET_BYTES} bytes")
        if rotation_s < 1:
            raise ValueError("rotation_s must be at least 1")
        self._secrets = tuple(bytes(s) for s in secrets)
        self._rotation_s = rotation_s

    def issue(self, now: float) -> str:
        """The current nonce, for a ``DPoP-Nonce`` header (§8.1: NQCHAR only)."""
        window = self._window(now).to_bytes(8, "big")
        tag = self._tag(self._secrets[0], window)
        return base64.urlsafe_b64encode(window + tag).rstrip(b"=").decode("ascii")

    def is_valid(self, nonce: str, now: float) -> bool:
        """True when ``nonce`` was issued by a holder of our secrets in this window or the last."""
        if len(nonce) != _NONCE_CHARS or not nonce.isascii():
            return False
        try:
            raw = base64.urlsafe_b64decode(nonce + "====")
        except (binascii.Error, ValueError):
            return False
        if len(raw) != 8 + _NONCE_MAC_BYTES:
            return False
        window, tag = raw[:8], raw[8:]
        if int.from_bytes(window, "big") not in (self._window(now), self._window(now) - 1):
            return False
        # Check every secret (no early exit) so timing does not reveal which one matched.
        matched = False
        for secret in self._secrets:
            matched |= hmac.compare_digest(self._tag(secret, window), tag)
        return matched

    def _window(self, now: float) -> int:
        return max(0, int(now // self._rotation_s))

    @staticmethod
    def _tag(secret: bytes, window: bytes) -> bytes:
        return hmac.new(secret, _NONCE_LABEL + window, hashlib.sha256).digest()[:_NONCE_MAC_BYTES]
