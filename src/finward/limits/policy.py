"""The rate limit policy: count each request against the limits of its operation.

Runs after authentication, so limits can count per client, TPP, PSU, consent or token
(OWASP API4:2023, unrestricted resource consumption). Per request:

1. the limits of the operation (compiled at load time, ``finward.limits.rules``);
2. each limit's key from the request (a limit whose identity parts the request lacks
   is skipped), reduced to ``<name>:<digest>`` so the store never sees raw input;
3. one ``acquire`` for all of them: all pass and are counted, or nothing is counted;
4. a refusal is 429 with the refusing limit's reason code and ``Retry-After``; the
   ``RateLimit-Policy`` and ``RateLimit`` headers (draft-ietf-httpapi-ratelimit-headers)
   go on allowed and refused responses alike, unless turned off;
5. concurrency slots are released when the exchange is over (``Context.on_done``).

A store failure is decided per limit: ``closed`` refuses (503 ``rate_limit_unavailable``),
``open`` lets the request pass uncounted with a finding.

Sans-IO: the store is a protocol (``finward.limits.base.LimitStore``).
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from finward.clock import Clock
from finward.core.pipeline import Context
from finward.decision import Decision, Finding
from finward.http import RequestView
from finward.limits.base import Check, LimitRule, LimitStore, LimitStoreUnavailable, Outcome
from finward.limits.keys import part_value, stored_key
from finward.limits.rules import AppliedLimit, OperationRef

log = logging.getLogger("finward.limits")

# A store outage touches every request: one log line (and one event) per this many seconds.
STORE_LOG_INTERVAL_S = 10.0
# Distinct key values whose digest is remembered (one entry per client, IP ...).
KEY_CACHE_ENTRIES = 4096
# draft-ietf-httpapi-ratelimit-headers: the window (``w``) of a calendar quota. A month
# is announced as 30 days; ``t`` in RateLimit gives the exact time to the next window.
CALENDAR_WINDOW_S = {"day": 86_400, "month": 30 * 86_400}

StoreErrorHook = Callable[[str], None]


class RateLimitPolicy:
    name = "rate_limit"
    is_async = True

    def __init__(
        self,
        limits: Mapping[OperationRef, tuple[AppliedLimit, ...]],
        store: LimitStore,
        clock: Clock,
        *,
        headers: bool = True,
        on_store_error: StoreErrorHook | None = None,
        lease_prefix: str | None = None,
    ) -> None:
        self.limits = limits
        self.store = store
        self.clock = clock
        self.headers = headers
        self.on_store_error = on_store_error
        # Lease ids are made here, never taken from the request (a client-chosen
        # X-Request-ID reused on parallel requests would share one slot). A random
        # prefix keeps them unique across workers and replicas sharing a store.
        self._lease_prefix = lease_prefix if lease_prefix is not None else secrets.token_hex(8)
        self._leases = itertools.count(1)
        # Digests of recent key values, and the RateLimit-Policy text of recent rule sets:
        # both are pure functions of their keys, recomputed per request otherwise.
        self._digests: dict[tuple[str, ...], str] = {}
        self._policy_text: dict[tuple[str, ...], str] = {}
        self._store_logged_at = -math.inf

    async def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        route = ctx.route
        if route is None:
            return None
        op = route.operation
        applied = self.limits.get((route.mount.api, op.method, op.path_template))
        if not applied:
            return None
        checks = self._checks(applied, request, ctx)
        if not checks:
            return None
        try:
            outcomes = await self.store.acquire(checks, self.clock.now())
        except LimitStoreUnavailable as exc:
            # The store may have taken the slots before the deadline struck (a slow
            # Redis): give them back anyway; releasing an unknown lease is a no-op.
            slots = tuple(check for check in checks if check.rule.algorithm == "concurrency")
            if slots:
                ctx.add_on_done(partial(self._release, slots))
            return self._store_failed(exc, checks, ctx)
        if len(outcomes) != len(checks):  # a broken store: fail closed (503 internal_error)
            raise RuntimeError("the limit store answered for the wrong number of checks")
        refused = [outcome for outcome in outcomes if not outcome.allowed]
        if self.headers:
            names = tuple(check.rule.name for check in checks)
            policy = self._policy_text.get(names)
            if policy is None:
                policy = self._policy_text[names] = policy_header(checks)
            ctx.response_headers.append(("RateLimit-Policy", policy))
            ctx.response_headers.append(
                ("RateLimit", rate_limit_state(outcomes, checks, counted=not refused))
            )
        if refused:
            rule = refused[0].rule
            ctx.findings.append(Finding(self.name, rule.reason, rule.name))
            retry = max(retry_after(outcome) for outcome in refused)
            return Decision.deny(
                rule.reason,
                f"limit {rule.name} reached",
                headers=(("Retry-After", str(retry)),),
            )
        slots = tuple(check for check in checks if check.rule.algorithm == "concurrency")
        if slots:
            ctx.add_on_done(partial(self._release, slots))
        return None

    def _checks(
        self, applied: Sequence[AppliedLimit], request: RequestView, ctx: Context
    ) -> list[Check]:
        principal = ctx.principal
        checks = []
        for limit in applied:
            if limit.needs_principal and principal is None:
                continue
            values = []
            for part in limit.parts:
                value = part_value(part, principal, request.client_ip, request.headers)
                if value is None:
                    break
                values.append(value)
            else:
                rule = limit.rule
                lease = ""
                if rule.algorithm == "concurrency":
                    lease = f"{self._lease_prefix}-{next(self._leases)}"
                checks.append(Check(rule, self._key(rule.name, values), limit.cost, lease))
        return checks

    def _key(self, name: str, values: list[str]) -> str:
        memo = (name, *values)
        key = self._digests.get(memo)
        if key is None:
            if len(self._digests) >= KEY_CACHE_ENTRIES:
                self._digests.clear()  # bounded: random attacker values only churn it
            key = self._digests[memo] = stored_key(name, values)
        return key

    async def _release(self, slots: tuple[Check, ...]) -> None:
        try:
            await self.store.release(slots, self.clock.now())
        except Exception as exc:  # the lease expires after lease_s; say so, rarely
            self._report(f"releasing concurrency slots failed: {exc}")

    def _store_failed(
        self, exc: LimitStoreUnavailable, checks: Sequence[Check], ctx: Context
    ) -> Decision | None:
        closed = sorted({c.rule.name for c in checks if c.rule.on_store_error == "closed"})
        self._report(f"rate limit store unavailable: {exc}")
        if closed:
            return Decision.deny(
                "rate_limit_unavailable",
                f"the rate limit store is unavailable (limits: {', '.join(closed)})",
            )
        names = ", ".join(sorted({c.rule.name for c in checks}))
        ctx.findings.append(Finding(self.name, "rate_limit_unavailable", f"not counted: {names}"))
        return None

    def _report(self, detail: str) -> None:
        now = self.clock.now()
        if now - self._store_logged_at < STORE_LOG_INTERVAL_S:
            return
        self._store_logged_at = now
        log.warning("%s (logged at most every %.0f s)", detail, STORE_LOG_INTERVAL_S)
        if self.on_store_error is not None:
            self.on_store_error(detail)


def retry_after(outcome: Outcome) -> int:
    """Whole seconds (RFC 9110 §10.2.3), rounded up, at least 1.

    A concurrency slot usually frees within milliseconds, not when its lease would
    expire: a refused client is told to retry after 1 s."""
    if outcome.rule.algorithm == "concurrency":
        return 1
    return max(1, math.ceil(outcome.retry_after_s))


def window_s(rule: LimitRule) -> int | None:
    """The ``w`` of RateLimit-Policy; None for a concurrency cap (no time window)."""
    if rule.algorithm == "concurrency":
        return None
    if rule.calendar is not None:
        return CALENDAR_WINDOW_S[rule.calendar]
    return max(1, math.ceil(rule.period_s))


def rate_limit_headers(
    outcomes: Sequence[Outcome], checks: Sequence[Check], *, counted: bool = True
) -> list[tuple[str, str]]:
    """``RateLimit-Policy`` and ``RateLimit`` (structured-field lists, one member per
    limit; names are ``[a-z0-9_-]`` so they need no escaping)."""
    return [
        ("RateLimit-Policy", policy_header(checks)),
        ("RateLimit", rate_limit_state(outcomes, checks, counted=counted)),
    ]


def policy_header(checks: Sequence[Check]) -> str:
    """``RateLimit-Policy``: the quota (``q``) and window (``w``) of each limit."""
    policies = []
    for check in checks:
        rule = check.rule
        window = window_s(rule)
        policy = f'"{rule.name}";q={rule.capacity}'
        policies.append(policy if window is None else f"{policy};w={window}")
    return ", ".join(policies)


def rate_limit_state(
    outcomes: Sequence[Outcome], checks: Sequence[Check], *, counted: bool = True
) -> str:
    """``RateLimit``: what remains (``r``) and when it is whole again (``t``).

    A store reports ``remaining`` as it would be with the request counted; when another
    limit refused it, nothing was counted, so its cost is still available."""
    states = []
    for outcome, check in zip(outcomes, checks, strict=True):
        remaining = max(0, outcome.remaining)
        if not counted and outcome.allowed:
            remaining += check.cost
        reset = max(0, math.ceil(outcome.reset_s))
        states.append(f'"{outcome.rule.name}";r={remaining};t={reset}')
    return ", ".join(states)
