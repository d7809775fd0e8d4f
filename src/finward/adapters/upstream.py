"""Pooled HTTP/1.1 keep-alive connections to upstream APIs.

The connection handling lives in ``upstream_client`` (llhttp-based; chosen over
aiohttp's client by measurement, see docs/architecture.md). This module turns a
configured upstream into a pool, frames the request head, and bounds every
phase with the configured connect, read and total timeouts.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from finward.adapters.upstream_client import (
    IDEMPOTENT,
    ConnectionPool,
    UpstreamConnection,
    UpstreamError,
    UpstreamResponse,
)
from finward.config.model import UpstreamConfig

__all__ = ["UpstreamError", "UpstreamPool", "UpstreamResponse", "UpstreamTarget", "parse_target"]


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    name: str
    scheme: str
    host: str
    port: int
    authority: str  # what goes in the Host header
    prefix: str  # path prefix of the upstream URL, without trailing '/'


def parse_target(cfg: UpstreamConfig) -> UpstreamTarget:
    parts = urlsplit(cfg.url)
    scheme = parts.scheme or "http"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if scheme == "https" else 80)
    default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    host_for_header = f"[{host}]" if ":" in host else host
    authority = host_for_header if default_port else f"{host_for_header}:{port}"
    return UpstreamTarget(cfg.name, scheme, host, port, authority, parts.path.rstrip("/"))


def _client_ssl(cfg: UpstreamConfig) -> ssl.SSLContext | None:
    """TLS to the upstream: verified against the system or configured CAs (FAPI-03)."""
    if not cfg.url.startswith("https"):
        return None
    ctx = ssl.create_default_context(cafile=str(cfg.tls.ca) if cfg.tls and cfg.tls.ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if cfg.tls is not None:
        if not cfg.tls.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.tls.client_cert is not None:
            ctx.load_cert_chain(
                str(cfg.tls.client_cert), str(cfg.tls.client_key) if cfg.tls.client_key else None
            )
    return ctx


def _head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    # Header names and values were validated by llhttp on the way in (no CR, LF, NUL).
    lines = [f"{method} {target} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class UpstreamPool:
    """One connection pool per configured upstream; connections open on first use."""

    def __init__(self, upstreams: Mapping[str, UpstreamConfig]) -> None:
        self._configs = dict(upstreams)
        self.targets = {name: parse_target(cfg) for name, cfg in upstreams.items()}
        self._pools: dict[str, ConnectionPool] = {}

    def _pool(self, name: str) -> ConnectionPool:
        pool = self._pools.get(name)
        if pool is None:
            cfg, target = self._configs[name], self.targets[name]
            ctx = _client_ssl(cfg)
            pool = ConnectionPool(
                target.host,
                target.port,
                ctx,
                target.host if ctx is not None else None,
                cfg.max_connections,
                cfg.keepalive_s,
            )
            self._pools[name] = pool
        return pool

    async def request(
        self,
        name: str,
        method: str,
        path_and_query: str,
        headers: list[tuple[str, str]],
        body: AsyncIterable[bytes] | bytes | None,
    ) -> UpstreamResponse:
        """Send the request and return once the response head arrived.

        The caller reads ``response.chunks()`` and must call ``response.release()``.
        """
        cfg = self._configs[name]
        timeouts = cfg.timeouts
        deadline = time.monotonic() + timeouts.total_s
        pool = self._pool(name)
        chunked = isinstance(body, AsyncIterable) and all(n != "content-length" for n, _ in headers)
        if chunked:
            headers = [*headers, ("transfer-encoding", "chunked")]
        head = _head(method, self.targets[name].prefix + path_and_query, headers)
        # A stale keep-alive connection can fail before the upstream saw anything;
        # only a replayable, idempotent request is retried (nginx proxy_next_upstream).
        replayable = method in IDEMPOTENT and not isinstance(body, AsyncIterable)
        for attempt in range(2 if replayable else 1):
            conn = await pool.acquire(timeouts.connect_s, deadline)
            try:
                return await self._exchange(
                    conn, method, head, body, chunked, timeouts.read_s, deadline
                )
            except UpstreamError as exc:
                conn.abort()
                pool.forget(conn)
                stale = conn.reused and not conn.got_bytes and exc.reason == "upstream_unavailable"
                if stale and attempt == 0 and replayable:
                    continue
                raise
            except BaseException:
                conn.abort()
                pool.forget(conn)
                raise
        raise UpstreamError("upstream_unavailable", "the upstream closed the connection")

    @staticmethod
    async def _exchange(
        conn: UpstreamConnection,
        method: str,
        head: bytes,
        body: AsyncIterable[bytes] | bytes | None,
        chunked: bool,
        read_s: float,
        deadline: float,
    ) -> UpstreamResponse:
        try:
            future = await conn.send(head, body, expect_body=method != "HEAD", chunked=chunked)
        except ConnectionError:
            raise UpstreamError(
                "upstream_unavailable", "the upstream closed the connection"
            ) from None
        conn.arm(min(read_s, deadline - time.monotonic()), "timed out waiting for the upstream")
        try:
            response = await future
        finally:
            conn.disarm()
        response.read_timeout = read_s
        response.deadline = deadline
        if not conn.body_sent:
            response.keep_alive = False  # it answered before reading our whole body
        return response

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
