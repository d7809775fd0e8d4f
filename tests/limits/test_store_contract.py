"""The LimitStore contract, run against every backend (memory, Redis on the caller's clock).

Both backends must give the same answers to the microsecond: the Redis script is a
transcription of ``finward.limits.algorithms``, and these tests are what holds them
together.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from finward.clock import SystemClock
from finward.limits import (
    Check,
    LimitRule,
    LimitStore,
    LimitStoreUnavailable,
    Outcome,
    open_limit_store,
)
from finward.limits.algorithms import MAX_CHECKS
from tests.limits.conftest import T0, LimitHarness
from tests.services import with_params

US = 1e-6


def rule(name: str, algorithm: Any, limit: int, **options: Any) -> LimitRule:
    return LimitRule(name=name, algorithm=algorithm, limit=limit, **options)


def check(r: LimitRule, key: str = "", cost: int = 1, lease: str = "") -> Check:
    return Check(rule=r, key=key or f"{r.name}:k1", cost=cost, lease=lease)


def utc(*fields: int) -> float:
    return datetime(*fields, tzinfo=UTC).timestamp()  # type: ignore[misc]


async def hit(store: LimitStore, c: Check, now: float) -> Outcome:
    (outcome,) = await store.acquire([c], now)
    return outcome


def shape(o: Outcome) -> tuple[bool, int, float, float]:
    """An outcome's numbers, rounded to the µs they are computed in."""
    return o.allowed, o.remaining, round(o.reset_s, 6), round(o.retry_after_s, 6)


# --- GCRA --------------------------------------------------------------------------------


async def test_gcra_admits_a_burst_then_one_per_interval(store: LimitStore) -> None:
    c = check(rule("rate", "gcra", 10, period_s=1.0))
    for i in range(10):
        assert shape(await hit(store, c, T0)) == (True, 9 - i, round(0.1 * (i + 1), 6), 0.0)
    assert shape(await hit(store, c, T0)) == (False, 0, 1.0, 0.1)
    # The boundary: one emission interval later, to the microsecond.
    assert shape(await hit(store, c, T0 + 0.1 - US)) == (False, 0, 1.0 - 0.1 + US, US)
    assert shape(await hit(store, c, T0 + 0.1)) == (True, 0, 1.0, 0.0)
    # A long pause refills the whole burst, no more.
    assert shape(await hit(store, c, T0 + 60)) == (True, 9, 0.1, 0.0)


async def test_gcra_burst_is_separate_from_the_rate(store: LimitStore) -> None:
    c = check(rule("rate", "gcra", 2, period_s=1.0, burst=5))  # one per 0.5 s, 5 at once
    assert [(await hit(store, c, T0)).allowed for _ in range(6)] == [True] * 5 + [False]
    assert shape(await hit(store, c, T0)) == (False, 0, 2.5, 0.5)
    assert shape(await hit(store, c, T0 + 0.5)) == (True, 0, 2.5, 0.0)


async def test_gcra_costs(store: LimitStore) -> None:
    c = check(rule("rate", "gcra", 10, period_s=1.0))
    heavy = Check(c.rule, c.key, cost=4)
    assert shape(await hit(store, heavy, T0)) == (True, 6, 0.4, 0.0)
    too_heavy = Check(c.rule, c.key, cost=7)
    assert shape(await hit(store, too_heavy, T0)) == (False, 6, 0.4, 0.1)
    assert shape(await hit(store, Check(c.rule, c.key, cost=6), T0)) == (True, 0, 1.0, 0.0)


async def test_cost_above_the_burst_never_passes_and_waits_a_period(store: LimitStore) -> None:
    r = rule("rate", "gcra", 10, period_s=60.0, burst=5)
    assert shape(await hit(store, check(r, cost=6), T0)) == (False, 5, 0.0, 60.0)
    assert shape(await store.peek(check(r), T0)) == (True, 5, 0.0, 0.0)  # nothing consumed


# --- sliding window ----------------------------------------------------------------------


async def test_sliding_window_counts_exactly_over_a_moving_window(store: LimitStore) -> None:
    c = check(rule("count", "sliding_window", 3, period_s=10.0))
    for i in range(3):
        assert shape(await hit(store, c, T0 + i)) == (True, 2 - i, 10.0, 0.0)
    assert shape(await hit(store, c, T0 + 5)) == (False, 0, 7.0, 5.0)
    assert shape(await hit(store, c, T0 + 10 - US)) == (False, 0, 2.0 + US, US)
    # At exactly t + period the oldest hit no longer counts.
    assert shape(await hit(store, c, T0 + 10)) == (True, 0, 10.0, 0.0)
    assert shape(await hit(store, c, T0 + 10.5)) == (False, 0, 9.5, 0.5)


async def test_sliding_window_costs_and_retry_after(store: LimitStore) -> None:
    r = rule("count", "sliding_window", 10, period_s=60.0)
    assert (await hit(store, check(r, cost=4), T0)).allowed
    assert (await hit(store, check(r, cost=4), T0 + 10)).allowed
    # 8 used, 5 asked: 3 units must leave, and the first 4 leave together at T0 + 60.
    assert shape(await hit(store, check(r, cost=5), T0 + 20)) == (False, 2, 50.0, 40.0)
    # 8 used + 7 asked: both earlier hits must leave; the second leaves at T0 + 70.
    assert shape(await hit(store, check(r, cost=7), T0 + 20)) == (False, 2, 50.0, 50.0)
    assert shape(await hit(store, check(r, cost=11), T0 + 20)) == (False, 2, 50.0, 60.0)
    assert shape(await hit(store, check(r, cost=2), T0 + 20)) == (True, 0, 60.0, 0.0)
    assert shape(await hit(store, check(r, cost=4), T0 + 60)) == (True, 0, 60.0, 0.0)


# --- fixed windows -----------------------------------------------------------------------


async def test_fixed_window_resets_at_the_epoch_aligned_boundary(store: LimitStore) -> None:
    c = check(rule("quota", "fixed_window", 3, period_s=60.0))
    start = T0  # a multiple of 60 s
    for i in range(3):
        assert shape(await hit(store, c, start + 59)) == (True, 2 - i, 1.0, 0.0)
    assert shape(await hit(store, c, start + 59)) == (False, 0, 1.0, 1.0)
    assert shape(await hit(store, c, start + 60 - US)) == (False, 0, US, US)
    assert shape(await hit(store, c, start + 60)) == (True, 2, 60.0, 0.0)
    # A cost above the limit waits a whole window.
    assert shape(await hit(store, check(c.rule, cost=4), start + 61)) == (False, 2, 59.0, 60.0)


async def test_calendar_day_in_berlin_across_spring_forward(store: LimitStore) -> None:
    r = rule("daily", "fixed_window", 2, calendar="day", timezone="Europe/Berlin")
    c = check(r)
    before = utc(2026, 3, 28, 22, 59, 59)  # 23:59:59 CET on Saturday 28 March
    assert [(await hit(store, c, before)).allowed for _ in range(3)] == [True, True, False]
    assert shape(await hit(store, c, before)) == (False, 0, 1.0, 1.0)
    # Local midnight of Sunday 29 March is 23:00 UTC; that day has 23 hours (02:00 -> 03:00).
    midnight = utc(2026, 3, 28, 23, 0, 0)
    assert shape(await hit(store, c, midnight)) == (True, 1, 23 * 3600.0, 0.0)
    assert (await hit(store, c, utc(2026, 3, 29, 21, 59, 59))).allowed
    assert not (await hit(store, c, utc(2026, 3, 29, 21, 59, 59))).allowed
    # The next local midnight (CEST) is 22:00 UTC.
    assert shape(await hit(store, c, utc(2026, 3, 29, 22, 0, 0))) == (True, 1, 86400.0, 0.0)


async def test_calendar_day_in_berlin_across_fall_back(store: LimitStore) -> None:
    c = check(rule("daily", "fixed_window", 1, calendar="day", timezone="Europe/Berlin"))
    midnight = utc(2026, 10, 24, 22, 0, 0)  # 00:00 CEST on Sunday 25 October: 25 hours
    assert shape(await hit(store, c, midnight)) == (True, 0, 25 * 3600.0, 0.0)
    assert shape(await hit(store, c, utc(2026, 10, 25, 22, 59, 59))) == (False, 0, 1.0, 1.0)
    assert (await hit(store, c, utc(2026, 10, 25, 23, 0, 0))).allowed


async def test_calendar_month_rolls_over_at_local_midnight(store: LimitStore) -> None:
    c = check(rule("monthly", "fixed_window", 1, calendar="month", timezone="Europe/Berlin"))
    assert (await hit(store, c, utc(2026, 1, 31, 22, 59, 59))).allowed  # 23:59:59 on Jan 31
    assert shape(await hit(store, c, utc(2026, 1, 31, 22, 59, 59))) == (False, 0, 1.0, 1.0)
    # February 2026 has 28 days and no DST change.
    assert shape(await hit(store, c, utc(2026, 1, 31, 23))) == (True, 0, 28 * 86400.0, 0.0)
    # March has 31 days minus the hour lost on the 29th.
    march = utc(2026, 2, 28, 23)
    assert shape(await hit(store, c, march)) == (True, 0, 31 * 86400.0 - 3600, 0.0)
    # December rolls over into the next year.
    assert shape(await hit(store, c, utc(2026, 12, 31, 23))) == (True, 0, 31 * 86400.0, 0.0)


# --- concurrency -------------------------------------------------------------------------


async def test_concurrency_slots_are_taken_released_and_leases_expire(store: LimitStore) -> None:
    r = rule("inflight", "concurrency", 2, lease_s=30.0)
    a, b, c = (check(r, lease=name) for name in ("req-a", "req-b", "req-c"))
    assert shape(await hit(store, a, T0)) == (True, 1, 30.0, 0.0)
    assert shape(await hit(store, b, T0 + 1)) == (True, 0, 30.0, 0.0)
    # Refused until req-a's lease runs out (or someone releases).
    assert shape(await hit(store, c, T0 + 2)) == (False, 0, 29.0, 28.0)
    await store.release([a], T0 + 3)
    assert shape(await hit(store, c, T0 + 3)) == (True, 0, 30.0, 0.0)
    # Nobody releases now: req-b's lease expires at exactly T0 + 31.
    d = check(r, lease="req-d")
    assert shape(await hit(store, d, T0 + 31 - US)) == (False, 0, 2.0 + US, US)
    assert shape(await hit(store, d, T0 + 31)) == (True, 0, 30.0, 0.0)


async def test_concurrency_renewal_costs_and_odd_releases(store: LimitStore) -> None:
    r = rule("inflight", "concurrency", 3, lease_s=10.0)
    a = check(r, lease="a", cost=2)
    assert shape(await hit(store, a, T0)) == (True, 1, 10.0, 0.0)
    assert shape(await hit(store, a, T0 + 5)) == (True, 1, 10.0, 0.0)  # renewed, not doubled
    assert shape(await hit(store, check(r, lease="b", cost=2), T0 + 6)) == (False, 1, 9.0, 9.0)
    assert shape(await hit(store, check(r, lease="b", cost=4), T0 + 6)) == (False, 1, 9.0, 10.0)
    # Releasing what was never taken, or a non-concurrency check, is harmless.
    await store.release([check(r, lease="never"), check(rule("g", "gcra", 1))], T0 + 6)
    await store.release([a], T0 + 6)
    await store.release([a], T0 + 6)
    # Lease ids are opaque: digits, spaces and colons travel intact.
    odd = check(r, lease="7 12: id with spaces", cost=3)
    assert (await hit(store, odd, T0 + 6)).remaining == 0
    await store.release([odd], T0 + 6)
    assert shape(await store.peek(check(r, lease="x"), T0 + 6)) == (True, 3, 0.0, 0.0)


# --- several limits per request ----------------------------------------------------------


async def test_one_refusal_consumes_nothing_from_the_other_limits(store: LimitStore) -> None:
    burst = rule("burst", "gcra", 20, period_s=1.0)
    daily = rule("daily", "fixed_window", 1, calendar="day", timezone="Europe/Berlin")
    per_min = rule("per_min", "sliding_window", 100, period_s=60.0)
    inflight = rule("inflight", "concurrency", 5, lease_s=30.0)
    first = [check(burst), check(daily), check(per_min), check(inflight, lease="r1")]
    assert all(o.allowed for o in await store.acquire(first, T0))
    second = [check(burst), check(daily), check(per_min), check(inflight, lease="r2")]
    outcomes = await store.acquire(second, T0 + 0.01)
    assert [o.allowed for o in outcomes] == [True, False, True, True]
    assert [o.rule.name for o in outcomes] == ["burst", "daily", "per_min", "inflight"]
    # The passing checks report what they would have left, and none of it was consumed.
    assert outcomes[2].remaining == 98
    assert (await store.peek(check(burst), T0 + 0.01)).remaining == 19
    assert (await store.peek(check(per_min), T0 + 0.01)).remaining == 99
    assert (await store.peek(check(inflight, lease="x"), T0 + 0.01)).remaining == 4


async def test_weights_apply_to_every_limit_of_the_request(store: LimitStore) -> None:
    rate = rule("rate", "gcra", 10, period_s=1.0)
    quota = rule("quota", "fixed_window", 25, period_s=3600.0)
    export = [check(rate, cost=10), check(quota, cost=10)]
    assert [o.remaining for o in await store.acquire(export, T0)] == [0, 15]
    refused = await store.acquire(export, T0 + 0.5)
    assert [o.allowed for o in refused] == [False, True]
    assert refused[0].retry_after_s == pytest.approx(0.5)
    assert [o.remaining for o in await store.acquire(export, T0 + 1)] == [0, 5]
    assert [o.allowed for o in await store.acquire(export, T0 + 2)] == [True, False]


async def test_an_empty_request_counts_nothing(store: LimitStore) -> None:
    assert await store.acquire([], T0) == ()
    await store.release([], T0)


# --- peek --------------------------------------------------------------------------------


async def test_peek_reports_without_consuming(store: LimitStore) -> None:
    r = rule("count", "sliding_window", 2, period_s=10.0)
    assert shape(await store.peek(check(r), T0)) == (True, 2, 0.0, 0.0)
    await hit(store, check(r), T0)
    await hit(store, check(r), T0 + 1)
    for _ in range(3):
        assert shape(await store.peek(check(r), T0 + 2)) == (False, 0, 9.0, 8.0)
    assert shape(await store.peek(check(r, cost=3), T0 + 2)) == (False, 0, 9.0, 10.0)
    gcra = rule("rate", "gcra", 5, period_s=1.0)
    await hit(store, check(gcra, cost=2), T0)
    assert shape(await store.peek(check(gcra), T0 + 0.1)) == (True, 3, 0.3, 0.0)
    assert shape(await store.peek(check(gcra), T0 + 0.1)) == (True, 3, 0.3, 0.0)


# --- keys, validation, lifecycle ---------------------------------------------------------


async def test_a_key_reused_by_another_algorithm_starts_afresh(store: LimitStore) -> None:
    key = "renamed:k"
    old = rule("x", "sliding_window", 5, period_s=60.0)
    await hit(store, check(old, key=key, cost=5), T0)
    for algorithm, options in [
        ("gcra", {"period_s": 60.0}),
        ("fixed_window", {"period_s": 60.0}),
        ("concurrency", {"lease_s": 60.0}),
        ("sliding_window", {"period_s": 60.0}),
    ]:
        new = rule("x", algorithm, 5, **options)
        outcome = await hit(store, check(new, key=key, lease="l"), T0 + 1)
        assert (outcome.allowed, outcome.remaining) == (True, 4), algorithm


@pytest.mark.parametrize(
    "checks",
    [
        pytest.param(lambda r: [check(r), check(r)], id="duplicate-key"),
        pytest.param(lambda r: [check(r, cost=0)], id="zero-cost"),
        pytest.param(lambda r: [check(r, key="x" * 513)], id="long-key"),
        pytest.param(lambda r: [check(rule("c", "concurrency", 1))], id="no-lease"),
        pytest.param(
            lambda r: [check(r, key=f"k{i}") for i in range(MAX_CHECKS + 1)], id="too-many"
        ),
        pytest.param(lambda r: [check(rule("bad", "gcra", 0))], id="zero-limit"),
        pytest.param(
            lambda r: [check(rule("tz", "fixed_window", 1, calendar="day", timezone="Mars/X"))],
            id="unknown-zone",
        ),
    ],
)
async def test_invalid_requests_are_refused_before_counting(store: LimitStore, checks: Any) -> None:
    r = rule("rate", "gcra", 10)
    with pytest.raises(ValueError):
        await store.acquire(checks(r), T0)
    assert (await store.peek(check(r), T0)).remaining == 10


async def test_stores_on_one_url_share_counts_only_when_shared(harness: LimitHarness) -> None:
    first, second = await harness.open(), await harness.open()
    assert first.shared is second.shared is (harness.backend == "redis")
    c = check(rule("quota", "fixed_window", 2, period_s=60.0))
    await hit(first, c, T0)
    await hit(first, c, T0)
    assert (await hit(second, c, T0)).allowed is (not second.shared)


async def test_a_closed_store_refuses(store: LimitStore) -> None:
    await store.close()
    with pytest.raises(LimitStoreUnavailable):
        await store.acquire([check(rule("rate", "gcra", 1))], T0)
    await store.close()  # idempotent


# --- Redis specifics ---------------------------------------------------------------------


@pytest.mark.redis
async def test_redis_keys_are_prefixed_and_expire_when_idle(redis_harness: LimitHarness) -> None:
    harness = redis_harness
    assert harness.raw is not None
    store = await harness.open()
    cases = [
        (check(rule("g", "gcra", 10, period_s=1.0), key="g:k", cost=3), 300),
        (check(rule("s", "sliding_window", 5, period_s=10.0), key="s:k", cost=2), 10_000),
        (check(rule("f", "fixed_window", 5, period_s=60.0), key="f:k"), 50_000),
        (check(rule("c", "concurrency", 5, lease_s=30.0), key="c:k", lease="l"), 30_000),
        (
            check(rule("d", "fixed_window", 5, calendar="day"), key="d:k"),
            (86_400 - 8 * 3600 - 10) * 1000,  # T0 is 08:00 UTC
        ),
    ]
    assert all(o.allowed for o in await store.acquire([c for c, _ in cases], T0 + 10))
    for c, ttl_ms in cases:
        name = f"{harness.prefix}:rl:{c.key}"
        assert ttl_ms - 250 < harness.raw.pttl(name) <= ttl_ms, c.rule.algorithm
    assert harness.raw.llen(f"{harness.prefix}:rl:s:k") == 2  # one stamp per cost unit
    await store.release([cases[3][0]], T0 + 11)
    assert harness.raw.zcard(f"{harness.prefix}:rl:c:k") == 0


@pytest.mark.redis
async def test_redis_server_clock_is_the_default(redis_server_url: str, redis_prefix: str) -> None:
    """Without clock=client the script counts on Redis's clock: a caller whose clock is
    wildly wrong (here: the epoch) still counts in the right windows."""
    url = with_params(redis_server_url, timeout_ms="375", prefix=redis_prefix)
    store = open_limit_store(url, clock=SystemClock())
    await store.start()
    try:
        quota = check(rule("quota", "fixed_window", 2, period_s=3600.0))
        rate = check(rule("rate", "gcra", 1, period_s=3600.0))
        assert [o.allowed for o in await store.acquire([quota, rate], 0.0)] == [True, True]
        refused = await store.acquire([quota, rate], 0.0)
        assert [o.allowed for o in refused] == [True, False]
        assert 3599 < refused[1].retry_after_s <= 3600  # measured from Redis's now
        outcome = await hit(store, quota, 12345.0)
        assert outcome.allowed and outcome.remaining == 0
        assert 0 < outcome.reset_s <= 3600
        daily = check(rule("daily", "fixed_window", 1, calendar="day"))
        assert (await hit(store, daily, time.time())).allowed
        assert not (await hit(store, daily, time.time())).allowed
        assert 0 < (await store.peek(daily, time.time())).reset_s <= 86_400
    finally:
        await store.close()
