"""Forwarding semantics: headers, bodies, limits, timeouts and upstream failures."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import socket

import aiohttp
import orjson

from finward.config.model import LimitsConfig, ProxyConfig, TimeoutsConfig
from finward.events import RequestEvent
from tests.harness import Gateway, Upstream, make_config, raw_exchange, start_gateway, status_of


async def _echo(gw: Gateway, raw: bytes) -> tuple[bytes, dict[str, list[str]]]:
    resp = await raw_exchange(gw.port, raw)
    head, _, body = resp.partition(b"\r\n\r\n")
    seen: dict[str, list[str]] = {}
    for k, v in orjson.loads(body)["headers"]:
        seen.setdefault(k, []).append(v)
    return head, seen


async def test_hop_by_hop_headers_are_removed_both_ways(gateway: Gateway) -> None:
    head, seen = await _echo(
        gateway,
        b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\n"
        b"Upgrade: h2c\r\nX-Keep: yes\r\n\r\n",
    )
    for name in ("x-drop-me", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert name not in seen, name
    assert seen["x-keep"] == ["yes"]
    # The upstream listed X-Secret-Hop in its Connection header: it must not reach the client.
    assert b"x-secret-hop" not in head.lower()
    assert b"set-cookie: upstream=1" in head.lower()


async def test_forwarded_headers_replace_untrusted_values(gateway: Gateway) -> None:
    _, seen = await _echo(
        gateway,
        b"GET /echo HTTP/1.1\r\nHost: bank.example\r\nConnection: close\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\n\r\n",
    )
    assert seen["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == ["bank.example"]
    assert seen["forwarded"] == ['for=127.0.0.1;proto=http;host="bank.example"']


async def test_forwarded_headers_extend_trusted_proxy_values(upstream: Upstream) -> None:
    proxy = ProxyConfig(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    gw = await start_gateway(make_config(upstream.url, proxy=proxy))
    try:
        _, seen = await _echo(
            gw,
            b"GET /echo HTTP/1.1\r\nHost: bank.example\r\nConnection: close\r\n"
            b"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
            b"Forwarded: for=203.0.113.9;proto=https\r\n\r\n",
        )
    finally:
        await gw.stop()
    assert seen["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
    assert seen["x-forwarded-proto"] == ["https"]
    assert seen["forwarded"] == [
        'for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host="bank.example"'
    ]
    events = [e for e in gw.events if isinstance(e, RequestEvent)]
    assert events[-1].client_ip == "203.0.113.9"


async def test_body_limits(upstream: Upstream) -> None:
    limits = LimitsConfig(max_body_bytes=1000, header_timeout_s=2, body_timeout_s=2)
    gw = await start_gateway(make_config(upstream.url, limits=limits))
    try:
        declared = await raw_exchange(
            gw.port,
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" + b"a" * 1001,
        )
        assert status_of(declared) == 413
        assert b"body_too_large" in declared
        chunked = await raw_exchange(
            gw.port,
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1f4\r\n"
            + b"a" * 500
            + b"\r\n"
            + b"258\r\n"
            + b"b" * 600
            + b"\r\n0\r\n\r\n",
        )
        assert status_of(chunked) == 413
        ok = await raw_exchange(
            gw.port,
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"1f4\r\n" + b"a" * 500 + b"\r\n0\r\n\r\n",
        )
        assert status_of(ok) == 200
        assert ok.endswith(b'{"received": 500}')
    finally:
        await gw.stop()


async def test_large_upload_and_download_stream(upstream: Upstream) -> None:
    limits = LimitsConfig(max_body_bytes=32_000_000)
    gw = await start_gateway(make_config(upstream.url, limits=limits))
    try:
        async with aiohttp.ClientSession() as s:
            payload = b"z" * 20_000_000
            async with s.post(gw.url + "/upload", data=io.BytesIO(payload)) as r:
                assert r.status == 200
                assert (await r.json())["received"] == len(payload)
            async with s.get(gw.url + "/big?n=25000000") as r:
                assert r.status == 200
                assert r.headers["Content-Length"] == "25000000"
                assert len(await r.read()) == 25_000_000
    finally:
        await gw.stop()


async def test_upstream_timeout_is_504(upstream: Upstream) -> None:
    cfg = make_config(upstream.url, timeouts=TimeoutsConfig(connect_s=1.0, read_s=0.3, total_s=5.0))
    gw = await start_gateway(cfg)
    try:
        async with aiohttp.ClientSession() as s, s.get(gw.url + "/slow?s=2") as r:
            assert r.status == 504
            problem = await r.json(content_type="application/problem+json")
            assert problem["reason"] == "upstream_timeout"
            assert "Traceback" not in str(problem)
    finally:
        await gw.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_upstream_down_is_502() -> None:
    gw = await start_gateway(make_config(f"http://127.0.0.1:{_free_port()}"))
    try:
        async with aiohttp.ClientSession() as s, s.get(gw.url + "/echo") as r:
            assert r.status == 502
            text = await r.text()
            problem = orjson.loads(text)
            assert problem["reason"] == "upstream_unavailable"
            assert "Connect" not in text and "Errno" not in text and "127.0.0.1:" not in text
    finally:
        await gw.stop()


async def test_upstream_cut_mid_body_aborts_client(gateway: Gateway) -> None:
    resp = await raw_exchange(gateway.port, b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert b"content-length: 100000" in head.lower()
    assert len(body) < 100_000  # the client sees a truncated body, never a silent success


async def test_upstream_cookies_are_never_replayed(gateway: Gateway) -> None:
    _, first = await _echo(gateway, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    _, second = await _echo(gateway, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert "cookie" not in first and "cookie" not in second


async def test_upstream_status_and_headers_pass_through(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as s, s.get(gateway.url + "/status/418") as r:
        assert r.status == 418
        assert (await r.json()) == {"code": 418}


async def test_absolute_form_target(gateway: Gateway, upstream: Upstream) -> None:
    resp = await raw_exchange(
        gateway.port, b"GET http://x/items/abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status_of(resp) == 200
    assert upstream.seen == ["/items/abc"]


async def test_draining_finishes_in_flight_requests(upstream: Upstream) -> None:
    import asyncio

    gw = await start_gateway(make_config(upstream.url))
    async with aiohttp.ClientSession() as s:
        pending = asyncio.ensure_future(s.get(gw.url + "/slow?s=0.5"))
        await asyncio.sleep(0.1)
        gw.server.close()
        drained = asyncio.ensure_future(gw.worker.drain(5.0))
        r = await pending
        assert r.status == 200
        assert (await r.json()) == {"slow": True}
        r.release()
        await drained


async def test_forwarding_headers_can_be_disabled(upstream: Upstream) -> None:
    cfg = make_config(upstream.url)
    cfg = dataclasses.replace(cfg, proxy=ProxyConfig(add_forwarded_headers=False))
    gw = await start_gateway(cfg)
    try:
        _, seen = await _echo(
            gw,
            b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"X-Forwarded-For: 6.6.6.6\r\n\r\n",
        )
    finally:
        await gw.stop()
    assert "x-forwarded-for" not in seen and "forwarded" not in seen
