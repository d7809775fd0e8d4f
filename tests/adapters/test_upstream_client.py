"""The upstream client against scripted raw upstreams (real sockets, exact bytes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from finward.adapters.upstream import UpstreamPool
from finward.adapters.upstream_client import UpstreamError
from finward.config.model import TimeoutsConfig, UpstreamConfig

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Upstream:
    """A scripted raw upstream; ``stop`` closes the listener and every connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def start(self) -> Upstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()
        await asyncio.sleep(0.01)


async def _serve(handler: Handler) -> Upstream:
    return await Upstream(handler).start()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _pool(port: int, **kw: object) -> UpstreamPool:
    timeouts = kw.pop("timeouts", TimeoutsConfig(connect_s=1.0, read_s=1.0, total_s=3.0))
    cfg = UpstreamConfig(name="u", url=f"http://127.0.0.1:{port}", timeouts=timeouts, **kw)  # type: ignore[arg-type]
    return UpstreamPool({"u": cfg})


async def _body(resp: object) -> bytes:
    out = b""
    async for chunk in resp.chunks():  # type: ignore[attr-defined]
        out += chunk
    return out


@pytest.fixture
async def counting() -> AsyncIterator[tuple[int, list[int]]]:
    """An upstream that answers every request and counts connections."""
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await _read_head(reader)
                body = b'{"n": %d}' % len(connections)
                if head.startswith(b"HEAD"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    up = await _serve(handler)
    yield up.port, connections
    await up.stop()


async def test_connections_are_reused(counting: tuple[int, list[int]]) -> None:
    port, connections = counting
    pool = _pool(port)
    for _ in range(5):
        resp = await pool.request("u", "GET", "/x", [("host", "u")], None)
        assert await _body(resp) == b'{"n": 1}'
        resp.release()
    assert len(connections) == 1
    await pool.close()


async def test_head_response_with_length_is_not_reused_and_has_no_body(
    counting: tuple[int, list[int]],
) -> None:
    port, connections = counting
    pool = _pool(port)
    resp = await pool.request("u", "HEAD", "/x", [("host", "u")], None)
    assert resp.status == 200 and resp.content_length == 9
    assert await _body(resp) == b""
    resp.release()
    resp = await pool.request("u", "GET", "/x", [("host", "u")], None)
    assert await _body(resp) == b'{"n": 2}'
    resp.release()
    assert len(connections) == 2
    await pool.close()


async def test_stale_keepalive_connection_is_retried_for_get_only() -> None:
    """The upstream answers the first request of each connection, then drops the next
    one without a byte (the keep-alive race). GET is replayed on a new connection; a
    streamed POST is not (it may not be replayable), and fails cleanly."""
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await _read_head(reader)  # the second request on this connection: dropped

    up = await _serve(handler)
    pool = _pool(up.port)
    try:
        for _ in range(2):
            resp = await pool.request("u", "GET", "/", [("host", "u")], None)
            assert await _body(resp) == b"ok"
            resp.release()
        assert connections == 2  # the second GET hit the dropped connection and was retried

        async def stream() -> AsyncIterator[bytes]:
            yield b"data"

        with pytest.raises(UpstreamError) as err:
            await pool.request("u", "POST", "/", [("host", "u"), ("content-length", "4")], stream())
        assert err.value.reason == "upstream_unavailable"
        assert connections == 2
    finally:
        await up.stop()
        await pool.close()


async def test_interim_1xx_is_skipped_and_close_delimited_body_is_read() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-the-end")
        await writer.drain()
        writer.close()

    up = await _serve(handler)
    port = up.port
    pool = _pool(port)
    resp = await pool.request("u", "GET", "/", [("host", "u")], None)
    assert resp.status == 200 and resp.content_length is None
    assert await _body(resp) == b"until-the-end"
    assert not resp.keep_alive
    resp.release()
    await up.stop()
    await pool.close()


async def test_malformed_and_oversized_responses_are_bad_responses() -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(replies.pop(0))
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()

    up = await _serve(handler)
    port = up.port
    pool = _pool(port)
    for _ in range(3):
        with pytest.raises(UpstreamError) as err:
            await pool.request("u", "GET", "/", [("host", "u")], None)
        assert err.value.reason == "upstream_bad_response"
    await up.stop()
    await pool.close()


async def test_body_stall_and_total_deadline_are_timeouts() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        await asyncio.sleep(5)

    up = await _serve(handler)
    port = up.port
    pool = _pool(port, timeouts=TimeoutsConfig(connect_s=1.0, read_s=0.3, total_s=3.0))
    resp = await pool.request("u", "GET", "/", [("host", "u")], None)
    with pytest.raises(UpstreamError) as err:
        await _body(resp)
    assert err.value.reason == "upstream_timeout"
    resp.release()
    await up.stop()
    await pool.close()


async def test_pool_limit_queues_requests(counting: tuple[int, list[int]]) -> None:
    port, connections = counting
    pool = _pool(port, max_connections=2)

    async def one() -> bytes:
        resp = await pool.request("u", "GET", "/", [("host", "u")], None)
        body = await _body(resp)
        resp.release()
        return body

    bodies = await asyncio.gather(*(one() for _ in range(20)))
    assert len(bodies) == 20
    assert len(connections) <= 2
    await pool.close()


async def test_streamed_body_without_length_is_chunked() -> None:
    got: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _read_head(reader)
        got.append(head)
        got.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def stream() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    up = await _serve(handler)
    port = up.port
    pool = _pool(port)
    resp = await pool.request("u", "POST", "/", [("host", "u")], stream())
    assert resp.status == 200
    resp.release()
    assert b"transfer-encoding: chunked" in got[0].lower()
    assert got[1] == b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
    await up.stop()
    await pool.close()
