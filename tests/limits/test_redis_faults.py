"""The Redis limit store when Redis misbehaves: unreachable, stopped, frozen, restarted.

Throwaway ``redis-server`` processes on free loopback ports (the state store tests'
harness); each is killed at teardown whatever the test did to it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from finward.clock import SystemClock
from finward.limits import Check, LimitRule, LimitStore, LimitStoreUnavailable, open_limit_store
from tests.services import free_port

pytestmark = pytest.mark.redis

# The default deadline is 100 ms; the rest is slack for a loaded 2-core machine.
FAIL_FAST_S = 0.5
QUOTA = LimitRule("quota", "fixed_window", 1000, period_s=3600.0)
RATE = LimitRule("rate", "gcra", 1000, period_s=1.0)
SLOTS = LimitRule("slots", "concurrency", 10, lease_s=30.0)


def request(i: int = 0) -> list[Check]:
    return [Check(QUOTA, "q"), Check(RATE, "r"), Check(SLOTS, "c", lease=f"req-{i}")]


@pytest.fixture
async def open_store() -> Any:
    stores: list[LimitStore] = []

    def open_(url: str) -> LimitStore:
        store = open_limit_store(url, clock=SystemClock())
        stores.append(store)
        return store

    yield open_
    for store in stores:
        await store.close()


async def fails_fast(call: Callable[[], Awaitable[object]]) -> LimitStoreUnavailable:
    started = time.monotonic()
    with pytest.raises(LimitStoreUnavailable) as caught:
        await call()
    elapsed = time.monotonic() - started
    assert elapsed < FAIL_FAST_S, f"took {elapsed:.3f} s to fail"
    return caught.value


async def test_an_unreachable_server_fails_fast(open_store: Any) -> None:
    port = free_port()  # nothing listens there
    store = open_store(f"redis://:pw-secret@127.0.0.1:{port}/0")
    error = await fails_fast(store.start)
    assert "pw-secret" not in str(error)
    await fails_fast(lambda: store.acquire(request(), time.time()))
    await fails_fast(lambda: store.peek(Check(QUOTA, "q"), time.time()))
    await fails_fast(lambda: store.release(request(), time.time()))


async def test_a_silent_server_fails_within_the_deadline(open_store: Any) -> None:
    # A listener that accepts connections and never answers (a stalled server).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        store = open_store(f"redis://127.0.0.1:{listener.getsockname()[1]}/0?timeout_ms=100")
        error = await fails_fast(lambda: store.acquire(request(), time.time()))
        assert "100 ms" in str(error)


async def test_calls_fail_fast_while_down_and_recover_after_a_restart(
    make_server: Any, open_store: Any
) -> None:
    server = make_server()
    store = open_store(f"redis://127.0.0.1:{server.port}/0")
    await store.start()
    assert all(o.allowed for o in await store.acquire(request(1), time.time()))
    server.stop()

    await fails_fast(lambda: store.acquire(request(2), time.time()))
    # A burst of concurrent requests fails fast too (none waits for a connection).
    started = time.monotonic()
    results = await asyncio.gather(
        *(store.acquire(request(i), time.time()) for i in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, LimitStoreUnavailable) for r in results)
    assert time.monotonic() - started < FAIL_FAST_S

    # Same port, empty server: the pool holds dead sockets and the script cache is
    # empty (NOSCRIPT); the same store object reconnects and reloads by itself.
    server.start()
    outcomes = await store.acquire(request(3), time.time())
    assert all(o.allowed for o in outcomes)
    assert outcomes[0].remaining == 999  # a fresh server: the old counts are gone
    assert (await store.peek(Check(QUOTA, "q"), time.time())).remaining == 999


async def test_a_frozen_server_fails_within_the_deadline_and_thaws(
    make_server: Any, open_store: Any
) -> None:
    server = make_server()
    store = open_store(f"redis://127.0.0.1:{server.port}/0")
    await store.start()
    server.freeze()
    try:
        await fails_fast(lambda: store.acquire(request(1), time.time()))
    finally:
        server.thaw()
    assert all(o.allowed for o in await store.acquire(request(2), time.time()))


async def test_a_flushed_script_cache_is_reloaded(make_server: Any, open_store: Any) -> None:
    import redis

    server = make_server()
    store = open_store(f"redis://127.0.0.1:{server.port}/0")
    await store.start()
    assert (await store.acquire(request(1), time.time()))[0].remaining == 999
    admin = redis.Redis(port=server.port)
    try:
        admin.script_flush()
    finally:
        admin.close()
    assert (await store.acquire(request(2), time.time()))[0].remaining == 998
