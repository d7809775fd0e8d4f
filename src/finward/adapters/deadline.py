"""One lazily re-armed loop timer: the single deadline of a connection.

A connection re-arms its deadline several times per request (idle, headers, body,
upstream head, upstream body). Cancelling and creating a loop timer each time showed
up in profiles, so the timer is moved only when the new deadline is earlier; a timer
that fires early re-checks the current deadline and sleeps again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    __slots__ = ("_callback", "_timer", "_when")

    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None
        self._when = 0.0
        self._callback: Callable[[], None] | None = None

    def arm(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``seconds`` unless re-armed or disarmed before then."""
        loop = asyncio.get_running_loop()
        self._when = loop.time() + max(0.0, seconds)
        self._callback = callback
        if self._timer is None or self._timer.when() > self._when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(self._when, self._fire)

    def disarm(self) -> None:
        self._callback = None

    def cancel(self) -> None:
        """Disarm and release the loop timer (when the connection is gone)."""
        self._callback = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        callback = self._callback
        if callback is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._when:
            self._timer = loop.call_at(self._when, self._fire)
            return
        self._callback = None
        callback()
