"""Slow clients over real sockets: slowloris headers, slow POST bodies, connections per IP.

Every test uses short limits so it finishes in about a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import orjson

from finward.config.model import LimitsConfig, ProxyConfig
from finward.events import RequestEvent
from tests.harness import Upstream, make_config, raw_exchange, start_gateway, status_of

FAST_LIMITS = LimitsConfig(
    header_timeout_s=0.5,
    body_timeout_s=5.0,
    keepalive_timeout_s=5.0,
    min_body_rate_bytes_s=1000,
    min_body_rate_grace_s=0.4,
)


async def dribble(
    port: int,
    parts: list[bytes],
    interval: float,
    *,
    source: str = "127.0.0.1",
    timeout: float = 5.0,
) -> tuple[bytes, float]:
    """Send ``parts`` one every ``interval`` s while reading the answer until EOF.

    Returns what came back and how long it took the gateway to end the exchange.
    """
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    started = loop.time()

    async def send() -> None:
        for part in parts:
            if writer.is_closing():
                return
            writer.write(part)
            try:
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(interval)

    sender = asyncio.create_task(send())
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout):
            received += chunk
    except (TimeoutError, ConnectionError):
        pass
    elapsed = loop.time() - started
    sender.cancel()
    with suppress(asyncio.CancelledError):
        await sender
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()
    return received, elapsed


@dataclass
class RecordingUpstream:
    """A raw TCP upstream that never answers: it records what arrives and when it ends."""

    port: int = 0
    received: bytearray = field(default_factory=bytearray)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def recording_upstream() -> AsyncIterator[RecordingUpstream]:
    upstream = RecordingUpstream()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                upstream.received += chunk
        except ConnectionError:
            pass
        upstream.ended.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()


def problem_of(response: bytes) -> dict[str, object]:
    body = orjson.loads(response.partition(b"\r\n\r\n")[2])
    assert isinstance(body, dict)
    return body


# -- slowloris -----------------------------------------------------------------------


async def test_slowloris_headers_are_cut_at_the_header_timeout_while_bytes_keep_coming(
    upstream: Upstream,
) -> None:
    gw = await start_gateway(make_config(upstream.url, limits=FAST_LIMITS))
    try:
        request = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 400 + b"\r\n\r\n"
        # One byte every 20 ms: the connection is never idle, yet the headers would take
        # over 8 s. The deadline counts from the first byte and is not extended.
        parts = [request[i : i + 1] for i in range(len(request))]
        resp, elapsed = await dribble(gw.port, parts, 0.02)
        assert status_of(resp) == 408
        assert problem_of(resp)["reason"] == "request_timeout"
        assert b"connection: close" in resp.lower()
        assert 0.4 <= elapsed < 1.5
        assert upstream.seen == []
    finally:
        await gw.stop()


# -- slow POST (minimum body rate) -------------------------------------------------------


async def test_slow_post_below_the_minimum_rate_is_refused_and_the_upstream_exchange_aborted() -> (
    None
):
    async with recording_upstream() as up:
        gw = await start_gateway(make_config(up.url, limits=FAST_LIMITS))
        try:
            head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
            # 10 bytes every 100 ms = 100 bytes/s, a tenth of the minimum; the body would
            # take 10 s, and body_timeout_s (5 s) is not what ends it.
            resp, elapsed = await dribble(gw.port, [head] + [b"x" * 10] * 100, 0.1)
            assert status_of(resp) == 408
            problem = problem_of(resp)
            assert problem["reason"] == "request_timeout"
            assert "too slowly" in str(problem["detail"])
            assert b"connection: close" in resp.lower()
            assert 0.35 <= elapsed < 1.5
            # The body was streaming to the upstream: that exchange is cut off, so the
            # upstream holds a partial request and its connection is closed.
            await asyncio.wait_for(up.ended.wait(), 1.0)
            forwarded = bytes(up.received)
            assert forwarded.startswith(b"POST /upload HTTP/1.1\r\n")
            assert len(forwarded.partition(b"\r\n\r\n")[2]) < 1000
            event = next(e for e in gw.events if isinstance(e, RequestEvent))
            assert (event.status, event.reason, event.decided_by) == (
                408,
                "request_timeout",
                "http",
            )
            assert event.detail is not None and "too slowly" in event.detail
        finally:
            await gw.stop()


async def test_slow_chunked_body_never_reaches_the_upstream() -> None:
    async with recording_upstream() as up:
        gw = await start_gateway(make_config(up.url, limits=FAST_LIMITS))
        try:
            head = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            resp, _ = await dribble(gw.port, [head] + [b"5\r\nxxxxx\r\n"] * 100, 0.1)
            assert status_of(resp) == 408
            assert "too slowly" in str(problem_of(resp)["detail"])
            assert bytes(up.received) == b""  # small chunked bodies are read whole first
        finally:
            await gw.stop()


async def test_a_stalled_body_is_refused_once_its_average_rate_drops_below_the_minimum(
    upstream: Upstream,
) -> None:
    gw = await start_gateway(make_config(upstream.url, limits=FAST_LIMITS))
    try:
        # 800 bytes at once, then nothing: at 1000 bytes/s that covers 0.8 s, after which
        # the average is too low, long before body_timeout_s (5 s).
        head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
        resp, elapsed = await dribble(gw.port, [head + b"x" * 800], 0)
        assert status_of(resp) == 408
        assert "too slowly" in str(problem_of(resp)["detail"])
        assert 0.7 <= elapsed < 2.0
    finally:
        await gw.stop()


async def test_a_body_at_a_sufficient_rate_passes(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, limits=FAST_LIMITS))
    try:
        head = (
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3000\r\n\r\n"
        )
        # 150 bytes every 50 ms = 3000 bytes/s for a second, three times the minimum.
        resp, _ = await dribble(gw.port, [head] + [b"y" * 150] * 20, 0.05)
        assert status_of(resp) == 200
        assert resp.endswith(b'{"received": 3000}')
    finally:
        await gw.stop()


async def test_rate_clock_starts_when_100_continue_is_sent(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, limits=FAST_LIMITS))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Expect: 100-continue\r\nContent-Length: 1500\r\n\r\n"
        )
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == (
            b"HTTP/1.1 100 Continue\r\n\r\n"
        )
        for _ in range(10):
            writer.write(b"z" * 150)  # 3000 bytes/s from the 100 Continue on
            await asyncio.sleep(0.05)
        resp = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        assert status_of(resp) == 200
        assert resp.endswith(b'{"received": 1500}')
    finally:
        await gw.stop()


async def test_min_body_rate_zero_turns_the_check_off(upstream: Upstream) -> None:
    limits = dataclasses.replace(FAST_LIMITS, min_body_rate_bytes_s=0, body_timeout_s=1.0)
    gw = await start_gateway(make_config(upstream.url, limits=limits))
    try:
        head = (
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 12\r\n\r\n"
        )
        # 20 bytes/s, far below 1000, but only body_timeout_s applies: 0.6 s is within it.
        resp, _ = await dribble(gw.port, [head] + [b"ab"] * 6, 0.1)
        assert status_of(resp) == 200
        assert resp.endswith(b'{"received": 12}')
    finally:
        await gw.stop()


# -- connections per client IP -----------------------------------------------------------


async def test_connections_per_ip_are_capped_per_source_address(upstream: Upstream) -> None:
    limits = dataclasses.replace(FAST_LIMITS, header_timeout_s=5.0, max_connections_per_ip=2)
    gw = await start_gateway(make_config(upstream.url, limits=limits))
    request = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    try:
        held = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(2)]
        await asyncio.sleep(0.05)
        # A third connection from the same address is refused at once.
        refused, _ = await dribble(gw.port, [request], 0)
        assert status_of(refused) == 429
        assert problem_of(refused)["reason"] == "too_many_connections_from_ip"
        assert b"connection: close" in refused.lower()
        # Another address is not affected (127.0.0.2 is loopback too).
        other, _ = await dribble(gw.port, [request], 0, source="127.0.0.2")
        assert status_of(other) == 200
        # Closing a held connection frees its slot.
        held[0][1].close()
        await asyncio.sleep(0.1)
        again, _ = await dribble(gw.port, [request], 0)
        assert status_of(again) == 200
        for _, writer in held[1:]:
            writer.close()
        await asyncio.sleep(0.1)
        assert status_of(await raw_exchange(gw.port, request)) == 200
        await asyncio.sleep(0.1)
        assert gw.worker.connections_per_ip == {}  # every slot given back
        refusals = [
            e
            for e in gw.events
            if isinstance(e, RequestEvent) and e.reason == "too_many_connections_from_ip"
        ]
        assert len(refusals) == 1 and refusals[0].peer_ip == "127.0.0.1"
    finally:
        await gw.stop()


async def test_trusted_proxies_are_exempt_from_the_per_ip_cap(upstream: Upstream) -> None:
    limits = dataclasses.replace(FAST_LIMITS, header_timeout_s=5.0, max_connections_per_ip=1)
    proxy = ProxyConfig(trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    gw = await start_gateway(make_config(upstream.url, limits=limits, proxy=proxy))
    request = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    try:
        held = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(2)]
        held.append(
            await asyncio.open_connection("127.0.0.1", gw.port, local_addr=("127.0.0.2", 0))
        )
        await asyncio.sleep(0.05)
        trusted, _ = await dribble(gw.port, [request], 0)
        assert status_of(trusted) == 200  # the terminator's address is never capped
        untrusted, _ = await dribble(gw.port, [request], 0, source="127.0.0.2")
        assert status_of(untrusted) == 429
        for _, writer in held:
            writer.close()
    finally:
        await gw.stop()


# -- slow readers ---------------------------------------------------------------------


async def test_a_client_that_stops_reading_is_cut_off_at_the_send_timeout(
    upstream: Upstream,
) -> None:
    """Slow-read attack: a response nobody reads must not hold the connection (and any
    concurrency slot) for ever; after send_timeout_s without progress it is aborted."""
    limits = dataclasses.replace(FAST_LIMITS, send_timeout_s=0.5, keepalive_timeout_s=30.0)
    gw = await start_gateway(make_config(upstream.url, limits=limits))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(b"GET /big?n=50000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(100):  # until the response is under way
            if gw.worker.inflight:
                break
            await asyncio.sleep(0.02)
        assert gw.worker.inflight == 1
        started = time.monotonic()
        while gw.worker.connections and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
        held = time.monotonic() - started
        assert not gw.worker.connections, "the gateway still holds the connection"
        assert 0.4 < held < 3.0
        assert gw.worker.inflight == 0
    finally:
        sock.close()
        await gw.stop()
