"""Issue 5 item 6 end to end: Redis stops during load and comes back.

A real gateway (in-process, real sockets) counts limits in a throwaway ``redis-server``.
While traffic flows, Redis is stopped: a limit configured ``closed`` answers 503
``rate_limit_unavailable`` and one configured ``open`` lets requests through, both within
the store's deadline (no worker hangs); the gateway emits a ``rate_limit_store_error``
event and counts the errors in its metrics. Redis is started again on the same port and
the same gateway, without a restart, counts and enforces again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from finward.clock import SystemClock
from finward.config.model import ApiConfig, RateLimitApplyTo, RateLimitConfig, RateLimitsConfig
from finward.events import GatewayEvent
from tests.harness import TEST_SPEC, Gateway, Upstream, make_config, start_gateway
from tests.services import ThrowawayRedis

pytestmark = [pytest.mark.slow, pytest.mark.redis]

# The store's deadline is 100 ms by default; a refused or passed request must come back
# well within a second even with Redis gone.
ANSWER_BOUND_S = 1.0


@pytest.fixture
def redis_server(make_server: Callable[..., ThrowawayRedis]) -> ThrowawayRedis:
    return make_server()


def _rule(name: str, api: str, on_store_error: str) -> RateLimitConfig:
    return RateLimitConfig(
        name=name,
        algorithm="fixed_window",
        limit=5,
        period_s=3600,
        key=("header:X-Client",),
        on_store_error=on_store_error,  # type: ignore[arg-type]
        apply_to=RateLimitApplyTo(apis=(api,)),
    )


@pytest.fixture
async def gateway(upstream: Upstream, redis_server: ThrowawayRedis) -> AsyncIterator[Gateway]:
    """The test spec twice: at / under a limit that fails closed, at /open under one
    that fails open; both counted in the throwaway Redis."""
    rate_limits = RateLimitsConfig(
        store=f"redis://127.0.0.1:{redis_server.port}/0?prefix=outage",
        limits=(_rule("strict", "test-api", "closed"), _rule("lenient", "open-api", "open")),
    )
    apis = (
        ApiConfig(name="test-api", spec=TEST_SPEC, upstream="test"),
        ApiConfig(name="open-api", spec=TEST_SPEC, upstream="test", base_path="/open"),
    )
    config = make_config(upstream.url, rate_limits=rate_limits, apis=apis)
    gw = await start_gateway(config, SystemClock())
    yield gw
    await gw.stop()


Answer = tuple[int, str | None, float]  # status, reason, seconds


async def _call(session: aiohttp.ClientSession, url: str, client: str) -> Answer:
    started = time.monotonic()
    async with session.get(url, headers={"X-Client": client}) as response:
        body = await response.json(content_type=None)
        return response.status, body.get("reason"), time.monotonic() - started


async def test_redis_stops_during_load_and_comes_back(
    gateway: Gateway, redis_server: ThrowawayRedis
) -> None:
    strict, lenient = gateway.url + "/echo", gateway.url + "/open/echo"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        # Redis up: counted and enforced.
        before = [await _call(session, strict, "a") for _ in range(7)]
        assert [s for s, _, _ in before] == [200] * 5 + [429] * 2

        # Load keeps going while Redis stops.
        async def load() -> list[Answer]:
            out = []
            for i in range(40):
                out.append(await _call(session, strict if i % 2 else lenient, f"load-{i}"))
                await asyncio.sleep(0.01)
            return out

        task = asyncio.create_task(load())
        await asyncio.sleep(0.1)
        redis_server.stop()
        during = await task
        down = [await _call(session, strict, "b"), await _call(session, lenient, "b")]
        assert down[0][:2] == (503, "rate_limit_unavailable")  # fail closed
        assert down[1][0] == 200  # fail open
        assert all(elapsed < ANSWER_BOUND_S for _, _, elapsed in during + down)
        assert {s for s, _, _ in during} <= {200, 503}

        # Back on the same port: the same gateway reconnects by itself.
        redis_server.start()
        deadline = time.monotonic() + 5
        while True:
            status, reason, _ = await _call(session, strict, "c")
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert status == 200, reason
        after = [await _call(session, strict, "c") for _ in range(6)]
        assert [s for s, _, _ in after] == [200] * 4 + [429] * 2  # counting again

    events = [e for e in gateway.events if isinstance(e, GatewayEvent)]
    assert "rate_limit_store_error" in [e.kind for e in events]
    rendered = gateway.worker.metrics.render()
    assert 'finward_rate_limit_store_errors_total{on_store_error="closed"}' in rendered
    assert 'finward_rate_limit_store_errors_total{on_store_error="open"}' in rendered
