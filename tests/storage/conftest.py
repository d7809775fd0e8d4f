"""Fixtures for the state store tests.

Redis is a real server. When ``CI`` is set a missing server (or ``redis-server``
binary) fails the run, so a broken CI image can never turn these tests into silent
skips; on a laptop without Redis they are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from finward.clock import Clock, FakeClock, SystemClock
from finward.storage import StateStore, open_state_store, parse_state_store_url
from tests.services import require_service

REDIS_URL_ENV = "FINWARD_TEST_REDIS_URL"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
# Every key a test run writes starts with this, so cleanup never touches anyone else's.
RUN_PREFIX = f"finward-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """Base URL of the shared test Redis (db 15 unless FINWARD_TEST_REDIS_URL says)."""
    url = os.environ.get(REDIS_URL_ENV, DEFAULT_TEST_REDIS_URL)
    shown = parse_state_store_url(url).redacted_url  # the env URL may carry a password
    # No retries: redis-py's default would back off for seconds before each failure.
    no_retry = Retry(NoBackoff(), 0)
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1, retry=no_retry)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        require_service(f"Redis at {shown} is unreachable ({type(exc).__name__})")
    yield url
    # Sweep anything a crashed test left behind, and only our own keys.
    for key in client.scan_iter(match=f"{RUN_PREFIX}-*", count=1000):
        client.unlink(key)
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
    separator = "&" if "?" in redis_server_url else "?"
    yield f"{redis_server_url}{separator}timeout_ms=375&prefix={prefix}"
    client = redis.Redis.from_url(redis_server_url, socket_timeout=1)
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.unlink(key)
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        require_service("the redis-server binary is not installed")
    return path


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
