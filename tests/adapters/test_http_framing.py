"""Malformed HTTP and request smuggling: each case refused with its own reason, never forwarded."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from finward.config.model import LimitsConfig
from finward.events import RequestEvent
from tests.harness import Gateway, Upstream, make_config, raw_exchange, start_gateway, status_of

SMUGGLING = [
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        b"ambiguous_message_length",
        id="CL.TE",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"5c\r\nGET /admin HTTP/1.1\r\n\r\n0\r\n\r\n",
        400,
        b"ambiguous_message_length",
        id="TE.CL",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
        400,
        b"invalid_content_length",
        id="conflicting-CL",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
        400,
        b"invalid_content_length",
        id="CL-list",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        400,
        b"invalid_content_length",
        id="CL-sign",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n",
        400,
        b"invalid_chunk",
        id="bad-chunk-size",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        400,
        b"invalid_chunk",
        id="chunk-size-overflow",
    ),
    pytest.param(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        400,
        b"obsolete_line_folding",
        id="obs-fold",
    ),
    pytest.param(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
        400,
        b"invalid_header",
        id="space-before-colon",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        400,
        b"invalid_transfer_encoding",
        id="unknown-transfer-coding",
    ),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        400,
        b"invalid_transfer_encoding",
        id="chunked-not-last",
    ),
    pytest.param(b"GET /echo HTTP/1.1\nHost: x\n\n", 400, b"malformed_request", id="bare-LF"),
    pytest.param(b"GET /echo HTTP/1.1\r\n\r\n", 400, b"missing_host", id="no-host"),
    pytest.param(
        b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, b"missing_host", id="two-hosts"
    ),
    pytest.param(
        b"GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n", 400, b"invalid_header", id="host-with-space"
    ),
    pytest.param(
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, b"malformed_request", id="space-in-target"
    ),
    pytest.param(b"FOO\r\n\r\n", 400, b"malformed_request", id="garbage"),
    pytest.param(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n",
        417,
        b"expectation_failed",
        id="expect",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "reason"), SMUGGLING)
async def test_ambiguous_or_malformed_requests_are_refused(
    gateway: Gateway, upstream: Upstream, request_bytes: bytes, status: int, reason: bytes
) -> None:
    resp = await raw_exchange(gateway.port, request_bytes)
    assert status_of(resp) == status
    assert reason in resp
    assert b"application/problem+json" in resp
    assert b"connection: close" in resp.lower() or status == 417
    # The refused message and anything smuggled behind it never reach the upstream.
    assert upstream.seen == []


async def test_refused_connection_does_not_affect_others(
    gateway: Gateway, upstream: Upstream
) -> None:
    bad = raw_exchange(
        gateway.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    )
    good = raw_exchange(gateway.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    bad_resp, good_resp = await asyncio.gather(bad, good)
    assert status_of(bad_resp) == 400
    assert status_of(good_resp) == 200
    assert upstream.seen == ["/echo"]


async def test_uri_too_long(gateway: Gateway) -> None:
    resp = await raw_exchange(
        gateway.port, b"GET /echo?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status_of(resp) == 414
    assert b"uri_too_long" in resp


async def test_headers_too_large(gateway: Gateway) -> None:
    resp = await raw_exchange(
        gateway.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    )
    assert status_of(resp) == 431
    assert b"headers_too_large" in resp


async def test_too_many_headers(gateway: Gateway) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    resp = await raw_exchange(gateway.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_of(resp) == 431


async def test_slow_headers_get_408_and_other_connections_are_served(
    gateway: Gateway, upstream: Upstream
) -> None:
    slow = raw_exchange(gateway.port, [b"GET /echo HTTP/1.1\r\n", b"Host: x\r\n"], pause=0.6)
    fast = raw_exchange(gateway.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    slow_resp, fast_resp = await asyncio.gather(slow, fast)
    assert status_of(fast_resp) == 200
    assert status_of(slow_resp) == 408
    assert b"request_timeout" in slow_resp


async def test_slow_body_gets_408(gateway: Gateway, upstream: Upstream) -> None:
    resp = await raw_exchange(
        gateway.port,
        [b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", b"abc"],
        pause=0.1,
        timeout=3.0,
    )
    assert status_of(resp) == 408


async def test_keep_alive_and_pipelining_answer_in_order(
    gateway: Gateway, upstream: Upstream
) -> None:
    reqs = (
        b"GET /items/one HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /items/two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    resp = await raw_exchange(gateway.port, reqs)
    assert resp.count(b"HTTP/1.1 ") == 3
    first, second, third = (
        resp.index(x) for x in (b"HTTP/1.1 200", b"HTTP/1.1 404", b"/items/two")
    )
    assert first < second < third
    assert upstream.seen == ["/items/one", "/items/two"]


async def test_http10_gets_close_delimited_chunked_upstream(gateway: Gateway) -> None:
    resp = await raw_exchange(gateway.port, b"GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"part-0;part-1;part-2;part-3;part-4;"


async def test_chunked_upstream_is_rechunked_for_http11(gateway: Gateway) -> None:
    resp = await raw_exchange(
        gateway.port, b"GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, body = resp.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body.endswith(b"0\r\n\r\n")
    assert b"part-4;" in body


async def test_head_has_no_body(gateway: Gateway) -> None:
    resp = await raw_exchange(
        gateway.port, b"HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b""


async def test_expect_100_continue(gateway: Gateway) -> None:
    resp = await raw_exchange(
        gateway.port,
        [
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n",
            b"hello",
        ],
        pause=0.2,
    )
    assert resp.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
    assert resp.endswith(b'{"received": 5}')


async def test_connection_cap_refuses_extra_connections(upstream: Upstream) -> None:
    limits = LimitsConfig(max_connections=2, header_timeout_s=5, keepalive_timeout_s=5)
    gw = await start_gateway(make_config(upstream.url, limits=limits))
    try:
        held = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(2)]
        await asyncio.sleep(0.05)
        resp = await raw_exchange(gw.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(resp) == 503
        assert b"too_many_connections" in resp
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.05)
        ok = await raw_exchange(
            gw.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status_of(ok) == 200
    finally:
        await gw.stop()


async def test_trailer_fields_never_become_headers(gateway: Gateway) -> None:
    resp = await raw_exchange(
        gateway.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\nX-Smuggled: yes\r\nAuthorization: Bearer stolen\r\n\r\n",
    )
    assert status_of(resp) == 200
    lowered = resp.lower()
    assert b"x-smuggled" not in lowered and b"stolen" not in lowered


async def test_transfer_coding_other_than_chunked_is_refused(
    gateway: Gateway, upstream: Upstream
) -> None:
    resp = await raw_exchange(
        gateway.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    )
    assert status_of(resp) == 400
    assert b"invalid_transfer_encoding" in resp
    assert upstream.seen == []


async def test_chunk_extensions_count_against_the_message_limit(upstream: Upstream) -> None:
    limits = LimitsConfig(max_body_bytes=10_000, header_timeout_s=5, body_timeout_s=5)
    gw = await start_gateway(make_config(upstream.url, limits=limits))
    try:
        resp = await raw_exchange(
            gw.port,
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;x="
            + b"e" * 200_000
            + b"\r\nab\r\n0\r\n\r\n",
        )
        assert status_of(resp) == 413
        assert upstream.seen == []
    finally:
        await gw.stop()


async def test_small_chunked_body_is_forwarded_with_a_length(gateway: Gateway) -> None:
    resp = await raw_exchange(
        gateway.port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3\r\n{"a\r\n4\r\n": 1\r\n1\r\n}\r\n0\r\n\r\n',
    )
    body = orjson.loads(resp.partition(b"\r\n\r\n")[2])
    seen = dict(body["headers"])
    assert seen["content-length"] == "8"
    assert "transfer-encoding" not in seen
    assert body["body"] == '{"a": 1}'


async def test_oversized_chunked_body_never_reaches_upstream(upstream: Upstream) -> None:
    limits = LimitsConfig(max_body_bytes=1000)
    gw = await start_gateway(make_config(upstream.url, limits=limits))
    try:
        resp = await raw_exchange(
            gw.port,
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"3e8\r\n"
            + b"a" * 1000
            + b"\r\n1\r\nb\r\n0\r\n\r\n",
        )
        assert status_of(resp) == 413
        assert upstream.seen == []
        events = [e for e in gw.events if isinstance(e, RequestEvent)]
        assert events[-1].reason == "body_too_large" and events[-1].decided_by == "http"
    finally:
        await gw.stop()


async def test_upstream_fingerprint_headers_are_removed(gateway: Gateway) -> None:
    resp = await raw_exchange(
        gateway.port, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head = resp.partition(b"\r\n\r\n")[0].lower()
    assert b"\r\nserver:" not in head
