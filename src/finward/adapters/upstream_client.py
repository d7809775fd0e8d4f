"""A lean HTTP/1.1 client for upstream APIs: keep-alive pools on llhttp (httptools).

Measured against aiohttp's client in bench/run.py: aiohttp spent half of the
gateway's CPU on building and tracking generic request objects a reverse proxy
does not need. This client only frames bytes (the parsing is llhttp's, never
ours), pools connections, bounds every wait, and maps failures to reason codes.

Rules a reverse proxy must keep, and this client does: no cookies, no redirects,
no decoding, no environment proxies, header size limits on responses, and a
stale keep-alive connection is retried only for idempotent requests that
received no response byte (as nginx's proxy_next_upstream does).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from typing import cast

import httptools

from finward.adapters.body import HIGH_WATER, LOW_WATER
from finward.adapters.deadline import Deadline

# Response header limits (a JWS signature header from a bank can be several KB).
MAX_RESPONSE_HEADER_BYTES = 65_536
MAX_RESPONSE_HEADERS = 200
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


class UpstreamError(Exception):
    """An upstream failure, mapped to a stable reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _HeaderLimitError(Exception):
    pass


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.response: UpstreamResponse | None = None
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self.got_bytes = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.expect_body = True
        self.body_sent = False
        # One lazily re-armed timer per connection bounds every wait (head, body).
        self._deadline = Deadline()
        self._deadline_detail = ""

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamError("upstream_bad_response", "unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            limit = isinstance(exc.__context__, _HeaderLimitError)
            detail = "response headers too large" if limit else "malformed response"
            self._fail(UpstreamError("upstream_bad_response", detail))

    def eof_received(self) -> bool | None:
        resp = self.response
        if resp is not None and resp.close_delimited and not resp.done:
            resp.finish()  # the body ran to the end of the connection (RFC 9112 §6.3 (8))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        resp = self.response
        if resp is not None and resp.close_delimited and not resp.done:
            resp.finish()
        self._fail(UpstreamError("upstream_unavailable", "the upstream closed the connection"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionError("upstream connection lost"))
        self.pool.forget(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- llhttp callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._header_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if (
            self._header_bytes > MAX_RESPONSE_HEADER_BYTES
            or len(self._headers) >= MAX_RESPONSE_HEADERS
        ):
            raise _HeaderLimitError
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            return  # 1xx interim responses (103 Early Hints) are not relayed
        length = None
        chunked = False
        for name, value in self._headers:
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = True
        keep_alive = self.parser.should_keep_alive()
        no_body = not self.expect_body or status in (204, 304)
        resp = UpstreamResponse(self, status, self._headers, None if chunked else length)
        resp.close_delimited = not no_body and not chunked and length is None
        resp.keep_alive = keep_alive and not resp.close_delimited
        self.response = resp
        if no_body:
            # llhttp cannot know that this answers a HEAD: stop here ourselves.
            if not self.expect_body and length:
                resp.keep_alive = False
            resp.finish()
        if self._head is not None and not self._head.done():
            self._head.set_result(resp)

    def on_body(self, data: bytes) -> None:
        if self.response is not None and not self.response.done:
            self.response.feed(data)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            return
        if self.response is not None and not self.response.done:
            self.response.finish()

    # -- request side -------------------------------------------------------------------

    def _fail(self, error: UpstreamError) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
        if self.response is not None and not self.response.done:
            self.response.fail(error)
        self.abort()

    def arm(self, seconds: float, detail: str) -> None:
        """Fail the pending wait with upstream_timeout unless data arrives in ``seconds``."""
        self._deadline_detail = detail
        self._deadline.arm(seconds, self._expire)

    def disarm(self) -> None:
        self._deadline.disarm()

    def _expire(self) -> None:
        self._fail(UpstreamError("upstream_timeout", self._deadline_detail))

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True
        self._deadline.cancel()

    async def drain(self) -> None:
        if self._write_paused:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain

    async def send(
        self,
        head: bytes,
        body: bytes | AsyncIterable[bytes] | None,
        *,
        expect_body: bool,
        chunked: bool,
    ) -> asyncio.Future[UpstreamResponse]:
        """Write the request; the returned future resolves with the response head."""
        assert self.transport is not None
        self.expect_body = expect_body
        self.response = None
        self.got_bytes = False
        self.body_sent = False
        self._head = asyncio.get_running_loop().create_future()
        if body is None or isinstance(body, bytes):
            self.transport.write(head + body if body else head)
            self.body_sent = True
            return self._head
        # A streamed body goes as it is under a Content-Length, else chunked (the caller
        # put the matching framing header in ``head``).
        self.transport.write(head)
        async for chunk in body:
            if self._head.done() or self.closed:
                return self._head  # the upstream answered (or failed) early; stop sending
            self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            await self.drain()
        if not self.closed:
            if chunked:
                self.transport.write(b"0\r\n\r\n")
            self.body_sent = True
        return self._head


class UpstreamResponse:
    """Status, headers and a streamed body; ``release`` returns the connection to its pool."""

    def __init__(
        self,
        conn: UpstreamConnection,
        status: int,
        headers: list[tuple[str, str]],
        content_length: int | None,
    ) -> None:
        self.conn = conn
        self.status = status
        self.headers = headers
        self.content_length = content_length
        self.keep_alive = True
        self.close_delimited = False
        self.done = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: UpstreamError | None = None
        self._released = False
        self.read_timeout = 30.0  # set by the pool from the upstream's configuration
        self.deadline = float("inf")  # monotonic time by which the whole body must be in

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused and self.conn.transport:
            self._paused = True
            self.conn.transport.pause_reading()
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def fail(self, error: UpstreamError) -> None:
        self._error = error
        self.done = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; raises UpstreamError if the body breaks off or stalls."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < LOW_WATER and self.conn.transport:
                    self._paused = False
                    self.conn.transport.resume_reading()
                yield chunk
                continue
            if self._error is not None:
                raise self._error
            if self.done:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            wait = min(self.read_timeout, self.deadline - time.monotonic())
            self.conn.arm(wait, "the upstream body stalled")
            try:
                await self._waiter
            finally:
                self._waiter = None
                self.conn.disarm()

    def release(self) -> None:
        """Give the connection back when the exchange ended cleanly, else close it."""
        if self._released:
            return
        self._released = True
        conn = self.conn
        if self.done and self._error is None and self.keep_alive and not conn.closed:
            conn.pool.give_back(conn)
        else:
            conn.abort()
            conn.pool.forget(conn)


class ConnectionPool:
    """Idle keep-alive connections to one upstream, at most ``max_connections`` open."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        max_connections: int,
        keepalive_s: float,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.server_hostname = server_hostname
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self._idle: deque[UpstreamConnection] = deque()
        self._open: set[UpstreamConnection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, connect_timeout: float, deadline: float) -> UpstreamConnection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()  # most recently used: the least likely to be stale
            if conn.closed or now - conn.idle_since > self.keepalive_s:
                conn.abort()
                self._open.discard(conn)
                continue
            conn.reused = True
            return conn
        while len(self._open) >= self.max_connections:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise UpstreamError("upstream_timeout", "no upstream connection free") from None
            if self._idle:
                return await self.acquire(connect_timeout, deadline)
        loop = asyncio.get_running_loop()
        placeholder = UpstreamConnection(self)
        self._open.add(placeholder)  # reserve the slot while connecting
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.server_hostname,
                ),
                min(connect_timeout, max(0.0, deadline - time.monotonic())),
            )
        except TimeoutError:
            raise UpstreamError(
                "upstream_timeout", "connecting to the upstream timed out"
            ) from None
        except ssl.SSLError:
            raise UpstreamError(
                "upstream_unavailable", "TLS handshake with the upstream failed"
            ) from None
        except OSError:
            raise UpstreamError(
                "upstream_unavailable", "the upstream could not be reached"
            ) from None
        finally:
            self._open.discard(placeholder)
            self._wake_one()
        self._open.add(conn)
        return conn

    def give_back(self, conn: UpstreamConnection) -> None:
        conn.idle_since = time.monotonic()
        conn.response = None
        self._idle.append(conn)
        self._wake_one()

    def forget(self, conn: UpstreamConnection) -> None:
        self._open.discard(conn)
        try:
            self._idle.remove(conn)
        except ValueError:
            pass
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        for conn in list(self._open) + list(self._idle):
            conn.abort()
        self._open.clear()
        self._idle.clear()
