"""End to end through real sockets: gateway in front of a real upstream."""

from __future__ import annotations

import uuid

import aiohttp
import orjson

from finward.events import RequestEvent
from tests.harness import Gateway, Upstream, raw_exchange, status_of


async def test_forwards_declared_operation_with_generated_ids(
    gateway: Gateway, upstream: Upstream
) -> None:
    async with aiohttp.ClientSession() as s, s.get(gateway.url + "/echo?a=1") as r:
        assert r.status == 200
        body = await r.json()
        rid = r.headers["X-Request-ID"]
        assert r.headers["x-fapi-interaction-id"] == rid
        assert uuid.UUID(rid).version == 4
    assert body["path"] == "/echo?a=1"
    seen = dict(body["headers"])
    assert seen["x-request-id"] == rid
    assert seen["x-fapi-interaction-id"] == rid
    assert seen["host"] == f"127.0.0.1:{upstream.port}"


async def test_echoes_client_ids_and_replaces_unsafe_ones(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(
            gateway.url + "/echo",
            headers={
                "X-Request-ID": "req-123",
                "x-fapi-interaction-id": "c0ffee00-0000-4000-8000-000000000001",
            },
        ) as r:
            assert r.headers["X-Request-ID"] == "req-123"
            assert r.headers["x-fapi-interaction-id"] == "c0ffee00-0000-4000-8000-000000000001"
        async with s.get(
            gateway.url + "/echo", headers={"X-Request-ID": "bad id\twith<script>"}
        ) as r:
            assert r.headers["X-Request-ID"] != "bad id\twith<script>"
            assert uuid.UUID(r.headers["X-Request-ID"]).version == 4


async def test_unknown_paths_are_never_forwarded(gateway: Gateway, upstream: Upstream) -> None:
    async with aiohttp.ClientSession() as s:
        for path in ("/admin", "/v0/accounts", "/debug/vars", "/echo/extra", "/"):
            async with s.get(gateway.url + path, headers={"X-Request-ID": "probe-1"}) as r:
                assert r.status == 404, path
                assert r.headers["Content-Type"] == "application/problem+json"
                assert r.headers["X-Request-ID"] == "probe-1"
                problem = orjson.loads(await r.read())
                assert problem["reason"] == "route_not_found"
                assert problem["status"] == 404
                assert problem["type"] == "urn:finward:reason:route_not_found"
    assert upstream.seen == []


async def test_wrong_method_is_405_with_allow(gateway: Gateway, upstream: Upstream) -> None:
    async with aiohttp.ClientSession() as s, s.delete(gateway.url + "/echo") as r:
        assert r.status == 405
        assert r.headers["Allow"] == "GET, HEAD, POST"
        assert (await r.json(content_type=None))["reason"] == "method_not_allowed"
    assert upstream.seen == []


async def test_traversal_and_encoded_traversal_refused(
    gateway: Gateway, upstream: Upstream
) -> None:
    attacks = [
        b"/items/../admin",
        b"/items/..%2fadmin",
        b"/items/%2e%2e/admin",
        b"/items/%252e%252e/admin",
        b"/items/..;/admin",
        b"/items//special",
        b"/items/a%00b",
        b"/items/%zz",
    ]
    for path in attacks:
        resp = await raw_exchange(
            gateway.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status_of(resp) == 400, path
        assert b"path_not_canonical" in resp, path
    assert upstream.seen == []


async def test_event_per_request_with_route_template(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(gateway.url + "/items/abc") as r:
            assert r.status == 200
        async with s.get(gateway.url + "/nope") as r:
            assert r.status == 404
    events = [e for e in gateway.events if isinstance(e, RequestEvent)]
    assert [(e.route, e.status, e.reason) for e in events] == [
        ("/items/{itemId}", 200, None),
        (None, 404, "route_not_found"),
    ]
    assert events[0].operation_id == "getItem"
    assert events[0].upstream_latency_ms is not None


async def test_async_policy_runs_in_the_gateway(gateway: Gateway, upstream: Upstream) -> None:
    """A policy that awaits a store is honoured by the data plane, and fails closed."""
    import dataclasses

    from finward.core.pipeline import Context, Pipeline
    from finward.decision import Decision
    from finward.http import RequestView

    class Gate:
        name = "gate"
        is_async = True

        async def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
            if request.headers.get("x-boom"):
                raise RuntimeError("store unreachable")
            return Decision.deny("route_not_found") if request.headers.get("x-deny") else None

    state = gateway.worker.state
    policies = [Gate(), *state.gateway.pipeline._policies]
    state.gateway = dataclasses.replace(state.gateway, pipeline=Pipeline(policies))
    async with aiohttp.ClientSession() as s:
        async with s.get(gateway.url + "/items/ok") as r:
            assert r.status == 200
        async with s.get(gateway.url + "/items/no", headers={"x-deny": "1"}) as r:
            assert r.status == 404
        async with s.get(gateway.url + "/items/boom", headers={"x-boom": "1"}) as r:
            assert r.status == 503
            assert (await r.json(content_type=None))["reason"] == "internal_error"
    assert upstream.seen == ["/items/ok"]
