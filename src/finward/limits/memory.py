"""``memory://``: limits exact within one process, not shared (``shared`` is False).

Every call runs to completion without awaiting, so on one event loop ``acquire`` is
atomic: all checks are evaluated, then applied only if all pass.

Bounded memory. At most ``max_keys`` keys are held (``memory://?max_keys=N``, default
100 000). A key is stored only when a request is admitted under it; a refused request
never creates one. When a new key does not fit, the store first evicts expired keys
(state that has fully decayed: a GCRA TAT in the past, a window that ended, an empty
sliding log, leases that all expired), examining a bounded batch per call in round-robin
order so the work per request stays constant. If none is expired the request is refused
with ``LimitStoreUnavailable`` (each rule's ``on_store_error`` decides, "closed" by
default): evicting a live key instead would reset a client's counters, which is exactly
what an attacker flooding random keys would want. A sliding window keeps up to
``limit`` timestamps per key, so the worst case is ``max_keys`` x the largest such limit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

from finward.limits.algorithms import (
    MAX_CHECKS,
    MAX_KEY_CHARS,
    MAX_LEASE_CHARS,
    RuleParams,
    SlidingLog,
    Verdict,
    compile_rule,
    evaluate_concurrency,
    evaluate_fixed,
    evaluate_gcra,
    evaluate_sliding,
    fixed_window,
    lease_member,
    to_us,
)
from finward.limits.base import Check, LimitRule, LimitStoreUnavailable, Outcome

DEFAULT_MAX_KEYS = 100_000
# Keys examined per new key when the store is full: constant work per request, and a
# full rotation of the table after max_keys / 64 such requests.
_SWEEP_BATCH = 64
# Compiled rules cached per store; rules come from configuration, so this only bounds
# a caller that builds a fresh LimitRule per request.
_MAX_CACHED_RULES = 4096


class _Entry:
    """One key's state. ``state`` is, by algorithm: the GCRA TAT (int); a SlidingLog;
    ``[window_start, count]``; a dict of leases ``member -> (cost, expiry)``."""

    __slots__ = ("algorithm", "expires_us", "state")

    def __init__(self, algorithm: str, state: object, expires_us: int) -> None:
        self.algorithm = algorithm
        self.state = state
        self.expires_us = expires_us  # when the state has fully decayed; then evictable


def check_request(checks: Sequence[Check]) -> None:
    """Caps and sanity of one request's checks, before anything is evaluated."""
    if len(checks) > MAX_CHECKS:
        raise ValueError(f"at most {MAX_CHECKS} limits per request")
    keys = set()
    for check in checks:
        key = check.key
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
            raise ValueError(f"limit key must be 1-{MAX_KEY_CHARS} characters")
        if key in keys:
            # Two checks on one key would be evaluated against the same old state.
            raise ValueError("two checks of one request use the same limit key")
        keys.add(key)
        cost = check.cost
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
            raise ValueError("limit cost must be a positive integer")
        if check.rule.algorithm == "concurrency":
            check_lease(check.lease)


def peeked(verdict: Verdict, state: Verdict) -> Verdict:
    """What ``peek`` reports: whether the check would pass (and if not, when it would),
    with the key's remaining and reset as they are now, nothing counted. ``state`` is
    the verdict of a request too large to ever pass, which leaves them untouched."""
    return Verdict(verdict.allowed, state.remaining, state.reset_us, verdict.retry_us)


def check_lease(lease: str) -> None:
    if not isinstance(lease, str) or not 0 < len(lease) <= MAX_LEASE_CHARS:
        raise ValueError(f"a concurrency check needs a lease id of 1-{MAX_LEASE_CHARS} chars")


class RuleCache:
    """Compiled rules by rule (frozen, hashable), bounded."""

    def __init__(self) -> None:
        self._params: dict[LimitRule, RuleParams] = {}

    def get(self, rule: LimitRule) -> RuleParams:
        params = self._params.get(rule)
        if params is None:
            params = compile_rule(rule)
            if len(self._params) >= _MAX_CACHED_RULES:
                self._params.clear()
            self._params[rule] = params
        return params


class MemoryLimitStore:
    """Per-process :class:`~finward.limits.base.LimitStore`."""

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._rules = RuleCache()
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryLimitStore(keys={len(self._entries)}, max_keys={self._max_keys})"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def shared(self) -> bool:
        return False

    async def start(self) -> None:
        self._check_open()

    async def close(self) -> None:
        self._closed = True
        self._entries.clear()

    async def acquire(self, checks: Sequence[Check], now: float) -> tuple[Outcome, ...]:
        self._check_open()
        check_request(checks)
        now_us = to_us(now)
        plans: list[tuple[Check, RuleParams, Verdict, int]] = []
        for check in checks:
            params = self._rules.get(check.rule)
            verdict, extra = self._evaluate(check, params, now_us)
            plans.append((check, params, verdict, extra))
        outcomes = tuple(verdict.to_outcome(check.rule) for check, _, verdict, _ in plans)
        if all(verdict.allowed for _, _, verdict, _ in plans):
            new_keys = sum(1 for check in checks if check.key not in self._entries)
            if new_keys:
                self._make_room(new_keys, now_us, {check.key for check in checks})
            for check, params, _, extra in plans:
                self._apply(check, params, now_us, extra)
        return outcomes

    async def release(self, checks: Sequence[Check], now: float) -> None:
        self._check_open()
        for check in checks:
            if check.rule.algorithm != "concurrency":
                continue
            check_lease(check.lease)
            entry = self._entries.get(check.key)
            if entry is None or entry.algorithm != "concurrency":
                continue
            leases: dict[str, tuple[int, int]] = entry.state  # type: ignore[assignment]
            leases.pop(lease_member(check.cost, check.lease), None)
            if leases:
                entry.expires_us = max(expiry for _, expiry in leases.values())
            else:
                del self._entries[check.key]

    async def peek(self, check: Check, now: float) -> Outcome:
        self._check_open()
        check_request((check,))
        params, now_us = self._rules.get(check.rule), to_us(now)
        verdict, _ = self._evaluate(check, params, now_us)
        # The state as it is: a request that can never pass reports it untouched.
        probe = replace(check, cost=params.capacity + 1)
        state, _ = self._evaluate(probe, params, now_us)
        return peeked(verdict, state).to_outcome(check.rule)

    # --- internals ----------------------------------------------------------------------

    def _state(self, key: str, algorithm: str) -> object | None:
        entry = self._entries.get(key)
        # A key left by a rule whose algorithm changed (same name, new config) restarts.
        if entry is None or entry.algorithm != algorithm:
            return None
        return entry.state

    def _evaluate(self, check: Check, p: RuleParams, now_us: int) -> tuple[Verdict, int]:
        """The verdict, and what ``_apply`` needs: the new TAT or lease expiry."""
        state = self._state(check.key, p.algorithm)
        if p.algorithm == "gcra":
            return evaluate_gcra(state, now_us, check.cost, p)  # type: ignore[arg-type]
        if p.algorithm == "sliding_window":
            log = state if isinstance(state, SlidingLog) else SlidingLog()
            log.prune(now_us, p.period_us)  # drops only what no longer counts
            return evaluate_sliding(log, now_us, check.cost, p), 0
        if p.algorithm == "fixed_window":
            start, count = state if isinstance(state, list) else (None, 0)
            window = fixed_window(now_us, p)
            return evaluate_fixed(start, count, window, now_us, check.cost, p.capacity), 0
        leases: dict[str, tuple[int, int]] = state if isinstance(state, dict) else {}
        expired = [name for name, (_, expiry) in leases.items() if expiry <= now_us]
        for name in expired:
            del leases[name]
        member = lease_member(check.cost, check.lease)
        return evaluate_concurrency(leases, member, now_us, check.cost, p)

    def _apply(self, check: Check, p: RuleParams, now_us: int, extra: int) -> None:
        key, cost = check.key, check.cost
        entry = self._entries.get(key)
        if entry is not None and entry.algorithm != p.algorithm:
            del self._entries[key]
            entry = None
        if p.algorithm == "gcra":
            if entry is None:
                self._entries[key] = _Entry("gcra", extra, extra)
            else:
                entry.state = entry.expires_us = extra
        elif p.algorithm == "sliding_window":
            if entry is None:
                entry = self._entries[key] = _Entry("sliding_window", SlidingLog(), 0)
            log: SlidingLog = entry.state  # type: ignore[assignment]
            log.record(now_us, cost)
            entry.expires_us = log.expires_us + p.period_us
        elif p.algorithm == "fixed_window":
            start, end = fixed_window(now_us, p)
            if entry is None:
                self._entries[key] = _Entry("fixed_window", [start, cost], end)
            else:
                window: list[int] = entry.state  # type: ignore[assignment]
                window[1] = window[1] + cost if window[0] == start else cost
                window[0] = start
                entry.expires_us = end
        else:
            if entry is None:
                entry = self._entries[key] = _Entry("concurrency", {}, 0)
            leases: dict[str, tuple[int, int]] = entry.state  # type: ignore[assignment]
            leases[lease_member(cost, check.lease)] = (cost, extra)
            entry.expires_us = max(expiry for _, expiry in leases.values())

    def _make_room(self, needed: int, now_us: int, keep: set[str]) -> None:
        entries = self._entries
        examined = 0
        while len(entries) + needed > self._max_keys and examined < _SWEEP_BATCH:
            key, entry = entries.popitem(last=False)
            examined += 1
            if entry.expires_us > now_us or key in keep:
                entries[key] = entry  # still live (or about to be used): rotate to the back
        if len(entries) + needed > self._max_keys:
            raise LimitStoreUnavailable(
                f"memory limit store is full ({self._max_keys} live keys); "
                "raise max_keys or use redis://"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise LimitStoreUnavailable("limit store is closed")
