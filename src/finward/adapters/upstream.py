"""Pooled HTTP/1.1 keep-alive connections to upstream APIs (aiohttp client).

aiohttp was measured against httpx for this job (DESIGN.md: httpx about 4 times slower
as an upstream client). Every option here closes a gap a reverse proxy must
not have: no cookie jar (cookies of one client would be replayed for the next),
no redirects followed, no content decoding, no environment proxies.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from finward.config.model import UpstreamConfig

# Upstream response header limits (aiohttp defaults are 8190; banks' JWS
# signatures in x-jws-signature headers can be longer).
MAX_UPSTREAM_LINE = 16_384
MAX_UPSTREAM_FIELD = 16_384


class UpstreamError(Exception):
    """An upstream failure, mapped to a stable reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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


def _client_ssl(cfg: UpstreamConfig) -> ssl.SSLContext | bool:
    if not cfg.url.startswith("https"):
        return False
    ctx = ssl.create_default_context(cafile=str(cfg.tls.ca) if cfg.tls and cfg.tls.ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.tls is not None:
        if not cfg.tls.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.tls.client_cert is not None:
            ctx.load_cert_chain(
                str(cfg.tls.client_cert), str(cfg.tls.client_key) if cfg.tls.client_key else None
            )
    return ctx


class UpstreamPool:
    """One aiohttp session (connection pool) per upstream; created on first use."""

    def __init__(self, upstreams: Mapping[str, UpstreamConfig]) -> None:
        self._configs = dict(upstreams)
        self.targets = {name: parse_target(cfg) for name, cfg in upstreams.items()}
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._bases = {
            name: f"{t.scheme}://{t.authority}{t.prefix}" for name, t in self.targets.items()
        }

    def _session(self, name: str) -> aiohttp.ClientSession:
        session = self._sessions.get(name)
        if session is None:
            cfg = self._configs[name]
            connector = aiohttp.TCPConnector(
                limit=cfg.max_connections,
                limit_per_host=cfg.max_connections,
                keepalive_timeout=cfg.keepalive_s,
                ssl=_client_ssl(cfg),
                ttl_dns_cache=60,
            )
            timeout = aiohttp.ClientTimeout(
                total=cfg.timeouts.total_s,
                sock_connect=cfg.timeouts.connect_s,
                connect=cfg.timeouts.connect_s,
                sock_read=cfg.timeouts.read_s,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                max_line_size=MAX_UPSTREAM_LINE,
                max_field_size=MAX_UPSTREAM_FIELD,
                raise_for_status=False,
            )
            self._sessions[name] = session
        return session

    async def request(
        self,
        name: str,
        method: str,
        path_and_query: str,
        headers: list[tuple[str, str]],
        body: AsyncIterable[bytes] | bytes | None,
    ) -> aiohttp.ClientResponse:
        """Send the request; the caller must release the returned response."""
        url = URL(self._bases[name] + path_and_query, encoded=True)
        try:
            return await self._session(name).request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                compress=None,
                chunked=None,
            )
        except TimeoutError as exc:
            raise UpstreamError("upstream_timeout", "timed out waiting for the upstream") from exc
        except aiohttp.ServerTimeoutError as exc:
            raise UpstreamError("upstream_timeout", "timed out waiting for the upstream") from exc
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
            raise UpstreamError(
                "upstream_unavailable", "the upstream could not be reached"
            ) from exc
        except aiohttp.ClientResponseError as exc:
            raise UpstreamError(
                "upstream_bad_response", "the upstream response was invalid"
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("upstream_unavailable", "the upstream connection failed") from exc

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()
