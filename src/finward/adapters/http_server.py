"""HTTP/1.1 server protocol on llhttp (httptools): parse, guard, hand off to the proxy.

The parser is llhttp in strict mode, which already refuses every classic
smuggling shape (CL+TE, repeated Content-Length, bad chunk sizes, obs-fold,
whitespace before the colon, bare LF). This module maps each refusal to a
stable reason code, enforces size and time limits, and serialises requests on
a connection (pipelined requests queue; responses go out in order).

Slow clients (slowloris, slow POST / R.U.D.Y.) are bounded by one timer per
connection: an absolute header deadline (bytes still trickling in do not extend
it), an absolute body deadline, and a minimum average body rate checked by the same
timer (never per chunk). Connections are capped in total and per client IP.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import httptools

from finward.adapters.body import (
    BodyChannel,
    BodyFramingError,
    BodyTooLargeError,
    ClientGoneError,
)
from finward.adapters.deadline import Deadline
from finward.adapters.tls import describe
from finward.core.forwarding import is_trusted
from finward.http import TlsInfo

if TYPE_CHECKING:
    from finward.adapters.worker import Worker

# llhttp error text → reason code. Order matters: first match wins.
PARSER_ERRORS: tuple[tuple[str, str], ...] = (
    ("can't be present with", "ambiguous_message_length"),  # CL+TE in either order
    ("content-length", "invalid_content_length"),
    ("chunk", "invalid_chunk"),
    ("transfer-encoding", "invalid_transfer_encoding"),
    ("unexpected whitespace after header value", "obsolete_line_folding"),
    ("header", "invalid_header"),
)


def reason_for_parser_error(message: str) -> str:
    text = message.lower()
    for needle, reason in PARSER_ERRORS:
        if needle in text:
            return reason
    return "malformed_request"


# Large reads are fed to the parser in slices so the per-message byte cap is checked.
FEED_SLICE = 65_536
# How long to keep discarding a refused client's input before closing (see close_lingering).
LINGER_S = 2.0
# Least time between two checks of one body's rate: a client sending just above the
# minimum is re-checked at most this often (a fast one almost never: its next possible
# failure lies far ahead).
RATE_CHECK_INTERVAL_S = 0.25


class _HeadersTooLargeError(Exception):
    pass


class _UriTooLongError(Exception):
    pass


class _StopParsingError(Exception):
    """A request after ``Connection: close``: never processed (RFC 9112 §9.6)."""


class Exchange:
    """One request/response on a connection."""

    __slots__ = (
        "body",
        "chunked",
        "complete",
        "error_reason",
        "has_body",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "target",
    )

    def __init__(self) -> None:
        self.method = ""
        self.target = ""
        self.headers: list[tuple[str, str]] = []
        self.http_version = "1.1"
        self.keep_alive = True
        self.body: BodyChannel | None = None
        self.complete = False
        self.error_reason: str | None = None  # set when refused before the pipeline
        self.has_body = False
        self.chunked = False


class HttpProtocol(asyncio.Protocol):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        limits = worker.limits
        self.max_header_bytes = limits.max_header_bytes
        self.max_headers = limits.max_headers
        self.max_uri_bytes = limits.max_uri_bytes
        self.max_body_bytes = limits.max_body_bytes
        # Body plus chunk framing (a chunk header costs a few bytes per chunk), headers
        # and request line: twice the body limit leaves ample room for honest framing.
        self.max_message_bytes = (
            2 * limits.max_body_bytes + limits.max_header_bytes + limits.max_uri_bytes + 65_536
        )
        self._raw_bytes = 0
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer_ip = ""
        # (the trusted_proxies tuple it was computed for, whether peer_ip is in it)
        self.peer_trust: tuple[object, bool] | None = None
        # (reader, header value, (DER, thumbprint, not-after)) of the last verified
        # client-certificate header on this connection.
        self.cert_memo: tuple[object, str, tuple[bytes, str, float]] | None = None
        # What policies remember between this connection's requests (RequestView).
        self.memo: dict[object, Any] = {}
        self.scheme = "http"
        self.tls: TlsInfo | None = None
        self.reading: Exchange | None = None  # being parsed
        self.queue: deque[Exchange] = deque()  # parsed, waiting for the handler
        self.handling: Exchange | None = None
        self.task: asyncio.Task[None] | None = None
        self._url = bytearray()
        self._header_bytes = 0
        self._deadline = Deadline()  # idle, header, body or linger: one at a time
        self._counted_ip = False  # peer_ip holds a slot in the per-IP table
        # The body being read: when its clock started, its absolute deadline, and whether
        # the client waits for "100 Continue" (its rate clock starts at the first read).
        self._body_started = 0.0
        self._body_deadline = 0.0
        self._body_waits_continue = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self.closed = False
        self.closing = False  # no further requests on this connection
        self.started_reading = False
        self.lingering = False

    # -- connection lifecycle ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if peer else ""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.scheme = "https"
            version, cipher, der = describe(ssl_object)
            self.tls = TlsInfo(version, cipher, der, "tls" if der else None)
        limits = self.worker.limits
        if len(self.worker.connections) >= limits.max_connections:
            # Refuse early and cheaply: one fixed response, no parsing (fd exhaustion defence).
            self.closing = True
            self.refuse_now("too_many_connections")
            return
        per_ip = limits.max_connections_per_ip
        if per_ip and self.peer_ip:
            table = self.worker.connections_per_ip
            held = table.get(self.peer_ip, 0)
            if held >= per_ip and not self._is_peer_trusted():
                # One source holding many sockets (slowloris from a single host): refuse it
                # without starving everyone else of the global cap.
                self.closing = True
                self.refuse_now("too_many_connections_from_ip")
                return
            table[self.peer_ip] = held + 1
            self._counted_ip = True
        self.worker.connections.add(self)
        self._arm(self.worker.limits.keepalive_timeout_s, self._on_idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.worker.connections.discard(self)
        if self._counted_ip:
            self._counted_ip = False
            table = self.worker.connections_per_ip
            held = table.get(self.peer_ip, 0) - 1
            if held > 0:
                table[self.peer_ip] = held
            else:
                table.pop(self.peer_ip, None)
        self._deadline.cancel()
        for ex in (self.reading, self.handling, *self.queue):
            if ex is not None and ex.body is not None:
                ex.body.fail(ClientGoneError())
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ClientGoneError())

    def _is_peer_trusted(self) -> bool:
        """Whether the socket peer is one of proxy.trusted_proxies (cached like the proxy)."""
        trusted = self.worker.state.config.proxy.trusted_proxies
        cached = self.peer_trust
        if cached is not None and cached[0] is trusted:
            return cached[1]
        result = is_trusted(self.peer_ip, trusted)
        self.peer_trust = (trusted, result)
        return result

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        """Wait until the client has taken what we wrote; a client that reads nothing
        for ``limits.send_timeout_s`` is cut off (slow-read defence)."""
        if self.closed:
            raise ClientGoneError
        if self._write_paused:
            self._drain = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._drain, self.worker.limits.send_timeout_s)
            except TimeoutError:
                if self.transport is not None:
                    self.transport.abort()
                self.closed = True
                raise ClientGoneError from None

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def close_lingering(self) -> None:
        """Close after a final response without resetting the connection.

        Closing a socket with unread input makes the kernel send RST, which can
        destroy the response before the client reads it (nginx "lingering_close").
        So: send FIN, discard input for a bounded time, then close.
        """
        transport = self.transport
        if transport is None or self.closed:
            return
        if not transport.can_write_eof():  # TLS: close_notify, then close
            self.close()
            return
        self.lingering = True
        self.closing = True
        transport.write_eof()
        self._arm(LINGER_S, self.close)
        transport.resume_reading()

    # -- timers (bounded slowloris / idle exposure; no threads) -------------------------

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._deadline.arm(delay, callback)

    def _disarm(self) -> None:
        self._deadline.disarm()

    def _on_idle_timeout(self) -> None:
        self.close()

    def _on_request_timeout(self) -> None:
        ex = self.reading
        if ex is not None and ex.body is not None:
            # Headers are in, the body is not: the handler answers 408 (or aborts upstream).
            ex.body.fail(BodyFramingError("request_timeout"))
            self.closing = True
            return
        self.refuse_now("request_timeout")

    def _start_body_clock(self, waits_continue: bool) -> None:
        now = asyncio.get_running_loop().time()
        self._body_started = now
        self._body_deadline = now + self.worker.limits.body_timeout_s
        self._body_waits_continue = waits_continue
        self._arm_body_check(now)

    def _arm_body_check(self, now: float) -> None:
        """Arm the connection's one timer for the body deadline or the next rate check."""
        when = self._body_deadline
        limits = self.worker.limits
        rate = limits.min_body_rate_bytes_s
        ex = self.reading
        if rate > 0 and ex is not None and ex.body is not None:
            body = ex.body
            start = body.first_read_at if self._body_waits_continue else self._body_started
            if start is None:  # waiting for the handler to want the body (100 Continue)
                check = now + limits.min_body_rate_grace_s
            else:
                # The earliest moment the average could fall below the minimum, had no
                # further byte arrived: when the active time reaches received / rate.
                active = now - start - body.paused_for(now)
                need = max(limits.min_body_rate_grace_s, body.received / rate)
                check = now + max(need - active, RATE_CHECK_INTERVAL_S)
            when = min(when, check)
        self._arm(when - now, self._on_body_check)

    def _on_body_check(self) -> None:
        ex = self.reading
        body = ex.body if ex is not None else None
        if body is None or body.eof or body.error is not None:
            return
        now = asyncio.get_running_loop().time()
        if now >= self._body_deadline - 0.001:
            self._on_request_timeout()  # limits.body_timeout_s: the absolute cap
            return
        limits = self.worker.limits
        rate = limits.min_body_rate_bytes_s
        start = body.first_read_at if self._body_waits_continue else self._body_started
        if rate > 0 and start is not None:
            active = now - start - body.paused_for(now)
            if active >= limits.min_body_rate_grace_s and body.received < rate * active:
                # Slow POST (R.U.D.Y.): the reader answers 408, or aborts the upstream
                # exchange the body was streaming into.
                body.fail(
                    BodyFramingError(
                        "request_timeout",
                        f"the request body was sent too slowly: {body.received} bytes in "
                        f"{active:.1f} s, below the minimum of {rate} bytes/s",
                    )
                )
                self.closing = True
                self.pause_reading()
                return
        self._arm_body_check(now)

    # -- parsing -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # discarding input until the client closes or LINGER_S passes
        if self.closing and self.reading is None:
            return  # refused connection: ignore the rest
        if not self.started_reading:
            self.started_reading = True
            self._arm(self.worker.limits.header_timeout_s, self._on_request_timeout)
        # Chunk extensions and framing never reach on_body, so max_body_bytes alone
        # would not bound them: the raw bytes of one message are capped as well,
        # checked between slices so one large read cannot slip past the check.
        for start in range(0, len(data), FEED_SLICE):
            if self.reading is not None:
                self._raw_bytes += min(FEED_SLICE, len(data) - start)
                if self._raw_bytes > self.max_message_bytes:
                    self.refuse_now("body_too_large")
                    return
            if not self._feed(
                data if len(data) <= FEED_SLICE else data[start : start + FEED_SLICE]
            ):
                return

    def _feed(self, data: bytes) -> bool:
        """Feed the parser; False once the connection refused or stopped parsing."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades (h2c, websocket) and CONNECT are not proxied: serve the
            # request as plain HTTP/1.1 and close, since the parser stops here.
            self.closing = True
            self.pause_reading()
            return False
        except httptools.HttpParserError as exc:
            # Exceptions raised in our callbacks come back wrapped, as the context.
            cause = exc.__context__
            if isinstance(cause, _StopParsingError):
                self.pause_reading()
            elif isinstance(cause, _HeadersTooLargeError):
                self.refuse_now("headers_too_large")
            elif isinstance(cause, _UriTooLongError):
                self.refuse_now("uri_too_long")
            elif isinstance(cause, BodyFramingError):
                self.refuse_now(cause.reason)
            else:
                self.refuse_now(reason_for_parser_error(str(exc)))
            return False
        return not self.closing or self.reading is not None

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.closing:
            self.transport.resume_reading()

    def on_message_begin(self) -> None:
        if self.closing:
            raise _StopParsingError
        self.reading = Exchange()
        self._url.clear()
        self._header_bytes = 0
        self._raw_bytes = 0
        if not self.started_reading:
            self.started_reading = True
        self._arm(self.worker.limits.header_timeout_s, self._on_request_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.max_uri_bytes:
            raise _UriTooLongError

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.reading
        assert ex is not None
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.max_header_bytes or len(ex.headers) >= self.max_headers:
            raise _HeadersTooLargeError
        if ex.method:
            # A trailer field of a chunked body: llhttp reports it like a header. It
            # arrives after every check ran, so it is counted and dropped, never
            # merged into the headers (trailer smuggling, RFC 9110 §6.5.1).
            return
        ex.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        ex = self.reading
        assert ex is not None
        parser = self.parser
        ex.method = parser.get_method().decode("ascii", "replace")
        ex.target = self._url.decode("latin-1")
        ex.http_version = parser.get_http_version()
        ex.keep_alive = parser.should_keep_alive() and not self.closing
        length = None
        codings: list[str] = []
        waits_continue = False
        for name, value in ex.headers:
            if name == "content-length":
                length = int(value)  # llhttp validated digits and uniqueness
            elif name == "transfer-encoding":
                codings.extend(c.strip().lower() for c in value.split(","))
            elif name == "expect":
                waits_continue = value.strip().lower() == "100-continue"
        chunked = ex.chunked = bool(codings)
        if chunked and codings != ["chunked"]:
            # Only a lone "chunked" is understood. Dropping another coding (e.g. gzip)
            # while re-chunking would hand the upstream bytes it cannot interpret.
            raise BodyFramingError("invalid_transfer_encoding")
        ex.has_body = chunked or bool(length)
        if length is not None and length > self.max_body_bytes:
            ex.error_reason = "body_too_large"  # refused before any byte is read
        if ex.has_body:
            ex.body = BodyChannel(self.pause_reading, self.resume_reading)
            self._start_body_clock(waits_continue)
        else:
            self._disarm()
        self.queue.append(ex)
        self._schedule()

    def on_body(self, data: bytes) -> None:
        ex = self.reading
        assert ex is not None and ex.body is not None
        if ex.body.received + len(data) > self.max_body_bytes:
            ex.body.fail(BodyTooLargeError())
            ex.keep_alive = False
            self.closing = True
            self.pause_reading()
            return
        if ex.body.error is None:
            ex.body.feed(data)

    def on_message_complete(self) -> None:
        ex = self.reading
        assert ex is not None
        ex.complete = True
        if ex.body is not None:
            ex.body.finish()
        self.reading = None
        if ex.body is not None or self.handling is not None:
            self._disarm()
        if not ex.keep_alive:
            self.closing = True
        # Pipelined requests wait for this response; don't buffer more of them.
        if self.handling is not None or self.queue:
            self.pause_reading()

    # -- dispatch -----------------------------------------------------------------------

    def _schedule(self) -> None:
        if self.handling is None and self.queue:
            ex = self.queue.popleft()
            self.handling = ex
            self.task = asyncio.get_running_loop().create_task(self.worker.handle(self, ex))

    def exchange_done(self, ex: Exchange) -> None:
        """Called by the handler after the last byte of the response is written."""
        self.handling = None
        self.task = None
        if self.closed:
            return
        if not ex.keep_alive or not ex.complete or (self.closing and not self.queue):
            self.close_lingering()
            return
        if self.queue:
            self._schedule()
            return
        self.started_reading = False
        self._arm(self.worker.limits.keepalive_timeout_s, self._on_idle_timeout)
        self.resume_reading()

    def refuse_now(self, reason: str) -> None:
        """Refuse the message being parsed (bad framing, limits) and close."""
        self.closing = True
        self.pause_reading()
        ex = self.reading
        self.reading = None
        if ex is not None and (ex is self.handling or ex in self.queue):
            # Headers were accepted and the body broke: its reader answers.
            ex.keep_alive = False
            if ex is not self.handling:
                ex.error_reason = reason
            if ex.body is not None:
                ex.body.fail(BodyFramingError(reason))
            return
        ex = ex or Exchange()
        ex.error_reason = reason
        ex.keep_alive = False
        ex.complete = True
        if not ex.target:
            ex.target = self._url.decode("latin-1")
        self.queue.append(ex)
        self._schedule()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)
