"""Cost of one ``acquire``: memory (1 and 3 limits) and Redis (3 limits = 1 round trip).

Run:  .venv/bin/python bench/bench_limits.py [--redis redis://127.0.0.1:6379/15] [--rounds 7]

Prints a table of microseconds per request, as medians over rounds measured in the
same run. The Redis figures are shown next to a plain PING through the same client
(the round-trip floor), sequentially (one request in flight: latency) and with 32 in
flight (throughput per request). Keys are written under a throwaway prefix and deleted
afterwards. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from finward.clock import SystemClock
from finward.limits import Check, LimitRule, LimitStore, LimitStoreUnavailable, open_limit_store

BURST = LimitRule("burst", "gcra", 1_000_000, period_s=1.0)
DAILY = LimitRule("daily", "fixed_window", 10**9, calendar="day", timezone="Europe/Berlin")
PER_MIN = LimitRule("per_min", "sliding_window", 100, period_s=60.0)
KEYS = 64  # distinct clients, round-robin, so the sliding logs stay at ~100 entries
IN_FLIGHT = 32


def requests(rules: list[LimitRule]) -> list[list[Check]]:
    return [[Check(rule, f"{rule.name}:{i:04x}") for rule in rules] for i in range(KEYS)]


async def time_round(call: Callable[[int], Awaitable[object]], n: int, concurrency: int) -> float:
    """Microseconds per call, ``n`` calls with ``concurrency`` in flight."""

    async def worker(offset: int) -> None:
        for i in range(offset, n, concurrency):
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return (time.perf_counter() - started) / n * 1e6


async def measure(
    call: Callable[[int], Awaitable[object]], n: int, rounds: int, concurrency: int = 1
) -> float:
    await time_round(call, n // 10 or 1, concurrency)  # warm up
    return statistics.median([await time_round(call, n, concurrency) for _ in range(rounds)])


def acquirer(store: LimitStore, batch: list[list[Check]]) -> Callable[[int], Awaitable[object]]:
    async def call(i: int) -> object:
        return await store.acquire(batch[i % KEYS], time.time())

    return call


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=20_000, help="memory calls per round")
    parser.add_argument("--n-redis", type=int, default=2_000, help="Redis calls per round")
    args = parser.parse_args()
    clock = SystemClock()
    rows: list[tuple[str, float]] = []

    memory = open_limit_store("memory://", clock=clock)
    await memory.start()
    one, three = requests([BURST]), requests([BURST, DAILY, PER_MIN])
    rows.append(
        ("memory, 1 limit (gcra)", await measure(acquirer(memory, one), args.n, args.rounds))
    )
    rows.append(
        (
            "memory, 3 limits (gcra + day + sliding)",
            await measure(acquirer(memory, three), args.n, args.rounds),
        )
    )
    await memory.close()

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in args.redis else "?"
    redis_store = open_limit_store(f"{args.redis}{sep}prefix={prefix}&timeout_ms=1000", clock=clock)
    try:
        await redis_store.start()
    except LimitStoreUnavailable as exc:
        print(f"Redis skipped: {exc}", file=sys.stderr)
        redis_store = None  # type: ignore[assignment]
    if redis_store is not None:
        client = redis_store._redis  # type: ignore[attr-defined]  # the same pool, for PING

        async def ping(_: int) -> object:
            return await client.ping()

        n, r = args.n_redis, args.rounds
        rows.append(("redis PING (round-trip floor)", await measure(ping, n, r)))
        rows.append(("redis, 1 limit (gcra)", await measure(acquirer(redis_store, one), n, r)))
        rows.append(
            ("redis, 3 limits, 1 round trip", await measure(acquirer(redis_store, three), n, r))
        )
        rows.append((f"redis PING, {IN_FLIGHT} in flight", await measure(ping, n, r, IN_FLIGHT)))
        rows.append(
            (
                f"redis, 3 limits, {IN_FLIGHT} in flight",
                await measure(acquirer(redis_store, three), n, r, IN_FLIGHT),
            )
        )
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.unlink(key)
        await redis_store.close()

    print(
        f"# bench_limits: {platform.python_implementation()} {platform.python_version()}, "
        f"median of {args.rounds} rounds"
    )
    print(f"| {'case':<44} | {'µs / request':>12} |")
    print(f"|{'-' * 46}|{'-' * 14}|")
    for name, micros in rows:
        print(f"| {name:<44} | {micros:>12.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
