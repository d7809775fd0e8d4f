"""The limit algorithms as pure functions over plain state (sans-IO).

The memory store runs these directly; ``limits.lua`` (the Redis store) is a transcription
that must give the same answers, which the contract tests check on both backends.

Time is integer **microseconds** since the epoch. Every value stays below 2**53, so the
arithmetic is exact in Python ints and in Lua's doubles alike, and the two agree to the
microsecond: no float drift at window boundaries (``0.1 * 10 != 1.0``). A GCRA emission
interval that is not a whole number of microseconds is rounded *up* (e.g. 3 per second
is one every 333 334 µs): at most 1 µs per unit slower than configured, never faster.

Conventions shared by every algorithm (see ``Outcome``):

- ``remaining``: cost units that would be admitted right now, after this request;
- ``reset_us``: time until the quota is fully available again (0 when it already is);
- ``retry_us``: for a refusal, time until this same request would pass, assuming no
  other traffic (for concurrency, assuming no slot is released early). A request whose
  cost exceeds the capacity (``limit``, or the GCRA ``burst``) can never pass: it is
  refused with ``retry_us`` = the full period (GCRA and sliding: ``period_s``; fixed:
  the window's length; concurrency: ``lease_s``) so that clients back off for a while
  instead of retrying at once.
- A sliding-window entry or a concurrency lease made at ``t`` counts while
  ``now < t + period`` (or ``t + lease``): at exactly ``t + period`` it is gone.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from finward.limits.base import Algorithm, Calendar, LimitRule, Outcome

US_PER_S = 1_000_000
# Bounds of a compiled rule. Chosen so that every product the algorithms form (a burst
# times an interval, now plus a period) stays below 2**53, where doubles (Lua) are exact.
MAX_LIMIT = 10**9
MAX_PERIOD_S = 400 * 86_400  # longer than any calendar month or year-long window
MAX_LEASE_S = 7 * 86_400  # a request in flight for a week is a leak, not a request
MAX_SPAN_US = 2**50  # GCRA burst x interval: ~35 years
# Caps on what callers pass per request (checked before anything is evaluated).
MAX_CHECKS = 16  # limits per request; a request hitting more is a configuration mistake
MAX_KEY_CHARS = 512  # keys are "<rule>:<digest>" built by the policy
MAX_LEASE_CHARS = 128  # a request id or a UUID


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check's answer in microseconds; ``to_outcome`` makes the public ``Outcome``."""

    allowed: bool
    remaining: int
    reset_us: int
    retry_us: int = 0

    def to_outcome(self, rule: LimitRule) -> Outcome:
        return Outcome(
            rule=rule,
            allowed=self.allowed,
            remaining=self.remaining,
            reset_s=self.reset_us / US_PER_S,
            retry_after_s=self.retry_us / US_PER_S,
        )


@dataclass(frozen=True, slots=True)
class RuleParams:
    """A rule's numbers in microseconds, validated. ``capacity`` is the most one key can
    hold: ``limit``, or ``burst`` for GCRA."""

    algorithm: Algorithm
    capacity: int
    period_us: int
    interval_us: int = 0  # gcra: time per cost unit
    lease_us: int = 0  # concurrency
    calendar: Calendar | None = None
    zone: ZoneInfo | None = None


def to_us(seconds: float) -> int:
    """Seconds to integer microseconds (nearest)."""
    return round(seconds * US_PER_S)


def compile_rule(rule: LimitRule) -> RuleParams:
    """Validate a rule and precompute its numbers; ``ValueError`` names the problem."""
    if rule.algorithm not in ("gcra", "sliding_window", "fixed_window", "concurrency"):
        raise ValueError(f"limit {rule.name!r}: unknown algorithm {rule.algorithm!r}")
    if isinstance(rule.limit, bool) or not isinstance(rule.limit, int):
        raise ValueError(f"limit {rule.name!r}: limit must be an integer")
    if not 1 <= rule.limit <= MAX_LIMIT:
        raise ValueError(f"limit {rule.name!r}: limit must be from 1 to {MAX_LIMIT}")
    if not (math.isfinite(rule.period_s) and 0 < rule.period_s <= MAX_PERIOD_S):
        raise ValueError(f"limit {rule.name!r}: period_s must be in (0, {MAX_PERIOD_S}]")
    period_us = to_us(rule.period_s)
    if period_us < 1:
        raise ValueError(f"limit {rule.name!r}: period_s must be at least 1 µs")
    if rule.algorithm == "gcra":
        burst = rule.burst or rule.limit
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_LIMIT:
            raise ValueError(f"limit {rule.name!r}: burst must be from 0 to {MAX_LIMIT}")
        interval_us = -(-period_us // rule.limit)  # ceil: never faster than configured
        if burst * interval_us > MAX_SPAN_US:
            raise ValueError(f"limit {rule.name!r}: burst x period / limit is too long")
        return RuleParams("gcra", burst, period_us, interval_us=interval_us)
    if rule.algorithm == "concurrency":
        if not (math.isfinite(rule.lease_s) and 0 < rule.lease_s <= MAX_LEASE_S):
            raise ValueError(f"limit {rule.name!r}: lease_s must be in (0, {MAX_LEASE_S}]")
        lease_us = max(1, to_us(rule.lease_s))
        return RuleParams("concurrency", rule.limit, period_us, lease_us=lease_us)
    if rule.algorithm == "fixed_window" and rule.calendar is not None:
        if rule.calendar not in ("day", "month"):
            raise ValueError(f"limit {rule.name!r}: calendar must be 'day' or 'month'")
        try:
            zone = ZoneInfo(rule.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"limit {rule.name!r}: unknown time zone {rule.timezone!r} (an IANA name)"
            ) from None
        return RuleParams("fixed_window", rule.limit, period_us, calendar=rule.calendar, zone=zone)
    return RuleParams(rule.algorithm, rule.limit, period_us)


# --- GCRA ------------------------------------------------------------------------------


def evaluate_gcra(tat_us: int | None, now_us: int, cost: int, p: RuleParams) -> tuple[Verdict, int]:
    """Generic cell rate algorithm over the stored theoretical arrival time (TAT).

    Returns the verdict and the TAT to store if the request is admitted. The key holds
    ``capacity`` units (``span`` µs of credit); each unit costs ``interval_us``.
    """
    base = now_us if tat_us is None or tat_us < now_us else tat_us
    span = p.capacity * p.interval_us
    if cost <= p.capacity:
        new_tat = base + cost * p.interval_us
        wait = new_tat - span - now_us
        if wait <= 0:
            remaining = (span - (new_tat - now_us)) // p.interval_us
            return Verdict(True, remaining, new_tat - now_us), new_tat
        retry = wait
    else:
        retry = p.period_us
    remaining = max(0, (span - (base - now_us)) // p.interval_us)
    return Verdict(False, remaining, base - now_us, retry), base


# --- sliding window (an exact log) -----------------------------------------------------


class SlidingLog:
    """Admitted hits of one key: ``[time_us, cost]`` pairs, oldest first, and their sum.

    Times never decrease (a hit stamped earlier than the last one is recorded at the
    last one's time, which only makes it expire later), so expiry pops from the left.
    Holds at most ``limit`` units, hence at most ``limit`` pairs.
    """

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[list[int]] = deque()
        self.total = 0

    def prune(self, now_us: int, period_us: int) -> None:
        cutoff = now_us - period_us
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            self.total -= entries.popleft()[1]

    def record(self, now_us: int, cost: int) -> None:
        entries = self.entries
        if entries and entries[-1][0] >= now_us:
            entries[-1][1] += cost
        else:
            entries.append([now_us, cost])
        self.total += cost

    @property
    def expires_us(self) -> int:
        """When the newest entry leaves the window (callers add the period)."""
        return self.entries[-1][0] if self.entries else 0


def evaluate_sliding(log: SlidingLog, now_us: int, cost: int, p: RuleParams) -> Verdict:
    """The log must be pruned at ``now_us`` first."""
    used = log.total
    last = log.entries[-1][0] if log.entries else None
    if cost <= p.capacity and used + cost <= p.capacity:
        stamp = now_us if last is None or last < now_us else last
        return Verdict(True, p.capacity - used - cost, stamp + p.period_us - now_us)
    reset = 0 if last is None else last + p.period_us - now_us
    retry = p.period_us
    if cost <= p.capacity:
        # The oldest hits leave first: wait until enough units have left.
        need, freed = used + cost - p.capacity, 0
        for stamp, units in log.entries:
            freed += units
            if freed >= need:
                retry = stamp + p.period_us - now_us
                break
    return Verdict(False, max(0, p.capacity - used), reset, retry)


# --- fixed windows (epoch-aligned or calendar) -----------------------------------------


def fixed_window(now_us: int, p: RuleParams) -> tuple[int, int]:
    """``[start, end)`` of the window containing ``now_us``."""
    if p.calendar is not None:
        assert p.zone is not None
        return calendar_window(now_us, p.calendar, p.zone)
    start = now_us // p.period_us * p.period_us
    return start, start + p.period_us


def calendar_window(now_us: int, calendar: Calendar, zone: ZoneInfo) -> tuple[int, int]:
    """The local day or month containing ``now_us`` in ``zone``, as epoch µs.

    A day runs from local midnight to the next local midnight, so it lasts 23 or 25
    hours across a DST change. Where midnight does not exist (zones that move their
    clocks at 00:00), the day starts at the transition: the first instant of that date.
    """
    # Transitions and midnights fall on whole seconds: the second decides the date.
    return _calendar_window_at(now_us // US_PER_S, calendar, zone)


# Every request in the same second asks for the same window; zone conversions cost a few
# µs each. A pure function of its arguments, so a small cache is safe.
@lru_cache(maxsize=256)
def _calendar_window_at(second: int, calendar: Calendar, zone: ZoneInfo) -> tuple[int, int]:
    local = datetime.fromtimestamp(second, zone)
    if calendar == "day":
        first = local.date()
        following = first + timedelta(days=1)
    else:
        first = date(local.year, local.month, 1)
        following = date(local.year + local.month // 12, local.month % 12 + 1, 1)
    return _local_midnight_us(first, zone), _local_midnight_us(following, zone)


def _local_midnight_us(day: date, zone: ZoneInfo) -> int:
    # fold=0: an ambiguous midnight is its first occurrence; a missing one maps to the
    # transition instant (PEP 495 semantics of the offset before the gap).
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * US_PER_S


def evaluate_fixed(
    stored_start: int | None,
    count: int,
    window: tuple[int, int],
    now_us: int,
    cost: int,
    limit: int,
) -> Verdict:
    """``count`` units were admitted in the window starting at ``stored_start``."""
    start, end = window
    if stored_start != start:
        count = 0
    if cost <= limit and count + cost <= limit:
        return Verdict(True, limit - count - cost, end - now_us)
    retry = end - now_us if cost <= limit else end - start
    return Verdict(False, max(0, limit - count), end - now_us if count > 0 else 0, retry)


# --- concurrency -----------------------------------------------------------------------


def lease_member(cost: int, lease: str) -> str:
    """How a slot is named in the store: the cost travels with it so the count of slots
    in use is a sum over members, and ``release`` rebuilds the name from the check."""
    return f"{cost}:{lease}"


def evaluate_concurrency(
    leases: dict[str, tuple[int, int]], member: str, now_us: int, cost: int, p: RuleParams
) -> tuple[Verdict, int]:
    """``leases`` maps member -> (cost, expiry µs), already free of expired leases.

    Returns the verdict and the new lease's expiry. Acquiring a lease the key already
    holds renews it (it is not counted twice).
    """
    others = sorted((expiry, units) for name, (units, expiry) in leases.items() if name != member)
    used = sum(units for _, units in others)
    latest = others[-1][0] if others else None
    expiry = now_us + p.lease_us
    if cost <= p.capacity and used + cost <= p.capacity:
        top = expiry if latest is None or latest < expiry else latest
        return Verdict(True, p.capacity - used - cost, top - now_us), expiry
    retry = p.lease_us
    if cost <= p.capacity:
        need, freed = used + cost - p.capacity, 0
        for lease_expiry, units in others:
            freed += units
            if freed >= need:
                retry = lease_expiry - now_us
                break
    reset = 0 if latest is None else latest - now_us
    return Verdict(False, max(0, p.capacity - used), reset, retry), expiry
