"""Tests of finward.storage; small helpers shared by its test modules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(condition: Callable[[], bool], *, within: float) -> float:
    """Poll ``condition`` every 5 ms; return the seconds it took, fail after ``within``.

    Exceptions from the condition propagate: a store that raises instead of answering
    is a failure here, not something to wait out.
    """
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        if elapsed > within:
            raise AssertionError(f"condition still false after {elapsed:.3f} s (bound {within} s)")
        await asyncio.sleep(0.005)
