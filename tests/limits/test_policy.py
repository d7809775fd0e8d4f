"""The rate limit policy, sans-IO: rule selection, keys, refusals, headers, store failures.

The policy runs in the compiled pipeline (canonical path, routing, rate limit) against the
memory store, so these tests need no sockets; tests/limits/test_gateway_limits.py
runs the same through real sockets with the real memory store.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from finward.clock import FakeClock
from finward.config.model import RateLimitApplyTo, RateLimitConfig, RateLimitsConfig
from finward.core.pipeline import Context
from finward.decision import Decision
from finward.errors import ConfigError
from finward.gateway import CompiledGateway, compile_gateway
from finward.http import Headers, RequestView
from finward.limits.base import Check, LimitStoreUnavailable, Outcome
from finward.limits.keys import network_of, parse_key_part, stored_key
from finward.limits.memory import MemoryLimitStore
from finward.limits.policy import rate_limit_headers, retry_after
from tests.harness import make_config


class RecordingStore(MemoryLimitStore):
    """The real memory store, recording what it was asked and failing on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: Exception | None = None
        self.acquired: list[tuple[Check, ...]] = []
        self.released: list[tuple[Check, ...]] = []

    async def acquire(self, checks: Sequence[Check], now: float) -> tuple[Outcome, ...]:
        if self.fail is not None:
            raise self.fail
        self.acquired.append(tuple(checks))
        return await super().acquire(checks, now)

    async def release(self, checks: Sequence[Check], now: float) -> None:
        self.released.append(tuple(checks))
        await super().release(checks, now)


class Backend:
    def __init__(self, store: Any, clock: FakeClock) -> None:
        self.clock = clock
        self.store = store
        self.errors: list[str] = []

    def store_error(self, detail: str) -> None:
        self.errors.append(detail)


def limit(name: str, algorithm: str = "fixed_window", limit: int = 2, **kw: Any) -> RateLimitConfig:
    return RateLimitConfig(name=name, algorithm=algorithm, limit=limit, **kw)  # type: ignore[arg-type]


def compiled(
    *limits: RateLimitConfig, store: Any = None, clock: FakeClock | None = None, **settings: Any
) -> tuple[CompiledGateway, Backend]:
    backend = Backend(store if store is not None else RecordingStore(), clock or FakeClock(1000.0))
    config = make_config(
        "http://127.0.0.1:9", rate_limits=RateLimitsConfig(limits=tuple(limits), **settings)
    )
    return compile_gateway(config, None, backend), backend


def principal(
    client_id: str | None = "tpp-acme",
    sub: str | None = "psu-1",
    consent: str | None = None,
    **claims: object,
) -> Any:
    token = SimpleNamespace(
        sub=sub, token_hash="ab" * 32, claims={"client_id": client_id, **claims}
    )
    return SimpleNamespace(
        client_id=client_id, organisation_id="PSDDE-BAFIN-1", consent_id=consent, token=token
    )


async def run(
    gw: CompiledGateway,
    path: str = "/echo",
    *,
    who: Any = None,
    ip: str = "203.0.113.7",
    headers: Sequence[tuple[str, str]] = (),
    method: str = "GET",
) -> tuple[Decision, Context]:
    request = RequestView(
        method=method,
        target=path,
        path=path,
        query="",
        headers=Headers([("host", "api.example"), *headers]),
        client_ip=ip,
        peer_ip=ip,
        request_id="rid-1",
    )
    ctx = Context(principal=who)
    return await gw.pipeline.evaluate_async(request, ctx), ctx


def header(ctx: Context, name: str) -> str | None:
    values = [v for n, v in ctx.response_headers if n.lower() == name.lower()]
    return values[-1] if values else None


# -- refusals and headers ----------------------------------------------------------------


async def test_refuses_with_429_reason_and_retry_after_after_the_limit() -> None:
    gw, _ = compiled(limit("per-ip", "gcra", 2, key=("ip",), period_s=10.0))
    for _ in range(2):
        decision, ctx = await run(gw)
        assert decision.allowed
    decision, ctx = await run(gw)
    assert (decision.status, decision.reason) == (429, "rate_limited")
    assert dict(decision.headers)["Retry-After"] == "5"  # GCRA: one every 10 s / 2
    assert ctx.decided_by == "rate_limit"
    assert header(ctx, "RateLimit") == '"per-ip";r=0;t=10'


@pytest.mark.parametrize(
    ("algorithm", "reason"),
    [
        ("gcra", "rate_limited"),
        ("sliding_window", "rate_limited"),
        ("fixed_window", "quota_exhausted"),
        ("concurrency", "concurrency_limited"),
    ],
)
async def test_reason_code_by_algorithm(algorithm: str, reason: str) -> None:
    gw, _ = compiled(limit("one", algorithm, 1, key=("ip",)))
    assert (await run(gw))[0].allowed
    decision, _ = await run(gw)
    assert (decision.status, decision.reason) == (429, reason)


async def test_headers_on_allowed_and_refused_responses() -> None:
    gw, _ = compiled(
        limit("client-burst", "gcra", 20, burst=40, key=("client_id",)),
        limit("daily-quota", "fixed_window", 50000, calendar="day", key=("client_id",)),
        limit("inflight", "concurrency", 10, key=("client_id",)),
    )
    decision, ctx = await run(gw, who=principal())
    assert decision.allowed
    assert header(ctx, "RateLimit-Policy") == (
        '"client-burst";q=40;w=1, "daily-quota";q=50000;w=86400, "inflight";q=10'
    )
    state = header(ctx, "RateLimit")
    assert state is not None
    assert re.fullmatch(
        r'"client-burst";r=39;t=\d+, "daily-quota";r=49999;t=\d+, "inflight";r=9;t=\d+', state
    )


async def test_headers_false_hides_them_but_keeps_retry_after() -> None:
    gw, _ = compiled(limit("one", "gcra", 1, key=("ip",)), headers=False)
    decision, ctx = await run(gw)
    assert decision.allowed and ctx.response_headers == []
    decision, ctx = await run(gw)
    assert decision.reason == "rate_limited"
    assert ctx.response_headers == []
    assert dict(decision.headers)["Retry-After"] == "1"


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    rule = compiled(limit("x", key=("ip",)))[0].rate_limit
    assert rule is not None
    applied = next(iter(rule.limits.values()))[0].rule
    assert retry_after(Outcome(applied, False, 0, 0.0, 0.0)) == 1
    assert retry_after(Outcome(applied, False, 0, 2.01, 2.01)) == 3
    check = Check(applied, "x:0", 1)
    assert rate_limit_headers([Outcome(applied, False, -3, 0.2)], [check])[1] == (
        "RateLimit",
        '"x";r=0;t=1',
    )


async def test_several_limits_all_must_pass_and_a_refusal_counts_nothing() -> None:
    store = RecordingStore()
    gw, _ = compiled(
        limit("wide", "fixed_window", 10, key=("ip",), period_s=60.0),
        limit("narrow", "fixed_window", 1, key=("ip",), period_s=60.0),
        store=store,
    )
    assert (await run(gw))[0].allowed
    decision, ctx = await run(gw)
    assert decision.reason == "quota_exhausted"
    assert "limit narrow" in (decision.detail or "")
    assert header(ctx, "RateLimit") == '"wide";r=9;t=20, "narrow";r=0;t=20'
    wide = store.acquired[-1][0]
    assert (await store.peek(wide, 1000.0)).remaining == 9  # the refusal counted nothing


async def test_costs_weigh_operations() -> None:
    gw, _ = compiled(
        limit("units", "fixed_window", 10, key=("ip",), period_s=60.0, costs={"upload": 6})
    )
    assert (await run(gw, "/upload", method="POST"))[0].allowed
    decision, _ = await run(gw, "/upload", method="POST")
    assert decision.reason == "quota_exhausted"
    assert (await run(gw, "/echo"))[0].allowed  # cost 1 still fits: 6 + 1 <= 10
    assert header((await run(gw, "GET /echo"))[1], "RateLimit") is None  # no route, no limit


async def test_costs_by_method_and_path() -> None:
    gw, backend = compiled(limit("units", key=("ip",), limit=100, costs={"get /items/{itemId}": 7}))
    await run(gw, "/items/42")
    assert [c.cost for c in backend.store.acquired[-1]] == [7]
    await run(gw, "/echo")
    assert [c.cost for c in backend.store.acquired[-1]] == [1]


# -- which limits apply -------------------------------------------------------------------


async def test_apply_to_selects_operations_at_compile_time() -> None:
    gw, backend = compiled(
        limit("only-echo", key=("ip",), apply_to=RateLimitApplyTo(operations=("echoGet",))),
        limit("all", key=("ip",), limit=100),
        limit("api", key=("ip",), apply_to=RateLimitApplyTo(apis=("test-api",))),
    )
    assert gw.rate_limit is not None
    assert gw.pipeline.policy_names[-1] == "rate_limit"
    await run(gw, "/echo")
    assert [c.rule.name for c in backend.store.acquired[-1]] == ["only-echo", "all", "api"]
    await run(gw, "/items/7")
    assert [c.rule.name for c in backend.store.acquired[-1]] == ["all", "api"]


async def test_no_store_call_when_nothing_applies() -> None:
    gw, backend = compiled(
        limit("only-echo", key=("ip",), apply_to=RateLimitApplyTo(operations=("POST /echo",)))
    )
    assert (await run(gw, "/echo"))[0].allowed
    assert (await run(gw, "/nope"))[0].reason == "route_not_found"
    assert backend.store.acquired == []


async def test_identity_limits_skip_requests_without_that_identity() -> None:
    gw, backend = compiled(
        limit("per-client", key=("client_id",)),
        limit("per-psu", key=("client_id", "psu")),
        limit("per-consent", key=("consent",)),
        limit("per-acr", key=("claim:acr",)),
        limit("per-ip", key=("ip",)),
    )
    await run(gw, who=None)  # anonymous: only the IP limit
    assert [c.rule.name for c in backend.store.acquired[-1]] == ["per-ip"]
    await run(gw, who=principal(sub=None))  # client credentials: no PSU
    assert [c.rule.name for c in backend.store.acquired[-1]] == ["per-client", "per-ip"]
    await run(gw, who=principal(consent="c-1", acr="sca"))
    names = [c.rule.name for c in backend.store.acquired[-1]]
    assert names == ["per-client", "per-psu", "per-consent", "per-acr", "per-ip"]


async def test_keys_separate_callers_and_never_hold_raw_values() -> None:
    gw, backend = compiled(limit("k", key=("client_id", "header:X-Api-Key")))
    await run(gw, who=principal("tpp-a"), headers=[("x-api-key", "secret-1")])
    await run(gw, who=principal("tpp-b"), headers=[("x-api-key", "secret-1")])
    await run(gw, who=principal("tpp-a"), headers=[("x-api-key", "secret-2")])
    await run(gw, who=principal("tpp-a"))  # header absent: counted under ""
    keys = [checks[0].key for checks in backend.store.acquired]
    assert len(set(keys)) == 4
    for key in keys:
        assert re.fullmatch(r"k:[0-9a-f]{32}", key)
    assert keys[0] == stored_key("k", ["tpp-a", "secret-1"])


async def test_ip_and_network_keys() -> None:
    gw, backend = compiled(limit("ip", key=("ip",)), limit("net", key=("net:24:56",)))
    await run(gw, ip="10.1.2.3")
    await run(gw, ip="10.1.2.200")
    first, second = backend.store.acquired
    assert first[0].key != second[0].key  # ip: two clients
    assert first[1].key == second[1].key  # net:24: one network
    assert network_of("2001:db8:1:2:3::1", 24, 56) == "2001:db8:1::/56"
    assert network_of("::ffff:192.0.2.9", 24, 56) == "192.0.2.0/24"
    assert network_of("unix", 24, 56) == "unix"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("client_id", True),
        ("net:24:56", True),
        ("net:0:0", True),
        ("header:X-Api-Key", True),
        ("claim:acr", True),
        ("net:33:56", False),
        ("net:24", False),
        ("header:", False),
        ("header:bad name", False),
        ("cookie:x", False),
        ("user", False),
    ],
)
def test_key_part_syntax(text: str, ok: bool) -> None:
    try:
        parse_key_part(text)
    except ValueError:
        assert not ok
    else:
        assert ok


# -- concurrency slots ----------------------------------------------------------------------


async def test_concurrency_slots_are_released_by_on_done() -> None:
    gw, backend = compiled(limit("inflight", "concurrency", 1, key=("ip",)))
    decision, ctx = await run(gw)
    assert decision.allowed and ctx.on_done is not None
    assert (await run(gw))[0].reason == "concurrency_limited"
    for callback in ctx.on_done:
        await callback()
    assert (await run(gw))[0].allowed
    store = backend.store
    leases = [c.lease for checks in store.acquired for c in checks]
    assert len(set(leases)) == len(leases) and "rid-1" not in leases  # never the request id


async def test_no_on_done_without_concurrency_limits() -> None:
    gw, _ = compiled(limit("q", key=("ip",)))
    assert (await run(gw))[1].on_done is None


# -- store failures -------------------------------------------------------------------------


async def test_store_error_closed_refuses_with_503() -> None:
    store = RecordingStore()
    store.fail = LimitStoreUnavailable("redis timed out")
    gw, backend = compiled(limit("q", key=("ip",)), store=store)
    decision, _ = await run(gw)
    assert (decision.status, decision.reason) == (503, "rate_limit_unavailable")
    assert backend.errors == ["rate limit store unavailable: redis timed out"]


async def test_store_error_open_passes_with_a_finding() -> None:
    store = RecordingStore()
    store.fail = LimitStoreUnavailable("redis timed out")
    gw, _ = compiled(limit("q", key=("ip",)), store=store, on_store_error="open")
    decision, ctx = await run(gw)
    assert decision.allowed
    assert [(f.code, f.detail) for f in ctx.findings] == [
        ("rate_limit_unavailable", "not counted: q")
    ]


async def test_a_closed_limit_wins_over_open_ones() -> None:
    store = RecordingStore()
    store.fail = LimitStoreUnavailable("down")
    gw, _ = compiled(
        limit("a", key=("ip",), on_store_error="open"),
        limit("b", key=("ip",)),
        store=store,
        on_store_error="closed",
    )
    assert (await run(gw))[0].reason == "rate_limit_unavailable"


async def test_store_errors_are_reported_once_per_interval() -> None:
    store = RecordingStore()
    store.fail = LimitStoreUnavailable("down")
    clock = FakeClock(1000.0)
    gw, backend = compiled(limit("q", key=("ip",)), store=store, clock=clock)
    for _ in range(5):
        await run(gw)
    assert len(backend.errors) == 1
    clock.advance(10.0)
    await run(gw)
    assert len(backend.errors) == 2


async def test_other_store_exceptions_fail_closed_even_when_open() -> None:
    store = RecordingStore()
    store.fail = RuntimeError("bug")
    gw, _ = compiled(limit("q", key=("ip",)), store=store, on_store_error="open")
    assert (await run(gw))[0].reason == "internal_error"


async def test_validation_only_compile_fails_closed() -> None:
    config = make_config(
        "http://127.0.0.1:9",
        rate_limits=RateLimitsConfig(limits=(limit("q", key=("ip",)),), on_store_error="open"),
    )
    gw = compile_gateway(config)
    decision, _ = await run(gw)
    assert (decision.status, decision.reason) == (503, "internal_error")


# -- compile-time checks against the specs ---------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        (
            {"costs": {"exportEverything": 5}},
            "rate_limits.limits[0].costs.exportEverything: no operation this limit applies to",
        ),
        (
            {"apply_to": RateLimitApplyTo(operations=("GET /nope",))},
            "rate_limits.limits[0].apply_to.operations[0]: no operation of the selected APIs",
        ),
        (
            {"apply_to": RateLimitApplyTo(tags=("Payments",))},
            "rate_limits.limits[0].apply_to.tags[0]: no operation of the selected APIs has the tag",
        ),
        (
            {
                "apply_to": RateLimitApplyTo(operations=("echoGet",)),
                "costs": {"upload": 3},
            },
            "rate_limits.limits[0].costs.upload: no operation this limit applies to",
        ),
    ],
)
def test_compile_refuses_unknown_operations(changes: dict[str, Any], fragment: str) -> None:
    rule = dataclasses.replace(limit("q", key=("ip",)), **changes)
    with pytest.raises(ConfigError) as info:
        compiled(rule)
    assert any(fragment in problem for problem in info.value.problems), info.value.problems
