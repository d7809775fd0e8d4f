"""``redis://`` / ``rediss://`` limits: exact across workers and replicas.

One round trip per request: ``finward/limits/limits.lua`` evaluates every check of the
request atomically and applies them only if all pass. The script is sent once (EVALSHA;
redis-py reloads it on NOSCRIPT, e.g. after a Redis restart or SCRIPT FLUSH).

Keys (``P`` is the ``prefix`` URL option, default ``finward``; ``K`` the check's key,
already bounded by the policy)::

    P:rl:K   string  GCRA theoretical arrival time (µs)       expires when the TAT passes
    P:rl:K   list    sliding window, one stamp per cost unit  expires a period after the last
    P:rl:K   hash    fixed window {s: start µs, n: count}     expires at the window's end
    P:rl:K   zset    concurrency leases member -> expiry µs   expires with the last lease

Time. By default the script reads Redis's clock (``TIME``), so replicas whose clocks
disagree still count in the same windows. ``clock=client`` in the URL (or
``server_time=False``) uses the ``now`` passed by the caller instead: deterministic for
tests and benchmarks, but then replicas must keep their clocks in sync. Calendar windows
are computed here with zoneinfo around the caller's clock, together with the following
window; the script picks the one Redis's clock falls in (a skew beyond one whole window
is an error).

Failures: as :mod:`finward.storage.redis_store`. One deadline (``timeout_ms``) covers the
pool wait, connecting, one immediate reconnect and the script; errors and timeouts raise
``LimitStoreUnavailable``. The pool reconnects by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from importlib.resources import files
from typing import TypeVar

from redis.exceptions import RedisError

from finward.clock import Clock
from finward.limits.algorithms import (
    RuleParams,
    Verdict,
    calendar_window,
    lease_member,
    to_us,
)
from finward.limits.base import Check, LimitStoreUnavailable, Outcome
from finward.limits.memory import RuleCache, check_lease, check_request, peeked
from finward.storage.base import RedisStoreConfig
from finward.storage.redis_store import make_client, unavailable

_T = TypeVar("_T")

LIMITS_LUA = files("finward.limits").joinpath("limits.lua").read_text(encoding="utf-8")
_CODES = {"gcra": "g", "sliding_window": "s", "fixed_window": "f", "concurrency": "k"}


class RedisLimitStore:
    """Shared :class:`~finward.limits.base.LimitStore` over Redis 6.2+.

    Open one per worker process, after the fork, and ``await start()`` in its loop.
    """

    def __init__(self, config: RedisStoreConfig, *, clock: Clock, server_time: bool = True) -> None:
        self._config = config
        self._clock = clock
        self._server_time = server_time
        self._timeout_s = config.timeout_ms / 1000
        self._prefix = f"{config.prefix}:rl:"
        self._redis = make_client(config)
        self._script = self._redis.register_script(LIMITS_LUA)
        self._rules = RuleCache()
        # Calendar windows by zone and calendar: (start, end, following end).
        self._windows: dict[tuple[object, str], tuple[int, int, int]] = {}
        self._pid = os.getpid()
        self._slots = asyncio.Semaphore(config.max_connections)
        self._closed = False

    def __repr__(self) -> str:
        clock = "server" if self._server_time else "client"
        return f"RedisLimitStore({self._config.redacted_url}, clock={clock})"

    @property
    def shared(self) -> bool:
        return True

    async def start(self) -> None:
        """Load the script (one round trip). Raises ``LimitStoreUnavailable`` when Redis
        does not answer; the store stays usable and connects on a later call."""
        script = self._script

        async def load() -> None:
            script.sha = await self._redis.script_load(LIMITS_LUA)

        await self._run(load)

    async def acquire(self, checks: Sequence[Check], now: float) -> tuple[Outcome, ...]:
        self._check_usable()
        check_request(checks)
        if not checks:
            return ()
        verdicts = self._verdicts(checks, await self._call("a", checks, now))
        return tuple(v.to_outcome(c.rule) for v, c in zip(verdicts, checks, strict=True))

    async def peek(self, check: Check, now: float) -> Outcome:
        self._check_usable()
        check_request((check,))
        # With a request too large to ever pass, whose refusal reports the state as it
        # is: both evaluated in the same round trip (peek never writes).
        probe = replace(check, cost=self._rules.get(check.rule).capacity + 1)
        verdict, state = self._verdicts((check, probe), await self._call("p", (check, probe), now))
        return peeked(verdict, state).to_outcome(check.rule)

    async def release(self, checks: Sequence[Check], now: float) -> None:
        self._check_usable()
        slots = [check for check in checks if check.rule.algorithm == "concurrency"]
        for check in slots:
            check_lease(check.lease)
        if slots:
            await self._call("r", slots, now)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._redis.aclose()

    # --- internals ----------------------------------------------------------------------

    async def _call(self, op: str, checks: Sequence[Check], now: float) -> list[int]:
        now_us = to_us(now)
        keys = [self._prefix + check.key for check in checks]
        args: list[str | int] = [op, "" if self._server_time else now_us]
        args.extend(self._arguments(check, now_us) for check in checks)
        script = self._script
        reply: list[int] = await self._run(lambda: script(keys=keys, args=args))
        return reply

    def _arguments(self, check: Check, now_us: int) -> str:
        """One check as the script's "<algorithm> <cost> <numbers…>" (one argument per
        check: encoding arguments is most of a call's client-side cost)."""
        p = self._rules.get(check.rule)
        cost = check.cost
        if p.algorithm == "gcra":
            return f"g {cost} {p.capacity} {p.interval_us} {p.period_us}"
        if p.algorithm == "sliding_window":
            return f"s {cost} {p.capacity} {p.period_us}"
        if p.algorithm == "concurrency":
            return f"k {cost} {p.capacity} {p.lease_us} {lease_member(cost, check.lease)}"
        if p.calendar is None:
            return f"f {cost} {p.capacity} {p.period_us}"
        start, end, following = self._calendar(p, now_us)
        return f"c {cost} {p.capacity} {start} {end} {following}"

    def _calendar(self, p: RuleParams, now_us: int) -> tuple[int, int, int]:
        assert p.calendar is not None and p.zone is not None
        cache_key = (p.zone, p.calendar)
        windows = self._windows.get(cache_key)
        if windows is None or not windows[0] <= now_us < windows[1]:
            start, end = calendar_window(now_us, p.calendar, p.zone)
            windows = (start, end, calendar_window(end, p.calendar, p.zone)[1])
            if len(self._windows) >= 1024:  # zones x calendars of the configuration
                self._windows.clear()
            self._windows[cache_key] = windows
        return windows

    @staticmethod
    def _verdicts(checks: Sequence[Check], reply: list[int]) -> list[Verdict]:
        if not isinstance(reply, list) or len(reply) != 1 + 4 * len(checks):
            raise LimitStoreUnavailable("limit store gave a malformed reply")
        return [
            Verdict(bool(reply[i]), int(reply[i + 1]), int(reply[i + 2]), int(reply[i + 3]))
            for i in range(1, len(reply), 4)
        ]

    async def _run(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        self._check_usable()
        try:
            # One deadline for the whole call: pool wait, connect, a reconnect, a script
            # reload after NOSCRIPT, the script and its reply.
            async with asyncio.timeout(self._timeout_s), self._slots:
                return await operation()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            raise LimitStoreUnavailable(f"limit store {unavailable(exc, self._config)}") from exc

    def _check_usable(self) -> None:
        if self._closed:
            raise LimitStoreUnavailable("limit store is closed")
        if os.getpid() != self._pid:
            raise LimitStoreUnavailable(
                "limit store used in a forked process; open one per worker after the fork"
            )
