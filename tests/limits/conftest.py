"""Fixtures for the limit store tests.

Redis is the real server on 127.0.0.1:6379 db 15 (or ``FINWARD_TEST_REDIS_URL``), with a
key prefix unique to each test. When ``CI`` is set a missing server fails the run; on a
laptop without Redis the Redis half of the suite is skipped with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
import redis

from finward.clock import FakeClock
from finward.limits import LimitStore, open_limit_store
from tests.services import TEST_REDIS_URL, deleting_keys, require_redis, with_params

RUN_PREFIX = f"finward-test-rl-{uuid.uuid4().hex[:12]}"
# 2027-01-15T08:00:00Z: a whole number of minutes, hours and days since the epoch.
T0 = 1_800_000_000.0


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    client = require_redis()
    with deleting_keys(client, f"{RUN_PREFIX}-*"):
        yield TEST_REDIS_URL
    client.close()


@pytest.fixture
def redis_prefix(redis_server_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"{RUN_PREFIX}-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_server_url, socket_timeout=1)
    with deleting_keys(client, f"{prefix}:*"):
        yield prefix
    client.close()


@dataclass
class LimitHarness:
    """One backend under test. Redis runs on the caller's clock (``clock=client``), so
    every test passes ``now`` explicitly and both backends must agree to the µs.
    ``raw`` is a plain client on the same db, for inspecting keys (Redis only)."""

    backend: str
    url: str
    prefix: str = ""
    raw: redis.Redis | None = None
    opened: list[LimitStore] = field(default_factory=list)

    async def open(self) -> LimitStore:
        store = open_limit_store(self.url, clock=FakeClock(T0))
        self.opened.append(store)
        await store.start()
        return store


def _redis_harness(request: pytest.FixtureRequest) -> LimitHarness:
    base = request.getfixturevalue("redis_server_url")
    prefix = request.getfixturevalue("redis_prefix")
    url = with_params(base, timeout_ms="375", prefix=prefix, clock="client")
    return LimitHarness("redis", url, prefix, redis.Redis.from_url(base, socket_timeout=1))


async def _close(h: LimitHarness) -> None:
    for store in h.opened:
        await store.close()
    if h.raw is not None:
        h.raw.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[LimitHarness]:
    h = (
        LimitHarness("memory", "memory://")
        if request.param == "memory"
        else _redis_harness(request)
    )
    yield h
    await _close(h)


@pytest.fixture
async def redis_harness(request: pytest.FixtureRequest) -> AsyncIterator[LimitHarness]:
    h = _redis_harness(request)
    yield h
    await _close(h)


@pytest.fixture
async def store(harness: LimitHarness) -> LimitStore:
    return await harness.open()
