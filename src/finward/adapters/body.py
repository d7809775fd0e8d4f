"""A request body channel between the parser (producer) and the upstream writer (consumer).

Backpressure: the protocol stops reading the socket while more than
``HIGH_WATER`` bytes wait here, so a fast client cannot make the gateway buffer
an upload the upstream reads slowly. The channel keeps the time reading was held
that way, and when its consumer first asked for data, so the minimum body rate
(``limits.min_body_rate_bytes_s``) only counts time the client was free to send.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class BodyTooLargeError(Exception):
    pass


class ClientGoneError(Exception):
    pass


class BodyFramingError(Exception):
    """The message broke HTTP framing (bad coding, bad chunk, timeout).

    ``reason`` is the reason code and ``detail`` an optional explanation for the
    problem body. Raised from parser callbacks, and set on a body channel whose
    reader must answer with it.
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class BodyChannel:
    __slots__ = (
        "_buffered",
        "_chunks",
        "_pause",
        "_paused",
        "_paused_at",
        "_paused_s",
        "_resume",
        "_waiter",
        "eof",
        "error",
        "first_read_at",
        "on_first_read",
        "received",
    )

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._pause = pause
        self._resume = resume
        self._paused = False
        self._paused_at = 0.0  # loop time reading was last paused for backpressure
        self._paused_s = 0.0  # total time reading was paused for backpressure, until then
        self.eof = False
        self.error: BaseException | None = None
        self.received = 0
        # Called once when the consumer first asks for data ("Expect: 100-continue").
        self.on_first_read: Callable[[], None] | None = None
        # Loop time of the consumer's first read (when "100 Continue" goes out), or None.
        self.first_read_at: float | None = None

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        self.received += len(data)
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._paused_at = asyncio.get_running_loop().time()
            self._pause()
        self._wake()

    def finish(self) -> None:
        self.eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def paused_for(self, now: float) -> float:
        """Seconds until ``now`` (loop time) that the gateway held reading for backpressure."""
        return self._paused_s + (now - self._paused_at if self._paused else 0.0)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        """Next chunk; b"" at the end. Raises the failure that ended the body."""
        if self.first_read_at is None:
            self.first_read_at = asyncio.get_running_loop().time()
        if self.on_first_read is not None:
            callback, self.on_first_read = self.on_first_read, None
            callback()
        while True:
            if self.error is not None:
                raise self.error
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < LOW_WATER:
                    self._paused = False
                    self._paused_s += asyncio.get_running_loop().time() - self._paused_at
                    self._resume()
                return chunk
            if self.eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.read()
            if not chunk:
                return
            yield chunk

    async def read_prefix(self, limit: int) -> tuple[list[bytes], bool]:
        """Read until the end or past ``limit`` bytes: (chunks, reached the end)."""
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = await self.read()
            if not chunk:
                return chunks, True
            chunks.append(chunk)
            size += len(chunk)
        return chunks, False

    async def read_all(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError
            parts.append(chunk)
        return b"".join(parts)
