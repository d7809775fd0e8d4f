"""The Redis script agrees with the reference algorithms, answer for answer.

A seeded random workload (several limits per request, costs, peeks, releases, time
moving in small and large steps across window boundaries) runs against the memory store
and Redis on the caller's clock; every outcome must be identical to the microsecond.
"""

from __future__ import annotations

import random

import pytest

from finward.limits import Check, LimitRule, LimitStore
from tests.limits.conftest import T0, LimitHarness

pytestmark = pytest.mark.redis

RULES = [
    LimitRule("g", "gcra", 5, period_s=1.0),
    LimitRule("gb", "gcra", 3, period_s=2.0, burst=7),
    LimitRule("s", "sliding_window", 6, period_s=3.0),
    LimitRule("f", "fixed_window", 8, period_s=5.0),
    LimitRule("d", "fixed_window", 20, calendar="day", timezone="Europe/Berlin"),
    LimitRule("c", "concurrency", 4, lease_s=2.5),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_redis_and_memory_agree_on_a_random_workload(
    redis_harness: LimitHarness, seed: int
) -> None:
    rng = random.Random(seed)
    memory: LimitStore = await LimitHarness("memory", "memory://").open()
    shared = await redis_harness.open()
    now = T0 + 20 * 3600  # 22:00 Berlin: the run crosses local midnight
    held: list[Check] = []
    seen: set[tuple[str, bool]] = set()
    for step in range(400):
        now += rng.choice([0.0, 0.0, 1e-6, 0.013, 0.1, 0.37, 1.0, 2.5, 60.0])
        op = rng.random()
        if op < 0.1 and held:
            release = [held.pop(rng.randrange(len(held)))]
            await memory.release(release, now)
            await shared.release(release, now)
            continue
        chosen = rng.sample(RULES, rng.randint(1, 4))
        checks = [
            Check(r, f"{r.name}:{rng.randint(1, 2)}", rng.choice([1, 1, 1, 2, 3, 9]), f"l{step}")
            for r in chosen
        ]
        if op < 0.25:
            for c in checks:
                assert await memory.peek(c, now) == await shared.peek(c, now), (step, c)
            continue
        expected = await memory.acquire(checks, now)
        assert await shared.acquire(checks, now) == expected, (step, checks)
        seen.update((o.rule.name, o.allowed) for o in expected)
        if all(o.allowed for o in expected):
            held.extend(c for c in checks if c.rule.algorithm == "concurrency")
    await memory.close()
    # The workload exercised both answers of every limit, or it proved little.
    assert seen == {(r.name, allowed) for r in RULES for allowed in (True, False)}
