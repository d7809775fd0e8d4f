"""The algorithms against brute-force models (Hypothesis), calendar windows, rule bounds.

The memory store is driven synchronously (``run`` below): it never suspends, which is
what makes its ``acquire`` atomic on an event loop, so a suspension is a failure here.
"""

from __future__ import annotations

import math
from collections.abc import Coroutine
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finward.limits import Check, LimitRule, MemoryLimitStore, Outcome
from finward.limits.algorithms import (
    MAX_LIMIT,
    US_PER_S,
    calendar_window,
    compile_rule,
)
from tests.limits.conftest import T0

_T = TypeVar("_T")


def run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("the memory store suspended inside a call")


def us(outcome: Outcome) -> tuple[bool, int, int, int]:
    return (
        outcome.allowed,
        outcome.remaining,
        round(outcome.reset_s * US_PER_S),
        round(outcome.retry_after_s * US_PER_S),
    )


# Steps of (microseconds since the previous request, cost); time never goes back.
steps = st.lists(st.tuples(st.integers(0, 3_000_000), st.integers(1, 12)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 10),
    period_ms=st.sampled_from([1, 7, 1000, 2500, 3333]),
    steps=steps,
)
def test_sliding_window_matches_a_log_of_every_unit(
    limit: int, period_ms: int, steps: list[tuple[int, int]]
) -> None:
    rule = LimitRule("s", "sliding_window", limit, period_s=period_ms / 1000)
    period = period_ms * 1000
    store = MemoryLimitStore()
    stamps: list[int] = []  # the model: one timestamp per admitted cost unit
    now = round(T0 * US_PER_S)
    for delta, cost in steps:
        now += delta
        active = sorted(s for s in stamps if s > now - period)
        used = len(active)
        if cost <= limit and used + cost <= limit:
            stamps.extend([now] * cost)
            expected = (True, limit - used - cost, period, 0)
        else:
            reset = active[-1] + period - now if active else 0
            need = used + cost - limit
            retry = period if cost > limit else active[need - 1] + period - now
            expected = (False, limit - used, reset, retry)
        (outcome,) = run(store.acquire([Check(rule, "k", cost)], now / US_PER_S))
        assert us(outcome) == expected


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 10),
    burst=st.integers(0, 12),
    period_ms=st.sampled_from([1, 1000, 3000, 2500]),
    steps=steps,
)
def test_gcra_matches_a_token_bucket(
    limit: int, burst: int, period_ms: int, steps: list[tuple[int, int]]
) -> None:
    rule = LimitRule("g", "gcra", limit, period_s=period_ms / 1000, burst=burst)
    capacity = burst or limit
    period = period_ms * 1000
    interval = math.ceil(period / limit)  # a unit every interval µs (rounded up)
    store = MemoryLimitStore()
    tokens = Fraction(capacity)  # the model: a bucket refilled continuously, exactly
    now = round(T0 * US_PER_S)
    for delta, cost in steps:
        now += delta
        tokens = min(Fraction(capacity), tokens + Fraction(delta, interval))
        if cost <= tokens:
            tokens -= cost
            expected = (True, math.floor(tokens), int((capacity - tokens) * interval), 0)
        else:
            retry = period if cost > capacity else int((cost - tokens) * interval)
            expected = (False, math.floor(tokens), int((capacity - tokens) * interval), retry)
        (outcome,) = run(store.acquire([Check(rule, "k", cost)], now / US_PER_S))
        assert us(outcome) == expected


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 6), steps=steps, extra=st.integers(0, 2))
def test_a_refused_check_never_consumes_the_others(
    limit: int, steps: list[tuple[int, int]], extra: int
) -> None:
    """Acquiring [A, B] changes A only when B passes too: A alone tracks a twin store."""
    a = LimitRule("a", "sliding_window", limit + extra, period_s=1.0)
    b = LimitRule("b", "gcra", limit, period_s=1.0)
    both, alone = MemoryLimitStore(), MemoryLimitStore()
    now = T0
    for delta, cost in steps:
        now += delta / US_PER_S
        outcomes = run(both.acquire([Check(a, "a", cost), Check(b, "b", cost)], now))
        if all(o.allowed for o in outcomes):
            assert run(alone.acquire([Check(a, "a", cost)], now))[0].allowed
        assert us(run(both.peek(Check(a, "a"), now))) == us(run(alone.peek(Check(a, "a"), now)))


# --- calendar windows --------------------------------------------------------------------


def utc_us(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp()) * US_PER_S  # type: ignore[misc]


@pytest.mark.parametrize(
    ("zone", "calendar", "instant", "window"),
    [
        # Berlin, spring forward: Sunday 29 March 2026 has 23 hours.
        ("Europe/Berlin", "day", (2026, 3, 29, 12), ((2026, 3, 28, 23), (2026, 3, 29, 22))),
        # Berlin, fall back: Sunday 25 October 2026 has 25 hours.
        ("Europe/Berlin", "day", (2026, 10, 25, 12), ((2026, 10, 24, 22), (2026, 10, 25, 23))),
        # The last second of a day belongs to it; the next to the next day.
        ("Europe/Berlin", "day", (2026, 3, 28, 22, 59, 59), ((2026, 3, 27, 23), (2026, 3, 28, 23))),
        ("Europe/Berlin", "month", (2026, 2, 28, 23), ((2026, 2, 28, 23), (2026, 3, 31, 22))),
        ("Europe/Berlin", "month", (2026, 12, 31, 23), ((2026, 12, 31, 23), (2027, 1, 31, 23))),
        ("UTC", "month", (2028, 2, 29, 23, 59, 59), ((2028, 2, 1), (2028, 3, 1))),
        # New York, spring forward at 02:00 local (07:00 UTC).
        ("America/New_York", "day", (2026, 3, 8, 12), ((2026, 3, 8, 5), (2026, 3, 9, 4))),
        # Chile moves its clocks at 24:00. On 5 April 2025, 24:00 becomes 23:00 again, so
        # 5 April has 25 hours and 6 April starts at 04:00 UTC ...
        ("America/Santiago", "day", (2025, 4, 5, 12), ((2025, 4, 5, 3), (2025, 4, 6, 4))),
        ("America/Santiago", "day", (2025, 4, 6, 12), ((2025, 4, 6, 4), (2025, 4, 7, 4))),
        # ... and 7 September 2025 has no local midnight: the day starts at 01:00.
        ("America/Santiago", "day", (2025, 9, 7, 12), ((2025, 9, 7, 4), (2025, 9, 8, 3))),
    ],
)
def test_calendar_windows(zone: str, calendar: Any, instant: Any, window: Any) -> None:
    from zoneinfo import ZoneInfo

    start, end = (utc_us(*bound) for bound in window)
    assert calendar_window(utc_us(*instant), calendar, ZoneInfo(zone)) == (start, end)
    assert calendar_window(start, calendar, ZoneInfo(zone)) == (start, end)
    assert calendar_window(end - 1, calendar, ZoneInfo(zone)) == (start, end)


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(
        ["UTC", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "Asia/Kolkata"]
    ),
    calendar=st.sampled_from(["day", "month"]),
    instant=st.integers(utc_us(2024, 1, 1) // US_PER_S, utc_us(2028, 1, 1) // US_PER_S),
)
def test_a_calendar_window_is_exactly_the_instants_of_its_local_date(
    zone: str, calendar: Any, instant: int
) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    now = instant * US_PER_S

    def local(t_us: int) -> tuple[int, ...]:
        d = datetime.fromtimestamp(t_us // US_PER_S, tz)
        return (d.year, d.month, d.day) if calendar == "day" else (d.year, d.month)

    start, end = calendar_window(now, calendar, tz)
    assert start <= now < end
    assert local(start) == local(now) == local(end - US_PER_S)
    assert local(start - US_PER_S) < local(now) < local(end)


# --- rule bounds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"algorithm": "gcra", "limit": 0},
        {"algorithm": "gcra", "limit": MAX_LIMIT + 1},
        {"algorithm": "gcra", "limit": True},
        {"algorithm": "gcra", "limit": 1, "period_s": 0.0},
        {"algorithm": "gcra", "limit": 1, "period_s": math.inf},
        {"algorithm": "gcra", "limit": 1, "period_s": 1e-9},
        {"algorithm": "gcra", "limit": 1, "period_s": 86_400 * 401},
        {"algorithm": "gcra", "limit": 1, "burst": -1},
        {"algorithm": "gcra", "limit": 1, "period_s": 86_400 * 365, "burst": 10**6},
        {"algorithm": "concurrency", "limit": 1, "lease_s": 0.0},
        {"algorithm": "concurrency", "limit": 1, "lease_s": 8 * 86_400.0},
        {"algorithm": "fixed_window", "limit": 1, "calendar": "week"},
        {"algorithm": "fixed_window", "limit": 1, "calendar": "day", "timezone": "Nowhere/X"},
        {"algorithm": "fixed_window", "limit": 1, "calendar": "day", "timezone": "../etc/x"},
        {"algorithm": "leaky", "limit": 1},
    ],
)
def test_rules_out_of_bounds_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        compile_rule(LimitRule(name="r", **options))


def test_gcra_interval_rounds_up_never_faster_than_configured() -> None:
    params = compile_rule(LimitRule("r", "gcra", 3, period_s=1.0))
    assert params.interval_us == 333_334
    assert params.capacity == 3
