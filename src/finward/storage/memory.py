"""``memory://``: the embedded, per-process state store.

Every worker process has its own copy, so with ``--workers > 1`` (or several replicas)
a proof replayed to another worker is not caught and a revocation made through one
worker's admin API is invisible to the others. ``shared`` is False so that the gateway
can refuse that combination; use ``redis://`` to scale out.

No method awaits anything, so each one is atomic on the worker's event loop; expiry is
lazy (checked on access, purged on writes) because there are no timers.
"""

from __future__ import annotations

import heapq

from finward.auth.replay import DEFAULT_MAX_REPLAY_ENTRIES, MemoryReplayCache, ReplayCacheFullError
from finward.clock import Clock
from finward.storage.base import (
    Revocation,
    SnapshotReads,
    StateStoreFullError,
    StateStoreUnavailable,
    Suspension,
    check_identifier,
    check_instant,
    check_reason,
    check_replay_key,
)


class MemoryStateStore(SnapshotReads):
    """In-process :class:`~finward.storage.base.StateStore`; the clock is injected."""

    def __init__(
        self, *, clock: Clock, max_replay_entries: int = DEFAULT_MAX_REPLAY_ENTRIES
    ) -> None:
        self._clock = clock
        self._replay = MemoryReplayCache(clock, max_entries=max_replay_entries)
        self._revoked: dict[str, Revocation] = {}
        # (until, jti) min-heap for purging; stale pairs (a jti revoked again with a
        # later until) are skipped when popped.
        self._revoked_heap: list[tuple[float, str]] = []
        self._suspended: dict[str, Suspension] = {}
        self._closed = False

    def __repr__(self) -> str:
        return "MemoryStateStore(shared=False)"

    @property
    def shared(self) -> bool:
        return False

    async def start(self) -> None:
        self._check_open()

    async def seen_before(self, key: str, expires_at: float) -> bool:
        check_replay_key(key)
        check_instant("expires_at", expires_at)
        self._check_open()
        try:
            return self._replay.seen_before(key, expires_at)
        except ReplayCacheFullError as exc:
            raise StateStoreFullError(str(exc)) from exc

    async def revoke_token(self, jti: str, until: float, *, actor: str) -> None:
        check_identifier("jti", jti)
        check_instant("until", until)
        check_identifier("actor", actor)
        self._check_open()
        now = self._clock.now()
        self._purge_revocations(now)
        current = self._revoked.get(jti)
        if until <= now or (current is not None and current.until >= until):
            return
        self._revoked[jti] = Revocation(until=float(until), actor=actor, revoked_at=now)
        heapq.heappush(self._revoked_heap, (float(until), jti))

    async def suspend_client(self, client_id: str, *, actor: str, reason: str) -> None:
        check_identifier("client_id", client_id)
        check_identifier("actor", actor)
        check_reason(reason)
        self._check_open()
        self._suspended[client_id] = Suspension(actor=actor, reason=reason, since=self._clock.now())

    async def unsuspend_client(self, client_id: str, *, actor: str) -> bool:
        check_identifier("client_id", client_id)
        check_identifier("actor", actor)
        self._check_open()
        return self._suspended.pop(client_id, None) is not None

    def _check_readable(self) -> None:
        self._check_open()

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        # Same contract as the Redis store, so that use-after-close fails the same way.
        if self._closed:
            raise StateStoreUnavailable("state store is closed")

    def _purge_revocations(self, now: float) -> None:
        heap = self._revoked_heap
        while heap and heap[0][0] <= now:
            until, jti = heapq.heappop(heap)
            current = self._revoked.get(jti)
            if current is not None and current.until == until:
                del self._revoked[jti]
