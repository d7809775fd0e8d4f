"""Rate limits end to end: real sockets, the real upstream, the real memory store.

OWASP API4:2023 (unrestricted resource consumption): a client over a limit gets 429
with a stable reason and Retry-After, and its requests never reach the upstream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from typer.testing import CliRunner

from finward.cli.main import app
from finward.clock import FakeClock
from finward.config.loader import load_config
from finward.config.model import GatewayConfig, RateLimitConfig, RateLimitsConfig
from finward.events import GatewayEvent
from finward.limits.base import Check, LimitStoreUnavailable, Outcome
from finward.limits.memory import MemoryLimitStore
from tests.auth.gateway_env import (
    JwksServer,
    Pki,
    auth_config,
    bearer,
    jwks_server,
    pki,
    start_auth_gateway,
    token,
)
from tests.harness import TEST_SPEC, Gateway, Upstream, make_config, start_gateway
from tests.services import with_params

__all__ = ["jwks_server", "pki"]  # fixtures re-exported for pytest

# 2027-01-15T08:00:00Z: 16 hours before a UTC midnight.
T0 = 1_800_000_000.0


@dataclasses.dataclass
class Reply:
    status: int
    headers: Any
    body: dict[str, Any]

    @property
    def reason(self) -> str | None:
        return self.body.get("reason")


async def get(
    gw: Gateway,
    path: str = "/echo",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
    data: bytes | None = None,
) -> Reply:
    """One request on a fresh connection from the local address ``source``."""
    connector = aiohttp.TCPConnector(force_close=True, local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, gw.url + path, headers=headers, data=data) as response,
    ):
        body = await response.json(content_type=None)
        return Reply(response.status, response.headers, body if isinstance(body, dict) else {})


def limits(*rules: RateLimitConfig, **settings: Any) -> RateLimitsConfig:
    return RateLimitsConfig(limits=rules, **settings)


def rule(name: str, algorithm: str, limit: int, **kw: Any) -> RateLimitConfig:
    kw.setdefault("key", ("ip",))
    return RateLimitConfig(name=name, algorithm=algorithm, limit=limit, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def start(upstream: Upstream) -> AsyncIterator[Any]:
    started: list[Gateway] = []

    async def run(rate_limits: RateLimitsConfig, clock: Any = None, **overrides: Any) -> Gateway:
        config = make_config(upstream.url, rate_limits=rate_limits, **overrides)
        gw = await start_gateway(config, clock if clock is not None else FakeClock(T0))
        started.append(gw)
        return gw

    yield run
    for gw in started:
        await gw.stop()


def _second_loopback_works() -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.2", 0))
        except OSError:
            return False
    return True


needs_127_0_0_2 = pytest.mark.skipif(
    not _second_loopback_works(), reason="127.0.0.2 cannot be bound on this host"
)


# -- refusals, reasons and headers ----------------------------------------------------------


async def test_429_with_reason_and_retry_after_after_n_requests(
    start: Any, upstream: Upstream
) -> None:
    gw = await start(limits(rule("per-ip", "gcra", 3, period_s=60)))
    for left in (2, 1, 0):
        reply = await get(gw)
        assert reply.status == 200
        assert reply.headers["RateLimit-Policy"] == '"per-ip";q=3;w=60'
        assert re.fullmatch(rf'"per-ip";r={left};t=\d+', reply.headers["RateLimit"])
    reply = await get(gw, "/status/201")  # same key, another operation: refused too
    assert (reply.status, reply.reason) == (429, "rate_limited")
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.headers["Retry-After"] == "20"  # one request every 60 s / 3
    assert reply.headers["RateLimit-Policy"] == '"per-ip";q=3;w=60'
    assert re.fullmatch(r'"per-ip";r=0;t=\d+', reply.headers["RateLimit"])
    assert "X-Request-ID" in reply.headers
    rendered = gw.worker.metrics.render()
    assert 'finward_rate_limit_refusals_total{limit="per-ip",reason="rate_limited"} 1' in rendered


async def test_time_lets_requests_through_again(start: Any) -> None:
    clock = FakeClock(T0)
    gw = await start(limits(rule("per-ip", "sliding_window", 1, period_s=10)), clock)
    assert (await get(gw)).status == 200
    assert (await get(gw)).status == 429
    clock.advance(10.0)
    assert (await get(gw)).status == 200


async def test_headers_false_hides_ratelimit_headers(start: Any) -> None:
    gw = await start(limits(rule("per-ip", "gcra", 1, period_s=5), headers=False))
    allowed = await get(gw)
    assert allowed.status == 200
    assert "RateLimit" not in allowed.headers and "RateLimit-Policy" not in allowed.headers
    refused = await get(gw)
    assert refused.status == 429
    assert "RateLimit" not in refused.headers and "RateLimit-Policy" not in refused.headers
    assert refused.headers["Retry-After"] == "5"


async def test_operations_without_limits_get_no_headers(start: Any) -> None:
    only = rule("echo", "gcra", 1, apply_to=_apply(operations=("echoGet",)))
    gw = await start(limits(only))
    reply = await get(gw, "/items/1")
    assert reply.status == 200 and "RateLimit" not in reply.headers


def _apply(**kw: Any) -> Any:
    from finward.config.model import RateLimitApplyTo

    return RateLimitApplyTo(**kw)


async def test_several_limits_on_one_request(start: Any) -> None:
    gw = await start(
        limits(
            rule("burst", "gcra", 100, period_s=1, burst=100),
            rule("quota", "fixed_window", 2, period_s=3600),
        )
    )
    first = await get(gw)
    assert first.headers["RateLimit-Policy"] == '"burst";q=100;w=1, "quota";q=2;w=3600'
    assert re.fullmatch(r'"burst";r=99;t=\d+, "quota";r=1;t=\d+', first.headers["RateLimit"])
    assert (await get(gw)).status == 200
    refused = await get(gw)
    assert (refused.status, refused.reason) == (429, "quota_exhausted")
    assert re.fullmatch(r'"burst";r=98;t=\d+, "quota";r=0;t=\d+', refused.headers["RateLimit"])


async def test_costs_weigh_operations(start: Any) -> None:
    gw = await start(limits(rule("units", "fixed_window", 10, period_s=60, costs={"upload": 4})))
    for _ in range(2):
        assert (await get(gw, "/upload", method="POST", data=b"x")).status == 200
    refused = await get(gw, "/upload", method="POST", data=b"x")  # 8 + 4 > 10
    assert refused.reason == "quota_exhausted"
    assert (await get(gw)).status == 200  # 8 + 1
    assert (await get(gw)).status == 200  # 9 + 1
    assert (await get(gw)).reason == "quota_exhausted"


# -- keys -------------------------------------------------------------------------------------


@needs_127_0_0_2
async def test_ip_key_counts_each_address(start: Any) -> None:
    gw = await start(limits(rule("per-ip", "fixed_window", 1, period_s=60)))
    assert (await get(gw, source="127.0.0.1")).status == 200
    assert (await get(gw, source="127.0.0.1")).status == 429
    assert (await get(gw, source="127.0.0.2")).status == 200


@needs_127_0_0_2
async def test_network_key_counts_a_cidr_together(start: Any) -> None:
    gw = await start(limits(rule("per-net", "fixed_window", 1, period_s=60, key=("net:24:56",))))
    assert (await get(gw, source="127.0.0.1")).status == 200
    refused = await get(gw, source="127.0.0.2")
    assert (refused.status, refused.reason) == (429, "quota_exhausted")


async def test_header_key(start: Any) -> None:
    gw = await start(
        limits(rule("per-key", "fixed_window", 1, period_s=60, key=("header:X-Api-Key",)))
    )
    assert (await get(gw, headers={"X-Api-Key": "a"})).status == 200
    assert (await get(gw, headers={"X-Api-Key": "a"})).status == 429
    assert (await get(gw, headers={"X-Api-Key": "b"})).status == 200
    assert (await get(gw)).status == 200  # no header: its own (empty) key
    assert (await get(gw)).status == 429


async def test_calendar_quota_until_midnight(start: Any) -> None:
    clock = FakeClock(T0)
    daily = rule("daily", "fixed_window", 2, calendar="day", timezone="UTC")
    gw = await start(limits(daily), clock)
    assert (await get(gw)).status == 200
    second = await get(gw)
    assert second.headers["RateLimit-Policy"] == '"daily";q=2;w=86400'
    assert second.headers["RateLimit"] == '"daily";r=0;t=57600'
    refused = await get(gw)
    assert (refused.status, refused.reason) == (429, "quota_exhausted")
    assert refused.headers["Retry-After"] == "57600"  # 16 hours to 00:00 UTC
    clock.advance(57600.0)
    assert (await get(gw)).status == 200


async def test_identity_keys_count_per_client(
    upstream: Upstream, jwks_server: JwksServer, pki: Pki
) -> None:
    from finward.config.model import ApiAuthConfig

    config = auth_config(
        upstream, jwks_server.url, pki, ApiAuthConfig(sender_constraint="optional")
    )
    config = dataclasses.replace(
        config,
        rate_limits=limits(
            rule("per-client", "fixed_window", 1, period_s=60, key=("client_id",)),
            rule("per-psu", "fixed_window", 5, period_s=60, key=("client_id", "psu")),
        ),
    )
    gw, _ = await start_auth_gateway(config)
    try:
        acme = bearer(token(client_id="tpp-acme", sub="psu-1"))
        first = await get(gw, "/accounts", headers=acme)
        assert first.status == 200
        assert first.headers["RateLimit-Policy"] == '"per-client";q=1;w=60, "per-psu";q=5;w=60'
        refused = await get(gw, "/accounts", headers=bearer(token(client_id="tpp-acme")))
        assert (refused.status, refused.reason) == (429, "quota_exhausted")
        other = await get(gw, "/accounts", headers=bearer(token(client_id="tpp-other")))
        assert other.status == 200
        unauthenticated = await get(gw, "/accounts")
        assert unauthenticated.reason == "token_missing"  # auth runs first
        assert "RateLimit" not in unauthenticated.headers
    finally:
        await gw.stop()


# -- concurrency --------------------------------------------------------------------------------


async def test_concurrency_cap_and_release_after_completion(start: Any) -> None:
    gw = await start(limits(rule("inflight", "concurrency", 1, lease_s=30)), clock=None)
    slow = asyncio.create_task(get(gw, "/slow?s=0.6"))
    await asyncio.sleep(0.2)
    refused = await get(gw)
    assert (refused.status, refused.reason) == (429, "concurrency_limited")
    assert refused.headers["RateLimit-Policy"] == '"inflight";q=1'
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await slow).status == 200
    assert (await get(gw)).status == 200  # the slot came back
    assert (await get(gw)).status == 200  # and again: each request gives its slot back


async def test_concurrency_slot_released_after_a_client_disconnect(start: Any) -> None:
    gw = await start(limits(rule("inflight", "concurrency", 1, lease_s=30)), clock=None)
    _, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /slow?s=0.4 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.15)
    writer.close()  # gone before the answer
    assert (await get(gw)).reason == "concurrency_limited"
    for _ in range(40):  # the slot is freed when the upstream exchange ends
        await asyncio.sleep(0.05)
        if (await get(gw)).status == 200:
            break
    else:
        pytest.fail("the concurrency slot was never released")


async def test_concurrency_slot_released_when_the_upstream_fails(start: Any) -> None:
    gw = await start(limits(rule("inflight", "concurrency", 1, lease_s=30)), clock=None)
    with pytest.raises(aiohttp.ClientPayloadError):  # the upstream cuts the body short
        await get(gw, "/cut")
    assert (await get(gw)).status == 200


# -- store failures ------------------------------------------------------------------------------


class FailingStore(MemoryLimitStore):
    async def acquire(self, checks: Sequence[Check], now: float) -> tuple[Outcome, ...]:
        raise LimitStoreUnavailable("limit store timed out")


@pytest.fixture
def failing_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "finward.adapters.limit_runtime.open_store", lambda url, clock: FailingStore()
    )


@pytest.mark.usefixtures("failing_store")
async def test_store_failure_closed_refuses_with_503(start: Any) -> None:
    gw = await start(limits(rule("q", "gcra", 5)))
    for _ in range(3):
        reply = await get(gw)
        assert (reply.status, reply.reason) == (503, "rate_limit_unavailable")
    events = [e for e in gw.events if isinstance(e, GatewayEvent)]
    assert [e.kind for e in events] == ["rate_limit_store_error"]  # once per 10 s
    assert "limit store timed out" in events[0].detail
    rendered = gw.worker.metrics.render()
    assert 'finward_rate_limit_store_errors_total{on_store_error="closed"} 3' in rendered


@pytest.mark.usefixtures("failing_store")
async def test_store_failure_open_passes_with_a_finding(start: Any) -> None:
    gw = await start(limits(rule("q", "gcra", 5), on_store_error="open"))
    reply = await get(gw)
    assert reply.status == 200
    assert "RateLimit" not in reply.headers
    finding = gw.events[-1].findings[0]  # type: ignore[union-attr]
    assert (finding.policy, finding.code) == ("rate_limit", "rate_limit_unavailable")
    rendered = gw.worker.metrics.render()
    assert 'finward_rate_limit_store_errors_total{on_store_error="open"} 1' in rendered


# -- reload ---------------------------------------------------------------------------------


async def test_reload_keeps_the_store_and_its_counts(start: Any) -> None:
    gw = await start(limits(rule("q", "fixed_window", 1, period_s=60)))
    assert (await get(gw)).status == 200
    store = gw.worker.rate_limits.store  # type: ignore[union-attr]
    config: GatewayConfig = gw.worker.state.config
    await gw.worker.reload(config)
    assert gw.worker.rate_limits.store is store  # type: ignore[union-attr]
    assert (await get(gw)).reason == "quota_exhausted"  # the count survived the reload


# -- finward limits show ---------------------------------------------------------------------


def _config_file(tmp_path: Path, upstream_url: str, store: str) -> Path:
    path = tmp_path / "finward.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "listen": {"port": 0},
                "admin": {"enabled": False},
                "logging": {"access_log": "off"},
                "upstreams": {"test": {"url": upstream_url}},
                "apis": [{"name": "test-api", "spec": str(TEST_SPEC), "upstream": "test"}],
                "rate_limits": {
                    "store": store,
                    "limits": [
                        {
                            "name": "per-key",
                            "algorithm": "fixed_window",
                            "limit": 5,
                            "period_s": 3600,
                            "key": ["header:X-Api-Key"],
                        },
                        {"name": "per-client", "algorithm": "gcra", "limit": 5},
                    ],
                },
            }
        )
    )
    return path


def test_limits_show_refuses_a_memory_store(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "http://127.0.0.1:9", "memory://")
    result = CliRunner().invoke(app, ["limits", "show", "-c", str(path), "-k", "ip=10.0.0.1"])
    assert result.exit_code == 1
    assert "cannot be inspected from another process" in result.output


@pytest.mark.redis
async def test_limits_show_reads_what_the_gateway_counted(
    tmp_path: Path, upstream: Upstream, redis_server_url: str, redis_prefix: str
) -> None:
    store = with_params(redis_server_url, prefix=redis_prefix)
    path = _config_file(tmp_path, upstream.url, store)
    gw = await start_gateway(load_config(path))
    try:
        for _ in range(2):
            assert (await get(gw, headers={"X-Api-Key": "abc"})).status == 200
    finally:
        await gw.stop()
    args = ["limits", "show", "-c", str(path), "--key", "header:x-api-key=abc"]
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["limit"], r["remaining"], r["quota"]) for r in rows] == [("per-key", 3, 5)]
    assert 0 < rows[0]["reset_s"] <= 3600  # windows are aligned to the epoch
    other = await asyncio.to_thread(
        CliRunner().invoke, app, [*args[:-1], "header:X-Api-Key=zzz", "-l", "per-key"]
    )
    assert other.exit_code == 0 and "per-key: 5 of 5 left" in other.output
    missing = await asyncio.to_thread(CliRunner().invoke, app, [*args, "-l", "per-client"])
    assert missing.exit_code == 2 and "keyed on client_id" in missing.output
