"""The I/O behind rate limits: one limit store per worker process, made in its loop.

A configuration reload keeps the store (its counters stay); a new ``rate_limits.store``
URL needs a restart, and the reload says so.
"""

from __future__ import annotations

from collections.abc import Callable

from finward.clock import Clock
from finward.events import Event, GatewayEvent
from finward.limits.base import LimitStore

EventSink = Callable[[Event], None]


def open_store(url: str, clock: Clock) -> LimitStore:
    """The store behind ``url`` (memory://, redis://, rediss://), not yet started."""
    from finward.limits import open_limit_store

    return open_limit_store(url, clock=clock)


class LimitServices:
    """Implements ``finward.gateway.LimitBackend`` for one worker."""

    def __init__(self, url: str, clock: Clock, emit: EventSink | None = None) -> None:
        self.clock = clock
        self.url = url
        self.store: LimitStore = open_store(url, clock)
        self._emit = emit

    async def start(self) -> None:
        await self.store.start()

    async def close(self) -> None:
        await self.store.close()

    def store_error(self, detail: str) -> None:
        # Called at most once per STORE_LOG_INTERVAL_S by the policy; the per-request
        # count is in finward_rate_limit_store_errors_total (from request events).
        if self._emit is not None:
            self._emit(
                GatewayEvent(
                    self.clock.now(), "rate_limit_store_error", "failure", detail, "gateway"
                )
            )
