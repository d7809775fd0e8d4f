"""Rate limits, quotas and concurrency caps: the vocabulary shared by the policy and stores.

Following the `limits` library's split, three separate pieces:

- the **limit** (``LimitRule``): what is counted, how much is allowed, what a refusal says;
- the **algorithm** (``LimitRule.algorithm``): GCRA for smooth rates, a sliding log for
  exact counts over a moving window, fixed (calendar) windows for quotas, and concurrency
  caps for requests in flight;
- the **storage** (``LimitStore``): ``memory://`` (exact within one process) or
  ``redis://`` (exact across workers and replicas: one atomic script per request checks
  every limit in a single round trip).

Sans-IO: nothing here opens a socket; the Redis store lives in an adapter module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from finward.errors import FinwardError

Algorithm = Literal["gcra", "sliding_window", "fixed_window", "concurrency"]
Calendar = Literal["day", "month"]
StoreErrorMode = Literal["open", "closed"]

# Reason code of a refusal, by algorithm (docs/reason-codes.md).
REASONS: dict[str, str] = {
    "gcra": "rate_limited",
    "sliding_window": "rate_limited",
    "fixed_window": "quota_exhausted",
    "concurrency": "concurrency_limited",
}


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One configured limit, compiled. Immutable; shared by every request it applies to.

    - ``gcra``: ``limit`` requests (cost units) per ``period_s``, smoothly (one every
      ``period_s / limit``), with bursts of up to ``burst`` at once.
    - ``sliding_window``: at most ``limit`` cost units in any ``period_s`` seconds
      (exact: a log of admitted hits).
    - ``fixed_window``: at most ``limit`` per window; windows are ``period_s`` long and
      aligned to the epoch, or calendar days/months in ``timezone`` when ``calendar`` is
      set.
    - ``concurrency``: at most ``limit`` requests of a key in flight; a slot is a lease
      that expires after ``lease_s`` even if its release is lost (a crashed worker).
    """

    name: str  # unique; appears in RateLimit headers, metrics and store keys
    algorithm: Algorithm
    limit: int
    period_s: float = 1.0
    burst: int = 0  # gcra only; 0 means "= limit"
    calendar: Calendar | None = None
    timezone: str = "UTC"
    lease_s: float = 60.0  # concurrency only
    on_store_error: StoreErrorMode = "closed"

    @property
    def reason(self) -> str:
        return REASONS[self.algorithm]

    @property
    def capacity(self) -> int:
        """The quota a RateLimit header announces (``q``)."""
        if self.algorithm == "gcra":
            return self.burst or self.limit
        return self.limit


@dataclass(frozen=True, slots=True)
class Check:
    """One limit to apply to one request: the rule, the key it counts under, the cost.

    ``key`` is already scoped and bounded by the caller (rule name + a digest of the key
    parts), so stores never see raw attacker input in key names. ``lease`` identifies a
    concurrency slot (unique per request) for ``release``.
    """

    rule: LimitRule
    key: str
    cost: int = 1
    lease: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The state of one limit after a request was counted (or refused)."""

    rule: LimitRule
    allowed: bool
    remaining: int  # cost units still available now (RateLimit ``r``)
    reset_s: float  # seconds until the quota is fully available again (RateLimit ``t``)
    retry_after_s: float = 0.0  # when refused: seconds until this request could pass


class LimitStoreUnavailable(FinwardError):
    """The store could not answer in time; each rule's ``on_store_error`` decides."""


class LimitStore(Protocol):
    """Where limit state lives. Implementations: ``MemoryLimitStore``, ``RedisLimitStore``."""

    @property
    def shared(self) -> bool:
        """True when every worker and replica using the same URL sees the same counts."""

    async def start(self) -> None:
        """Connect (after fork, in the worker's event loop)."""

    async def acquire(self, checks: Sequence[Check], now: float) -> tuple[Outcome, ...]:
        """Count one request against every check, atomically.

        All allowed: every check's cost is consumed (a concurrency slot taken). Any
        refused: nothing is consumed, and the outcomes say which refused and when to
        retry. One outcome per check, in order. Raises ``LimitStoreUnavailable``.
        """

    async def release(self, checks: Sequence[Check], now: float) -> None:
        """Give back the concurrency slots that ``acquire`` took (others are ignored)."""

    async def peek(self, check: Check, now: float) -> Outcome:
        """The state of one key without counting anything (``finward limits show``)."""

    async def close(self) -> None: ...
