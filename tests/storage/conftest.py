"""Fixtures for the state store tests.

Redis is a real server. When ``CI`` is set a missing server (or ``redis-server``
binary) fails the run, so a broken CI image can never turn these tests into silent
skips; on a laptop without Redis they are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import redis

from finward.clock import Clock, FakeClock, SystemClock
from finward.storage import StateStore, open_state_store
from tests.services import (
    TEST_REDIS_URL,
    deleting_keys,
    require_redis,
    with_params,
)

# Every key a test run writes starts with this, so cleanup never touches anyone else's.
RUN_PREFIX = f"finward-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """Base URL of the shared test Redis (db 15 unless FINWARD_TEST_REDIS_URL says)."""
    client = require_redis()
    # Sweep anything a crashed test left behind, and only our own keys.
    with deleting_keys(client, f"{RUN_PREFIX}-*"):
        yield TEST_REDIS_URL
    client.close()


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A URL with a key prefix unique to this test; its keys are deleted afterwards.

    The contract tests check semantics, not speed: a busy CI machine can push a burst
    of 200 first calls past the 100 ms default deadline, so they get 375 ms, the most
    that still keeps the 1 s staleness bound (refresh 250 ms + 2 x timeout). The fault
    tests keep the default and check that calls fail fast.
    """
    prefix = f"{RUN_PREFIX}-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_server_url, socket_timeout=1)
    with deleting_keys(client, f"{prefix}:*"):
        yield with_params(redis_server_url, timeout_ms="375", prefix=prefix)
    client.close()


@dataclass
class StoreHarness:
    """One backend under test, able to open more stores on the same state.

    Each extra store stands for another worker process or replica. ``advance`` moves
    time: the injected clock for memory, real time for Redis (whose TTLs are real).
    """

    backend: str
    url: str
    clock: Clock
    opened: list[StateStore] = field(default_factory=list)

    async def open(self) -> StateStore:
        store = open_state_store(self.url, clock=self.clock)
        self.opened.append(store)
        await store.start()
        return store

    async def advance(self, seconds: float) -> None:
        if isinstance(self.clock, FakeClock):
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.redis)],
)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[StoreHarness]:
    if request.param == "memory":
        h = StoreHarness("memory", "memory://", FakeClock())
    else:
        h = StoreHarness("redis", request.getfixturevalue("redis_url"), SystemClock())
    yield h
    for store in h.opened:
        await store.close()


@pytest.fixture
async def store(harness: StoreHarness) -> StateStore:
    return await harness.open()
